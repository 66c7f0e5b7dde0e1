"""The analytical tier's fast path: the cost table of a dense transformer phase from its op
rows (``workload.rows``), without op objects, a graph or a second pass for energy.

The costs are the op cost functions' (``cost.op_cost``: the mapping search, ``vector_terms``,
``flash_cost`` (what ``op_cost`` runs for one), the collective library's time through
``ChipModel.collective``), so ``evaluate_rows`` gives what ``evaluate_slots`` gives for the
graph ``build`` makes of the same arguments, to the last bit (``tests/test_fast_path.py``); each
distinct row is costed once per chip model, pricer and element type (``ChipModel.fast``). Stacks whose runtime splits
ops into several kernels or launches them from the host ahead of the device
(``Calibration.composite``, ``launches``, ``host_async``) are left to ``evaluate_slots``
(``covers``).

The public API costs a point with ``evaluate_point``: the phase's rows as a table of shapes
(``workload.rows.phase_table``) priced, costed and summed in one compiled call
(``sim.rowkernel.cost_rows``), the GEMMs' mapping searches, fused attention and collectives run
before it; ``evaluate_rows`` and ``totals`` (the sweep's path) give the same numbers row by row.
"""

from __future__ import annotations

import math

import numpy as np

from ..compress.formats import DTYPE_BYTES
from ..cost.collective_table import CAND, CollectiveTable, collective_table
from ..cost.mapping import N_FIELDS
from ..cost.op_cost import (VECTOR_CHUNK_PER_LANE, ChipModel, aligned_dims, bound_label, compute_dtype, dtype_terms,
                            flash_cost, no_tile, remember_hint, search, search_hint, search_terms, vector_terms)
from ..workload.ops import (ELEMENTWISE, MatMul, elementwise_bytes, embedding_bytes, kv_cache_bytes,
                            matmul_bytes, matmul_flops, row_op_terms)
from ..workload.rows import BATCH, GIVEN, KV, Q, PhaseTable, given_row
from .analytical import BOUNDS, COST_FIELDS, MAX_CACHED_COSTS
from .rowkernel import OUT_FIELDS, cost_rows

NUMERIC = COST_FIELDS + ("flops", "bytes", "host_s")
"""The numeric columns of ``evaluate_rows``' output, in the order its cost rows hold them."""


def covers(cm: ChipModel) -> bool:
    """Whether the fast path costs ops as ``op_cost`` does under ``cm``'s stack: one kernel per
    op, launched in order (no composite ops, extra launches or host-side dispatch)."""
    return not (cm.composite or cm.launches or cm.host_async)


def evaluate_rows(cm: ChipModel, rows: list[tuple], dt: str, price) -> list[tuple]:
    """The cost row of each op row (``workload.rows``): ``(numbers, bound, mapping, memory
    level, joules, total joules)`` with the numbers of ``NUMERIC`` (what ``evaluate_slots``
    gives for the op), the joules (mac, vector, sram, hbm, link) of ``price`` (a function of
    the op's energy inputs, HBM and link bytes: ``analysis.energy.row_pricer``) and their sum. A
    GEMM's mapping is the tuple of ``gemm_mapping_text``'s arguments (the op table renders it):
    the rows, kept per chip model and pricer across calls, hold only numbers and strings, which
    the cyclic collector stops tracking."""
    cache = cm.fast.get((price, dt))
    if cache is None:
        cache = cm.fast[(price, dt)] = {}
    elif len(cache) > MAX_CACHED_COSTS:
        cache.clear()
    out = []
    for r in rows:
        key = shape_key(r)
        c = cache.get(key)
        if c is None:
            c = cache[key] = cost_row(cm, r, dt, price)
        out.append(c)
    return out


def shape_key(r: tuple) -> tuple:
    """What makes two rows of one element type cost the same: their kind and shape (not their
    name or role: the stacks the fast path covers dispatch every op alike)."""
    return r[0], (r[4].key() if r[0] == "flash" else r[4:])


def cost_row(cm: ChipModel, r: tuple, dt: str, price) -> tuple:
    """One row's cost row (see ``evaluate_rows``), not cached."""
    kind = r[0]
    if kind == "mm":
        return _gemm(cm, r, dt, price)
    if kind == "flash":
        op = r[4]
        c = flash_cost(cm, op)  # ``op_cost`` of a fused attention under the stacks ``covers`` admits
        fl, nbytes = op.flops(), op.bytes()
        return _row(price, c.compute_s, c.vector_s, c.memory_s, c.link_s, c.overhead_s, c.hbm_bytes, c.link_bytes, fl,
                    nbytes, c.mapping, c.memory_level, fl, op.dtype, op.vector_ops() + op.transcendentals(), nbytes)
    if kind == "coll":
        op, nbytes, group = r[4], r[5], r[6]
        link_s, overhead_s, link_bytes, algo = cm.collective_terms(op, nbytes, group)
        local = 2.0 * nbytes  # ``Collective.bytes``: the buffer read and the result written
        vops = nbytes / DTYPE_BYTES[dt] * (group - 1) / group if op in ("allreduce", "reducescatter") and group > 1 \
            else 0.0
        return _row(price, 0.0, 0.0, local / cm.hbm_bw, link_s, overhead_s, local, link_bytes, 0.0, local, algo, "hbm",
                    0.0, dt, vops + 0.0, 0.0)
    el = DTYPE_BYTES[dt]
    if kind == "ew":
        fn, n = r[4], r[5]
        nbytes = elementwise_bytes(fn, n, n, el, el)
        _, per_vop, per_trans = ELEMENTWISE[fn]
        vops, trans = per_vop * n, per_trans * n
        units, reduction = math.ceil(n / (cm.lanes * VECTOR_CHUNK_PER_LANE)), fn == "sum"
    elif kind == "norm" or kind == "softmax":
        nbytes, vops, trans = row_op_terms(r[4], r[5], r[6], el)
        units, reduction = r[5], True
    elif kind == "embed":
        nbytes, vops, trans, units, reduction = embedding_bytes(r[4], r[5], el), 0.0, 0.0, 1 * r[4], False
    else:  # "kv": a K/V cache append
        nbytes = kv_cache_bytes("append", r[4], r[5], r[6], r[7], el)
        vops, trans, units, reduction = 0.0, 0.0, r[4] * r[5], False
    vec, mem, active = vector_terms(cm, float(units), dt, vops, trans, nbytes, reduction, 0.0)
    return _row(price, 0.0, vec, mem, 0.0, cm.vector_overhead, nbytes, 0.0, 0.0, nbytes, f"{int(active)} cores", "hbm",
                0.0, dt, vops + trans, nbytes)


def totals(costs: list[tuple], count: list[int], step_overhead_s: float = 0.0, joules: bool = True) -> tuple:
    """(latency, time by bound, FLOPs, HBM bytes) of a step of ``evaluate_rows``' cost rows, each
    standing for ``count`` ops, and the step's joules by component (mac, vector, sram, hbm,
    link), in one pass: the sums ``sim.analytical.step_totals`` and ``analysis.energy.joule_sums``
    make, in the same order to the last bit (``tests/test_fast_path.py``). ``joules=False``
    (a sweep row has no energy): the step's sums alone, and None for the joules."""
    by_bound = dict.fromkeys(BOUNDS, 0.0)
    latency = total_flops = total_hbm = 0.0
    tm = tv = ts = th = tl = 0
    for (nums, bound, _, _, (m, v, sr, hb, li), _), c in zip(costs, count):
        t = nums[5] * c
        latency += t
        by_bound[bound] += t
        total_flops += nums[8] * c
        total_hbm += nums[6] * c
        tm += m * c
        tv += v * c
        ts += sr * c
        th += hb * c
        tl += li * c
    by_bound["overhead"] += step_overhead_s
    return (latency + step_overhead_s, by_bound, total_flops, total_hbm), ((tm, tv, ts, th, tl) if joules else None)


def columns(costs: list[tuple], count: list[int], peak: float) -> dict[str, np.ndarray]:
    """The op-table columns per stored op (``report.results.summarize``'s, with ``energy_J``)
    of ``evaluate_rows``' cost rows."""
    table = np.array([c[0] for c in costs], dtype=float)
    at = {f: table[:, i] for i, f in enumerate(NUMERIC)}
    cols = {f: at[f] for f in ("flops", "bytes", "hbm_bytes", "link_bytes", "compute_s", "vector_s", "memory_s",
                               "link_s", "overhead_s", "time_s")}
    cols.update(intensity=None, bound=np.array([c[1] for c in costs], dtype=object), utilization=peak,
                mapping=np.array([c[2] for c in costs], dtype=object),
                memory_level=np.array([c[3] for c in costs], dtype=object),
                energy_J=np.array([c[5] for c in costs], dtype=float))
    return cols


def _row(price, compute: float, vector: float, memory: float, link: float, overhead: float, hbm: float,
         link_bytes: float, flops: float, nbytes: float, mapping, level: str, mac_flops: float, dtype: str,
         vector_ops: float, base: float) -> tuple:
    """A cost row: the numbers (``NUMERIC``), bound, mapping, memory level, the joules ``price``
    gives for the op's energy inputs (flops priced as MACs, their type, vector operations,
    compulsory bytes) and its HBM and link bytes, and their sum (in that order)."""
    j = price(mac_flops, dtype, vector_ops, base, hbm, link_bytes)
    return ((compute, vector, memory, link, overhead, max(compute, vector, memory, link) + overhead, hbm, link_bytes,
             flops, nbytes, 0.0),
            bound_label(compute, vector, memory, link, overhead), mapping, level, j, j[0] + j[1] + j[2] + j[3] + j[4])


def _gemm(cm: ChipModel, r: tuple, dt: str, price) -> tuple:
    """``gemm_cost`` of a GEMM row whose operands and output are all ``dt``."""
    m, n, k, batch, b_shared = r[4], r[5], r[6], r[7], r[8]
    per, comp, el = _terms(cm, dt)
    f = search(cm, per, m, n, k, batch, b_shared, el, aligned_dims(cm, k, n, el, el), r[1]).tolist()
    hbm_s, shared_s = f[2], f[3]
    fl = matmul_flops(m, n, k, batch)
    nbytes = matmul_bytes(m, n, k, batch, b_shared, el, per[4], per[5])
    return _row(price, f[1], f[19], max(hbm_s, shared_s), 0.0, cm.tensor_overhead + f[12], f[4], 0.0, fl, nbytes,
                (f[6], f[7], f[8], f[9], f[10], f[11]), "shared" if shared_s > hbm_s else "hbm",
                fl, comp, 0.0, nbytes)


_PROTOS: dict[str, MatMul] = {}


def _proto(dt: str) -> MatMul:
    """A GEMM of element type ``dt`` (operands and output), for what depends on the types alone
    (``dtype_terms``, ``compute_dtype``, each cached per chip model)."""
    hit = _PROTOS.get(dt)
    if hit is None:
        hit = _PROTOS[dt] = MatMul(dtype_a=dt, dtype_b=dt, dtype_out=dt)
    return hit


def evaluate_point(cm: ChipModel, m, t: PhaseTable, var: tuple[int, ...], tp: int, dt: str, price, price_terms,
                   step_s: float) -> tuple[np.ndarray, list[float], np.ndarray, dict[int, tuple], tuple[str, ...]]:
    """The cost of each row of ``t`` (``workload.rows.phase_table`` of model ``m``) at the point
    ``var`` (``workload.rows.VARS``) and the step's sums, in one compiled call
    (``sim.rowkernel.cost_rows``): what ``evaluate_rows`` and ``totals`` give for the point's
    ``phase_rows``, to the last bit. GEMMs are mapped (each shape once per chip model, element
    type and pricer) and fused attention and collectives costed (``cost_row``, kept as
    ``evaluate_rows`` keeps them) before the call. Returns the kernel's rows
    (``rowkernel.OUT_FIELDS``), the sums (latency, time by bound, FLOPs, HBM bytes, joules by
    component), the GEMMs' search fields, the Python rows' (mapping, memory level) and the
    collective table's algorithm names."""
    ps = cm.fast.get((price, dt, "point"))
    if ps is None:
        ps = cm.fast[(price, dt, "point")] = _PointState()
    n = len(t.rows)
    pre = np.zeros((n, OUT_FIELDS))
    todo = np.zeros(n, np.bool_)
    searched, keys = ps.searched, []
    if len(searched) > MAX_CACHED_COSTS:
        searched.clear()
    if ps.consts is None:  # an element type the tensor engine does not run is refused here
        per = _terms(cm, dt)[0]
        ps.consts, ps.search = _consts(cm, dt, price_terms), search_terms(cm, per)
    for i, mc, mv, nc, nv, kc, kv, bc, bv, shared, _ in t.mm_fields:
        key = (mc * var[mv], nc * var[nv], kc * var[kv], bc * var[bv], shared)
        f = searched.get(key)
        if f is None:  # searched in the compiled call, from the last winner of its N, K, batch
            todo[i] = True
            keys.append((i, key))
            pre[i, :3] = search_hint(key[1:4] + (shared == 1,))
        else:
            pre[i, :N_FIELDS] = f
    given, kind, python, table = {}, t.kind, (), _NO_TABLE
    if t.flash and cm.attn_per_head and var[Q] == 1:  # a per-query-head decode kernel: costed in Python
        python += t.flash
    if t.coll:
        op = t.rows[t.coll[0]][4]
        table = ps.tables.get((op, tp), _NO_TABLE)
        if table is _NO_TABLE:
            table = ps.tables[(op, tp)] = collective_table(cm.system, op, tp, cm.library)
        if table is None:  # a choice that is not a flat plan's on one node: costed in Python
            python += t.coll
            table = _NO_TABLE
    if python:
        kind = kind.copy()
        kind[list(python)] = GIVEN
        _python_rows(cm, m, t, python, var, tp, dt, price, ps.given, pre, given)
    flash = _NO_FLASH
    if t.flash:
        if ps.flash is None:  # refused as ``flash_cost`` refuses an element type the tensor engine does not run
            ps.flash = np.array([cm.speedup(dt), cm.tensor_eff(dt) * cm.attn_eff, price_terms(dt)[0]])
        flash = ps.flash
    out, sums = np.empty((n, OUT_FIELDS)), np.empty(13)
    cost_rows(kind, t.coef, t.sel, np.array(var, np.int64), t.par, pre, todo, t.count, ps.consts, ps.search, flash,
              table.cand, table.step, table.term, table.overhead_s, step_s, out, sums)
    for i, key in keys:
        f = pre[i]
        if not math.isfinite(f[0]):
            raise no_tile(cm, t.rows[i][1], *key[:3])
        searched[key] = f[:N_FIELDS].copy()
        remember_hint(key[1:4] + (key[4] == 1,), f)
    return out, sums.tolist(), pre, given, table.names


class _PointState:
    """What ``evaluate_point`` keeps per chip model, pricer and element type: the GEMMs' search
    winners by shape, the Python rows' costs by shape, the kernel's constants and the collective
    tables by (kind, ranks)."""

    __slots__ = ("searched", "given", "consts", "search", "flash", "tables")

    def __init__(self):
        self.searched: dict[tuple, np.ndarray] = {}
        self.given: dict[tuple, tuple] = {}
        self.consts = self.search = self.flash = None
        self.tables: dict[tuple, CollectiveTable | None] = {}


def _python_rows(cm: ChipModel, m, t: PhaseTable, places: tuple[int, ...], var: tuple[int, ...], tp: int, dt: str,
                 price, costs: dict, pre: np.ndarray, given: dict) -> None:
    """Cost the rows at ``places`` in Python (``cost_row``, kept per shape in ``costs``) into
    ``pre``, their (mapping, memory level) into ``given``."""
    if len(costs) > MAX_CACHED_COSTS:
        costs.clear()
    batch, q_len, kv_len = var[BATCH], var[Q], var[KV]
    colls = {}  # a point's collectives of one kind move the same bytes: their key worked out once
    for i in places:
        tr = t.rows[i]
        if tr[0] == "coll":
            r, key = None, colls.get(tr[4])
            if key is None:
                r = given_row(m, tr, batch, q_len, kv_len, tp, dt)
                key = colls[tr[4]] = shape_key(r)
        else:
            r = given_row(m, tr, batch, q_len, kv_len, tp, dt)
            key = shape_key(r)
        c = costs.get(key)
        if c is None:
            nums, bound, mapping, level, j, total = cost_row(cm, r, dt, price)
            c = costs[key] = (np.array(nums + j + (total, BOUNDS.index(bound)) + (0.0,) * (OUT_FIELDS - 18)),
                              mapping, level)
        pre[i] = c[0]
        given[i] = c[1:]


_NO_FLASH = np.zeros(3)
_NO_TABLE = CollectiveTable((), np.zeros((0, len(CAND))), np.zeros((0, 4)), np.zeros((0, 3)), 0.0)


def point_columns(t: PhaseTable, out: np.ndarray, pre: np.ndarray, given: dict, names: tuple[str, ...],
                  peak: float) -> dict[str, np.ndarray]:
    """``columns`` of ``evaluate_point``'s rows (``names``: its collective table's algorithms)."""
    mapping, level = [], []
    for i, r in enumerate(t.rows):
        if i in given:
            mapping.append(given[i][0])
            level.append(given[i][1])
        elif r[0] == "mm":
            mapping.append(tuple(pre[i, 6:12].tolist()))
            level.append("shared" if out[i, 19] else "hbm")
        elif r[0] == "coll":
            mapping.append(names[int(out[i, 20])])
            level.append("hbm")
        elif r[0] == "flash":
            mapping.append(f"{int(out[i, 20])} units x split {int(out[i, 21])}, {int(out[i, 22])} wave(s)")
            level.append("hbm")
        else:
            mapping.append(f"{int(out[i, 18])} cores")
            level.append("hbm")
    at = {f: out[:, i].copy() for i, f in enumerate(NUMERIC)}
    cols = {f: at[f] for f in ("flops", "bytes", "hbm_bytes", "link_bytes", "compute_s", "vector_s", "memory_s",
                               "link_s", "overhead_s", "time_s")}
    cols.update(intensity=None, bound=np.array([BOUNDS[int(b)] for b in out[:, 17]], dtype=object), utilization=peak,
                mapping=np.array(mapping + [None], dtype=object)[:-1], memory_level=np.array(level, dtype=object),
                energy_J=out[:, 16].copy())
    return cols


def _terms(cm: ChipModel, dt: str) -> tuple:
    """What a GEMM of element type ``dt`` takes from its types alone, once per chip model."""
    terms = cm.fast.get(dt)
    if terms is None:
        proto = _proto(dt)
        terms = cm.fast[dt] = (dtype_terms(cm, proto), compute_dtype(cm, proto), DTYPE_BYTES[dt])
    return terms


def _consts(cm: ChipModel, dt: str, price_terms) -> np.ndarray:
    """``rowkernel.CONSTS`` for rows of element type ``dt`` (see ``evaluate_point``)."""
    per, comp, el = _terms(cm, dt)
    return np.array([float(cm.cores), cm.hbm_bw, cm.core_peak, cm.core_bw, cm.vec_rate.get(dt, cm.vec_rate_default),
                     cm.trans_rate, cm.reduction_eff, cm.vector_overhead, cm.tensor_overhead,
                     float(cm.lanes * VECTOR_CHUNK_PER_LANE), el, per[4], per[5], *price_terms(comp)])
