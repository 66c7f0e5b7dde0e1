"""``accelsim bench``: silicon microbenchmarks with PyTorch, written as measurement rows."""

from __future__ import annotations


import click

from ..units import fmt
from .util import friendly


@click.command()
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: cuda when PyTorch sees a GPU, else cpu.")
@click.option("--quick", is_flag=True, help="Few small shapes and repeats (seconds on a CPU): a smoke test.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Measurement CSV to write (correlate schema).")
@click.option("--system", default=None,
              help="accelsim preset (or YAML) that models this device; default from the GPU name, else unknown-<device>.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16", "fp8"]), default=None,
              help="Default: bf16 on cuda, fp32 on cpu. fp8: GEMMs only (torch._scaled_mm, CUDA).")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Warm-up calls per case.")
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Timed calls per case (the median is kept).")
@click.option("--attention", "attention_path", type=click.Path(dir_okay=False), default=None,
              help="Also time scaled_dot_product_attention and write it to this separate CSV (no correlate kind).")
@friendly
def bench(device, quick, out_path, system, dtype, warmup, repeats, attention_path):
    """Time GEMMs, memory copies, norms, activations and all-reduces on this machine with PyTorch
    and write them as measurement rows for accelsim correlate."""
    import time as _time

    from ..bench import run_bench, write_csv

    t0 = _time.perf_counter()

    def progress(row):
        click.echo(f"  {row['id']:<34}{fmt(row['measured_time_s'], 's'):>12}", err=True)

    rows, att = run_bench(device, quick=quick, system=system, dtype=dtype, warmup=warmup, repeats=repeats,
                          attention=attention_path is not None, progress=progress)
    write_csv(rows, out_path)
    if att is not None:
        write_csv(att, attention_path)
    sys_names = sorted(rows["system"].unique())
    click.echo(f"wrote {len(rows)} rows ({', '.join(dict.fromkeys(rows['kind']))}) to {out_path} "
               f"in {_time.perf_counter() - t0:.1f} s; system {', '.join(sys_names)}")
    if att is not None:
        click.echo(f"wrote {len(att)} attention rows to {attention_path}")
    unknown = [s for s in sys_names if s.startswith("unknown-")]
    if unknown:
        click.echo(f"warning: no accelsim preset is known for this device, so rows are labelled system "
                   f"{unknown[0]!r}; pass --system NAME (a preset or YAML that models it) before correlating",
                   err=True)


@click.command("bench-model")
@click.argument("model")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="CSV to write (validation schema: whole steps, never fitted).")
@click.option("--points", "points_text", default="prefill:1x512,decode:1x1024,decode:8x1024", show_default=True,
              help="PHASE:BATCHxLEN, comma-separated: prefill BATCHxSEQ, decode BATCHxCONTEXT, train BATCHxSEQ.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--system", default=None, help="accelsim preset that models this device; default from the GPU name.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Default: bf16 on cuda, fp32 on cpu.")
@click.option("--layers", type=click.IntRange(min=1), default=None,
              help="Build only this many layers (a smoke test; the rows then name the model MODEL@NL).")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--graphs/--no-graphs", default=True, show_default=True,
              help="Also replay each decode step as one captured CUDA graph (stack cuda-eager-graphs).")
@friendly
def bench_model(model, out_path, points_text, device, system, dtype, layers, warmup, repeats, graphs):
    """Time whole prefill, decode and training steps of MODEL (a plain-PyTorch decoder built from its
    spec, random weights) on this machine and write them as validation rows for accelsim correlate."""
    from ..bench import write_csv
    from ..bench.model import parse_points, run_model_bench

    def progress(row):
        click.echo(f"  {row['id']:<48}{fmt(row['measured_time_s'], 's'):>12}", err=True)

    rows = run_model_bench(model, parse_points(points_text), device=device, system=system, dtype=dtype,
                           warmup=warmup, repeats=repeats, graphs=graphs, layers=layers, progress=progress)
    write_csv(rows, out_path)
    click.echo(f"wrote {len(rows)} rows to {out_path}; system {', '.join(sorted(rows['system'].unique()))}")
