"""Event tier of a training step at op granularity, every parallel group on the shared links.

One task per op per microbatch per tensor-parallel group: each stage's tensor-parallel groups
(one per data-parallel replica) run the stage's forward and backward ops in the pipeline
schedule's program order (``pipeline.stage_order`` / ``interleaved_order``) on a compute
resource of their own, each op taking its analytical time. Communication goes through the
system's physical links (``lower.fabric``): tensor-parallel collectives on the group's chips,
pipeline sends from every rank of a stage to the same rank of the next, and data-parallel
collectives over each rank's replicas, all on the same links, so traffic of one kind slows
another where they cross one NIC or NVLink port.

Tensor-parallel collectives are exposed (the next op waits for them), unless they run beside a
GEMM (TP communication overlap, ``Collective.hidden_by``): then they are issued with that GEMM and
the op after it waits for both, their kernels holding cores on the compute track. ZeRO-3 / FSDP weight
gathers are prefetched (a layer's gather is issued once the previous layer has started, one
after another on the links) and its gradient reduce-scatters run behind the compute. Gradient
reduction is
bucketed by layer and overlapped with the last microbatch's backward, as Megatron-LM's
``--overlap-grad-reduce`` and FSDP do: a layer's bucket starts when the last backward has
finished that layer (and the bucket before it), so only the tail is exposed. The optimizer
runs after the last bucket, then the ZeRO weight all-gather. The ranks of a tensor-parallel
group compute in lockstep (SPMD), so the group has one compute track.

Plans with context or expert parallelism run in the analytical tier only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.spec import SystemSpec
from ..arch.topology import Placement, place
from ..errors import WorkloadError
from ..gcpause import gc_paused
from ..lower.fabric import Fabric
from ..lower.schedule import (BUSY, CAT_DMA_IN, CAT_OVERHEAD, CAT_TENSOR, CAT_VECTOR, ScheduleBuilder)
from ..workload.ops import Collective
from ..workload.train import TrainStep
from .critical_path import critical_path
from .event import EventRun
from .engine import simulate_schedule
from .pipeline import program_orders, walk
from .training import _Coster, interference_s, system_for

BOUND_CATEGORY = {"compute": CAT_TENSOR, "vector": CAT_VECTOR, "memory": CAT_DMA_IN, "overhead": CAT_OVERHEAD}


@dataclass
class TrainEventRun(EventRun):
    """An event-tier run of a training step (``EventRun``'s schedule, result and attribution)."""

    system: SystemSpec | None = None
    step: TrainStep | None = None
    placement: Placement | None = None
    pipeline_time_s: float = 0.0
    """End of the last backward op of any stage."""


def _chunks(ops: list, v: int, backward: bool) -> list[list]:
    """Split a stage's ops into ``v`` model chunks by layer (contiguous layer ranges; ops
    without a layer go with their neighbours: embedding first, head last)."""
    if v == 1:
        return [ops]
    layers = sorted({o.layer for o in ops if o.layer is not None and o.layer >= 0})
    per = max(1, -(-len(layers) // v))
    of = {L: min(v - 1, i // per) for i, L in enumerate(layers)}
    out: list[list] = [[] for _ in range(v)]
    cur = v - 1 if backward else 0
    for o in ops:
        if o.layer is not None and o.layer in of:
            cur = of[o.layer]
        out[cur].append(o)
    return out


@gc_paused
def simulate_train_event(system: SystemSpec, step: TrainStep, library=None, private_links: bool = False
                         ) -> TrainEventRun:
    """Lower and run one training step op by op (``private_links``: every group on links of
    its own, for comparison)."""
    plan = step.plan
    if plan.cp > 1 or plan.ep > 1:
        raise WorkloadError("the event tier runs tp / pp / dp training plans; context or expert parallelism "
                            "(cp, ep > 1) runs in the analytical tier (fidelity='analytical')")
    system = system_for(system, plan.chips)
    placement = place(system, tp=plan.tp_chips, pp=plan.pp, dp=plan.dp)
    coster = _Coster(system, placement, plan, library)
    b = ScheduleBuilder()
    fab = Fabric(b, system, library, private=private_links)
    p, m, v, nd = plan.pp, step.microbatches, (plan.vpp if plan.pp > 1 else 1), plan.dp
    units = [[placement.group_of("tp", placement.chip(pp=s, dp=d)) for d in range(nd)] for s in range(p)]
    dp_groups = [[placement.group_of("dp", c) for c in units[s][0]] for s in range(p)]
    compute = [[b.resource(f"stage{s}.dp{d}.compute", "tensor", chip=units[s][d][0]) for d in range(nd)]
               for s in range(p)]

    def items(ops, s):
        beside_of = {o.hidden_by for o in ops if isinstance(o, Collective) and o.hidden_by}
        out = []
        for o in ops:
            c = coster.cost(o, s)
            if isinstance(o, Collective):
                axis = o.role.split(".")[0] if "." in o.role else "tp"
                if axis not in ("tp", "dp"):
                    raise WorkloadError(f"op {o.name}: {axis} collectives run in the analytical tier only")
                held = axis == "dp" or o.hidden_by  # beside compute: its kernels hold cores (``interference_s``)
                out.append((o, True, axis, interference_s(c.time_s, system, library) if held else 0.0, 0, False))
            else:  # the last field: a collective runs beside it
                out.append((o, False, "", c.time_s, BOUND_CATEGORY.get(c.bound, CAT_OVERHEAD), o.name in beside_of))
        return out

    fwd = [[items(c, s) for c in _chunks(step.fwd[s].ops(), v, False)] for s in range(p)]
    bwd = [[items(c, s) for c in _chunks(step.bwd[s].ops(), v, True)] for s in range(p)]
    orders = program_orders(p, m, v, plan.schedule)

    prio = [0]

    def run_pass(s: int, tag: str, its, deps: list[list[int]], layer_end: dict | None) -> list[list[int]]:
        """Emit one pass of stage ``s`` for every replica after ``deps[d]``; each replica's ends."""
        prev = [list(x) for x in deps]
        chain = {"allgather": [], "reducescatter": []}  # ends of the last gather / reduce-scatter
        ahead = [t for x in deps for t in x]  # when the previous weight gather was issued
        tail: list[int] = []    # gradient reduce-scatters nobody waits for inside the pass
        started: dict[str, list[list[int]]] = {}  # what a GEMM with a collective beside it waited for
        beside: dict[str, list[list[int]]] = {}  # ends of collectives run beside a compute op yet to come
        for o, is_coll, axis, dur, cat, paired in its:
            prio[0] += 1
            if not is_coll:
                if paired:
                    started[o.name] = [list(x) for x in prev]
                extra = beside.pop(o.name, None)
                for d in range(nd):
                    op = b.op(f"s{s}.d{d}.{tag}.{o.name}", o.role, o.kind)
                    prev[d] = [b.task(BUSY, cat, op, prev[d], resource=compute[s][d], duration_s=dur,
                                      priority=prio[0])] + (extra[d] if extra else [])
                    if layer_end is not None and o.layer is not None:
                        layer_end[(d, o.layer)] = prev[d][0]
            elif axis == "tp":
                # beside a GEMM (``Collective.hidden_by``, TP overlap): issued with it, waited for after it
                after = o.hidden_by in started
                ends = []
                for d in range(nd):
                    op = b.op(f"s{s}.d{d}.{tag}.{o.name}", o.role, "collective")
                    g = units[s][d] if len(units[s][d]) == o.group else units[s][d][:o.group]
                    issue = started[o.hidden_by][d] if after else prev[d]
                    ends.append(fab.collective(op, o.op, o.bytes_per_rank, g, issue, prio[0]))
                    if dur > 0:
                        b.task(BUSY, CAT_OVERHEAD, b.op(f"s{s}.d{d}.{tag}.{o.name}.held", o.role, "overhead"), issue,
                               resource=compute[s][d], duration_s=dur, priority=prio[0])
                    if not o.hidden_by or after:
                        prev[d] = (prev[d] + ends[d]) if after else ends[d]
                if o.hidden_by and not after:
                    beside[o.hidden_by] = ends
            else:  # ZeRO-3 / FSDP collective inside a pass: all replicas together, off the compute stream
                op = b.op(f"s{s}.{tag}.{o.name}", o.role, "collective")
                now = [t for d in range(nd) for t in prev[d]]
                if o.op == "allgather":  # prefetched: issued once the previous layer has started
                    issued = ahead + chain[o.op]
                    ends = [t for g in dp_groups[s] for t in fab.collective(op, o.op, o.bytes_per_rank, g, issued, prio[0])]
                    ahead = now
                    prev = [p + ends for p in prev]  # the layer's compute waits for its weights
                else:  # gradients reduce-scatter behind the compute
                    issued = now + chain.get(o.op, [])
                    ends = [t for g in dp_groups[s] for t in fab.collective(op, o.op, o.bytes_per_rank, g, issued, prio[0])]
                    tail += ends
                chain[o.op] = ends
                if dur > 0:  # the cores the collective holds: compute beside it loses them (``interference_s``)
                    held = b.op(f"s{s}.{tag}.{o.name}.held", o.role, "overhead")
                    for d in range(nd):
                        b.task(BUSY, CAT_OVERHEAD, held, issued,
                               resource=compute[s][d], duration_s=dur, priority=prio[0])
        return [p + tail for p in prev]

    last: list[list[list[int]]] = [[[] for _ in range(nd)] for _ in range(p)]
    sent_f: dict[tuple[int, int], list[list[int]]] = {}
    sent_b: dict[tuple[int, int], list[list[int]]] = {}
    done_f: dict[tuple[int, int], list[list[int]]] = {}
    layer_end: list[dict] = [{} for _ in range(p)]
    bwd_end: list[int] = []
    top = p * v - 1
    for s, kind, c, i, k, _ in walk(orders, sent_f, sent_b):
        tag = f"mb{i}" + (f".c{c}" if v > 1 else "")
        if kind == "F":
            deps = [last[s][d] + (sent_f[(k - 1, i)][d] if k > 0 else []) for d in range(nd)]
            ends = run_pass(s, "fwd." + tag, fwd[s][c], deps, None)
            done_f[(k, i)] = ends
            if k < top:
                sent_f[(k, i)] = _send(b, fab, units, s, (s + 1) % p, ends, step.p2p_bytes, f"fwd.{tag}", prio)
        else:
            deps = [last[s][d] + done_f[(k, i)][d] + (sent_b[(k + 1, i)][d] if k < top else [])
                    for d in range(nd)]
            ends = run_pass(s, "bwd." + tag, bwd[s][c], deps, layer_end[s])
            bwd_end += [t for e in ends for t in e]
            if k > 0:
                sent_b[(k, i)] = _send(b, fab, units, s, (s - 1) % p, ends, step.p2p_bytes, f"bwd.{tag}", prio)
        last[s] = ends
    for s in range(p):
        _step_end(b, fab, coster, step, s, units, dp_groups, compute, last[s], layer_end[s], prio)
    sched = b.build()
    res = simulate_schedule(sched)
    pipe = float(res.end_s[bwd_end].max()) if bwd_end else 0.0
    return TrainEventRun(system=system, step=step, placement=placement, schedule=sched, result=res,
                         attribution=critical_path(res), pipeline_time_s=pipe)


def _send(b, fab, units, s, to, ends, nbytes, tag, prio) -> list[list[int]]:
    """Every rank of each replica of stage ``s`` sends its activations (or their gradients) to
    the same rank of stage ``to``."""
    prio[0] += 1
    out = []
    for d, unit in enumerate(units[s]):
        op = b.op(f"s{s}.d{d}.{tag}.p2p", "pp.sendrecv", "collective")
        pairs = [(a, c, nbytes) for a, c in zip(unit, units[to][d])]
        out.append(fab.sends(op, pairs, ends[d], prio[0]))
    return out


def _step_end(b, fab, coster, step, s, units, dp_groups, compute, last, layer_end, prio) -> None:
    """Stage ``s`` after its backwards: gradient reduction in per-layer buckets (each after the
    last backward has finished its layer), the optimizer, then the ZeRO weight all-gather."""
    nd = len(units[s])
    sync = step.grad_sync[s]
    reduce = [o for o in sync if o.op != "allgather"]
    gather = [o for o in sync if o.op == "allgather"]
    layers = sorted({L for (_, L) in layer_end}, key=lambda L: max(layer_end[(d, L)] for d in range(nd)))
    chain = [t for x in last for t in x]
    if reduce and nd > 1:
        for o in reduce:
            nb = max(1, len(layers))
            held = interference_s(coster.cost(o, s).time_s / nb, coster.system, coster.library) if layers else 0.0
            prev: list[int] = []
            for j in range(nb):
                prio[0] += 1
                op = b.op(f"s{s}.{o.name}.bucket{j}", o.role, "collective")
                ready = [layer_end[(d, layers[j])] for d in range(nd)] if layers else chain
                if held > 0:  # the cores the bucket's kernels hold, off the backward left
                    for d in range(nd):
                        b.task(BUSY, CAT_OVERHEAD, op, ready + prev, resource=compute[s][d], duration_s=held,
                               priority=-1)  # held at once, before the backward's later ops
                prev = [t for g in dp_groups[s] for t in
                        fab.collective(op, o.op, o.bytes_per_rank / nb, g, ready + prev, prio[0])]
            chain = chain + prev
    opt = sum(coster.cost(o, s).time_s for o in step.optimizer[s].ops())
    prio[0] += 1
    ends = [b.task(BUSY, CAT_TENSOR, b.op(f"s{s}.d{d}.optimizer", "optimizer", "optimizer"), chain,
                   resource=compute[s][d], duration_s=opt, priority=prio[0]) for d in range(nd)]
    for o in gather:
        if nd > 1:
            op = b.op(f"s{s}.{o.name}", o.role, "collective")
            ends = [t for g in dp_groups[s] for t in fab.collective(op, o.op, o.bytes_per_rank, g, ends, prio[0])]
