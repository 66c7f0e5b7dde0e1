"""How a sweep point's row is priced in the analytical tier (``runner.Evaluator``): a workload
as its graph's distinct ops (``OpGraph``) or, where the fast path covers it, as a table of rows
(``OpRows``, ``sim.fast``: costed in one compiled call), each op costed once per chip variant
(collectives once per system variant) and summed exactly as ``report.results`` sums a step
(``step_row``); and a point's row from a summary (``summary_row``, the training and event
tiers)."""

from __future__ import annotations

import math
from typing import Any

from ..arch.spec import SystemSpec
from ..cost.op_cost import op_cost
from ..sim import fast
from ..sim.analytical import BOUNDS, pipelined_slots, step_totals


class OpGraph:
    """A workload graph with its distinct ops, for costing each op once."""

    __slots__ = ("graph", "meta", "uniq", "inv", "is_coll", "count", "flops")

    def __init__(self, graph):
        from ..workload.ops import Collective

        ops, count = graph.slots()  # stored ops (a run of identical layers once) and multiplicities
        index: dict = {}
        inv = []
        uniq = []
        for o in ops:
            j = index.get(o)
            if j is None:
                j = index[o] = len(uniq)
                uniq.append(o)
            inv.append(j)
        self.graph, self.meta, self.uniq, self.inv = graph, graph.meta, uniq, inv
        self.count = count.tolist()
        self.is_coll = [isinstance(o, Collective) for o in uniq]
        self.flops = [o.flops() for o in ops]


class OpRows:
    """A workload the analytical fast path covers (``workload.rows``): its phase's rows as a table
    (``phase_table``) and the point's variables, costed in one compiled call (``sim.fast``); its
    graph (for the event tier, or a chip whose stack the fast path does not cover) built on first
    use."""

    __slots__ = ("cfg", "table", "var", "tp", "meta", "_make", "_graph")

    def __init__(self, cfg, table, var: tuple[int, ...], tp: int, meta, make):
        self.cfg, self.table, self.var, self.tp, self.meta = cfg, table, var, tp, meta
        self._make, self._graph = make, None

    @property
    def graph(self):
        return self.as_graph().graph

    def as_graph(self) -> OpGraph:
        if self._graph is None:
            self._graph = OpGraph(self._make())
        return self._graph


def _no_energy(flops, dtype, vector_ops, base, hbm, link) -> tuple[float, ...]:
    """A pricer for ``sim.fast.cost_row`` where no energy is wanted (a sweep row has none)."""
    return (0.0, 0.0, 0.0, 0.0, 0.0)


def _no_prices(dtype: str) -> tuple[float, ...]:
    """``analysis.energy.price_terms`` where no energy is wanted."""
    return (0.0, 0.0, 0.0, 0.0, 0.0)


def step_row(spec: SystemSpec, g: OpGraph | OpRows, cm, cache: dict, skey: str, ckey: str, step: float
             ) -> dict[str, Any]:
    """A point's row: ``g``'s ops costed on chip model ``cm`` (each once per chip variant ``ckey``
    in ``cache``, collectives once per system variant ``skey``), plus the stack's ``step`` cost."""
    if isinstance(g, OpRows) and fast.covers(cm):  # the fast path's table, each shape mapped once per chip variant
        dt = g.meta.dtype
        ps = cache.get(("point", ckey, dt))
        if ps is None:
            ps = cache[("point", ckey, dt)] = fast.PointState()
        tables = cache.get(("tables", skey))  # collectives once per system variant
        if tables is None:
            tables = cache[("tables", skey)] = {}
        sums = fast.evaluate_point(cm, g.cfg, g.table, g.var, g.tp, dt, _no_energy, _no_prices, step, ps, tables,
                                   skey)[1]
        return light_row(spec, g.meta, sums[0], dict(zip(BOUNDS, sums[1:6])), sums[6], sums[7])
    if isinstance(g, OpRows):
        g = g.as_graph()
    per_uniq = []
    for j, op in enumerate(g.uniq):
        key = (skey if g.is_coll[j] else ckey, op)
        c = cache.get(key)
        if c is None:
            oc = op_cost(cm, op)
            c = cache[key] = (oc.time_s, oc.hbm_bytes, oc.bound, oc.host_s, oc)
        per_uniq.append(c)
    # per stored op, summed exactly as report.results.build_results sums them
    per = [per_uniq[j] for j in g.inv]
    times, bounds = [p[0] for p in per], [p[2] for p in per]
    if any(p[3] for p in per):  # host dispatch ahead of the device, as sim.analytical.evaluate_slots
        costs = pipelined_slots([p[4] for p in per], g.count, g.graph.slot_index())
        times, bounds = [c.time_s for c in costs], [c.bound for c in costs]
    latency, by_bound_d, flops, hbm = step_totals(times, g.count, bounds, g.flops, [p[1] for p in per], step)
    return light_row(spec, g.meta, latency, by_bound_d, flops, hbm)


_SHARE_KEYS = tuple(f"share_{b}" for b in BOUNDS)


def light_row(spec: SystemSpec, meta, latency: float, by_bound_d: dict[str, float], flops: float,
              hbm: float) -> dict[str, Any]:
    """A point's row from its step totals (``report.results.step_totals``)."""
    chip = spec.chip
    peak = chip.peak_flops(meta.dtype) or chip.peak_flops("bf16")
    mem = meta.weight_bytes_per_chip + meta.kv_cache_bytes_per_chip + meta.activation_bytes_per_chip
    cap = chip.hbm.capacity_bytes
    row = {
        "latency_s": latency,
        "tokens_per_s": meta.tokens / latency if latency > 0 else 0.0,
        "mfu": flops / (latency * peak) if latency > 0 and peak > 0 else 0.0,
        "memory_bytes_per_chip": mem, "hbm_capacity_bytes": cap, "fits": bool(mem <= cap),
        "hbm_bandwidth_utilization": hbm / (latency * chip.hbm.bandwidth_Bps) if latency > 0 else 0.0,
        "chips": meta.tp, "peak_flops_per_chip": peak, "bubble_fraction": math.nan,
    }
    by_bound = [by_bound_d[b] for b in BOUNDS]
    for key, t in zip(_SHARE_KEYS, by_bound):
        row[key] = t / latency if latency > 0 else math.nan
    row["bound"] = BOUNDS[max(range(len(by_bound)), key=by_bound.__getitem__)] if latency > 0 else None  # the first
    return row


def summary_row(s: dict[str, Any], spec: SystemSpec, wl) -> dict[str, Any]:
    """A point's row from a run's summary (``api.evaluate_train``, the event tier) of workload ``wl``."""
    lat = s["latency_s"]
    tb = s["time_by_bound_s"]
    total = sum(tb.values())
    peak = spec.chip.peak_flops(wl.dtype) or spec.chip.peak_flops("bf16")
    row = {"latency_s": lat, "tokens_per_s": s["tokens_per_s"], "mfu": s["mfu"],
           "memory_bytes_per_chip": s["memory_bytes_per_chip"], "hbm_capacity_bytes": s["hbm_capacity_bytes"],
           "fits": bool(s["fits_in_hbm"]), "hbm_bandwidth_utilization": s["hbm_bandwidth_utilization"],
           "chips": s["chips"], "peak_flops_per_chip": peak,
           "bubble_fraction": s.get("bubble_fraction", math.nan)}
    for b in BOUNDS:
        row[f"share_{b}"] = tb.get(b, 0.0) / lat if lat > 0 else math.nan
    row["bound"] = max(BOUNDS, key=lambda b: tb.get(b, 0.0)) if total > 0 else None
    return row
