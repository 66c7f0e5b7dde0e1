"""Critical-path bottleneck attribution for an event-tier run.

The engine records, for every task, the task whose completion let it start (``blocker``): its
last dependency, the previous user of its engine or DMA queue, or the task that freed the SRAM
slot it waited for. Following blockers back from the last task to finish gives a chain of tasks
that covers the whole run without gaps: the critical path. Each segment of it is attributed by
these rules, first match wins:

1. ``sram``: the segment of a task that the next task on the path waited on *for an SRAM
   buffer slot*, from the moment that next task was ready: time lost because SRAM capacity
   bounds how far DMA can run ahead.
2. ``interconnect``: a transfer on a link.
3. ``dma``: a transfer's issue / latency phase, and the data phase of a transfer that moved at
   its own DMA engine's cap most of the time (too few or too slow DMA engines).
4. ``hbm``: the data phase of a transfer that moved at a fair share of HBM (or shared-SRAM)
   bandwidth: memory bandwidth; and a memory-bound op run as one busy task (the training
   event tier).
5. ``compute``: a tensor-engine pass.
6. ``vector``: vector or scalar engine work.
7. ``overhead``: launch delays and other fixed costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lower.schedule import (CAT_DMA_IN, CAT_DMA_OUT, CAT_LINK, CAT_SCALAR, CAT_TENSOR, CAT_VECTOR, DELAY, XFER)
from .result import BLOCK_SLOT, SimResult

CATEGORIES = ("compute", "hbm", "dma", "vector", "sram", "interconnect", "overhead")


@dataclass
class Attribution:
    """Critical-path seconds per category, for the run and per op role."""

    total_s: dict[str, float]
    by_role: dict[str, dict[str, float]]
    path: np.ndarray
    """Task ids on the critical path, from first to last."""

    def sentence(self) -> str:
        span = sum(self.total_s.values())
        if span <= 0:
            return "empty run"
        top = max(self.total_s, key=self.total_s.get)
        roles = sorted(((v.get(top, 0.0), r) for r, v in self.by_role.items()), reverse=True)
        names = [r for v, r in roles[:2] if v > 0]
        where = f", mostly in {'/'.join(names)}" if names else ""
        return f"{100 * self.total_s[top] / span:.0f}% {top}-bound on the critical path{where}"


def _segments(res: SimResult, t: int, slot_wait_from: float) -> list[tuple[str, float]]:
    """(category, seconds) pieces of task ``t``'s time on the path, before rule 1."""
    s = res.schedule
    st, en = float(res.start_s[t]), float(res.end_s[t])
    kind, cat = s.kind[t], s.category[t]
    if cat == CAT_LINK:
        return [("interconnect", en - st)]
    if kind == XFER:
        xs = float(res.xfer_start(t))
        data = en - xs
        data_cat = "dma" if res.capped_s[t] >= 0.5 * data else "hbm"
        return [("dma", xs - st), (data_cat, data)]
    if kind == DELAY:
        return [("overhead", en - st)]
    if cat == CAT_TENSOR:
        return [("compute", en - st)]
    if cat in (CAT_VECTOR, CAT_SCALAR):
        return [("vector", en - st)]
    if cat in (CAT_DMA_IN, CAT_DMA_OUT):  # a memory-bound op as one busy task (training event tier)
        return [("hbm", en - st)]
    return [("overhead", en - st)]


def critical_path(res: SimResult) -> Attribution:
    """Walk the blocker chain from the last task and attribute its time (rules above)."""
    s = res.schedule
    total = {c: 0.0 for c in CATEGORIES}
    by_role: dict[str, dict[str, float]] = {}
    if s.num_tasks == 0:
        return Attribution(total, by_role, np.zeros(0, dtype=np.int64))
    t = int(np.argmax(res.end_s))
    path = []
    next_slot_ready = None  # ready time of the task after t on the path, if it waited for a slot
    while t >= 0:
        path.append(t)
        st, en = float(res.start_s[t]), float(res.end_s[t])
        pieces = _segments(res, t, 0.0)
        if next_slot_ready is not None and next_slot_ready < en:
            # rule 1: the part after the waiting task became ready is an SRAM-capacity stall
            stall = en - max(st, next_slot_ready)
            pieces = _trim_end(pieces, stall) + [("sram", stall)]
        role = s.op_roles[s.op[t]] if s.op[t] >= 0 else "-"
        bucket = by_role.setdefault(role, {})
        for cat, sec in pieces:
            if sec > 0:
                total[cat] += sec
                bucket[cat] = bucket.get(cat, 0.0) + sec
        next_slot_ready = float(res.ready(t)) if res.block_kind[t] == BLOCK_SLOT else None
        t = int(res.blocker[t])
    return Attribution(total, by_role, np.array(path[::-1], dtype=np.int64))


def _trim_end(pieces: list[tuple[str, float]], cut: float) -> list[tuple[str, float]]:
    """Remove ``cut`` seconds from the end of a task's pieces."""
    out = list(pieces)
    while cut > 0 and out:
        cat, sec = out.pop()
        if sec > cut:
            out.append((cat, sec - cut))
            cut = 0.0
        else:
            cut -= sec
    return out
