"""Chrome trace-event JSON of a simulated run, for Perfetto (ui.perfetto.dev) or chrome://tracing.

Layout (see :func:`track_layout`):

- one *process* per chip: ``pid = chip + 1`` (Perfetto treats pid 0 as the kernel's swapper, so
  chips are shifted by one; the process is named "chip <index>" and carries ``args.chip``);
- one *thread* (track) per serial engine server: resource ``r`` lane ``l`` has
  ``tid = 1 + sum(res_capacity[:r]) + l``, the same number on every chip (a pool resource of
  capacity 16, such as a core's DMA queues, gets 16 tracks "core0.dma q0" .. "q15");
- per chip, after the engine tids: the "ops k" tracks holding one parent slice per op (spread
  by greedy interval partitioning so slices on one track never overlap), then the
  "overhead k" tracks holding resource-less tasks (DELAY: launch overhead), spread the same way.

Times are written in microseconds rounded to whole nanoseconds (Perfetto's resolution), so
rounding never turns back-to-back slices into overlapping ones.
"""

from __future__ import annotations

import gzip
import heapq
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..lower.schedule import CATEGORY_NAMES, KIND_NAMES, XFER
from ..sim.result import BLOCK_NAMES, SimResult, group_min_max

ENGINE, OPS, OVERHEAD = "engine", "ops", "overhead"


# --------------------------------------------------------------------------------------------
# events: each renders itself as one or more trace-event dicts


@dataclass(slots=True)
class Process:
    """A chip."""

    pid: int
    name: str
    chip: int

    def render(self) -> list[dict[str, Any]]:
        return [{"name": "process_name", "ph": "M", "ts": 0, "pid": self.pid, "tid": 0,
                 "args": {"name": self.name, "chip": self.chip}},
                {"name": "process_sort_index", "ph": "M", "ts": 0, "pid": self.pid, "tid": 0,
                 "args": {"sort_index": self.chip}}]


@dataclass(slots=True)
class Track:
    """One row of the timeline: an engine server, an ops track or an overhead track."""

    pid: int
    tid: int
    name: str
    sort_index: int
    kind: str
    """ENGINE, OPS or OVERHEAD."""
    chip: int
    resource: int = -1
    lane: int = -1

    def render(self) -> list[dict[str, Any]]:
        return [{"name": "thread_name", "ph": "M", "ts": 0, "pid": self.pid, "tid": self.tid,
                 "args": {"name": self.name}},
                {"name": "thread_sort_index", "ph": "M", "ts": 0, "pid": self.pid, "tid": self.tid,
                 "args": {"sort_index": self.sort_index}}]


@dataclass(slots=True)
class Slice:
    """A complete event (``ph: "X"``); times in microseconds."""

    name: str
    cat: str
    pid: int
    tid: int
    ts_us: float
    dur_us: float
    args: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "cat": self.cat, "ph": "X", "ts": self.ts_us, "dur": self.dur_us,
                "pid": self.pid, "tid": self.tid, "args": self.args}


# --------------------------------------------------------------------------------------------
# layout: which track every task and op slice lands on


@dataclass(frozen=True, eq=False)
class TrackLayout:
    """Where each task and each op parent slice goes (arrays in schedule task order)."""

    task_chip: np.ndarray
    task_pid: np.ndarray
    task_tid: np.ndarray
    op_op: np.ndarray
    """One entry per op parent slice (an op's tasks on one chip): the op index ..."""
    op_chip: np.ndarray
    op_start_s: np.ndarray
    op_end_s: np.ndarray
    op_pid: np.ndarray
    op_tid: np.ndarray
    processes: list[Process]
    tracks: list[Track]
    """Every track, in display order (sort_index ascending within each chip)."""


def partition_intervals(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Greedy interval partitioning: a track index per interval such that intervals on one
    track are disjoint (touching ends allowed), using as few tracks as the peak overlap and
    preferring the lowest free track."""
    n = start.size
    track = np.zeros(n, dtype=np.int64)
    order = np.lexsort((-end, start))
    busy: list[tuple[float, int]] = []  # (end, track) of tracks in use
    free: list[int] = []
    ntracks = 0
    for i in order.tolist():
        s, e = float(start[i]), float(end[i])
        while busy and busy[0][0] <= s:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            k = heapq.heappop(free)
        else:
            k, ntracks = ntracks, ntracks + 1
        track[i] = k
        heapq.heappush(busy, (e, k))
    return track


def _task_chips(result: SimResult) -> np.ndarray:
    """Chip of each task: its resource's chip; without a resource, the chip of the first task
    of its op that has one (0 if none)."""
    s = result.schedule
    T = s.num_tasks
    has = s.resource >= 0
    chip = np.zeros(T, dtype=np.int64)
    if len(s.res_chip):
        chip[has] = s.res_chip[s.resource[has]]
    nops = len(s.op_names)
    if nops and (~has).any():
        op_chip = np.zeros(nops, dtype=np.int64)
        idx = np.flatnonzero(has & (s.op >= 0))
        ops, first = np.unique(s.op[idx], return_index=True)  # first task with a resource per op
        op_chip[ops] = chip[idx[first]]
        sel = ~has & (s.op >= 0)
        chip[sel] = op_chip[s.op[sel]]
    return chip


ENGINE_CLASSES = ("tensor", "vector", "scalar", "dma", "link", "overhead")
"""Engine classes in display order (resource-less tasks are "overhead")."""


def group_spans(result: SimResult, tasks: np.ndarray, key: np.ndarray):
    """Group ``tasks`` by ``key`` (one int per task): (unique keys, each task's group, the
    first start and the last end of each group)."""
    keys, inv = np.unique(key, return_inverse=True)
    start, end = group_min_max(inv, keys.size, result.start_s[tasks], result.end_s[tasks])
    return keys, inv, start, end


def op_spans(result: SimResult, chip: np.ndarray, nchip: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys ``op * nchip + chip`` of every (op, chip) pair with tasks, and the first start and
    last end of those tasks."""
    s = result.schedule
    with_op = np.flatnonzero(s.op >= 0)
    keys, _, start, end = group_spans(result, with_op, s.op[with_op].astype(np.int64) * nchip + chip[with_op])
    return keys, start, end


def track_layout(result: SimResult) -> TrackLayout:
    """Assign every task and every op parent slice to a (pid, tid) track; see the module
    docstring for the numbering."""
    s = result.schedule
    T = s.num_tasks
    cap = np.asarray(s.res_capacity, dtype=np.int64)
    base = np.zeros(cap.size + 1, dtype=np.int64)
    np.cumsum(cap, out=base[1:])
    n_servers = int(base[-1])
    chip = _task_chips(result)

    # engine tasks: (resource, lane)
    tid = np.zeros(T, dtype=np.int64)
    has = s.resource >= 0
    r = s.resource[has].astype(np.int64)
    lane = np.clip(result.lane[has].astype(np.int64), 0, cap[r] - 1)
    tid[has] = 1 + base[r] + lane

    chips = sorted(set(np.asarray(s.res_chip).tolist()) | set(np.unique(chip).tolist()))

    # op parent slices: one per (op, chip) pair, from its tasks' min start to max end
    nchip = (max(chips) + 1) if chips else 1
    keys, op_start, op_end = op_spans(result, chip, nchip)
    op_op, op_chip = keys // nchip, keys % nchip
    op_tid = np.zeros(keys.size, dtype=np.int64)

    # resource-less tasks: overhead tracks
    no_res = np.flatnonzero(~has)

    processes: list[Process] = []
    tracks: list[Track] = []
    for c in chips:
        pid = c + 1
        processes.append(Process(pid, f"chip {c}", c))
        sort = 0
        sel = np.flatnonzero(op_chip == c)
        part = partition_intervals(op_start[sel], op_end[sel])
        n_ops_tracks = int(part.max()) + 1 if part.size else 0
        op_tid[sel] = n_servers + 1 + part
        for k in range(n_ops_tracks):
            tracks.append(Track(pid, n_servers + 1 + k, f"ops {k}", sort, OPS, c))
            sort += 1
        sel = no_res[chip[no_res] == c]
        part = partition_intervals(result.start_s[sel], result.end_s[sel])
        ovh_base = n_servers + 1 + n_ops_tracks
        tid[sel] = ovh_base + part
        for k in range(int(part.max()) + 1 if part.size else 0):
            tracks.append(Track(pid, ovh_base + k, f"overhead {k}", sort, OVERHEAD, c))
            sort += 1
        for ri in np.flatnonzero(np.asarray(s.res_chip) == c).tolist():
            name = s.res_names[ri]
            for ln in range(int(cap[ri])):
                label = name if cap[ri] == 1 else f"{name} q{ln}"
                tracks.append(Track(pid, int(1 + base[ri] + ln), label, sort, ENGINE, c, ri, ln))
                sort += 1
    return TrackLayout(task_chip=chip, task_pid=chip + 1, task_tid=tid, op_op=op_op, op_chip=op_chip,
                       op_start_s=op_start, op_end_s=op_end, op_pid=op_chip + 1, op_tid=op_tid,
                       processes=processes, tracks=tracks)


# --------------------------------------------------------------------------------------------
# the trace


def _us(seconds: np.ndarray) -> np.ndarray:
    """Seconds -> microseconds rounded to whole nanoseconds (as float64)."""
    return np.rint(np.asarray(seconds, dtype=float) * 1e9) / 1e3


def _num(x: float) -> float | int:
    """A JSON-friendly number: integral floats as ints to keep the file small."""
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


def _task_slices(result: SimResult, lay: TrackLayout, tasks: np.ndarray) -> list[Slice]:
    s = result.schedule
    ts = _us(result.start_s[tasks]).tolist()
    end = _us(result.end_s[tasks]).tolist()
    ready = _us(result.ready(tasks)).tolist()
    xfer = _us(result.xfer_start(tasks)).tolist()
    capped = _us(result.capped_s[tasks]).tolist()
    pid = lay.task_pid[tasks].tolist()
    tid = lay.task_tid[tasks].tolist()
    cat = s.category[tasks].tolist()
    kind = s.kind[tasks].tolist()
    op = s.op[tasks].tolist()
    nbytes = s.values("nbytes", tasks).tolist()
    flops = s.values("flops", tasks).tolist()
    bk = result.block_kind[tasks].tolist()
    blocker = result.blocker[tasks].tolist()
    out = []
    for i, t in enumerate(tasks.tolist()):
        args: dict[str, Any] = {"task": t, "op": s.op_names[op[i]] if op[i] >= 0 else "-",
                                "kind": KIND_NAMES[kind[i]], "bytes": _num(nbytes[i]), "flops": _num(flops[i]),
                                "block_kind": BLOCK_NAMES[bk[i]], "blocker": blocker[i], "ready_us": ready[i]}
        if kind[i] == XFER:
            args["xfer_start_us"] = xfer[i]
            args["capped_us"] = capped[i]
        out.append(Slice(s.task_name(t), CATEGORY_NAMES[cat[i]], pid[i], tid[i], ts[i],
                         round(end[i] - ts[i], 3), args))
    return out


def _op_slices(result: SimResult, lay: TrackLayout, keep: np.ndarray | None = None) -> list[Slice]:
    """One parent slice per (op, chip); ``keep``: only these of them (indices into lay.op_*)."""
    s = result.schedule
    if not lay.op_op.size:
        return []
    # per (op, chip): number of tasks, bytes, flops
    with_op = np.flatnonzero(s.op >= 0)
    nchip = int(lay.op_chip.max()) + 1
    key = s.op[with_op].astype(np.int64) * nchip + lay.task_chip[with_op]
    slot = np.searchsorted(lay.op_op * nchip + lay.op_chip, key)
    n = np.bincount(slot, minlength=lay.op_op.size)
    nbytes = np.bincount(slot, s.values("nbytes", with_op), minlength=lay.op_op.size)
    flops = np.bincount(slot, s.values("flops", with_op), minlength=lay.op_op.size)
    ts = _us(lay.op_start_s).tolist()
    end = _us(lay.op_end_s).tolist()
    out = []
    for i in (range(lay.op_op.size) if keep is None else keep.tolist()):
        o, c = int(lay.op_op[i]), int(lay.op_chip[i])
        role = s.op_roles[o] if o < len(s.op_roles) else ""
        okind = s.op_kinds[o] if o < len(s.op_kinds) else ""
        out.append(Slice(s.op_names[o], "op", c + 1, int(lay.op_tid[i]), ts[i], round(end[i] - ts[i], 3),
                         {"op": o, "role": role, "kind": okind, "tasks": int(n[i]),
                          "bytes": _num(nbytes[i]), "flops": _num(flops[i])}))
    return out


def op_flows(result: SimResult, chip: np.ndarray, where: dict[tuple[int, int], tuple[int, int, float, float]],
             first_id: int = 1) -> list[dict[str, Any]]:
    """Flow events from each op to every op with a task that waits on one of its tasks, on the
    same chip. ``where[(op, chip)]`` = (pid, tid, ts_us, end_us) of that op's slice; pairs
    whose ends are not drawn are skipped."""
    s = result.schedule
    counts = np.diff(s.dep_ptr)
    succ = np.repeat(np.arange(s.num_tasks), counts)
    pred = s.dep_idx.astype(np.int64)
    a, b = s.op[pred].astype(np.int64), s.op[succ].astype(np.int64)
    ca, cb = chip[pred], chip[succ]
    cross = (a != b) & (a >= 0) & (b >= 0) & (ca == cb)
    pairs = np.unique(np.stack([a[cross], b[cross], ca[cross]], axis=1), axis=0) if cross.any() else []
    out: list[dict[str, Any]] = []
    fid = first_id
    for src_op, dst_op, c in (pairs.tolist() if len(pairs) else []):
        src, dst = where.get((src_op, c)), where.get((dst_op, c))
        if src is None or dst is None:
            continue
        s_ts = max(src[2], round(src[3] - 0.001, 3))  # inside the source slice, at its end
        out.append({"name": "dep", "cat": "dep", "ph": "s", "id": fid, "ts": s_ts, "pid": src[0], "tid": src[1]})
        out.append({"name": "dep", "cat": "dep", "ph": "f", "bp": "e", "id": fid, "ts": dst[2], "pid": dst[0],
                    "tid": dst[1]})
        fid += 1
    return out


def chrome_trace(result: SimResult, system_name: str = "", max_tasks: int | None = None,
                 window_s: tuple[float, float] | None = None) -> dict:
    """The run as a Chrome trace-event JSON object (load it in ui.perfetto.dev).

    Task slices are named by :meth:`Schedule.task_name`, with ``cat`` the task category and
    ``args`` its op, bytes, flops, what blocked it and when it became ready. Each op gets a
    parent slice per chip on that chip's "ops" tracks. ``max_tasks`` keeps only the earliest
    N task slices (op slices are always kept) and says so in ``otherData``. ``window_s`` =
    (start, end) in seconds keeps only the task and op slices that overlap that span (a long
    training step: the window around one microbatch or the gradient reduction).
    """
    s = result.schedule
    lay = track_layout(result)
    T = s.num_tasks
    tasks = np.arange(T)
    truncated = max_tasks is not None and T > max_tasks
    if truncated:
        tasks = np.sort(np.argsort(result.start_s, kind="stable")[:max(0, int(max_tasks))])
    op_keep = None
    if window_s is not None:
        lo, hi = float(window_s[0]), float(window_s[1])
        if not hi > lo:
            raise ValueError(f"trace window end must be after its start (got {window_s})")
        if lo > result.makespan_s or hi < 0:
            raise ConfigError(f"trace window {lo:.6g}:{hi:.6g} s lies outside the run (0 to {result.makespan_s:.6g} s): "
                             f"the trace would hold nothing")
        keep = (result.start_s[tasks] <= hi) & (result.end_s[tasks] >= lo)
        truncated = truncated or not keep.all()
        tasks = tasks[keep]
        op_keep = np.flatnonzero((lay.op_start_s <= hi) & (lay.op_end_s >= lo))
    ops = _op_slices(result, lay, op_keep)
    slices = ops + _task_slices(result, lay, tasks)
    # time order; on equal start the longer (enclosing) slice first
    slices.sort(key=lambda e: (e.ts_us, -e.dur_us))

    events: list[dict[str, Any]] = []
    for p in lay.processes:
        events.extend(p.render())
    for tr in lay.tracks:
        events.extend(tr.render())
    events.extend(e.render() for e in slices)
    drawn = slice(None) if op_keep is None else op_keep  # the op slices in the trace
    where = {(int(o), int(c)): (int(c) + 1, int(t), float(a), float(b))
             for o, c, t, a, b in zip(lay.op_op[drawn], lay.op_chip[drawn], lay.op_tid[drawn],
                                      _us(lay.op_start_s[drawn]), _us(lay.op_end_s[drawn]))}
    events.extend(op_flows(result, lay.task_chip, where))
    from ..version import __version__

    other = {"generator": f"accelsim {__version__}", "system": system_name, "detail": "full",
             "makespan_us": float(_us(np.array([result.makespan_s]))[0]), "num_tasks": T,
             "num_ops": len(s.op_names), "task_slices": int(tasks.size), "op_slices": len(ops),
             "truncated": bool(truncated),
             "utilization": {k: round(v, 6) for k, v in result.utilization().items()}}
    if window_s is not None:
        other["window_us"] = [round(lo * 1e6, 3), round(hi * 1e6, 3)]
        other["truncated_note"] = (f"only the {tasks.size} of {T} task slices and the op slices that overlap "
                                   f"{lo * 1e6:.3f}-{hi * 1e6:.3f} us are included")
    elif truncated:
        other["truncated_note"] = (f"only the earliest {tasks.size} of {T} task slices are included "
                                   f"(max_tasks={max_tasks}); op slices cover all tasks")
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": other}


# --------------------------------------------------------------------------------------------
# checker

PHASES = frozenset("B E X i I C b n e s t f P O N D M R c ( )".split())
_MAX_PROBLEMS = 200


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_event(i: int, ev: Any) -> list[str]:
    if not isinstance(ev, dict):
        return [f"event {i}: not an object"]
    out = []
    for k in ("name", "ph", "pid", "tid"):
        if k not in ev:
            out.append(f"event {i}: missing {k!r}")
    ph = ev.get("ph")
    if "ph" in ev and ph not in PHASES:
        out.append(f"event {i}: unknown ph {ph!r}")
    if "ts" not in ev:
        if ph != "M":  # metadata events may omit ts
            out.append(f"event {i}: missing 'ts'")
    elif not _finite_number(ev["ts"]):
        out.append(f"event {i}: ts {ev['ts']!r} is not a finite number")
    for k in ("pid", "tid"):
        if k in ev and not _is_id(ev[k]):
            out.append(f"event {i}: {k} {ev[k]!r} is not an integer")
    if ph == "X":
        if "dur" not in ev:
            out.append(f"event {i}: X event without 'dur'")
        elif not _finite_number(ev["dur"]):
            out.append(f"event {i}: dur {ev['dur']!r} is not a finite number")
        elif ev["dur"] < 0:
            out.append(f"event {i}: negative dur {ev['dur']!r}")
    if ph == "M" and ev.get("name") in ("process_name", "thread_name"):
        if not isinstance(ev.get("args"), dict) or "name" not in ev["args"]:
            out.append(f"event {i}: {ev.get('name')} metadata without args.name")
    return out


def _nesting_problems(key: tuple, spans: list[tuple[float, float, int]]) -> list[str]:
    """Slices on one track must be disjoint or nested."""
    out = []
    spans.sort(key=lambda x: (x[0], -x[1]))
    stack: list[tuple[float, float, int]] = []
    for s, e, i in spans:
        tol = 1e-9 * max(1.0, abs(s), abs(e))
        while stack and stack[-1][1] <= s + tol:
            stack.pop()
        if stack and e > stack[-1][1] + tol:
            ps, pe, pi = stack[-1]
            out.append(f"pid {key[0]} tid {key[1]}: event {i} [{s}, {e}] partially overlaps "
                       f"event {pi} [{ps}, {pe}]")
            continue  # leave it out of the stack
        stack.append((s, e, i))
    return out


def check_trace(trace: dict) -> list[str]:
    """Structural problems of a Chrome trace-event object (empty list = OK): required fields,
    known phases, finite times, names for every process and thread used by X slices, and
    proper nesting of X slices on each (pid, tid) track."""
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        return ["trace is not an object with a 'traceEvents' list"]
    problems: list[str] = []
    procs: set = set()
    threads: set = set()
    spans: dict[tuple, list[tuple[float, float, int]]] = defaultdict(list)
    for i, ev in enumerate(trace["traceEvents"]):
        bad = _check_event(i, ev)
        problems.extend(bad)
        if not isinstance(ev, dict):
            continue
        ph = ev.get("ph")
        if ph == "M":
            if ev.get("name") == "process_name":
                procs.add(ev.get("pid"))
            elif ev.get("name") == "thread_name":
                threads.add((ev.get("pid"), ev.get("tid")))
        elif ph == "X" and not bad:
            ts, dur = float(ev["ts"]), float(ev["dur"])
            spans[(ev["pid"], ev["tid"])].append((ts, ts + dur, i))
    for key in sorted(spans):
        if key[0] not in procs:
            problems.append(f"pid {key[0]} has no process_name metadata")
            procs.add(key[0])
        if key not in threads:
            problems.append(f"pid {key[0]} tid {key[1]} has no thread_name metadata")
        problems.extend(_nesting_problems(key, spans[key]))
    if len(problems) > _MAX_PROBLEMS:
        problems = problems[:_MAX_PROBLEMS] + [f"... {len(problems) - _MAX_PROBLEMS} more problems"]
    return problems


def check_trace_file(path: str | Path) -> list[str]:
    """:func:`check_trace` of a JSON file (gzipped when it ends in .gz)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                trace = json.load(f)
        else:
            trace = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return [f"{path}: cannot read JSON: {e}"]
    return check_trace(trace)
