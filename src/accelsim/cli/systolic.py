"""``accelsim systolic``: SCALE-Sim compute cycles of one GEMM on one systolic array."""

from __future__ import annotations

import json

import click



@click.command()
@click.argument("m", type=click.IntRange(min=1))
@click.argument("n", type=click.IntRange(min=1))
@click.argument("k", type=click.IntRange(min=1))
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Array rows.")
@click.option("--cols", type=click.IntRange(min=1), required=True, help="Array columns.")
@click.option("--dataflow", type=click.Choice(["ws", "os", "is"]), required=True)
@click.option("--json", "as_json", is_flag=True)
def systolic(m, n, k, rows, cols, dataflow, as_json):
    """Compute cycles of one M x N x K GEMM on one systolic array, as SCALE-Sim counts them."""
    from ..cost.systolic import scalesim_report

    rep = scalesim_report(m, n, k, rows, cols, dataflow)
    rep = {"M": m, "N": n, "K": k, "rows": rows, "cols": cols, "dataflow": dataflow, **rep}
    if as_json:
        click.echo(json.dumps(rep))
    else:
        click.echo(f"{m}x{n}x{k} on {rows}x{cols} ({dataflow}): {rep['compute_cycles']} cycles, "
                   f"{rep['folds']} folds, mapping efficiency {100 * rep['mapping_efficiency']:.1f}%, "
                   f"utilization {100 * rep['utilization']:.2f}%")
