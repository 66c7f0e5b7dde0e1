"""``accelsim sweep SPEC.yaml``: run a design-space sweep from the command line."""

from __future__ import annotations

import json
import os
import time

import click

from ..errors import ConfigError
from .util import friendly



def _dask(address: str, workers: int | None):
    """A Dask client and its concurrent.futures executor (``local``: a LocalCluster on 127.0.0.1)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError('--dask needs dask.distributed: pip install -e ".[dask]"') from None
    if address == "local":
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
    else:
        cluster, client = None, Client(address)
    return client, cluster


def _rank(spec: str) -> tuple[str, bool]:
    col, _, sense = spec.partition(":")
    if sense not in ("", "min", "max"):
        raise ConfigError(f"--rank {spec!r}: write COLUMN, COLUMN:min or COLUMN:max")
    return col, (sense or "max") == "min"


@click.command("sweep")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Parquet file for the results (rows are flushed as batches finish).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [all cores]; 1 runs in this process.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Run on a Dask cluster: its scheduler address, or 'local' for a LocalCluster on 127.0.0.1.")
@click.option("--resume", is_flag=True, help="Skip the points already stored in --out (by point hash).")
@click.option("--overwrite", is_flag=True,
              help="Replace --out even if it is not a sweep result of this space (default: refuse).")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Points per task [sized so a task runs ~0.5 s].")
@click.option("--rank", "rank", default="tokens_per_s:max", show_default=True, metavar="COLUMN[:min|max]",
              help="Metric to rank the printed best points by.")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True, help="Best feasible points to print.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (counts, timing, best points).")
@click.option("--stack", "stack_name", default=None, help="Software stack; default: the base system's stack.")
@click.option("--ideal", is_flag=True, help="The ideal bound (peak rates, no software costs) instead of realistic.")
@click.option("--load", type=click.Choice(["sustained", "burst"]), default="sustained", show_default=True,
              help="sustained: production steady state (the chip's power-limited clock); burst: a short benchmark run.")
@friendly
def sweep_command(spec, out, workers, dask_address, resume, overwrite, fidelity, batch_size, rank, top, no_progress,
                  as_json, stack_name, ideal, load):
    """Evaluate every point of the design space in SPEC (a sweep YAML, see
    workloads/sweeps/README.md) and print the best points; -o writes all of them to parquet."""
    from ..sweep.runner import METRICS, sweep
    from ..sweep.space import DesignSpace

    if (resume or overwrite) and not out:
        raise click.UsageError(f"{'--resume' if resume else '--overwrite'} needs -o/--out")
    if ideal and stack_name:
        raise click.UsageError("--ideal and --stack exclude each other")
    if dask_address and dask_address != "local" and workers is not None:
        raise click.UsageError("--workers sizes the local process pool or --dask local; a Dask scheduler at an "
                               "address runs on its own workers")
    col, ascending = _rank(rank)
    space = DesignSpace.from_yaml(spec)
    known = {*METRICS, *space.axes, *(p for a, v in space.axes.items() for p in space._axis_paths(a, v)),
             *space.constraints.spec_paths()}
    if col not in known:
        raise ConfigError(f"--rank {col!r}: not a result column; use a metric ({', '.join(METRICS)}) or an axis")
    client = cluster = None
    executor = None
    if dask_address:
        client, cluster = _dask(dask_address, workers)
        executor = client.get_executor()
    t0 = time.perf_counter()
    try:
        df = sweep(space, fidelity=fidelity, executor=executor, batch_size=batch_size, out=out, resume=resume,
                   overwrite=overwrite,
                   progress=not no_progress and not as_json, workers=workers,
                   mode="ideal" if ideal else "realistic", stack=stack_name, load=load)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    wall = time.perf_counter() - t0
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    feasible = int(df["feasible"].sum()) if "feasible" in df.columns else 0
    best = df[df["feasible"]].sort_values(col, ascending=ascending).head(top) if top and len(df) else df.iloc[0:0]
    axes = [a for a in space.axes if a in df.columns]
    shown = ["point", *axes, *dict.fromkeys([col, "latency_s", "tokens_per_s", "bound"])]
    shown = [c for c in shown if c in df.columns]
    if as_json:
        click.echo(json.dumps({"name": space.name, "points": len(df), "status": counts, "feasible": feasible,
                               "wall_s": wall, "out": out, "best": json.loads(best[shown].to_json(orient="records"))}))
        if counts.get("error", 0):
            raise SystemExit(3)
        return
    n_ok, n_inv, n_err = counts.get("ok", 0), counts.get("invalid", 0), counts.get("error", 0)
    click.echo(f"{space.name}: {len(df)} points ({n_ok} ok, {n_inv} invalid, {n_err} failed; {feasible} feasible) "
               f"in {wall:.2f} s")
    if out:
        click.echo(f"wrote {out} ({len(df)} rows)")
    if len(best):
        click.echo(f"best {len(best)} by {col} ({'min' if ascending else 'max'}):")
        click.echo(best[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    bad = df[df["status"] != "ok"]
    for _, r in bad.head(3).iterrows():
        click.echo(f"{r['status']} point {r['point']}: {r['error']}", err=True)
    if len(bad) > 3:
        click.echo(f"... and {len(bad) - 3} more invalid or failed points (see the error column)", err=True)
    if n_err:
        raise SystemExit(3)  # some points failed to evaluate (invalid design points are results, not failures)


__all__ = ["sweep_command"]
