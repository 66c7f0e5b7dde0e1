"""Where the cycles went: a measured step's wall time split by an ordered list of rules.

The window is the traced step (ProfilerStep annotations, else first to last device work). Every
instant of it lands in exactly one category, so the categories add up to the wall time:

1. ``exposed_communication``: a collective runs and no other device work does;
2. device time of non-collective work (the union of their intervals) is shared among the rows
   in proportion to their durations; a row with a prediction (an accelsim op costed on the
   given system) splits its share into the part its predicted time explains and the rest:
   ``compute_at_achievable`` / ``compute_below_achievable`` for ops the model calls
   compute-bound, ``memory_at_achievable`` / ``memory_below_achievable`` for the others
   (memory, vector or overhead bound);
3. ``other_work``: rows without a prediction (unmatched work, copies, no system given);
4. ``synchronization``: the device is idle while the host sits in a synchronize / wait call;
5. ``launch_host_bound``: the device is idle otherwise (the host is launching, or running
   Python; in a CPU-only profile, the host's view and bookkeeping ops).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

RULES = (
    ("exposed_communication", "a collective runs and no other device work does"),
    ("compute_at_achievable", "compute-bound work, the part its predicted (achievable) time explains"),
    ("compute_below_achievable", "compute-bound work, the time beyond its prediction"),
    ("memory_at_achievable", "memory-bound work, the part its predicted (achievable) time explains"),
    ("memory_below_achievable", "memory-bound work, the time beyond its prediction"),
    ("other_work", "device work without a prediction (unmatched, copies, or no system given)"),
    ("synchronization", "device idle while the host waits in a synchronize call"),
    ("launch_host_bound", "device idle otherwise: launches, Python, host-side bookkeeping"),
)
"""Ordered attribution rules (category, what it means)."""
SYNC = re.compile(r"Synchronize|StreamWaitEvent|cudaEventQuery|hipDeviceSynchronize|hipStreamSynchronize|wait", re.I)


def _union(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Disjoint, sorted intervals covering the given ones (an (n, 2) array)."""
    if starts.size == 0:
        return np.zeros((0, 2))
    o = np.argsort(starts, kind="stable")
    s, e = starts[o], ends[o]
    out = []
    cs, ce = s[0], e[0]
    for a, b in zip(s[1:], e[1:]):
        if a <= ce:
            ce = max(ce, b)
        else:
            out.append((cs, ce))
            cs, ce = a, b
    out.append((cs, ce))
    return np.array(out)


def _length(iv: np.ndarray) -> float:
    return float((iv[:, 1] - iv[:, 0]).sum()) if len(iv) else 0.0


def _clip(iv: np.ndarray, t0: float, t1: float) -> np.ndarray:
    if not len(iv):
        return iv
    iv = np.clip(iv, t0, t1)
    return iv[iv[:, 1] > iv[:, 0]]


def _minus(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the parts of intervals ``a`` not covered by ``b`` (both disjoint, sorted)."""
    total = _length(a)
    inter = 0.0
    j = 0
    for s, e in a:
        while j < len(b) and b[j, 1] <= s:
            j += 1
        k = j
        while k < len(b) and b[k, 0] < e:
            inter += min(e, b[k, 1]) - max(s, b[k, 0])
            k += 1
    return total - inter


def _gaps(busy: np.ndarray, t0: float, t1: float) -> np.ndarray:
    edges = [t0] + [x for iv in busy for x in iv] + [t1]
    g = np.array(edges).reshape(-1, 2)
    return g[g[:, 1] > g[:, 0] + 1e-15]


def cycles_lost(work: pd.DataFrame, host: pd.DataFrame, window: tuple[float, float] | None = None,
                predicted_s: pd.Series | None = None, bound: pd.Series | None = None) -> dict[str, float]:
    """Seconds of the step window per category of ``RULES``. ``work``: matched work (``kind``,
    ``start_s``, ``end_s``, ``dur_s``); ``host``: the trace's host events; ``predicted_s`` /
    ``bound``: per work row (aligned with ``work``'s index), None where not predicted."""
    t0, t1 = window or (float(work["start_s"].min()), float(work["end_s"].max()))
    out = dict.fromkeys(k for k, _ in RULES)
    for k in out:
        out[k] = 0.0
    coll = work["kind"] == "collective"
    comp = work[~coll]
    u_comp = _clip(_union(comp["start_s"].to_numpy(), comp["end_s"].to_numpy()), t0, t1)
    u_coll = _clip(_union(work.loc[coll, "start_s"].to_numpy(), work.loc[coll, "end_s"].to_numpy()), t0, t1)
    out["exposed_communication"] = _minus(u_coll, u_comp)
    busy_comp = _length(u_comp)
    dur = comp["dur_s"].to_numpy()
    if busy_comp > 0 and dur.sum() > 0:
        share = dur * (busy_comp / dur.sum())
        pred = (predicted_s.reindex(comp.index).to_numpy(dtype=float) if predicted_s is not None
                else np.full(len(comp), np.nan))
        bd = bound.reindex(comp.index).to_numpy(dtype=object) if bound is not None else np.full(len(comp), None)
        for sh, d, p, b in zip(share, dur, pred, bd):
            if not np.isfinite(p) or d <= 0:
                out["other_work"] += sh
                continue
            at = sh * min(1.0, p / d)
            cls = "compute" if b == "compute" else "memory"
            out[f"{cls}_at_achievable"] += at
            out[f"{cls}_below_achievable"] += sh - at
    busy = _union(np.concatenate([u_comp[:, 0], u_coll[:, 0]]) if len(u_comp) or len(u_coll) else np.zeros(0),
                  np.concatenate([u_comp[:, 1], u_coll[:, 1]]) if len(u_comp) or len(u_coll) else np.zeros(0))
    idle = _gaps(busy, t0, t1)
    sync = host[host["name"].str.contains(SYNC)] if len(host) else host
    u_sync = _clip(_union(sync["start_s"].to_numpy(), sync["end_s"].to_numpy()), t0, t1) if len(sync) else np.zeros((0, 2))
    idle_total = _length(idle)
    not_sync = _minus(idle, u_sync)
    out["synchronization"] = idle_total - not_sync
    out["launch_host_bound"] = not_sync
    return out
