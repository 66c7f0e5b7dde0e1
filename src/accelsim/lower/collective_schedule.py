"""Event tier for collectives: an algorithm's plan (``collectives.collective_plan``) as link
transfers on the event engine.

Decomposition:

- **Links.** One resource (class "link") and one bandwidth server per directed link of the
  topology; concurrent transfers over a link hold servers of its resource at once and share its
  bandwidth max-min fairly (the engine re-divides it at every start and finish). The resource
  has as many servers as transfers may overlap on it (on very large systems fewer, to bound
  the engine's memory: the extra transfers then wait for a server).
- **Transfers, cut-through.** A transfer from chip A to chip B along a route of h links is h
  hop tasks released together, one per link, each moving all the bytes through its link's
  server; hop k's latency phase is the route latency up to and including link k. The
  transfer is done when all its hops are done, so an uncontended transfer costs
  ``route latency + bytes / bandwidth`` and a contended one the bottleneck link's share.
  (Switch: chip -> switch and switch -> chip hops; the latency sits on the chip -> switch link.)
- **Steps.** A plan is a list of steps of concurrent transfers. A rank's sends in step k wait
  for everything it received in its last receiving step and for its own sends of its last
  sending step (a ring rank forwards a chunk once it has arrived, one chunk at a time), so ring
  reduce-scatter / all-gather pipeline exactly as the algorithm does. Where a rank sends many
  hops, they wait on one zero-time join task of that list (``JOIN_DEPS``): the same times, fewer
  dependency entries.
- **Overhead.** ``collective_overhead_s`` is one delay before the first step.
- **Library.** Under a stack's collective library the algorithm and protocol are the ones the
  analytical tier picks (``collective_cost``); the call latency joins the first delay, links
  move data at the library's fraction times the protocol's (the in-switch fraction for
  ``in_switch``; the scale-out fraction on NICs), and every transfer of a step pays the
  protocol's step latency (the library's scale-out step latency, if larger, in a step that
  crosses the scale-out network). A hierarchical plan runs every part with the first part's
  protocol (the analytical tier lets each part pick its own).

Reduction arithmetic is not modelled (the analytical tier counts it as vector work).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..arch.spec import SystemSpec
from ..cost.collectives import KINDS, collective_plan, link_terms
from ..arch.topology import SCALE_OUT, topology
from ..errors import WorkloadError
from ..gcpause import gc_paused
from .schedule import CAT_LINK, CAT_OVERHEAD, DELAY, XFER, Schedule, ScheduleBuilder


ENGINE_TABLE_ENTRIES = 20_000_000
"""Bound on the link servers of all links together (the event engine keeps a row of active
transfers per bandwidth server, as wide as the servers of its link)."""


JOIN_DEPS = 10
"""A step's hops wait on one zero-time join task per sending rank (instead of each on the
rank's whole list) when that saves more than this many dependency entries per join: a task
costs about as much memory as ten entries (schedule and engine together)."""


def _same(value, dtype, count: int) -> np.ndarray:
    """``count`` copies of ``value`` as a read-only view of one element (a block held until the
    builder copies it keeps no column of constants)."""
    return np.broadcast_to(np.asarray(value, dtype=dtype), (count,))


@lru_cache(maxsize=64)
def _one_each(count: int) -> np.ndarray:
    """CSR offsets of ``count`` lists of one entry each (read-only, shared by the blocks that
    use them)."""
    a = np.arange(count + 1, dtype=np.int32)
    a.flags.writeable = False
    return a


def _join_columns(count: int, op: int, priority: int) -> dict[str, np.ndarray]:
    """``count`` zero-time tasks on no resource, each ending when its dependencies do."""
    cols = {"kind": (DELAY, np.int8), "resource": (-1, np.int32), "server": (-1, np.int32), "duration_s": (0.0, float),
            "nbytes": (0.0, float), "cap_Bps": (np.inf, float), "weight": (1.0, float), "flops": (0.0, float),
            "acquire": (-1, np.int32), "release": (-1, np.int32), "op": (op, np.int32),
            "category": (CAT_LINK, np.int8), "priority": (priority, np.int32)}
    return {k: _same(v, dt, count) for k, (v, dt) in cols.items()}


def _link_name(u, v) -> str:
    def name(x):
        return f"chip{x}" if isinstance(x, int) else "/".join(str(p) for p in x)
    return f"link {name(u)}->{name(v)}"


def _ensure_link(b: ScheduleBuilder, name: str, bw: float, chip: int, servers: int) -> tuple[int, int]:
    """The link's resource and bandwidth server; a link that already exists in the builder
    (another collective's) gets ``servers`` more servers, so the two share it, never queue."""
    if name in b._res_index:
        r = b._res_index[name]
        old = b.res[r]
        b.res[r] = (old[0], old[1], old[2] + servers, old[3], old[4])
    else:
        r = b.resource(name, "link", capacity=servers, chip=chip)
    return r, b.bandwidth_server(name, bw, chip)


def _cumulative(links: dict, route: list, step_latency_s: float) -> list[float]:
    """The step latency plus the route latency up to and including each link of ``route``."""
    out, acc = [], step_latency_s
    for link in route:
        acc += links[link][2]
        out.append(acc)
    return out


class _Lists:
    """A list of task ids per row (rank or transfer), in CSR form."""

    __slots__ = ("ptr", "idx")

    def __init__(self, ptr: np.ndarray, idx: np.ndarray):
        self.ptr, self.idx = ptr, idx

    @classmethod
    def empty(cls, rows: int) -> "_Lists":
        return cls(np.zeros(rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ptr, idx) of the lists of ``rows``, in that order."""
        counts = self.ptr[rows + 1] - self.ptr[rows]
        ptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        pos = np.repeat(self.ptr[rows] - ptr[:-1], counts) + np.arange(ptr[-1])
        return ptr, self.idx[pos]

    @classmethod
    def concat(cls, p1: np.ndarray, i1: np.ndarray, p2: np.ndarray, i2: np.ndarray) -> "_Lists":
        """Row by row, the first lists followed by the second."""
        c1, c2 = np.diff(p1), np.diff(p2)
        ptr = np.zeros(c1.size + 1, dtype=np.int64)
        np.cumsum(c1 + c2, out=ptr[1:])
        idx = np.empty(ptr[-1], dtype=np.int64)
        idx[np.repeat(ptr[:-1] - p1[:-1], c1) + np.arange(p1[-1])] = i1
        idx[np.repeat(ptr[:-1] + c1 - p2[:-1], c2) + np.arange(p2[-1])] = i2
        return cls(ptr, idx)

    def or_default(self, default: np.ndarray) -> "_Lists":
        """Empty rows get ``default``."""
        c = np.diff(self.ptr)
        if c.all():
            return self
        fill = np.where(c == 0, default.size, c)
        ptr = np.zeros(c.size + 1, dtype=np.int64)
        np.cumsum(fill, out=ptr[1:])
        idx = np.empty(ptr[-1], dtype=np.int64)
        full = c > 0
        idx[np.repeat(ptr[:-1][full] - self.ptr[:-1][full], c[full]) + np.arange(self.ptr[-1])] = self.idx
        empty = np.flatnonzero(~full)
        idx[(ptr[empty][:, None] + np.arange(default.size)).ravel()] = np.tile(default, empty.size)
        return _Lists(ptr, idx)

    def replaced(self, rows: np.ndarray, ids: np.ndarray) -> "_Lists":
        """Rows named in ``rows`` get the ``ids`` paired with them (in order); the others keep
        their lists."""
        n = self.ptr.size - 1
        order = np.argsort(rows, kind="stable")
        new_counts = np.bincount(rows, minlength=n)
        old_counts = np.diff(self.ptr)
        counts = np.where(new_counts > 0, new_counts, old_counts)
        new_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(new_counts, out=new_ptr[1:])
        pool = np.concatenate([self.idx, ids[order]])
        src = np.where(new_counts > 0, self.idx.size + new_ptr[:-1], self.ptr[:-1])
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return _Lists(ptr, pool[np.repeat(src - ptr[:-1], counts) + np.arange(ptr[-1])])


@gc_paused
def collective_schedule(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int,
                        algorithm: str | None = None, chips=None, builder: ScheduleBuilder | None = None,
                        deps=None, name: str | None = None, library=None) -> Schedule | list[int]:
    """Lower one collective to link transfers (under ``library``, a stack's collective library;
    None: the ideal bound). Without ``builder``: a Schedule of its own. With ``builder``: the
    tasks are added to it after ``deps`` (task ids) and the ids of the tasks that finish the
    collective are returned."""
    if kind not in KINDS:
        raise WorkloadError(f"unknown collective {kind!r}; known: {', '.join(KINDS)}")
    n = float(bytes_per_rank)
    terms = link_terms(system, kind, n, ranks, algorithm, chips, library)
    plan = collective_plan(system, kind, n, ranks, None if terms.algorithm == "none" else terms.algorithm, chips,
                           library)
    topo = topology(system)
    own = builder is None
    b = ScheduleBuilder() if own else builder
    op = b.op(name or f"{kind} {plan.algorithm} x{ranks}", "collective", kind)
    cal = system.chip.calibration
    ic, so = system.interconnect, system.scale_out
    bw = terms.bandwidth_Bps
    lat = {0: ic.link_latency_s if ic else 0.0, SCALE_OUT: so.nic_latency_s if so else 0.0}
    call = terms.call_latency_s

    # servers per link: the most hop tasks one step puts on it, doubled (neighbouring steps may
    # overlap), at most the link's total; and at most what keeps the engine's table of active
    # transfers (the servers of all links) under ENGINE_TABLE_ENTRIES
    per_step: dict = {}
    total: dict = {}
    for st in plan.steps:
        seen: dict = {}
        for src, dst, _ in st.transfers:
            for link in topo.route(src, dst):
                seen[link] = seen.get(link, 0) + 1
        for link, c in seen.items():
            per_step[link] = max(per_step.get(link, 0), c)
            total[link] = total.get(link, 0) + c * st.repeat
    cap = max(4, ENGINE_TABLE_ENTRIES // max(1, len(per_step)))
    links = {}
    for link in per_step:
        u, v = link
        cls = topo.link_class(link)
        chip = u if isinstance(u, int) else v
        links[link] = (*_ensure_link(b, _link_name(u, v), bw[cls], chip, min(total[link], 2 * per_step[link], cap)),
                       lat[cls] * topo.link_latency_units(link))

    start = [d for d in (deps or ()) if d is not None and d >= 0]
    if cal.collective_overhead_s + call > 0 or not start:
        start = [b.task(DELAY, CAT_OVERHEAD, op, start, duration_s=cal.collective_overhead_s + call)]
    # each step's transfers as arrays, once; every repeat of it appended as one block whose
    # dependencies come from the ranks' last receiving and sending tasks (CSR over ranks)
    ranks_n = max(system.num_chips, 1 + max((max(a, c) for st in plan.steps for a, c, _ in st.transfers), default=0))
    recv = _Lists.empty(ranks_n)
    send = _Lists.empty(ranks_n)
    start_arr = np.array(start, dtype=np.int64)
    k = 0
    shapes: dict[tuple, tuple] = {}  # the hops of a step's (source, destination) pairs
    for st in plan.steps:
        pairs = tuple((a, c) for a, c, _ in st.transfers)
        shape = shapes.get(pairs)
        if shape is None:
            crosses = any(topo.link_class(link) == SCALE_OUT for a, c in pairs for link in topo.route(a, c))
            sl = terms.step_latency_out_s if crosses else terms.step_latency_s
            hops = [(i, *links[link][:2], lat) for i, (a, c) in enumerate(pairs)
                    for lat, link in zip(_cumulative(links, topo.route(a, c), sl), topo.route(a, c))]
            h = np.array(hops, dtype=float).reshape(len(hops), 4)
            shape = shapes[pairs] = (np.array([a for a, _ in pairs], dtype=np.int64),
                                     np.array([c for _, c in pairs], dtype=np.int64),
                                     h[:, 0].astype(np.int64), h[:, 1].astype(np.int32), h[:, 2].astype(np.int32),
                                     h[:, 3])
        src, dst, hop_tr, hop_res, hop_srv, hop_lat = shape
        senders, hop_sender = np.unique(src[hop_tr], return_inverse=True)  # each hop's source rank
        frac = np.array([f for _, _, f in st.transfers], dtype=float)
        H = hop_tr.size
        hop_bytes = frac[hop_tr] * n
        cols = b.encode({"kind": _same(XFER, np.int8, H), "resource": hop_res, "server": hop_srv,
                         "duration_s": hop_lat, "nbytes": hop_bytes, "cap_Bps": _same(np.inf, float, H),
                         "weight": _same(1.0, float, H), "flops": _same(0.0, float, H),
                         "acquire": _same(-1, np.int32, H), "release": _same(-1, np.int32, H),
                         "op": _same(op, np.int32, H), "category": _same(CAT_LINK, np.int8, H)})
        for _ in range(st.repeat):
            # a transfer waits for what its source last received and last sent (else the start)
            r_ptr, r_idx = recv.gather(senders)
            s_ptr, s_idx = send.gather(senders)
            after = _Lists.concat(r_ptr, r_idx, s_ptr, s_idx)
            after = after.or_default(start_arr)
            per_sender = np.diff(after.ptr)
            if int(per_sender[hop_sender].sum()) - H - int(after.idx.size) > JOIN_DEPS * senders.size:
                # the hops of a sender share its list: one join task per sender holds it
                joins = b.append_block(b.encode(_join_columns(senders.size, op, k)), after.ptr.astype(np.int32),
                                       after.idx.astype(np.int32))
                dep_ptr = _one_each(H)
                dep_idx = (joins.start + hop_sender).astype(np.int32)
            else:
                dep_ptr, dep_idx = after.gather(hop_sender)
            ids = b.append_block({**cols, "priority": _same(k, np.int32, H)}, dep_ptr,
                                 dep_idx.astype(np.int32, copy=False))
            hop_ids = np.arange(ids.start, ids.stop, dtype=np.int64)
            recv = recv.replaced(dst[hop_tr], hop_ids)
            send = send.replaced(src[hop_tr], hop_ids)
            k += 1
    ends = sorted(set(recv.idx.tolist()) | set(send.idx.tolist())) or start
    return b.build() if own else ends
