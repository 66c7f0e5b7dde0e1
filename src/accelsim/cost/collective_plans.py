"""Collective algorithms as plans: the concurrent chip-to-chip transfers of each step (ring,
bidirectional and multi-dimensional rings, direct, in-switch, halving-doubling, recursive
doubling, tree), from the topology's structure only. ``cost.collectives`` prices them (link
bandwidth, latency, protocols) and chooses among them; the event tier runs them transfer by
transfer (``lower.collective_schedule``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..arch.topology import Topology, box, node_orders, ring_orders, snake
from ..errors import WorkloadError

ALGORITHMS = ("in_switch", "hierarchical", "multidim_ring", "bidirectional_ring", "ring", "direct",
              "halving_doubling", "recursive_doubling", "tree")
"""Algorithm names, in tie-break preference order."""


@dataclass(frozen=True)
class Step:
    """Concurrent transfers (src chip, dst chip, bytes / bytes_per_rank), ``repeat`` times."""

    transfers: tuple[tuple[int, int, float], ...]
    repeat: int = 1


@dataclass(frozen=True)
class Plan:
    """An algorithm as steps over chips."""

    algorithm: str
    steps: tuple[Step, ...]
    detail: str = ""



def size_units(kind: str, p: int) -> float:
    """Data the algorithm divides, in units of bytes_per_rank (all-gather: the output)."""
    return float(p) if kind == "allgather" else 1.0


def _ring_plan(topo: Topology, kind: str, group: tuple[int, ...], bidir: bool) -> tuple[Step, ...]:
    p = len(group)
    orders = ring_orders(topo, group)
    if kind == "broadcast":  # one pipelined chain from rank 0, in p chunks
        order = [c for o in node_orders(topo, group) for c in o]
        k = order.index(group[0])
        order = order[k:] + order[:k]
        chunks = p
        steps: list[Step] = []
        for s in range(chunks + p - 2):
            tr = tuple((order[i], order[i + 1], 1.0 / chunks) for i in range(p - 1) if 0 <= s - i < chunks)
            if steps and steps[-1].transfers == tr:
                steps[-1] = Step(tr, steps[-1].repeat + 1)
            else:
                steps.append(Step(tr))
        return tuple(steps)
    chunk = size_units(kind, p) / p / len(orders) / (2 if bidir else 1)
    tr = []
    for order in orders:
        tr += [(order[i], order[(i + 1) % p], chunk) for i in range(p)]
        if bidir:
            tr += [(order[i], order[i - 1], chunk) for i in range(p)]
    return (Step(tuple(tr), 2 * (p - 1) if kind == "allreduce" else p - 1),)


def _pairs(group, frac: float) -> tuple[tuple[int, int, float], ...]:
    return tuple((a, b, frac) for a in group for b in group if a != b)


def _direct_plan(kind: str, group: tuple[int, ...]) -> tuple[Step, ...]:
    p = len(group)
    if kind == "sendrecv":
        return (Step(((group[0], group[1], 1.0),)),)
    if kind == "broadcast":
        return (Step(tuple((group[0], b, 1.0) for b in group[1:])),)
    if kind == "allgather":
        return (Step(_pairs(group, 1.0)),)
    return (Step(_pairs(group, 1.0 / p), 2 if kind == "allreduce" else 1),)


def _hd_plan(kind: str, group: tuple[int, ...], doubling_only: bool) -> tuple[Step, ...]:
    p = len(group)
    k = p.bit_length() - 1
    if doubling_only:  # recursive doubling all-reduce: exchange everything with distance 1, 2, 4..
        return tuple(Step(tuple((group[r], group[r ^ (1 << j)], 1.0) for r in range(p))) for j in range(k))
    rs = [Step(tuple((group[r], group[r ^ (1 << j)], 1.0 / 2 ** (j + 1)) for r in range(p))) for j in range(k)]
    if kind == "reducescatter":
        return tuple(rs)
    if kind == "allgather":
        return tuple(Step(tuple((group[r], group[r ^ (1 << j)], float(p) / 2 ** (j + 1)) for r in range(p)))
                     for j in reversed(range(k)))
    return tuple(rs + rs[::-1])


def _tree_plan(group: tuple[int, ...]) -> tuple[Step, ...]:
    p = len(group)
    steps, span = [], 1
    while span < p:
        steps.append(Step(tuple((group[r], group[r + span], 1.0) for r in range(span) if r + span < p)))
        span *= 2
    return tuple(steps)


def zip_steps(parts: list[tuple[Step, ...]]) -> tuple[Step, ...]:
    """Run plans side by side, step k of each together (repeats split where they differ)."""
    queues = [[(s.transfers, s.repeat) for s in part] for part in parts]
    out: list[Step] = []
    while any(queues):
        live = [q for q in queues if q]
        r = min(q[0][1] for q in live)
        tr = tuple(t for q in live for t in q[0][0])
        for q in live:
            q[0] = (q[0][0], q[0][1] - r)
            if q[0][1] == 0:
                q.pop(0)
        if out and out[-1].transfers == tr:
            out[-1] = Step(tr, out[-1].repeat + r)
        else:
            out.append(Step(tr, r))
    return tuple(out)


def _multidim_plan(topo: Topology, kind: str, group: tuple[int, ...]) -> tuple[Step, ...]:
    node = topo.node_of(group[0])
    sets = box(topo, group)
    act = [i for i, s in enumerate(sets) if len(s) > 1]
    q = len(act)

    def phase(dim: int, chunk: float) -> Step:
        g = len(sets[dim])
        closed = topo.wraps and g == topo.dims[dim]
        bidir = closed and topo.bidirectional and g > 2
        others = [s if i != dim else [None] for i, s in enumerate(sets)]
        tr = []
        for fixed in snake(others):
            line = [topo.chip_at(node, [x if i != dim else y for i, x in enumerate(fixed)]) for y in sets[dim]]
            for i in range(g):
                tr.append((line[i], line[(i + 1) % g], chunk / (2 if bidir else 1)))
                if bidir:
                    tr.append((line[i], line[i - 1], chunk / 2))
        return Step(tuple(tr), g - 1)

    parts = []
    for j in range(q):
        dims = act[j:] + act[:j]
        data = size_units(kind, len(group)) / q
        rs = []
        for d in dims:
            rs.append(phase(d, data / len(sets[d])))
            data /= len(sets[d])
        if kind == "reducescatter":
            parts.append(tuple(rs))
        elif kind == "allgather":
            parts.append(tuple(rs[::-1]))
        else:
            parts.append(tuple(rs + rs[::-1]))
    return zip_steps(parts)


@lru_cache(maxsize=4096)
def flat_plan(topo: Topology, kind: str, algorithm: str, group: tuple[int, ...]) -> tuple[Step, ...]:
    """Steps of a flat (one-level) algorithm; cached (plans depend on the structure only)."""
    if algorithm in ("ring", "bidirectional_ring"):
        return _ring_plan(topo, kind, group, algorithm == "bidirectional_ring")
    if algorithm == "multidim_ring":
        return _multidim_plan(topo, kind, group)
    if algorithm == "direct":
        return _direct_plan(kind, group)
    if algorithm == "in_switch":
        p = len(group)
        return (Step(tuple((group[i], group[(i + 1) % p], 1.0) for i in range(p))),)
    if algorithm in ("halving_doubling", "recursive_doubling"):
        return _hd_plan(kind, group, algorithm == "recursive_doubling")
    if algorithm == "tree":
        return _tree_plan(group)
    raise WorkloadError(f"no plan for {algorithm}")


__all__ = ["Plan", "Step", "flat_plan", "size_units", "zip_steps"]
