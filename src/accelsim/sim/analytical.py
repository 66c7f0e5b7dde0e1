"""Analytical tier: each op costed in closed form (``costs.op_cost``); ops run one after another
in dependency order on every chip of the tensor-parallel group, so the step time is their sum.

Only the graph's stored ops are costed (a run of identical layers is stored once, see
``WorkloadGraph.slots``), and identical ops (same shape and dtypes) once per chip model: the
chip model of a system object is kept across calls, with its op costs, so a notebook that
evaluates many design points on one system object costs each distinct op once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..arch.spec import SystemSpec
from ..errors import WorkloadError
from ..memo import IdentityCache
from ..workload.graph import WorkloadGraph
from ..workload.ops import Op
from ..cost.op_cost import ChipModel, OpCost, op_cost

COST_FIELDS = ("compute_s", "vector_s", "memory_s", "link_s", "overhead_s", "time_s",
               "hbm_bytes", "link_bytes")
BOUNDS = ("compute", "memory", "vector", "interconnect", "overhead")
"""The bound labels of ops and of a step's time (``cost.op_cost.BOUND_RULES``, and "overhead")."""
MAX_CACHED_COSTS = 20_000
"""A chip model's op-cost cache is emptied when it holds this many ops."""
_CHIP_MODELS = IdentityCache(32)


def chip_model(system: SystemSpec, library=None) -> ChipModel:
    """The ChipModel of ``system`` under the collective ``library``, built once per pair of
    objects (specs are frozen) and kept with its caches."""
    return _CHIP_MODELS.get((system, library), lambda: ChipModel(system, library))


def cost_ops(ops: list[Op], system: SystemSpec | ChipModel, cache: dict[Op, OpCost] | None = None,
             library=None) -> list[OpCost]:
    """Cost each op on one chip of ``system`` (cached by op identity of shape and dtype;
    pass ``cache`` to keep the costs across calls on the same chip model). ``library``: the
    stack's collective library for a SystemSpec (a ChipModel carries its own)."""
    cm = system if isinstance(system, ChipModel) else ChipModel(system, library)
    cache = {} if cache is None else cache
    out = []
    for op in ops:
        c = cache.get(op)
        if c is None:
            c = cache[op] = op_cost(cm, op)
        out.append(c)
    return out


def check_fits(graph: WorkloadGraph, system: SystemSpec) -> None:
    """Refuse a graph whose parallel group needs more chips than the system has."""
    check_tp_fits(graph.meta.tp, system)


def check_tp_fits(chips: int, system: SystemSpec) -> None:
    """Refuse a tensor-parallel group of ``chips`` chips on a system with fewer."""
    if chips > system.num_chips:
        ranks = system.chip.tp_ranks
        tp = (f"--tp {chips * ranks} ({ranks} NeuronCores per {system.chip.name} chip)" if ranks > 1
              else f"--tp {chips}")
        raise WorkloadError(f"{tp} needs {chips} chips but {system.name} "
                            f"has {system.num_chips}; pick a system with more chips or a smaller --tp")


def evaluate_slots(graph: WorkloadGraph, system: SystemSpec, library=None) -> dict[str, np.ndarray]:
    """Time terms of the graph's stored ops (``WorkloadGraph.slots``) as numpy arrays (keys:
    ``COST_FIELDS``, ``bound``, ``mapping``, and the ops' ``flops`` and ``bytes``), with
    ``count`` (ops each stands for)."""
    check_fits(graph, system)
    ops, counts = graph.slots()
    cm = chip_model(system, library)
    rows = cm.rows
    if len(rows) > MAX_CACHED_COSTS:
        rows.clear()
    out = []
    for op in ops:
        r = rows.get(op)
        if r is None:
            c = op_cost(cm, op)
            r = rows[op] = ((c.compute_s, c.vector_s, c.memory_s, c.link_s, c.overhead_s, c.time_s, c.hbm_bytes,
                             c.link_bytes, op.flops(), op.bytes(), c.host_s), c.bound, c.mapping, c.memory_level)
        out.append(r)
    table = np.array([r[0] for r in out], dtype=float).reshape(len(out), len(COST_FIELDS) + 3)
    arrays = {f: table[:, i] for i, f in enumerate(COST_FIELDS + ("flops", "bytes", "host_s"))}
    arrays["bound"] = np.array([r[1] for r in out], dtype=object)
    arrays["mapping"] = np.array([r[2] for r in out], dtype=object)
    arrays["memory_level"] = np.array([r[3] for r in out], dtype=object)
    arrays["count"] = counts
    if arrays["host_s"].any():  # the host dispatches ahead: each op holds the step for its device time + wait
        costs = pipelined_slots([OpCost(*(arrays[f][i] for f in COST_FIELDS[:5]), host_s=arrays["host_s"][i])
                                 for i in range(len(out))], counts, graph.slot_index())
        arrays["overhead_s"] = np.array([c.overhead_s for c in costs])
        arrays["time_s"] = np.array([c.time_s for c in costs])
        arrays["bound"] = np.array([c.bound for c in costs], dtype=object)
    return arrays


def pipelined_slots(costs: list[OpCost], count, order: np.ndarray) -> list[OpCost]:
    """Per stored op (``costs``, ``count`` instances each, ``order`` as in ``pipeline``): its
    cost in a step whose host dispatch runs ahead, the host time replaced by the mean time the
    device waits for the host before it (so the step is the sum of time x count)."""
    wait = pipeline(np.array([c.time_s for c in costs]), np.array([c.host_s for c in costs]), np.asarray(count),
                    order)
    return [replace(c, overhead_s=c.overhead_s - c.host_s + w, host_s=0.0) for c, w in zip(costs, wait)]


def sequence_time(costs: list[OpCost]) -> float:
    """Time of ops run one after another in this order: their sum, or, when the runtime's host
    dispatch runs ahead of the device (``OpCost.host_s``), the pipelined time (``pipeline``)."""
    if any(c.host_s for c in costs):
        costs = pipelined_slots(costs, np.ones(len(costs)), np.arange(len(costs)))
    return sum(c.time_s for c in costs)


def pipeline(time_s: np.ndarray, host_s: np.ndarray, count: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Host dispatch overlapped with device work, per stored op: the mean time the device waits
    for the host before each instance of the op.

    Arrays are per stored op (``time_s`` of the op alone, ``host_s`` the part of it that is the
    host's dispatch, ``count`` its instances); ``order`` is the stored op of each op in program
    order. The host dispatches op after op without waiting (``issued_i`` = the host times of ops
    0..i); the device runs op i for ``d_i = time_s - host_s`` once it is done with op i-1 and op
    i is issued: ``end_i = max(end_{i-1}, issued_i) + d_i``, whose closed form is
    ``end_i = D_i + max_{j<=i}(issued_j - D_{j-1})`` with ``D`` the running sum of ``d``. The
    step is ``end_n`` = the device's work plus its waits, so each op holds the step for its
    ``d_i`` plus its wait ``max(0, issued_i - end_{i-1})``. One op alone costs ``host + d``."""
    d = (time_s - host_s)[order]
    issued = np.cumsum(host_s[order])
    done = np.cumsum(d)
    end = done + np.maximum.accumulate(issued - (done - d))
    wait = np.maximum(0.0, issued - np.concatenate(([0.0], end[:-1])))
    return np.bincount(order, weights=wait, minlength=len(time_s)) / np.maximum(count, 1)


def evaluate_arrays(graph: WorkloadGraph, system: SystemSpec, library=None) -> dict[str, np.ndarray]:
    """Per-op time terms as numpy arrays (keys: ``COST_FIELDS`` plus ``bound`` and
    ``mapping``), in the graph's program order. ``library``: the stack's collective library
    (None: the ideal bound)."""
    s = evaluate_slots(graph, system, library)
    index = graph.slot_index()
    return {k: s[k][index] for k in COST_FIELDS + ("bound", "mapping", "memory_level")}


def step_totals(time_s: list, count: list, bound: list, flops: list, hbm: list, step_overhead_s: float = 0.0
                ) -> tuple[float, dict[str, float], float, float]:
    """(latency, time by bound, FLOPs, HBM bytes) of a step from its stored ops' figures and
    multiplicities, in stored-op order (the sweep runner sums the same way, to the last bit).
    A handful of stored ops: plain floats beat numpy calls here."""
    by_bound = dict.fromkeys(BOUNDS, 0.0)
    latency = total_flops = total_hbm = 0.0
    for t, c, b, f, h in zip(time_s, count, bound, flops, hbm):
        latency += t * c
        by_bound[b] += t * c
        total_flops += f * c
        total_hbm += h * c
    by_bound["overhead"] += step_overhead_s
    return latency + step_overhead_s, by_bound, total_flops, total_hbm
