"""The compact Chrome trace (the default of ``--trace``) and the dependency arrows of every trace.

A full trace has a slice per task: a decode step of an 8B model on 8 cores is ~200k slices and
tens of MB. The compact trace keeps what a person reads first, per chip (one process each):

- "ops k" tracks: one parent slice per op, spread so slices on a track never overlap;
- per engine class (tensor, vector, scalar, dma, link, overhead) "CLASS k" tracks: one slice
  per (op, class), from the op's first to its last task on that class, with the tasks, their
  busy time summed over servers, the servers used, bytes and FLOPs in ``args`` (``busy_us /
  dur`` is how many servers were busy on average);
- flow arrows (``ph`` "s" / "f", category "dep") from each op to the ops that wait for it, on
  the ops tracks, so Perfetto draws the dependency graph.

``--trace-detail full`` writes the per-task trace of :mod:`.trace` with the same arrows;
:func:`write_trace` writes either.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..sim.result import SimResult
from .trace import (ENGINE_CLASSES as CLASSES, Process, Slice, Track, _num, _task_chips, _us, chrome_trace,
                    group_spans, op_flows, op_spans, partition_intervals)


def compact_trace(result: SimResult, system_name: str = "",
                  window_s: tuple[float, float] | None = None) -> dict:
    """The run as a compact Chrome trace-event object (see the module docstring)."""
    s = result.schedule
    chip = _task_chips(result)
    nchip = int(chip.max()) + 1 if chip.size else 1
    keys, op_start, op_end = op_spans(result, chip, nchip)
    op_of, chip_of = keys // nchip, keys % nchip
    res_cls = np.array([CLASSES.index(c) if c in CLASSES else CLASSES.index("overhead") for c in s.res_class]
                       + [CLASSES.index("overhead")], dtype=np.int64)
    cls = res_cls[np.where(s.resource >= 0, s.resource, len(s.res_class))]
    # (op, chip, class) groups
    with_op = np.flatnonzero(s.op >= 0)
    gkey = (s.op[with_op].astype(np.int64) * nchip + chip[with_op]) * len(CLASSES) + cls[with_op]
    gkeys, ginv, g_start, g_end = group_spans(result, with_op, gkey)
    dur = (result.end_s - result.start_s)[with_op]
    busy = np.bincount(ginv, dur, minlength=gkeys.size)
    ntask = np.bincount(ginv, minlength=gkeys.size)
    nbytes = np.bincount(ginv, s.values("nbytes", with_op), minlength=gkeys.size)
    flops = np.bincount(ginv, s.values("flops", with_op), minlength=gkeys.size)
    # servers used: distinct (resource, lane) pairs per group (resource-less tasks count as one)
    used = np.unique(np.stack([ginv.astype(np.int64), s.resource[with_op].astype(np.int64),
                               result.lane[with_op].astype(np.int64)]), axis=1)
    servers = np.bincount(used[0], minlength=gkeys.size)
    g_op, g_rest = gkeys // len(CLASSES), gkeys % len(CLASSES)
    g_opnum, g_chip = g_op // nchip, g_op % nchip

    lo, hi = (-np.inf, np.inf) if window_s is None else (float(window_s[0]), float(window_s[1]))
    if window_s is not None and not hi > lo:
        raise ValueError(f"trace window end must be after its start (got {window_s})")
    if window_s is not None and (lo > result.makespan_s or hi < 0):
        raise ConfigError(f"trace window {lo:.6g}:{hi:.6g} s lies outside the run (0 to {result.makespan_s:.6g} s): "
                         f"the trace would hold nothing")
    keep_op = (op_start <= hi) & (op_end >= lo)
    keep_g = (g_start <= hi) & (g_end >= lo)

    events: list[dict[str, Any]] = []
    slices: list[Slice] = []
    where: dict[tuple[int, int], tuple[int, int, float, float]] = {}
    chips = sorted(set(np.unique(chip).tolist()))
    for c in chips:
        pid = c + 1
        events.extend(Process(pid, f"chip {c}", c).render())
        tid = 1
        sel = np.flatnonzero((chip_of == c) & keep_op)
        part = partition_intervals(op_start[sel], op_end[sel])
        for k in range(int(part.max()) + 1 if part.size else 0):
            events.extend(Track(pid, tid + k, f"ops {k}", tid + k, "ops", c).render())
        ts, te = _us(op_start[sel]).tolist(), _us(op_end[sel]).tolist()
        for j, i in enumerate(sel.tolist()):
            o = int(op_of[i])
            slices.append(Slice(s.op_names[o], "op", pid, tid + int(part[j]), ts[j], round(te[j] - ts[j], 3),
                                {"op": o, "role": s.op_roles[o] if o < len(s.op_roles) else ""}))
            where[(o, c)] = (pid, tid + int(part[j]), ts[j], te[j])
        tid += int(part.max()) + 1 if part.size else 0
        for ci, cname in enumerate(CLASSES):
            sel = np.flatnonzero((g_chip == c) & (g_rest == ci) & keep_g)
            if not sel.size:
                continue
            part = partition_intervals(g_start[sel], g_end[sel])
            for k in range(int(part.max()) + 1):
                events.extend(Track(pid, tid + k, f"{cname} {k}", tid + k, "engine", c).render())
            ts, te = _us(g_start[sel]).tolist(), _us(g_end[sel]).tolist()
            for j, i in enumerate(sel.tolist()):
                o = int(g_opnum[i])
                slices.append(Slice(s.op_names[o], cname, pid, tid + int(part[j]), ts[j], round(te[j] - ts[j], 3),
                                    {"op": o, "tasks": int(ntask[i]), "busy_us": round(float(busy[i]) * 1e6, 3),
                                     "servers": int(servers[i]), "bytes": _num(nbytes[i]), "flops": _num(flops[i])}))
            tid += int(part.max()) + 1
    slices.sort(key=lambda e: (e.ts_us, -e.dur_us))
    events.extend(e.render() for e in slices)
    events.extend(op_flows(result, chip, where))
    from ..version import __version__

    other = {"generator": f"accelsim {__version__}", "system": system_name, "detail": "compact",
             "makespan_us": float(_us(np.array([result.makespan_s]))[0]), "num_tasks": s.num_tasks,
             "num_ops": len(s.op_names), "truncated": bool(not (keep_op.all() and keep_g.all())),
             "note": "one slice per (op, engine class); --trace-detail full writes one per task",
             "utilization": {k: round(v, 6) for k, v in result.utilization().items()}}
    if window_s is not None:
        other["window_us"] = [round(lo * 1e6, 3), round(hi * 1e6, 3)]
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": other}


DETAILS = ("compact", "full")


def write_trace(result: SimResult, path: str | Path, detail: str = "compact", **kw: Any) -> Path:
    """Write the trace as JSON (gzipped when ``path`` ends in .gz): ``detail="compact"`` (the
    default) one slice per op and engine class (:mod:`.trace_compact`), ``"full"`` one per task
    (:func:`chrome_trace`); both with dependency arrows between ops."""
    if detail not in DETAILS:
        raise ValueError(f"unknown trace detail {detail!r}; use one of {', '.join(DETAILS)}")
    path = Path(path)
    if detail == "compact":
        kw.pop("max_tasks", None)
        trace = compact_trace(result, **kw)
    else:
        trace = chrome_trace(result, **kw)
    text = json.dumps(trace, separators=(",", ":"))
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path
