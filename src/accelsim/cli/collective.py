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
@click.option("--bytes", "size", required=True, metavar="B",
              help="Bytes per rank: the all-reduce buffer, reduce-scatter input, all-gather contribution, "
                   "all-to-all send buffer; unit strings allowed (\"64 MiB\").")
@click.option("--ranks", type=click.IntRange(min=1), required=True,
              help="Ranks (chips 0..N-1). More than the system's chips replicates its node over its scale-out network.")
@click.option("--algorithm", default=None, help="Force an algorithm (ring, bidirectional_ring, multidim_ring, "
                                                "direct, in_switch, halving_doubling, recursive_doubling, tree, "
                                                "hierarchical); default: the fastest predicted.")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a system field (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly
def collective(kind, system_name, size, ranks, algorithm, fidelity, overrides, as_json):
    """Time one collective (KIND) over --ranks chips of --system."""
    from ..arch.presets import load_system
    from ..arch.topology import scale_out_system
    from ..errors import WorkloadError
    from ..cost.collectives import BUSBW_FACTOR, collective_cost
    from ..units import parse

    try:
        nbytes = parse(size, "bytes")
    except ValueError as e:
        raise WorkloadError(f"--bytes: {e}") from None
    system = load_system(system_name, overrides)
    if ranks > system.num_chips and system.scale_out is not None:
        node = system.chips_per_node
        system = scale_out_system(system, -(-ranks // node) * node)
    res = collective_cost(system, kind, nbytes, ranks, algorithm)
    out = {"kind": kind, "system": system.name, "chips": system.num_chips, "ranks": ranks, "bytes_per_rank": nbytes,
           "algorithm": res.algorithm, "detail": res.detail, "fidelity": fidelity, "time_s": res.time_s,
           "busbw_Bps": res.busbw_Bps, "algbw_Bps": res.algbw_Bps, "bandwidth_s": res.bandwidth_s,
           "latency_s": res.latency_s, "bytes_sent_per_chip": res.bytes_sent_per_chip}
    if fidelity == "event":
        from ..sim.collective import simulate_collective

        t, sim = simulate_collective(system, kind, nbytes, ranks, res.algorithm)
        size_S = nbytes * (ranks if kind == "allgather" else 1)
        algbw = size_S / t if t > 0 else 0.0
        out.update(analytical_time_s=res.time_s, time_s=t, algbw_Bps=algbw,
                   busbw_Bps=algbw * BUSBW_FACTOR[kind](ranks), num_tasks=sim.schedule.num_tasks)
    if as_json:
        click.echo(json.dumps(out))
        return
    algo = res.algorithm + (f" ({res.detail})" if res.detail else "")
    click.echo(f"{kind} of {fmt(nbytes, 'B', binary=True)} per rank over {ranks} ranks on {system.name}: "
               f"{fmt(out['time_s'], 's')} ({fidelity}), busbw {fmt(out['busbw_Bps'], 'B/s')}, "
               f"algbw {fmt(out['algbw_Bps'], 'B/s')}, algorithm {algo}")
