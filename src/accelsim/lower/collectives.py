"""Collective algorithms: alpha-beta time on the system's topology (analytical tier).

Notation: ``n`` = bytes each rank contributes, ``p`` = ranks, ``B`` = one-direction bandwidth
between two neighbours (link bandwidth x links per neighbour x link efficiency), ``a`` = link
latency. The group is placed on the fastest chips first: along torus dimensions in order.

| topology         | all-reduce                                    | algorithm            |
|------------------|-----------------------------------------------|----------------------|
| switch + SHARP   | n/B + 2a                                      | in-switch reduction  |
| switch           | 2(p-1)/p * n/B + 2(p-1)a                      | ring through switch  |
| fully connected  | 2 * (n/p)/B + 2a                              | direct RS + AG       |
| ring / torus dim | sum_i 2(g_i-1)/g_i * n_i/(w_i B) + 2(g_i-1)a  | (multi-dim) bidir ring |

For tori the group spans dims with extents g_i; ``n_i = n / (g_1...g_{i-1})`` (reduce-scatter
in dim 1 shrinks what dim 2 carries); ``w_i`` = 2 for a ring that closes (both directions
carry half) and 1 for an open line. Reduce-scatter and all-gather are the first and second half
of the all-reduce (all-gather's ``n`` is each rank's contribution, so its traffic is ``(p-1)n``).
All-to-all: ``(p-1)/p * n/B`` through a switch, ``(n/p)/B`` fully connected, and the link load
``n g/8`` per direction per ring dimension of a torus.
"""

from __future__ import annotations

from ..arch.spec import SystemSpec
from ..errors import WorkloadError
from ..workload.ops import Collective


def group_dims(system: SystemSpec, p: int) -> list[tuple[int, bool]]:
    """Extents of a ``p``-chip group along the topology's dims, and whether each closes a ring."""
    ic = system.interconnect
    dims = list(ic.dims) if ic.dims else [system.num_chips]
    out, left = [], p
    for d in dims:
        if left == 1:
            break
        g = min(d, left)
        if left % g:
            raise WorkloadError(f"a group of {p} chips does not tile the {ic.kind} dims {dims}")
        out.append((g, g == d and g > 2))
        left //= g
    if left != 1:
        raise WorkloadError(f"a group of {p} chips does not fit {system.name} ({system.num_chips} chips)")
    return out


def collective_time(system: SystemSpec, op: Collective) -> tuple[float, float, float, str]:
    """(bandwidth time, latency + software overhead, bytes sent per chip, algorithm name)."""
    p, n = op.group, op.bytes_per_rank
    cal = system.chip.calibration
    if p <= 1 or n <= 0:
        return 0.0, 0.0, 0.0, "none"
    ic = system.interconnect
    if ic is None or p > system.num_chips:
        raise WorkloadError(f"{op.op} over {p} chips needs a system with at least {p} chips; "
                            f"{system.name} has {system.num_chips}")
    B = ic.link_bandwidth_Bps * ic.links_per_neighbour * cal.link_efficiency
    a = ic.link_latency_s
    sw = cal.collective_overhead_s
    halves = {"allreduce": 2, "reducescatter": 1, "allgather": 1}
    if op.op == "alltoall":
        if ic.kind == "switch":
            return (p - 1) / p * n / B, a + sw, (p - 1) / p * n, "switch all-to-all"
        if ic.kind == "fully_connected":
            return (n / p) / B, a + sw, (p - 1) / p * n, "direct all-to-all"
        t = sum(n * g / (8 if ring else 4) / B for g, ring in group_dims(system, p))
        hops = sum(g // 2 for g, _ in group_dims(system, p))
        return t, hops * a + sw, (p - 1) / p * n, "dimension-ordered all-to-all"
    phases = halves[op.op]
    ag_scale = p if op.op == "allgather" else 1  # all-gather moves (p-1)/p of p*n
    size = n * ag_scale
    if ic.kind == "switch":
        if ic.in_switch_reduction and op.op != "allgather":
            return phases / 2 * size / B, phases * a + sw, phases / 2 * size, "in-switch reduction"
        t = phases * (p - 1) / p * size / B
        return t, phases * (p - 1) * a + sw, phases * (p - 1) / p * size, "ring via switch"
    if ic.kind == "fully_connected":
        return phases * (size / p) / B, phases * a + sw, phases * (p - 1) / p * size, "direct"
    t, steps, chunk = 0.0, 0, size
    for g, ring in group_dims(system, p):
        t += phases * (g - 1) / g * chunk / ((2 if ring else 1) * B)
        steps += phases * (g - 1)
        chunk /= g
    kind = "bidirectional ring" if ic.kind == "ring" else f"{len(group_dims(system, p))}-D ring"
    return t, steps * a + sw, phases * (p - 1) / p * size, kind
