"""Pipeline-parallel training step as an event schedule: stages x microbatches.

Each stage runs its forward and backward passes of every microbatch in a fixed program order
(1F1B: ``p - s - 1`` warm-up forwards, then one forward / one backward, then the remaining
backwards; GPipe: all forwards, then all backwards in reverse), one pass after another on the
stage's chips. A pass is two tasks: its compute (tensor, vector and memory work, from the
analytical costs of the stage's ops) and its exposed tensor/expert-parallel communication. A
forward needs the previous stage's activations of the same microbatch (a point-to-point send on
the link between the stages); a backward needs the next stage's gradients. After its last
backward a stage reduces its gradients over data parallelism on its own links, in per-layer
buckets that overlap its last backward (all but the last bucket), then steps the optimizer and
all-gathers the ZeRO-sharded weights. The bubble is not a formula: it is the idle time the event engine leaves on each
stage, and for equal stages it comes out as (p - 1) / (m + p - 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .critical_path import Attribution, critical_path
from ..errors import WorkloadError
from ..lower.schedule import BUSY, CAT_LINK, CAT_OVERHEAD, CAT_TENSOR, Schedule, ScheduleBuilder
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
    """Data-parallel gradient reduction (all-reduce or reduce-scatter) of the stage's gradients."""
    optimizer_s: float = 0.0
    p2p_s: float = 0.0
    """Sending one microbatch's activations (or their gradients) to the next stage."""
    grad_buckets: int = 1
    """Buckets the gradient reduction runs in (one per layer): bucket ``j`` starts once the last
    backward has done ``(j + 1) / grad_buckets`` of its compute and bucket ``j - 1`` is done, so
    all but the last bucket overlap the last backward (Megatron-LM ``--overlap-grad-reduce``,
    FSDP); 1: after the last backward."""
    param_gather_s: float = 0.0
    """ZeRO's weight all-gather after the optimizer step."""
    held_fraction: float = 0.0
    """Share of the stage's compute a collective's kernels hold while they run (``training.
    interference_s``): a gradient bucket reduced beside the last backward slows it by that much."""
    zero_hidden_s: float = 0.0
    """ZeRO-3 / FSDP weight gathers and gradient reduce-scatters of one microbatch's passes, and
    collectives run beside a named op (``Collective.hidden_by``), that run beside the compute
    (not on the timeline: only their exposed part is in ``*_comm_s``)."""


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


def interleaved_order(stage: int, stages: int, microbatches: int, chunks: int) -> list[tuple[str, int, int]]:
    """The program order of one stage under interleaved 1F1B (Narayanan et al. 2021, Megatron-LM):
    each stage holds ``chunks`` model chunks (virtual stages ``c * stages + stage``);
    microbatches go in groups of ``stages``, a group through chunk 0, then chunk 1, ...;
    backwards take the chunks in reverse. ``(stages - stage - 1) * 2 + (chunks - 1) * stages``
    warm-up forwards, then one forward / one backward, then the remaining backwards. A list of
    ("F" | "B", chunk, microbatch)."""
    p, m, v = stages, microbatches, chunks

    def unit(k: int, backward: bool) -> tuple[int, int]:
        group, r = divmod(k, p * v)
        c, j = divmod(r, p)
        return (v - 1 - c if backward else c), group * p + j

    total = m * v
    warm = min((p - stage - 1) * 2 + (v - 1) * p, total)
    order = [("F", *unit(k, False)) for k in range(warm)]
    f, b = warm, 0
    while f < total:
        order.append(("F", *unit(f, False)))
        f += 1
        order.append(("B", *unit(b, True)))
        b += 1
    order += [("B", *unit(k, True)) for k in range(b, total)]
    return order


def program_orders(p: int, m: int, v: int, schedule: str) -> list[list[tuple[str, int, int]]]:
    """Each stage's program order as ("F" | "B", chunk, microbatch): 1F1B or GPipe, or with
    ``v`` > 1 chunks the interleaved 1F1B schedule (checked: it runs 1F1B on whole groups of
    ``p`` microbatches)."""
    if v > 1:
        if schedule != "1f1b":
            raise WorkloadError("an interleaved pipeline (vpp > 1) runs the 1f1b schedule")
        if m % p:
            raise WorkloadError(f"an interleaved pipeline needs the microbatches ({m}) to be a multiple of "
                                f"pp ({p}), as Megatron-LM requires")
        return [interleaved_order(s, p, m, v) for s in range(p)]
    return [[(kind, 0, i) for kind, i in stage_order(s, p, m, schedule)] for s in range(p)]


def walk(orders: list[list[tuple[str, int, int]]], sent_f: dict, sent_b: dict
         ) -> Iterator[tuple[int, str, int, int, int, bool]]:
    """Every pass as (stage, "F" | "B", chunk, microbatch, virtual stage, last of its stage), in
    a global order that respects the dependencies: repeatedly the next pass of each stage whose
    inputs exist. Virtual stage ``k = chunk * p + stage``: a forward of ``k`` needs ``(k - 1,
    microbatch)`` in ``sent_f``, a backward ``(k + 1, microbatch)`` in ``sent_b``; the caller
    records its sends there before taking the next pass."""
    p = len(orders)
    top = p * max((c for o in orders for _, c, _ in o), default=0) + p - 1
    cursor = [0] * p
    while any(cursor[s] < len(orders[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            if cursor[s] >= len(orders[s]):
                continue
            kind, c, i = orders[s][cursor[s]]
            k = c * p + s
            if (kind == "F" and k > 0 and (k - 1, i) not in sent_f) or \
                    (kind == "B" and k < top and (k + 1, i) not in sent_b):
                continue
            cursor[s] += 1
            progressed = True
            yield s, kind, c, i, k, cursor[s] == len(orders[s])
        if not progressed:
            raise WorkloadError("pipeline schedule has a cycle (this is a bug)")


def simulate_pipeline(stages: list[StageTimes], microbatches: int, schedule: str = "1f1b",
                      chunks: int = 1) -> PipelineRun:
    """Build and run the event schedule of one training step (``chunks`` > 1: interleaved 1F1B
    with that many model chunks per stage; each chunk's passes take 1 / chunks of the stage's)."""
    p, m, v = len(stages), microbatches, chunks if len(stages) > 1 else 1
    if p < 1 or m < 1:
        raise WorkloadError(f"a pipeline needs at least one stage and one microbatch (got {p}, {m})")
    from ..limits import PIPELINE_TASK_BYTES, check_tasks

    # each pass is two tasks and a send (the last backward a task per gradient bucket), refused
    # before anything is built when it would not fit
    check_tasks(6 * p * m * v, PIPELINE_TASK_BYTES,
                f"the pipeline schedule of {m:,} microbatches over {p} stage{'s' if p > 1 else ''}",
                "fewer microbatches (a larger --microbatch or a smaller global batch)")
    orders = program_orders(p, m, v, schedule)
    b = ScheduleBuilder()
    compute = [b.resource(f"stage{s}.compute", "tensor", chip=s) for s in range(p)]
    send_fwd = [b.resource(f"stage{s}.send_next", "link", chip=s) for s in range(p)]
    send_bwd = [b.resource(f"stage{s}.send_prev", "link", chip=s) for s in range(p)]
    dp_link = [b.resource(f"stage{s}.dp", "link", chip=s) for s in range(p)]
    ops = {(s, kind): b.op(f"stage{s}.{kind}", kind, "pipeline")
           for s in range(p) for kind in ("fwd", "bwd", "p2p", "grad_sync", "optimizer")}
    # virtual stage k = chunk * p + stage: a forward of k needs k - 1's activations of the same
    # microbatch (chunk c > 0 on stage 0 follows chunk c - 1 on the last stage), a backward k + 1's
    # gradients; each send runs on the sending stage's link
    done_f: dict[tuple[int, int], int] = {}
    sent_f: dict[tuple[int, int], int] = {}
    sent_b: dict[tuple[int, int], int] = {}
    top = p * v - 1
    last, priority = [-1] * p, 0
    pieces: list[list[int]] = [[] for _ in range(p)]
    for s, kind, c, i, k, final in walk(orders, sent_f, sent_b):
        st = stages[s]
        if kind == "F":
            deps = [last[s]] + ([sent_f[(k - 1, i)]] if k > 0 else [])
            t = b.task(BUSY, CAT_TENSOR, ops[(s, "fwd")], deps, resource=compute[s],
                       duration_s=st.fwd_compute_s / v, priority=priority)
            t = b.task(BUSY, CAT_LINK, ops[(s, "fwd")], [t], resource=compute[s],
                       duration_s=st.fwd_comm_s / v, priority=priority)
            done_f[(k, i)] = t
            if k < top:
                sent_f[(k, i)] = b.task(BUSY, CAT_LINK, ops[(s, "p2p")], [t], resource=send_fwd[s],
                                        duration_s=st.p2p_s, priority=priority)
        else:
            deps = [last[s], done_f[(k, i)]] + ([sent_b[(k + 1, i)]] if k < top else [])
            nb = max(1, st.grad_buckets) if final and st.grad_sync_s > 0 else 1
            for _ in range(nb):  # the last backward in gradient buckets' worth of compute
                t = b.task(BUSY, CAT_TENSOR, ops[(s, "bwd")], deps, resource=compute[s],
                           duration_s=st.bwd_compute_s / v / nb, priority=priority)
                deps = [t]
                if nb > 1:
                    pieces[s].append(t)
            t = b.task(BUSY, CAT_LINK, ops[(s, "bwd")], [t], resource=compute[s],
                       duration_s=st.bwd_comm_s / v, priority=priority)
            if k > 0:  # stages[-1]: chunk c > 0 on stage 0 sends back to the last stage
                sent_b[(k, i)] = b.task(BUSY, CAT_LINK, ops[(s, "p2p")], [t], resource=send_bwd[s],
                                        duration_s=stages[s - 1].p2p_s, priority=priority)
        last[s] = t
        priority += 1
    return _finish(b, stages, m, v, last, ops, compute, dp_link, priority, pieces)


def _finish(b: ScheduleBuilder, stages: list[StageTimes], m: int, v: int, last: list[int], ops: dict,
            compute: list[int], dp_link: list[int], priority: int, pieces: list[list[int]]) -> PipelineRun:
    """Each stage's data-parallel gradient reduction in buckets behind the pieces of its last
    backward (``pieces[s]``; none: one bucket after it), then the optimizer, then the ZeRO
    weight all-gather; run the schedule and measure the bubble (``v`` model chunks per stage:
    each microbatch crosses ``v`` times as many stage boundaries)."""
    p = len(stages)
    pipe_end = list(last)
    for s in range(p):
        st = stages[s]
        g = -1
        for piece in pieces[s] or [last[s]]:
            bucket = st.grad_sync_s / max(1, len(pieces[s]))
            if st.held_fraction and pieces[s]:  # the cores the bucket's kernels hold, off the backward left
                b.task(BUSY, CAT_OVERHEAD, ops[(s, "grad_sync")], [piece, g], resource=compute[s],
                       duration_s=bucket * st.held_fraction, priority=-1)  # held at once, before later compute
            g = b.task(BUSY, CAT_LINK, ops[(s, "grad_sync")], [piece, g], resource=dp_link[s], duration_s=bucket,
                       priority=priority)
        o = b.task(BUSY, CAT_TENSOR, ops[(s, "optimizer")], [g, last[s]], resource=compute[s],
                   duration_s=st.optimizer_s, priority=priority)
        if st.param_gather_s > 0:
            b.task(BUSY, CAT_LINK, ops[(s, "grad_sync")], [o], resource=dp_link[s], duration_s=st.param_gather_s,
                   priority=priority)
    sched = b.build()
    res = simulate_schedule(sched)
    pipe_time = float(max(res.end_s[t] for t in pipe_end))
    busy = sum(m * (st.fwd_compute_s + st.fwd_comm_s + st.bwd_compute_s + st.bwd_comm_s)  # + held beside the backward
               + st.held_fraction * st.grad_sync_s * max(0, len(pieces[s]) - 1) / max(1, len(pieces[s]))
               for s, st in enumerate(stages))
    bubble = 1.0 - busy / (p * pipe_time) if pipe_time > 0 else 0.0
    comm = max(m * (st.fwd_comm_s + st.bwd_comm_s + st.zero_hidden_s) + 2 * m * v * st.p2p_s + st.grad_sync_s
               + st.param_gather_s for st in stages)
    return PipelineRun(schedule=sched, result=res, attribution=critical_path(res), step_time_s=res.makespan_s,
                       pipeline_time_s=pipe_time, bubble_fraction=float(np.clip(bubble, 0.0, 1.0)),
                       comm_total_s=comm)
