"""Schedule: the tile-level tasks of a lowered workload, as plain numpy arrays.

A task is one coarse unit of work: a tensor-engine pass over a tile, a vector or scalar pass,
a DMA transfer, a link transfer or a fixed delay. Kinds:

- ``BUSY``: occupies one server of ``resource`` (an engine; a pool such as a core's DMA
  queues has several servers) for ``duration_s``.
- ``XFER``: occupies one server of ``resource`` (a DMA queue or a link port) for ``duration_s``
  of latency / issue cost, then moves ``nbytes`` through bandwidth server ``server`` (HBM, a
  link) at ``min(cap_Bps, max-min fair share)``. ``weight`` is the fraction of the bytes that
  load the server (below 1 when a chip-shared cache serves the rest, above 1 when the transfer
  carries one core's part of a load multicast to a cluster: a transfer at rate r uses
  ``weight * r`` of the server). A resource with a bandwidth (``res_bandwidth_Bps``, e.g.
  a core's DMA queues together) also divides it evenly among its transfers in flight, so one
  large copy alone gets all of it (as if split over every queue) and many share it.
- ``DELAY``: needs no resource; ends ``duration_s`` after it becomes ready (launch overhead).

``acquire`` / ``release`` name an SRAM buffer pool (or -1): a task that acquires needs a free
slot to start and holds it; the task that releases frees one when it ends. This is how SRAM
capacity bounds how far DMA runs ahead of compute.

The per-task values ``duration_s``, ``nbytes``, ``cap_Bps``, ``weight`` and ``flops`` are stored
once per distinct combination: ``cls_table`` holds the combinations (one row each, columns in
``VALUE_COLUMNS`` order) and ``cls`` each task's row (8, 16 or 32 bits, by how many there are).
A lowered model has a few hundred combinations over millions of tasks, so this takes 1-2 bytes
a task where five float columns took 40. The five names are still attributes, materialized on
each access; ``value`` and ``values`` read one task or a few.

Dependencies are in CSR form: the predecessors of task ``t`` are
``dep_idx[dep_ptr[t]:dep_ptr[t + 1]]``. Tasks are stored in program order; ``priority`` breaks
ties between ready tasks (lower first), then the task index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np

BUSY, XFER, DELAY = 0, 1, 2
KIND_NAMES = ("busy", "xfer", "delay")

# what a task does, for traces and attribution
CAT_TENSOR, CAT_VECTOR, CAT_SCALAR, CAT_DMA_IN, CAT_DMA_OUT, CAT_LINK, CAT_OVERHEAD = range(7)
CATEGORY_NAMES = ("tensor", "vector", "scalar", "dma_in", "dma_out", "link", "overhead")

ARRAY_FIELDS = ("kind", "resource", "server", "cls", "cls_table", "acquire", "release", "priority", "op",
                "category", "dep_ptr", "dep_idx", "res_capacity", "res_bandwidth_Bps", "res_chip",
                "srv_bandwidth_Bps", "srv_chip", "srv_by_op", "srv_path_Bps", "pool_slots")
VALUE_COLUMNS = ("duration_s", "nbytes", "cap_Bps", "weight", "flops")
"""The per-task values a Schedule keeps once per distinct combination (``cls_table``'s columns)."""
LIST_FIELDS = ("res_names", "res_class", "srv_names", "pool_names", "op_names", "op_roles", "op_kinds")


@dataclass(frozen=True, eq=False)
class Schedule:
    """Tasks (arrays of length T), resources (R), bandwidth servers (S), SRAM pools (P) and
    ops (O). See the module docstring for the semantics."""

    kind: np.ndarray
    resource: np.ndarray
    server: np.ndarray
    cls: np.ndarray
    """Each task's row of ``cls_table`` (its duration, bytes, cap, weight and flops)."""
    cls_table: np.ndarray
    """The distinct (duration_s, nbytes, cap_Bps, weight, flops) of the tasks, one row each."""
    acquire: np.ndarray
    release: np.ndarray
    priority: np.ndarray
    op: np.ndarray
    category: np.ndarray
    dep_ptr: np.ndarray
    dep_idx: np.ndarray
    res_capacity: np.ndarray
    res_bandwidth_Bps: np.ndarray
    """Bandwidth a resource's transfers share (0: no limit of its own)."""
    res_chip: np.ndarray
    srv_bandwidth_Bps: np.ndarray
    srv_chip: np.ndarray
    srv_by_op: np.ndarray
    """1: the server serves ops in program order (an earlier op's transfers are water-filled
    first, a later op's prefetch gets what they leave); 0: one max-min fair class."""
    srv_path_Bps: np.ndarray
    """What the transfers of resources with a bandwidth of their own (the cores' load paths)
    move together on the server, whatever their own bandwidths add up to (inf: no such bound):
    a core's load path may pull more than its even share of the chip's load paths only while
    others leave them idle."""
    pool_slots: np.ndarray
    res_names: list[str] = field(default_factory=list)
    res_class: list[str] = field(default_factory=list)
    """Engine class of each resource: tensor, vector, scalar, dma, link."""
    srv_names: list[str] = field(default_factory=list)
    pool_names: list[str] = field(default_factory=list)
    op_names: list[str] = field(default_factory=list)
    op_roles: list[str] = field(default_factory=list)
    op_kinds: list[str] = field(default_factory=list)

    @property
    def num_tasks(self) -> int:
        return int(self.kind.size)

    def values(self, name: str, tasks=None) -> np.ndarray:
        """Column ``name`` (one of ``VALUE_COLUMNS``) of ``tasks`` (indices or a mask; None:
        every task), as a new float array."""
        j = VALUE_COLUMNS.index(name)
        return self.cls_table[self.cls if tasks is None else self.cls[tasks], j]

    def value(self, name: str, t: int) -> float:
        """Column ``name`` of task ``t``."""
        return float(self.cls_table[self.cls[t], VALUE_COLUMNS.index(name)])

    duration_s = property(lambda self: self.values("duration_s"), doc="Seconds a task holds its server "
                          "(XFER: its latency / issue part; DELAY: its wait), materialized.")
    nbytes = property(lambda self: self.values("nbytes"), doc="Bytes a transfer moves, materialized.")
    cap_Bps = property(lambda self: self.values("cap_Bps"), doc="A transfer's own rate cap, materialized.")
    weight = property(lambda self: self.values("weight"), doc="Fraction of a transfer's bytes that load its "
                      "server, materialized.")
    flops = property(lambda self: self.values("flops"), doc="A tensor pass's flops, materialized.")

    def deps(self, t: int) -> np.ndarray:
        return self.dep_idx[self.dep_ptr[t]:self.dep_ptr[t + 1]]

    def task_name(self, t: int) -> str:
        """A short name saying what ran: "L3.mlp_up dma_in 512 KiB"."""
        cat = CATEGORY_NAMES[self.category[t]]
        op = self.op_names[self.op[t]] if self.op[t] >= 0 else "-"
        if self.kind[t] == XFER:
            return f"{op} {cat} {self.value('nbytes', t) / 1024:.0f} KiB"
        return f"{op} {cat}"

    def save(self, path: str | Path) -> None:
        """Write to a compressed .npz (lists stored as string arrays)."""
        arrays = {k: getattr(self, k) for k in ARRAY_FIELDS}
        arrays.update({k: np.array(getattr(self, k), dtype=str) for k in LIST_FIELDS})
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Schedule":
        with np.load(path) as z:
            kw = {k: z[k] for k in ARRAY_FIELDS if k in z}
            for k in ("priority", "dep_ptr"):  # 64-bit in files saved before 2026-12-04
                if k in kw:
                    kw[k] = kw[k].astype(np.int32)
            kw.setdefault("srv_by_op", np.zeros(len(kw["srv_bandwidth_Bps"]), dtype=np.int8))
            kw.setdefault("srv_path_Bps", np.full(len(kw["srv_bandwidth_Bps"]), np.inf))
            if "cls" not in kw:  # files saved before 2026-12-04 hold the five value columns
                rows: list = []
                codes = _encode({k: z[k] for k in VALUE_COLUMNS}, {}, rows)
                kw["cls"], kw["cls_table"] = _packed(codes, rows)
            kw.update({k: [str(s) for s in z[k]] for k in LIST_FIELDS})
        return cls(**kw)

    def dump(self, limit: int = 200) -> str:
        """Human-readable listing of the first ``limit`` tasks."""
        lines = [f"{self.num_tasks} tasks, {len(self.res_names)} resources, {len(self.srv_names)} "
                 f"bandwidth servers, {len(self.pool_names)} SRAM pools, {len(self.op_names)} ops"]
        for t in range(min(self.num_tasks, limit)):
            r = self.resource[t]
            where = self.res_names[r] if r >= 0 else "-"
            extra = ""
            if self.kind[t] == XFER:
                extra = (f" {self.value('nbytes', t):.0f} B via {self.srv_names[self.server[t]]} "
                         f"(cap {self.value('cap_Bps', t) / 1e9:.1f} GB/s)")
            if self.acquire[t] >= 0:
                extra += f" acquire {self.pool_names[self.acquire[t]]}"
            if self.release[t] >= 0:
                extra += f" release {self.pool_names[self.release[t]]}"
            deps = ",".join(str(d) for d in self.deps(t))
            lines.append(f"{t:6d} {KIND_NAMES[self.kind[t]]:5} {where:<18} {self.value('duration_s', t) * 1e6:10.3f} us"
                         f"{extra}  <- [{deps}]  {self.task_name(t)}")
        if self.num_tasks > limit:
            lines.append(f"... {self.num_tasks - limit} more")
        return "\n".join(lines)


TASK_COLUMNS = {"kind": np.int8, "resource": np.int32, "server": np.int32, "duration_s": float, "nbytes": float,
                "cap_Bps": float, "weight": float, "flops": float, "acquire": np.int32, "release": np.int32,
                "priority": np.int32, "op": np.int32, "category": np.int8}
"""Per-task columns of a Schedule and their array types (task ids, priorities and dependency
offsets are 32-bit: ``limits.check_tasks`` refuses 2^31 tasks, ``build`` 2^31 dependencies)."""
_PRIORITY = list(TASK_COLUMNS).index("priority")


class ScheduleBuilder:
    """Accumulates tasks in program order and packs them into a Schedule. Tasks added one by
    one (``task``) are kept in lists until the next block of arrays (``append_block``, e.g. a
    lowered op replayed for an identical one) or ``build``; blocks stay arrays."""

    def __init__(self) -> None:
        self.cols: list[list] = [[] for _ in TASK_COLUMNS]  # one list per column, in TASK_COLUMNS order
        self.deps: list[tuple[int, ...]] = []  # tuples: the garbage collector stops tracking them
        # blocks of tasks: (columns, dep_ptr, dep_idx, edit), columns and deps as arrays, or as
        # the lists of ``task`` rows (columns None) until ``build``; edit: a ``Shift`` or None
        self._blocks: list[tuple] = []
        self._base = 0
        self.res: list[tuple[str, str, int, int, float]] = []
        self.srv: list[tuple[str, float, int, bool, float]] = []
        self.pools: list[tuple[str, int]] = []
        self.ops: list[tuple[str, str, str]] = []
        self._res_index: dict[str, int] = {}
        self._srv_index: dict[str, int] = {}
        self._pool_index: dict[str, int] = {}
        self._cls_index: dict[bytes, int] = {}  # a value combination's bytes -> its row of cls_table
        self._cls_rows: list[np.ndarray] = []

    def resource(self, name: str, cls: str, capacity: int = 1, chip: int = 0, bandwidth_Bps: float = 0.0) -> int:
        if name not in self._res_index:
            self._res_index[name] = len(self.res)
            self.res.append((name, cls, max(1, int(capacity)), chip, float(bandwidth_Bps)))
        return self._res_index[name]

    def bandwidth_server(self, name: str, bandwidth_Bps: float, chip: int = 0, by_op: bool = False,
                         path_Bps: float = np.inf) -> int:
        if name not in self._srv_index:
            self._srv_index[name] = len(self.srv)
            self.srv.append((name, float(bandwidth_Bps), chip, by_op, float(path_Bps)))
        return self._srv_index[name]

    def pool(self, name: str, slots: int) -> int:
        if name not in self._pool_index:
            self._pool_index[name] = len(self.pools)
            self.pools.append((name, max(1, int(slots))))
        return self._pool_index[name]

    def new_pools(self, pools: list[tuple[str, int]]) -> int:
        """Add pools (name, slots) whose names are new; returns the index of the first."""
        p0 = len(self.pools)
        self._pool_index.update((name, p0 + i) for i, (name, _) in enumerate(pools))
        self.pools.extend((name, max(1, int(slots))) for name, slots in pools)
        if len(self._pool_index) != len(self.pools):
            raise ValueError("new_pools: a pool name is already taken")
        return p0

    @property
    def num_tasks(self) -> int:
        return self._base + len(self.deps)

    def op(self, name: str, role: str, kind: str) -> int:
        self.ops.append((name, role, kind))
        return len(self.ops) - 1

    def task(self, kind: int, category: int, op: int, deps=(), resource: int = -1, server: int = -1,
             duration_s: float = 0.0, nbytes: float = 0.0, cap_Bps: float = np.inf, weight: float = 1.0,
             flops: float = 0.0,
             acquire: int = -1, release: int = -1, priority: int | None = None) -> int:
        t = self._base + len(self.deps)
        if not t & 0xFFFFF and t:  # every 1 Mi tasks
            from ..limits import check_tasks

            check_tasks(t)
        (c_kind, c_res, c_srv, c_dur, c_bytes, c_cap, c_w, c_flops, c_acq, c_rel, c_prio, c_op,
         c_cat) = self.cols
        c_kind.append(kind)
        c_res.append(resource)
        c_srv.append(server)
        c_dur.append(duration_s)
        c_bytes.append(nbytes)
        c_cap.append(cap_Bps)
        c_w.append(weight)
        c_flops.append(flops)
        c_acq.append(acquire)
        c_rel.append(release)
        c_prio.append(t if priority is None else priority)
        c_op.append(op)
        c_cat.append(category)
        self.deps.append(tuple([d for d in deps if d is not None and d >= 0]))
        return t

    def add_rows(self, rows: list[tuple], deps: list[list[int]]) -> None:
        """Add tasks as ready-made rows (``task``'s fields in TASK_COLUMNS order, priority
        included) with their dependencies (task ids >= 0), in program order."""
        t = self._base + len(self.deps)
        if (t + len(rows)) >> 20 != t >> 20:  # crossing a 1 Mi tasks mark, as ``task`` checks
            from ..limits import check_tasks

            check_tasks(t + len(rows))
        if rows:
            for col, values in zip(self.cols, zip(*rows)):
                col += values
        self.deps += map(tuple, deps)

    def set_priority(self, t: int, priority: int) -> None:
        """Change the priority of task ``t`` (one added by ``task`` since the last block)."""
        self.cols[_PRIORITY][t - self._base] = priority

    def segment(self, t0: int, t1: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Tasks ``t0..t1-1`` (added by ``task`` since the last block) as arrays: (columns,
        dep_ptr, dep_idx)."""
        i0, i1 = t0 - self._base, t1 - self._base
        if i0 < 0:
            raise ValueError("segment() reads tasks added since the last block only")
        return (_columns([c[i0:i1] for c in self.cols]), *_csr(self.deps[i0:i1]))

    def compact(self, t0: int, cols: dict[str, np.ndarray], dep_ptr: np.ndarray, dep_idx: np.ndarray) -> None:
        """Hold the tasks from ``t0`` on (the last ones added by ``task``) as the arrays
        ``segment(t0, num_tasks)`` made of them, dropping their rows: a lowered op's Python
        rows (~300 bytes a task) are freed as soon as its template exists."""
        i0 = t0 - self._base
        if i0 < 0 or len(self.deps) - i0 != len(dep_ptr) - 1:
            raise ValueError("compact() takes the tasks from t0 to the last one added by task()")
        for c in self.cols:
            del c[i0:]
        del self.deps[i0:]
        self._append((cols, dep_ptr, dep_idx, None))

    def append_block(self, cols: dict[str, np.ndarray], dep_ptr: np.ndarray, dep_idx: np.ndarray) -> range:
        """Append tasks given as arrays (``segment``'s layout, task ids already final); returns
        their ids."""
        return self._append((cols, dep_ptr, dep_idx, None))

    def append_shifted(self, cols: dict[str, np.ndarray], dep_ptr: np.ndarray, dep_idx: np.ndarray,
                       edit: "Shift") -> range:
        """Append a copy of the tasks in ``cols`` / ``dep_ptr`` / ``dep_idx`` (``segment``'s
        layout) edited by ``edit`` (task ids, priorities, op and SRAM pools moved; see
        ``Shift``). The copy is made by ``build``, straight into the schedule's arrays: an op
        replayed a thousand times keeps no copies of its own until then."""
        return self._append((cols, dep_ptr, dep_idx, edit))

    def encode(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``cols`` with its ``VALUE_COLUMNS`` replaced by their rows of the value table
        (``cls``): a block held until ``build`` then keeps a code a task where the five float
        columns took 40 bytes."""
        out = {k: v for k, v in cols.items() if k not in VALUE_COLUMNS}
        out["cls"] = _encode(cols, self._cls_index, self._cls_rows)
        return out

    def _append(self, block: tuple) -> range:
        self._flush()
        t0 = self._base
        n = len(block[1]) - 1
        from ..limits import check_tasks

        check_tasks(t0 + n)
        self._blocks.append(block)
        self._base += n
        return range(t0, t0 + n)

    def _flush(self) -> None:
        """Close the tasks added one by one as a block of rows (turned into arrays by ``build``,
        all such blocks at once: many are a task or two between two replayed ops)."""
        if self.deps:
            self._blocks.append((None, self.cols, self.deps, None))
            self._base += len(self.deps)
            self.cols = [[] for _ in TASK_COLUMNS]
            self.deps = []

    def _row_blocks_as_arrays(self) -> None:
        raw = [i for i, blk in enumerate(self._blocks) if blk[0] is None]
        if not raw:
            return
        cols = _columns([[x for i in raw for x in self._blocks[i][1][j]] for j in range(len(TASK_COLUMNS))])
        cols["cls"] = _encode(cols, self._cls_index, self._cls_rows)  # all row blocks in one go
        ptr, idx = _csr([d for i in raw for d in self._blocks[i][2]])
        a = 0
        for i in raw:
            b = a + len(self._blocks[i][2])
            self._blocks[i] = ({k: v[a:b] for k, v in cols.items()}, ptr[a:b + 1] - ptr[a], idx[ptr[a]:ptr[b]], None)
            a = b

    def build(self) -> Schedule:
        """The Schedule: every block copied (or, for ``append_shifted``, edited) once into
        arrays of the final size."""
        self._flush()
        self._row_blocks_as_arrays()
        blocks = self._blocks
        n = sum(len(b[1]) - 1 for b in blocks)
        n_deps = sum(len(b[2]) for b in blocks)
        if n_deps >= 2**31:  # (tasks: limits.check_tasks refuses 2^31 as they are added)
            from ..errors import WorkloadError

            raise WorkloadError(f"an event-tier schedule of {n:,} tasks has {n_deps:,} dependencies, past the "
                                f"2^31 its 32-bit offsets hold; use --fidelity analytical")
        # each block's value combinations as rows of one table (a replayed op's block is the
        # same arrays every time: encoded once)
        codes: dict[int, np.ndarray] = {}
        last = {id(blk[0]): i for i, blk in enumerate(blocks)}  # a shared block's codes go after its last copy
        for src, _, _, _ in blocks:
            if id(src) not in codes:
                c = src.get("cls")
                codes[id(src)] = c if c is not None else _encode(src, self._cls_index, self._cls_rows)
        cls, table = _packed(None, self._cls_rows)
        cols = {k: np.empty(n, dtype=dt) for k, dt in TASK_COLUMNS.items() if k not in VALUE_COLUMNS}
        cols["cls"] = np.empty(n, dtype=cls.dtype)
        dep_ptr = np.zeros(n + 1, dtype=np.int32)
        dep_idx = np.empty(n_deps, dtype=np.int32)
        a = d = 0
        self._blocks = []
        for i, (src, ptr, idx, edit) in enumerate(blocks):
            blocks[i] = None  # each block freed once copied (unless another still shares its arrays)
            b, e = a + len(ptr) - 1, d + len(idx)
            np.subtract(ptr[1:], ptr[:-1], out=dep_ptr[a + 1:b + 1], casting="unsafe")
            cols["cls"][a:b] = codes[id(src)]
            if edit is None:
                for k, c in cols.items():
                    if k != "cls":
                        c[a:b] = src[k]
                dep_idx[d:e] = idx
            else:
                edit.apply(src, idx, {k: c[a:b] for k, c in cols.items() if k != "cls"}, dep_idx[d:e])
            if last[id(src)] == i:
                del codes[id(src)]
            a, d = b, e
        del codes, blocks
        # the table in a canonical order (by value bytes), so the codes do not depend on the order
        # in which blocks met their combinations (a replayed op and a fresh one agree)
        order = sorted(range(len(table)), key=lambda i: table[i].tobytes())
        if order != list(range(len(table))):
            rank = np.empty(len(order), dtype=cols["cls"].dtype)
            rank[order] = np.arange(len(order))
            cols["cls"] = rank[cols["cls"]]
            table = table[order]
            self._cls_rows[:] = [self._cls_rows[i] for i in order]
            self._cls_index.update({r.tobytes(): i for i, r in enumerate(self._cls_rows)})
        np.cumsum(dep_ptr, out=dep_ptr)
        _narrow(cols, max(len(self.res), len(self.srv), len(self.pools), len(self.ops)))
        self._blocks = [(cols, dep_ptr, dep_idx, None)]
        return Schedule(
            **cols, cls_table=table, dep_ptr=dep_ptr, dep_idx=dep_idx,
            res_capacity=np.array([r[2] for r in self.res], dtype=np.int32),
            res_chip=np.array([r[3] for r in self.res], dtype=np.int32),
            res_bandwidth_Bps=np.array([r[4] for r in self.res], dtype=float),
            srv_bandwidth_Bps=np.array([s[1] for s in self.srv], dtype=float),
            srv_chip=np.array([s[2] for s in self.srv], dtype=np.int32),
            srv_by_op=np.array([s[3] for s in self.srv], dtype=np.int8),
            srv_path_Bps=np.array([s[4] for s in self.srv], dtype=float),
            pool_slots=np.array([p[1] for p in self.pools], dtype=np.int32),
            res_names=[r[0] for r in self.res], res_class=[r[1] for r in self.res],
            srv_names=[s[0] for s in self.srv], pool_names=[p[0] for p in self.pools],
            op_names=[o[0] for o in self.ops], op_roles=[o[1] for o in self.ops], op_kinds=[o[2] for o in self.ops])


NARROW_COLUMNS = ("resource", "server", "acquire", "release", "priority", "op")
"""Columns a schedule keeps in 16 bits when every one of them fits (a collective's link
transfers: a few thousand links, one priority per step, one op), else in 32."""


def _narrow(cols: dict[str, np.ndarray], table_rows: int) -> None:
    """Store ``NARROW_COLUMNS`` as int16 when all their values fit, and so do the resource,
    server, pool and op counts (``table_rows``, the largest), which readers mix with them (the
    engine is compiled for either width; one rule for the six keeps that to two variants)."""
    lim = np.iinfo(np.int16)  # (below the top: ``resource + 1`` must not wrap)
    if table_rows < lim.max and all(not c.size or (lim.min <= int(c.min()) and int(c.max()) < lim.max)
                                    for c in (cols[k] for k in NARROW_COLUMNS)):
        for k in NARROW_COLUMNS:
            cols[k] = cols[k].astype(np.int16)


class Shift(NamedTuple):
    """How ``append_shifted`` edits a copied block: task ids inside it (``inside``: per
    dependency) move by ``tasks``, a dependency on ``old_start`` becomes ``start`` and any other
    outside one ``prev``; priorities move by ``tasks``; every task belongs to op ``op``; SRAM
    pool ids move by ``pools``."""

    tasks: int
    inside: np.ndarray
    old_start: int
    start: int
    prev: int
    op: int
    pools: int

    def apply(self, src: dict[str, np.ndarray], idx: np.ndarray, out: dict[str, np.ndarray],
              out_idx: np.ndarray) -> None:
        for k, c in out.items():
            x = src[k]
            if k == "priority":
                np.add(x, self.tasks, out=c)
            elif k == "op":
                c[:] = self.op
            elif k in ("acquire", "release"):
                c[:] = np.where(x >= 0, x + self.pools, x)
            else:
                c[:] = x
        out_idx[:] = np.where(self.inside, idx + self.tasks, np.where(idx == self.old_start, self.start, self.prev))


def _encode(cols: dict[str, np.ndarray], index: dict[bytes, int], rows: list[np.ndarray]) -> np.ndarray:
    """Each task's row of the value table (``VALUE_COLUMNS`` of ``cols``), adding the
    combinations not yet in ``index`` / ``rows``; int32 codes. Combinations are told apart by
    their bytes, so every value comes back bit for bit."""
    m = np.stack([np.asarray(cols[k], dtype=float) for k in VALUE_COLUMNS], axis=1)
    if not len(m):
        return np.empty(0, dtype=np.int32)
    v = np.ascontiguousarray(m).view(np.dtype((np.void, m.shape[1] * 8))).ravel()
    uniq, first, inv = np.unique(v, return_index=True, return_inverse=True)
    local = np.empty(uniq.size, dtype=np.int32)
    for i, f in enumerate(first.tolist()):
        key = uniq[i].tobytes()
        c = index.get(key)
        if c is None:
            c = index[key] = len(rows)
            rows.append(m[f].copy())
        local[i] = c
    return local[inv.ravel()]


def _packed(codes: np.ndarray | None, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(``codes`` in the narrowest unsigned type that holds ``len(rows)`` rows, the table); with
    ``codes`` None, an empty array of that type."""
    dt = np.uint8 if len(rows) <= 1 << 8 else np.uint16 if len(rows) <= 1 << 16 else np.int32
    table = np.array(rows, dtype=float).reshape(len(rows), len(VALUE_COLUMNS))
    return (np.empty(0, dtype=dt) if codes is None else codes.astype(dt)), table


def _columns(cols: list[list]) -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=dt) for (k, dt), v in zip(TASK_COLUMNS.items(), cols)}


def _csr(deps: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.fromiter(map(len, deps), dtype=np.int64, count=len(deps))
    ptr = np.zeros(len(deps) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    idx = np.fromiter(chain.from_iterable(deps), dtype=np.int32, count=int(ptr[-1]))
    return ptr, idx
