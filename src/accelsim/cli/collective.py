"""``accelsim collective``: the time of one collective on a system."""

from __future__ import annotations

import json

import click

from ..units import fmt
from .util import friendly


@click.command()
@click.argument("kind", type=click.Choice(["allreduce", "allgather", "reducescatter", "alltoall", "broadcast",
                                           "sendrecv"]))
@click.option("--system", "system_name", required=True, help="System preset name or YAML file.")
@click.option("--bytes", "size", default=None, metavar="B",
              help="Bytes per rank: the all-reduce buffer, reduce-scatter input, all-gather contribution, "
                   "all-to-all send buffer; unit strings allowed (\"64 MiB\"). Not needed with --sweep.")
@click.option("--sweep", "sweep", default=None, metavar="MIN:MAX",
              help="Sizes from MIN to MAX doubling, as nccl-tests steps them (e.g. 8B:16GiB): one line per size.")
@click.option("--ranks", type=click.IntRange(min=1), required=True,
              help="Ranks (chips 0..N-1). More than the system's chips replicates its node over its scale-out network.")
@click.option("--algorithm", default=None, help="Force an algorithm (ring, bidirectional_ring, multidim_ring, "
                                                "direct, in_switch, halving_doubling, recursive_doubling, tree, "
                                                "hierarchical); default: the fastest predicted.")
@click.option("--stack", "stack_name", default=None,
              help="Software stack (accelsim presets lists them); default: the system's stack.")
@click.option("--ideal", is_flag=True, help="The ideal bound: peak link rates, no collective-library latency.")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a system field (repeatable).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="With --sweep: write time and bus bandwidth against size as a PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with --sweep: a list).")
@friendly
def collective(kind, system_name, size, sweep, ranks, algorithm, stack_name, ideal, fidelity, overrides, plot_path,
               as_json):
    """Time one collective (KIND) over --ranks chips of --system, or a sweep of sizes."""
    from ..arch.presets import load_system
    from ..arch.topology import scale_out_system
    from ..errors import WorkloadError
    from ..stack import resolve
    from ..units import parse

    if (size is None) == (sweep is None):
        raise click.UsageError("give --bytes B or --sweep MIN:MAX (one of them)")
    if plot_path and not sweep:
        raise click.UsageError("--plot needs --sweep")
    if ideal and stack_name:
        raise click.UsageError("--ideal and --stack exclude each other (ideal mode has no software stack)")
    system = load_system(system_name, overrides)
    stack = resolve(stack_name, system.stack, "ideal" if ideal else "realistic")
    if ranks > system.num_chips and system.scale_out is not None:
        node = system.chips_per_node
        system = scale_out_system(system, -(-ranks // node) * node)
    try:
        sizes = _sizes(sweep) if sweep else [parse(size, "bytes")]
    except ValueError as e:
        raise WorkloadError(f"{'--sweep' if sweep else '--bytes'}: {e}") from None
    rows = [_one(system, kind, n, ranks, algorithm, fidelity, stack) for n in sizes]
    mode = "ideal" if stack is None else f"realistic, stack {stack.name} ({stack.collectives.name})"
    if plot_path:
        from ..report.plots import collective_sweep_figure

        fig = collective_sweep_figure(rows, f"{kind} over {ranks} ranks of {system.name} ({mode})")
        fig.savefig(plot_path, dpi=110, bbox_inches="tight")
    if as_json:
        click.echo(json.dumps(rows if sweep else rows[0]))
        return
    if sweep:
        click.echo(f"{kind} over {ranks} ranks on {system.name}: {mode}, {fidelity}")
        click.echo(f"{'size':>10} {'time':>11} {'busbw':>12}  algorithm / protocol")
        for r in rows:
            proto = f" / {r['protocol']}" if r["protocol"] else ""
            click.echo(f"{_size(r['bytes_per_rank']):>10} {fmt(r['time_s'], 's'):>11} "
                       f"{fmt(r['busbw_Bps'], 'B/s'):>12}  {r['algorithm']}{proto}")
        if plot_path:
            click.echo(f"wrote {plot_path}")
        return
    r = rows[0]
    algo = r["algorithm"] + (f" ({r['detail']})" if r["detail"] else "") + (f", protocol {r['protocol']}"
                                                                            if r["protocol"] else "")
    click.echo(f"{kind} of {fmt(r['bytes_per_rank'], 'B', binary=True)} per rank over {ranks} ranks on {system.name}: "
               f"{fmt(r['time_s'], 's')} ({fidelity}; {mode}), busbw {fmt(r['busbw_Bps'], 'B/s')}, "
               f"algbw {fmt(r['algbw_Bps'], 'B/s')}, algorithm {algo}")


def _size(n: float) -> str:
    return f"{int(n)} B" if n < 1024 else fmt(n, "B", binary=True)


def _sizes(spec: str) -> list[float]:
    """MIN:MAX -> MIN, 2 MIN, 4 MIN, ... <= MAX (unit strings allowed)."""
    from ..units import parse

    lo, sep, hi = spec.partition(":")
    if not sep:
        raise ValueError(f"write MIN:MAX, e.g. 8B:16GiB (got {spec!r})")
    a, b = parse(lo, "bytes"), parse(hi, "bytes")
    if not 0 < a <= b:
        raise ValueError(f"need 0 < MIN <= MAX, got {spec!r}")
    out = []
    while a <= b * (1 + 1e-12):
        out.append(a)
        a *= 2
    return out


def _one(system, kind, nbytes, ranks, algorithm, fidelity, stack) -> dict:
    from ..cost.collectives import BUSBW_FACTOR, collective_cost

    res = collective_cost(system, kind, nbytes, ranks, algorithm, library=stack.collectives if stack else None)
    out = {"kind": kind, "system": system.name, "chips": system.num_chips, "ranks": ranks, "bytes_per_rank": nbytes,
           "algorithm": res.algorithm, "protocol": res.protocol, "detail": res.detail,
           "mode": "ideal" if stack is None else "realistic", "stack": stack.name if stack else None,
           "fidelity": fidelity, "time_s": res.time_s, "busbw_Bps": res.busbw_Bps, "algbw_Bps": res.algbw_Bps,
           "bandwidth_s": res.bandwidth_s, "latency_s": res.latency_s, "bytes_sent_per_chip": res.bytes_sent_per_chip}
    if fidelity == "event":
        from ..sim.collective import simulate_collective

        t, sim = simulate_collective(system, kind, nbytes, ranks, res.algorithm,
                                     library=stack.collectives if stack else None)
        size_S = nbytes * (ranks if kind == "allgather" else 1)
        algbw = size_S / t if t > 0 else 0.0
        out.update(analytical_time_s=res.time_s, time_s=t, algbw_Bps=algbw,
                   busbw_Bps=algbw * BUSBW_FACTOR[kind](ranks), num_tasks=sim.schedule.num_tasks)
    return out
