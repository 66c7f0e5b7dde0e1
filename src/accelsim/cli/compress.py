"""``accelsim formats`` and ``accelsim sqnr``, and the ``run`` options that build a compression
recipe (``--weights --activations --kv --sparsity --recipe``)."""

from __future__ import annotations

import json

import click

from ..errors import WorkloadError
from .util import friendly, on_command_line


def recipe_from_options(recipe, weights, activations, kv_cache, sparsity):
    """A Compression from a recipe file and the per-field options (None when none is given)."""
    from ..compress.recipes import Compression

    if not any((recipe, weights, activations, kv_cache, sparsity)):
        return None
    base = Compression.load(recipe) if recipe else Compression()
    upd = {k: v for k, v in dict(weights=weights, activations=activations, kv_cache=kv_cache,
                                 sparsity=sparsity).items() if v is not None}
    try:
        return Compression.model_validate({**base.model_dump(), **upd})
    except ValueError as e:
        raise WorkloadError(f"bad compression options: {e}") from None



@click.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def formats_command(as_json):
    """List the number formats: storage bits per element (scales included), block size, scale
    format and the tensor-engine element type each runs at."""
    from ..compress.formats import format_table

    rows = format_table()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'format':<14}{'kind':<8}{'bits/el':>9}{'block':>7}  {'scale':<10}{'rate as':<8}{'max':>12}")
    for r in rows:
        extra = f" + {r['tensor_scale_bits']}-bit tensor scale" if r["tensor_scale_bits"] else ""
        click.echo(f"{r['name']:<14}{r['kind']:<8}{r['bits_per_element']:>9.4g}{r['block'] or '-':>7}  "
                   f"{r['scale'] or '-':<10}{r['compute']:<8}{r['max_value']:>12.5g}{extra}")
    click.echo("group-wise integers: int{bits}-g{group}[-bf16|-fp32|-e8m0][-zp], e.g. int4-g128 (4.125 bits)")


@click.command("sqnr")
@click.option("--format", "fmt_names", multiple=True, required=True, help="Format name (repeatable).")
@click.option("--group", type=click.IntRange(min=1), default=None,
              help="Group size for an integer format (int4 --group 128 = int4-g128).")
@click.option("--outliers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Outlier channels (columns) in the synthetic tensor.")
@click.option("--outlier-scale", type=float, default=20.0, show_default=True, help="Outlier channel magnitude.")
@click.option("--rows", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--cols", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--npy", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Quantize this .npy tensor instead of a synthetic one (blocks along its last axis).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly
def sqnr_command(fmt_names, group, outliers, outlier_scale, rows, cols, npy, seed, as_json):
    """Accuracy PROXY: SQNR (dB) of quantize -> dequantize in each format, on a synthetic
    Gaussian tensor with outlier channels (or a .npy tensor), and on a GEMM output (weights in
    the format, bf16 activations). Higher is better; it is not a model-accuracy prediction."""
    import numpy as np

    from ..compress.formats import fake_quant, get_format
    from ..compress.sqnr import gemm_sqnr, sqnr_db, synthetic_tensor

    shape = [f"--{n.replace('_', '-')}" for n in on_command_line("rows", "cols", "outliers", "outlier_scale")]
    if npy and shape:
        raise click.UsageError(f"{', '.join(shape)} shape the synthetic tensor, which --npy replaces")
    bare = [n.lower().startswith("int") and "-g" not in n for n in fmt_names]
    if group and not any(bare):
        raise click.UsageError(f"--group sets the group of a bare integer format (int4, int8); "
                               f"{', '.join(fmt_names)} {'has' if len(fmt_names) == 1 else 'have'} a grouping of "
                               f"{'its' if len(fmt_names) == 1 else 'their'} own (or none)")
    x = np.load(npy).astype(np.float64) if npy else synthetic_tensor(rows, cols, outliers, outlier_scale, seed)
    out = []
    for name, is_bare in zip(fmt_names, bare):
        if group and is_bare:
            name = f"{name}-g{group}"
        f = get_format(name)
        row = {"format": f.name, "bits_per_element": f.bits_per_element, "tensor_sqnr_db": sqnr_db(x, fake_quant(x, f)),
               "gemm_sqnr_db": gemm_sqnr(f, None, seed=seed), "proxy": True}
        out.append(row)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    src = npy or f"synthetic N(0,1) {rows}x{cols}, {outliers} outlier channels x{outlier_scale:g}"
    click.echo(f"SQNR accuracy proxy (dB) on {src}")
    click.echo(f"  {'format':<14}{'bits/el':>9}{'tensor':>9}{'GEMM out':>10}")
    for r in out:
        click.echo(f"  {r['format']:<14}{r['bits_per_element']:>9.4g}{r['tensor_sqnr_db']:>9.2f}{r['gemm_sqnr_db']:>10.2f}")
