"""SimResult: what the event engine produced for a Schedule (arrays of length T)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lower.schedule import Schedule

BLOCK_NONE, BLOCK_DEP, BLOCK_RESOURCE, BLOCK_SLOT = range(4)
BLOCK_NAMES = ("none", "dependency", "resource", "sram_slot")


def group_min_max(group: np.ndarray, n: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min of ``lo``, max of ``hi``) over the items of each group ``0..n-1`` (+inf / -inf for
    an empty group). ``group`` is each item's group; a run of items already in group order (a
    schedule's tasks by op) is reduced without sorting."""
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    if group.size == 0:
        return first, last
    if np.any(group[1:] < group[:-1]):
        order = np.argsort(group, kind="stable")
        group, lo, hi = group[order], lo[order], hi[order]
    cut = np.flatnonzero(np.diff(group)) + 1
    heads = np.concatenate(([0], cut))
    first[group[heads]] = np.minimum.reduceat(lo, heads)
    last[group[heads]] = np.maximum.reduceat(hi, heads)
    return first, last


@dataclass(frozen=True, eq=False)
class SimResult:
    """Per-task timing. ``blocker[t]`` is the task whose completion let ``t`` start (its last
    dependency, the previous user of its resource, or the releaser of an SRAM slot, as
    ``block_kind`` says); -1 when ``t`` started as soon as the run began."""

    schedule: Schedule
    start_s: np.ndarray
    """When the task began (for a transfer: when it took its DMA queue / port)."""
    end_s: np.ndarray
    wait_s: np.ndarray
    """Seconds from when all its dependencies had finished to its start (float32, as
    ``xfer_delay_s``: a duration, ~7 significant digits of it); ``ready_s`` the time."""
    xfer_delay_s: np.ndarray
    """Transfers: seconds from the start to the bandwidth phase (the latency part); other tasks:
    0. float32 (a duration, not a time: ~7 significant digits of it)."""
    capped_s: np.ndarray
    """Transfers: seconds spent limited by their own DMA engines (the task's cap, or the
    bandwidth of its resource, e.g. the core's DMA queues) rather than by a fair share of the
    server (HBM). float32."""
    lane: np.ndarray
    """Which server of its resource the task used (0..capacity-1), -1 without a resource."""
    blocker: np.ndarray
    block_kind: np.ndarray

    @property
    def ready_s(self) -> np.ndarray:
        """When all its dependencies had finished (materialized from ``wait_s``)."""
        return self.start_s - self.wait_s

    def ready(self, t):
        """``ready_s`` of task ``t`` (an index, or an array of them)."""
        return self.start_s[t] - self.wait_s[t]

    @property
    def xfer_start_s(self) -> np.ndarray:
        """Transfers: when the bandwidth phase began (after latency); other tasks: start
        (materialized; ``xfer_start(t)`` for one task)."""
        return self.start_s + self.xfer_delay_s

    def xfer_start(self, t):
        """``xfer_start_s`` of task ``t`` (an index, or an array of them)."""
        return self.start_s[t] + self.xfer_delay_s[t]

    @property
    def makespan_s(self) -> float:
        return float(self.end_s.max()) if self.end_s.size else 0.0

    def busy_s(self) -> np.ndarray:
        """Busy seconds of each resource summed over its servers (per resource index)."""
        s = self.schedule
        # tasks without a resource (-1) land in bin 0, dropped: no filtered copies of the columns
        return np.bincount(s.resource + 1, weights=self.end_s - self.start_s, minlength=len(s.res_names) + 1)[1:]

    def utilization(self) -> dict[str, float]:
        """Busy fraction of each engine class (tensor, vector, scalar, dma, link) over the run,
        averaged over the servers of that class."""
        s = self.schedule
        span = self.makespan_s
        busy = self.busy_s()
        out: dict[str, float] = {}
        for cls in dict.fromkeys(s.res_class):
            idx = [i for i, c in enumerate(s.res_class) if c == cls]
            servers = float(s.res_capacity[idx].sum())
            out[cls] = float(busy[idx].sum() / (servers * span)) if span > 0 and servers > 0 else 0.0
        return out

    def utilization_over_time(self, bins: int = 200) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(bin edges in seconds, engine class -> busy fraction per bin), the busy seconds in a
        bin divided by its width times the servers of that class.

        O(T log T + bins): the number of busy servers is a step function changing at task
        starts and ends; its running integral (exact, and piecewise linear) is evaluated at the
        bin edges."""
        s = self.schedule
        span = self.makespan_s or 1.0
        edges = np.linspace(0.0, span, bins + 1)
        width = np.diff(edges)
        classes = list(dict.fromkeys(s.res_class))
        cls_of_res = np.array([classes.index(c) for c in s.res_class], dtype=np.int64)
        has = s.resource >= 0
        task_cls = np.full(s.num_tasks, -1, dtype=np.int64)
        task_cls[has] = cls_of_res[s.resource[has]]
        out: dict[str, np.ndarray] = {}
        for k, cls in enumerate(classes):
            servers = float(s.res_capacity[cls_of_res == k].sum())
            sel = task_cls == k
            if not sel.any() or servers <= 0:
                out[cls] = np.zeros(bins)
                continue
            st, en = self.start_s[sel], self.end_s[sel]
            times = np.concatenate([st, en])
            step = np.concatenate([np.ones(st.size), -np.ones(en.size)])
            order = np.argsort(times, kind="stable")
            times, step = times[order], step[order]
            active = np.cumsum(step)  # busy servers just after each event
            cum = np.zeros(times.size)
            np.cumsum(active[:-1] * np.diff(times), out=cum[1:])  # busy seconds up to each event
            busy_to = np.interp(edges, times, cum, left=0.0, right=cum[-1])
            out[cls] = np.diff(busy_to) / (width * servers)
        return edges, out
