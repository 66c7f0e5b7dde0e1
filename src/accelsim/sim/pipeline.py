"""Pipeline-parallel training step as an event schedule: stages x microbatches.

Each stage runs its forward and backward passes of every microbatch in a fixed program order
(1F1B: ``p - s - 1`` warm-up forwards, then one forward / one backward, then the remaining
backwards; GPipe: all forwards, then all backwards in reverse), one pass after another on the
stage's chips. A pass is two tasks: its compute (tensor, vector and memory work, from the
analytical costs of the stage's ops) and its exposed tensor/expert-parallel communication. A
forward needs the previous stage's activations of the same microbatch (a point-to-point send on
the link between the stages); a backward needs the next stage's gradients. After its last
backward a stage synchronises gradients over data parallelism on its own links, then steps the
optimizer. The bubble is not a formula: it is the idle time the event engine leaves on each
stage, and for equal stages it comes out as (p - 1) / (m + p - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .critical_path import Attribution, critical_path
from ..errors import WorkloadError
from ..lower.schedule import BUSY, CAT_LINK, CAT_TENSOR, Schedule, ScheduleBuilder
from .engine import simulate_schedule
from .result import SimResult


@dataclass(frozen=True)
class StageTimes:
    """Seconds of one microbatch's passes on one stage, and its per-step work."""

    fwd_compute_s: float
    fwd_comm_s: float
    bwd_compute_s: float
    bwd_comm_s: float
    grad_sync_s: float = 0.0
    """Data-parallel gradient synchronisation after the stage's last backward."""
    optimizer_s: float = 0.0
    p2p_s: float = 0.0
    """Sending one microbatch's activations (or their gradients) to the next stage."""


@dataclass
class PipelineRun:
    schedule: Schedule
    result: SimResult
    attribution: Attribution
    step_time_s: float
    pipeline_time_s: float
    """End of the last backward (before gradient sync and optimizer)."""
    bubble_fraction: float
    """Idle share of the stages' time until the last backward: 1 - busy / (p * pipeline time)."""
    comm_total_s: float
    """Communication time summed over the stage that communicates most (what could be hidden)."""

    @property
    def comm_exposed_s(self) -> float:
        return self.attribution.total_s["interconnect"]


def stage_order(stage: int, stages: int, microbatches: int, schedule: str) -> list[tuple[str, int]]:
    """The program order of one stage: a list of ("F" | "B", microbatch)."""
    m, p = microbatches, stages
    if schedule == "gpipe":
        return [("F", i) for i in range(m)] + [("B", i) for i in reversed(range(m))]
    if schedule != "1f1b":
        raise WorkloadError(f"unknown pipeline schedule {schedule!r}; use 1f1b or gpipe")
    warm = min(p - stage - 1, m)
    order = [("F", i) for i in range(warm)]
    f, b = warm, 0
    while f < m:
        order.append(("F", f))
        f += 1
        order.append(("B", b))
        b += 1
    order += [("B", i) for i in range(b, m)]
    return order


def simulate_pipeline(stages: list[StageTimes], microbatches: int, schedule: str = "1f1b") -> PipelineRun:
    """Build and run the event schedule of one training step."""
    p, m = len(stages), microbatches
    if p < 1 or m < 1:
        raise WorkloadError(f"a pipeline needs at least one stage and one microbatch (got {p}, {m})")
    b = ScheduleBuilder()
    compute = [b.resource(f"stage{s}.compute", "tensor", chip=s) for s in range(p)]
    send_fwd = [b.resource(f"stage{s}.send_next", "link", chip=s) for s in range(p)]
    send_bwd = [b.resource(f"stage{s}.send_prev", "link", chip=s) for s in range(p)]
    dp_link = [b.resource(f"stage{s}.dp", "link", chip=s) for s in range(p)]
    ops = {(s, kind): b.op(f"stage{s}.{kind}", kind, "pipeline")
           for s in range(p) for kind in ("fwd", "bwd", "p2p", "grad_sync", "optimizer")}
    done_f: dict[tuple[int, int], int] = {}
    done_b: dict[tuple[int, int], int] = {}
    sent_f: dict[tuple[int, int], int] = {}
    sent_b: dict[tuple[int, int], int] = {}
    orders = [stage_order(s, p, m, schedule) for s in range(p)]
    # emit in a global order that respects every dependency: repeatedly take, on each stage,
    # the next pass whose inputs exist
    cursor = [0] * p
    last = [-1] * p
    priority = 0
    while any(cursor[s] < len(orders[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            if cursor[s] >= len(orders[s]):
                continue
            kind, i = orders[s][cursor[s]]
            st = stages[s]
            if kind == "F":
                if s > 0 and (s - 1, i) not in sent_f:
                    continue
                deps = [last[s]] + ([sent_f[(s - 1, i)]] if s > 0 else [])
                c = b.task(BUSY, CAT_TENSOR, ops[(s, "fwd")], deps, resource=compute[s],
                           duration_s=st.fwd_compute_s, priority=priority)
                t = b.task(BUSY, CAT_LINK, ops[(s, "fwd")], [c], resource=compute[s],
                           duration_s=st.fwd_comm_s, priority=priority)
                done_f[(s, i)] = t
                if s < p - 1:
                    sent_f[(s, i)] = b.task(BUSY, CAT_LINK, ops[(s, "p2p")], [t], resource=send_fwd[s],
                                            duration_s=st.p2p_s, priority=priority)
            else:
                if s < p - 1 and (s + 1, i) not in sent_b:
                    continue
                deps = [last[s], done_f[(s, i)]] + ([sent_b[(s + 1, i)]] if s < p - 1 else [])
                c = b.task(BUSY, CAT_TENSOR, ops[(s, "bwd")], deps, resource=compute[s],
                           duration_s=st.bwd_compute_s, priority=priority)
                t = b.task(BUSY, CAT_LINK, ops[(s, "bwd")], [c], resource=compute[s],
                           duration_s=st.bwd_comm_s, priority=priority)
                done_b[(s, i)] = t
                if s > 0:
                    sent_b[(s, i)] = b.task(BUSY, CAT_LINK, ops[(s, "p2p")], [t], resource=send_bwd[s],
                                            duration_s=stages[s - 1].p2p_s, priority=priority)
            last[s] = t
            cursor[s] += 1
            priority += 1
            progressed = True
        if not progressed:
            raise WorkloadError("pipeline schedule has a cycle (this is a bug)")
    pipe_end = list(last)
    for s in range(p):
        g = b.task(BUSY, CAT_LINK, ops[(s, "grad_sync")], [last[s]], resource=dp_link[s],
                   duration_s=stages[s].grad_sync_s, priority=priority)
        b.task(BUSY, CAT_TENSOR, ops[(s, "optimizer")], [g], resource=compute[s],
               duration_s=stages[s].optimizer_s, priority=priority)
    sched = b.build()
    res = simulate_schedule(sched)
    pipe_time = float(max(res.end_s[t] for t in pipe_end))
    busy = sum(m * (st.fwd_compute_s + st.fwd_comm_s + st.bwd_compute_s + st.bwd_comm_s) for st in stages)
    bubble = 1.0 - busy / (p * pipe_time) if pipe_time > 0 else 0.0
    comm = max(m * (st.fwd_comm_s + st.bwd_comm_s) + 2 * m * st.p2p_s + st.grad_sync_s for st in stages)
    return PipelineRun(schedule=sched, result=res, attribution=critical_path(res), step_time_s=res.makespan_s,
                       pipeline_time_s=pipe_time, bubble_fraction=float(np.clip(bubble, 0.0, 1.0)),
                       comm_total_s=comm)
