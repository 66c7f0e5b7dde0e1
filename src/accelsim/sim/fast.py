"""The analytical tier's fast path: a dense transformer phase costed from its table of rows
(``workload.rows.phase_table``) in one compiled call, without op objects, a graph or a second pass
for energy.

``evaluate_point`` gives what ``evaluate_slots`` gives for the graph ``build`` makes of the same
arguments, to the last bit (``tests/test_fast_path.py``): ``sim.rowkernel.cost_rows`` costs every
row (the op cost functions' arithmetic: the mapping search for a GEMM shape not seen before, the
vector ops, fused attention, an all-reduce from its ``cost.collective_table``), prices its energy
and sums the step; the few rows it does not cover (a per-query-head decode kernel, a hierarchical
collective) are costed in Python first (``cost_row``). Stacks whose runtime splits ops into several
kernels or launches them from the host ahead of the device (``Calibration.composite``,
``launches``, ``host_async``) are left to ``evaluate_slots`` (``covers``).
"""

from __future__ import annotations

import math

import numpy as np

from ..compress.formats import DTYPE_BYTES
from ..cost.collective_table import CAND, CollectiveTable, collective_table
from ..cost.mapping import N_FIELDS
from ..cost.op_cost import (VECTOR_CHUNK_PER_LANE, ChipModel, bound_label, compute_dtype, dtype_terms, flash_cost,
                            no_tile, search_terms)
from ..workload.ops import MatMul
from ..workload.rows import BATCH, GIVEN, KV, Q, PhaseTable, given_row
from .analytical import BOUNDS, COST_FIELDS, MAX_CACHED_COSTS
from .rowkernel import NO_HINT, NOT_NEW, OUT_FIELDS, cost_rows

NUMERIC = COST_FIELDS + ("flops", "bytes", "host_s")
"""The numeric columns of a cost row, in the order ``evaluate_point``'s rows hold them."""


def covers(cm: ChipModel) -> bool:
    """Whether the fast path costs ops as ``op_cost`` does under ``cm``'s stack: one kernel per
    op, launched in order (no composite ops, extra launches or host-side dispatch)."""
    return not (cm.composite or cm.launches or cm.host_async or cm.kv_concat)


def shape_key(r: tuple) -> tuple:
    """What makes two rows of one element type cost the same: their kind and shape (not their
    name or role: the stacks the fast path covers dispatch every op alike)."""
    return r[0], (r[4].key() if r[0] == "flash" else r[4:])


def cost_row(cm: ChipModel, r: tuple, dt: str, price) -> tuple:
    """The cost row of a fused attention or a collective row (``workload.rows.given_row``):
    ``(numbers, bound, mapping, memory level, joules, total joules)`` with the numbers of
    ``NUMERIC`` (what ``evaluate_slots`` gives for the op), the joules (mac, vector, sram, hbm,
    link) of ``price`` (a function of the op's energy inputs, HBM and link bytes:
    ``analysis.energy.row_pricer``) and their sum."""
    if r[0] == "flash":
        op = r[4]
        c = flash_cost(cm, op)  # ``op_cost`` of a fused attention under the stacks ``covers`` admits
        fl, nbytes = op.flops(), op.bytes()
        return _row(price, c.compute_s, c.vector_s, c.memory_s, c.link_s, c.overhead_s, c.hbm_bytes, c.link_bytes, fl,
                    nbytes, c.mapping, c.memory_level, fl, op.dtype, op.vector_ops() + op.transcendentals(), nbytes)
    op, nbytes, group = r[4], r[5], r[6]
    link_s, overhead_s, link_bytes, algo = cm.collective_terms(op, nbytes, group)
    local = 2.0 * nbytes  # ``Collective.bytes``: the buffer read and the result written
    vops = nbytes / DTYPE_BYTES[dt] * (group - 1) / group if op in ("allreduce", "reducescatter") and group > 1 \
        else 0.0
    return _row(price, 0.0, 0.0, local / cm.hbm_bw, link_s, overhead_s, local, link_bytes, 0.0, local, algo, "hbm",
                0.0, dt, vops + 0.0, 0.0)


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


_PROTOS: dict[str, MatMul] = {}


def _proto(dt: str) -> MatMul:
    """A GEMM of element type ``dt`` (operands and output), for what depends on the types alone
    (``dtype_terms``, ``compute_dtype``, each cached per chip model)."""
    hit = _PROTOS.get(dt)
    if hit is None:
        hit = _PROTOS[dt] = MatMul(dtype_a=dt, dtype_b=dt, dtype_out=dt)
    return hit


def evaluate_point(cm: ChipModel, m, t: PhaseTable, var: tuple[int, ...], tp: int, dt: str, price, price_terms,
                   step_s: float, ps: PointState | None = None, tables: dict | None = None, system_tag=None
                   ) -> tuple[np.ndarray, list[float], np.ndarray, dict[int, tuple], tuple[str, ...]]:
    """The cost of each row of ``t`` (``workload.rows.phase_table`` of model ``m``) at the point
    ``var`` (``workload.rows.VARS``) and the step's sums, in one compiled call
    (``sim.rowkernel.cost_rows``): what ``evaluate_slots`` gives for the graph of the same point,
    to the last bit. A GEMM shape not seen before is mapped inside the call (its winner kept per
    shape, chip model, element type and pricer); rows the call does not cover are costed in
    Python before it (``cost_row``, kept per shape). ``price`` prices those rows' energy;
    ``price_terms``: an element type -> joules per MAC of it, per vector operation and per byte
    of SRAM, HBM and link (``analysis.energy.price_terms`` of ``price``'s table). Returns the
    kernel's rows (``rowkernel.OUT_FIELDS``), the sums (latency, time by bound, FLOPs, HBM bytes,
    joules by component), the GEMMs' search fields, the Python rows' (mapping, memory level) and
    the collective table's algorithm names.

    ``ps`` / ``tables``: the caches to keep (default: the chip model's, per pricer and element
    type): a sweep shares ``ps`` across the system variants of one chip variant, the collective
    ``tables`` and the Python-costed collectives (keyed with ``system_tag``) per system variant."""
    if ps is None:
        ps = cm.fast.get((price, dt, "point"))
        if ps is None:
            ps = cm.fast[(price, dt, "point")] = PointState()
    if tables is None:
        tables = ps.tables
    n = len(t.rows)
    todo = np.empty(n, np.int64)  # a new GEMM's hint: the store row of its last winner
    todo.fill(NOT_NEW)
    src = np.empty(n, np.int64)  # a GEMM row's place in the kept winners (``PointState.store``)
    src.fill(-1)
    if ps.used > MAX_CACHED_COSTS:
        ps.clear_store()
    if ps.consts is None:  # an element type the tensor engine does not run is refused here
        per = _terms(cm, dt)[0]
        ps.consts, ps.search = _consts(cm, dt, price_terms), search_terms(cm, per)
    index, hints = ps.index, ps.hints
    first = ps.used  # new winners go to the store rows from here on
    for i, mc, mv, nc, nv, kc, kv, bc, bv, shared, _ in t.mm_fields:
        key = (mc * var[mv], nc * var[nv], kc * var[kv], bc * var[bv], shared)
        j = index.get(key)
        if j is None:  # searched in the compiled call, from the last winner of its N, K, batch
            j = ps.new_row(key)
            same = key[1:]  # N, K, batch, sharing: the GEMM at another M
            todo[i] = hints.get(same, NO_HINT)
            hints[same] = j
        src[i] = j
    given, kind, python, table, pre = {}, t.kind, (), _NO_TABLE, _NO_PRE
    if t.flash and cm.attn_per_head and var[Q] == 1:  # a per-query-head decode kernel: costed in Python
        python += t.flash
    if t.coll:
        op = t.rows[t.coll[0]][4]
        table = tables.get((op, tp), _NO_TABLE)
        if table is _NO_TABLE:
            table = tables[(op, tp)] = collective_table(cm.system, op, tp, cm.library)
        if table is None:  # a choice that is not a flat plan's on one node: costed in Python
            python += t.coll
            table = _NO_TABLE
    if python:
        kind = kind.copy()
        kind[list(python)] = GIVEN
        pre = np.zeros((n, OUT_FIELDS))
        _python_rows(cm, m, t, python, var, tp, dt, price, ps.given, pre, given, system_tag)
    flash = _NO_FLASH
    if t.flash:
        if ps.flash is None:  # refused as ``flash_cost`` refuses an element type the tensor engine does not run
            ps.flash = np.array([cm.speedup(dt), cm.tensor_eff(dt) * cm.attn_eff, price_terms(dt)[0]])
        flash = ps.flash
    out, sums, store = np.empty((n, OUT_FIELDS)), np.empty(13), ps.store
    cost_rows(kind, t.coef, t.sel, np.array(var, np.int64), t.par, pre, store, src, todo, t.count, ps.consts,
              ps.search, flash, table.cand, table.step, table.term, table.overhead_s, step_s, out, sums)
    sums = sums.tolist()
    # a refused search leaves its row's time infinite, and with it the step's
    if ps.used > first and not math.isfinite(sums[0]) and not np.isfinite(store[first:ps.used, 0]).all():
        _refuse(cm, t, ps, src, first)
    return out, sums, (store, src, pre), given, table.names


def _refuse(cm: ChipModel, t: PhaseTable, ps: PointState, src: np.ndarray, first: int):
    """Refuse the first GEMM row whose search (into a store row from ``first`` on) found no tile
    that fits, forgetting every such row (its shape and any hint to it)."""
    bad = {j for j in range(first, ps.used) if not math.isfinite(ps.store[j, 0])}
    keys = {j: key for key, j in ps.index.items() if j in bad}
    for key in keys.values():
        del ps.index[key]
    ps.hints = {k: j for k, j in ps.hints.items() if j not in bad}
    i = next(i for i in range(len(t.rows)) if src[i] in bad)
    raise no_tile(cm, t.rows[i][1], *keys[int(src[i])][:3])


class PointState:
    """What ``evaluate_point`` keeps per chip model, pricer and element type: the GEMMs' search
    winners (rows of ``store``, laid out as ``cost.mapping.RESULT_FIELDS``, by shape in
    ``index``; a row once written is never rewritten, so a result's op table may keep reading
    it), the Python rows' costs by shape, the kernel's constants and the collective tables by
    (kind, ranks)."""

    __slots__ = ("store", "used", "index", "hints", "given", "consts", "search", "flash", "tables")

    def __init__(self):
        self.clear_store()
        self.given: dict[tuple, tuple] = {}
        self.consts = self.search = self.flash = None
        self.tables: dict[tuple, CollectiveTable | None] = {}

    def clear_store(self) -> None:
        self.store = np.zeros((64, N_FIELDS))
        self.used = 0
        """Store rows written (a shape refused is forgotten, its row is not reused)."""
        self.index: dict[tuple, int] = {}
        self.hints: dict[tuple, int] = {}
        """The store row of the last winner per GEMM (N, K, batch, B shared): the next search of
        that GEMM at another M starts from its tiling (``gemm_search``'s hint: the winner does
        not depend on it, only how many groups the search costs)."""

    def new_row(self, key: tuple) -> int:
        """A store row for ``key``'s winner."""
        j = self.used
        self.used += 1
        if j == self.store.shape[0]:  # a larger store; the old one stays as it is for whoever reads it
            self.store = np.concatenate([self.store, np.zeros_like(self.store)])
        self.index[key] = j
        return j


def _python_rows(cm: ChipModel, m, t: PhaseTable, places: tuple[int, ...], var: tuple[int, ...], tp: int, dt: str,
                 price, costs: dict, pre: np.ndarray, given: dict, system_tag) -> None:
    """Cost the rows at ``places`` in Python (``cost_row``, kept per shape in ``costs``, a
    collective's with ``system_tag``) into ``pre``, their (mapping, memory level) into ``given``."""
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
                key = colls[tr[4]] = (system_tag, shape_key(r))
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
_NO_PRE = np.zeros((0, OUT_FIELDS))
_NO_TABLE = CollectiveTable((), np.zeros((0, len(CAND))), np.zeros((0, 4)), np.zeros((0, 3)), 0.0)


def point_columns(t: PhaseTable, out: np.ndarray, rows: tuple, given: dict, names: tuple[str, ...],
                  peak: float) -> dict[str, np.ndarray]:
    """``columns`` of ``evaluate_point``'s rows (``names``: its collective table's algorithms)."""
    mapping, level = [], []
    for i, r in enumerate(t.rows):
        if i in given:
            mapping.append(given[i][0])
            level.append(given[i][1])
        elif r[0] == "mm":
            mapping.append(tuple(rows[0][rows[1][i], 6:12].tolist()))
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
    cols = {f: out[:, NUMERIC.index(f)].copy() for f in ("flops", "bytes", "hbm_bytes", "link_bytes", "compute_s",
                                                         "vector_s", "memory_s", "link_s", "overhead_s", "time_s")}
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
