"""A training step: per-stage passes costed by the analytical tier, collectives priced on the
chips the placement gives each group, and the stages x microbatches pipeline run as an event
schedule (``sim/pipeline.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arch.spec import SystemSpec
from ..arch.topology import Placement, place, scale_out_system
from ..cost.collectives import collective_cost
from ..workload.ops import Collective, Op
from ..workload.parallel import ParallelPlan
from ..workload.train import TrainStep
from ..cost.op_cost import ChipModel, OpCost, op_cost
from .pipeline import PipelineRun, StageTimes, simulate_pipeline
from .analytical import sequence_time


def system_for(system: SystemSpec, chips: int) -> SystemSpec:
    """``system`` itself when it has enough chips, else the system scaled out to ``chips``."""
    return system if chips <= system.num_chips else scale_out_system(system, chips)


@dataclass
class TrainRun:
    system: SystemSpec
    step: TrainStep
    placement: Placement
    pipeline: PipelineRun
    ops: pd.DataFrame
    """One row per op of one microbatch on one chip of each stage (plus optimizer and DP
    collectives): stage, pass, name, role, kind, time terms, bound."""
    stage_times: list[StageTimes]


class _Coster:
    """Costs ops on one chip; collectives on the chips of their parallel group."""

    def __init__(self, system: SystemSpec, placement: Placement, plan: ParallelPlan, library=None):
        self.system, self.placement, self.plan = system, placement, plan
        self.cm = ChipModel(system, library)
        self.library = library
        self.cache: dict[tuple, OpCost] = {}

    def group(self, axis: str, size: int, stage: int) -> tuple[int, ...]:
        first = self.placement.chip(pp=stage)
        if axis in self.placement.groups:
            g = self.placement.group_of(axis, first)
            if len(g) == size:
                return g
        # ep (carved out of tp x dp) or a size the layout does not name: the stage's first
        # ``size`` ranks in layout order
        stage_chips = [c for r, c in enumerate(self.placement.chips) if self.placement.index(r)["pp"] == stage]
        return tuple(stage_chips[:size])

    def cost(self, op: Op, stage: int) -> OpCost:
        if not isinstance(op, Collective):
            key = (op,)
            c = self.cache.get(key)
            if c is None:
                c = self.cache[key] = op_cost(self.cm, op)
            return c
        axis = op.role.split(".")[0] if "." in op.role else "tp"
        key = (op, axis, stage)
        c = self.cache.get(key)
        if c is None:
            if axis == "pp":
                chips = (self.placement.chip(pp=0), self.placement.chip(pp=self.plan.pp - 1))
            elif op.op == "sendrecv" and axis in self.placement.groups:  # two neighbours of the group
                chips = self.placement.group_of(axis, self.placement.chip(pp=stage))[:2]
            else:
                chips = self.group(axis, op.group, stage)
            r = collective_cost(self.system, op.op, op.bytes_per_rank, op.group,
                                chips=chips if len(chips) == op.group else None, library=self.library)
            c = self.cache[key] = OpCost(link_s=r.bandwidth_s, overhead_s=r.latency_s, hbm_bytes=op.bytes(),
                                         link_bytes=r.bytes_sent_per_chip, mapping=r.algorithm)
        return c


def zero_exposed_s(segments) -> float:
    """Exposed seconds of the ZeRO-3 / FSDP collectives inside a pass, per-layer segments
    ``(stream seconds, ZeRO seconds, layer)`` in execution order: each layer's weight gather
    (and gradient reduce-scatter) is prefetched / issued during the previous layer's work, as
    FSDP, DeepSpeed ZeRO-3 and XLA's latency-hiding scheduler do, so only the first segment's
    and what exceeds the previous segment's work are exposed:
    ``d_0 + sum_i max(0, d_i - c_(i-1))``."""
    out, prev = 0.0, None
    for c, d, _ in segments:
        out += d if prev is None else max(0.0, d - prev)
        prev = c
    return out


def interference_s(hidden_s: float, system: SystemSpec, library=None) -> float:
    """Compute time lost to collectives that run beside it: while an overlapped collective's
    kernel holds ``library.compute_cores`` of the chip's cores, the compute beside it runs on
    the rest, so ``hidden_s`` seconds of overlap cost ``hidden_s x held / cores`` more (0 for a
    library with engines of its own)."""
    held = library.compute_cores if library is not None else 0
    return hidden_s * min(1.0, held / system.chip.num_cores) if held else 0.0


def simulate_train(system: SystemSpec, step: TrainStep, library=None) -> TrainRun:
    """Cost every stage's passes and run the pipeline schedule of one training step."""
    plan = step.plan
    system = system_for(system, plan.chips)
    placement = place(system, tp=plan.tp_chips, pp=plan.pp, dp=plan.dp, cp=plan.cp)
    coster = _Coster(system, placement, plan, library)
    rows, stages = [], []
    for s in range(plan.pp):
        sums, hidden = {}, {}
        for pass_name, graphs in (("fwd", [step.fwd[s]]), ("bwd", [step.bwd[s]]), ("opt", [step.optimizer[s]])):
            comp = comm = beside = 0.0
            segments: list[list[float]] = []  # per layer in execution order: [stream seconds, ZeRO seconds]
            stream: list = []  # the pass's compute ops in order: their host dispatch may run ahead
            times: dict[str, float] = {}
            later: list[tuple[float, str, list[float]]] = []  # collectives run beside a named op
            for g in graphs:
                for op in g.ops():
                    c = coster.cost(op, s)
                    t = times[op.name] = c.time_s
                    if not segments or segments[-1][2] != op.layer:
                        segments.append([0.0, 0.0, op.layer])
                    if isinstance(op, Collective) and op.role.startswith("dp."):
                        segments[-1][1] += t
                    elif isinstance(op, Collective) and op.hidden_by:
                        later.append((t, op.hidden_by, segments[-1]))
                    elif isinstance(op, Collective):
                        comm += t
                        segments[-1][0] += t
                    else:
                        comp += t
                        segments[-1][0] += t
                        stream.append(c)
                    rows.append((s, pass_name, op.name, op.layer, op.role, op.kind, op.engine, op.flops(), op.bytes(),
                                 c.hbm_bytes, c.link_bytes, c.compute_s, c.vector_s, c.memory_s, c.link_s, c.overhead_s,
                                 t, c.bound, c.mapping))
            for t, by, seg in later:  # only what outlasts the op it runs beside is on the path
                over = max(0.0, t - times[by])
                comm, seg[0], beside = comm + over, seg[0] + over, beside + t - over
            if any(c.host_s for c in stream):  # an eager host dispatches ahead of the device
                comp -= sum(c.time_s for c in stream) - sequence_time(stream)
            exposed = zero_exposed_s(segments)
            hidden[pass_name] = sum(d for _, d, _ in segments) - exposed + beside
            comp += interference_s(hidden[pass_name], system, library)
            sums[pass_name] = (comp, comm + exposed)
        sync = gather = 0.0
        for op in step.grad_sync[s]:
            c = coster.cost(op, s)
            if op.op == "allgather":
                gather += c.time_s
            else:
                sync += c.time_s
            rows.append((s, "grad_sync", op.name, op.layer, op.role, op.kind, op.engine, 0.0, op.bytes(), c.hbm_bytes,
                         c.link_bytes, 0.0, 0.0, c.memory_s, c.link_s, c.overhead_s, c.time_s, c.bound, c.mapping))
        p2p = 0.0
        if s < plan.pp - 1 and step.p2p_bytes > 0:
            a, b = placement.chip(pp=s), placement.chip(pp=s + 1)
            p2p = collective_cost(system, "sendrecv", step.p2p_bytes, 2, chips=(a, b), library=library).time_s
        stages.append(StageTimes(fwd_compute_s=sums["fwd"][0], fwd_comm_s=sums["fwd"][1],
                                 bwd_compute_s=sums["bwd"][0], bwd_comm_s=sums["bwd"][1], grad_sync_s=sync,
                                 param_gather_s=gather, grad_buckets=max(1, len(step.stage_layers[s])),
                                 optimizer_s=sums["opt"][0] + sums["opt"][1], p2p_s=p2p,
                                 held_fraction=interference_s(1.0, system, library),
                                 zero_hidden_s=hidden["fwd"] + hidden["bwd"]))
    cols = ["stage", "pass", "name", "layer", "role", "kind", "engine", "flops", "bytes", "hbm_bytes", "link_bytes",
            "compute_s", "vector_s", "memory_s", "link_s", "overhead_s", "time_s", "bound", "mapping"]
    ops = pd.DataFrame(rows, columns=cols)
    ops["intensity"] = np.divide(ops["flops"], ops["hbm_bytes"], out=np.zeros(len(ops)), where=ops["hbm_bytes"] > 0)
    peak = system.chip.peak_flops(step.dtype) or system.chip.peak_flops("bf16")
    ops["utilization"] = np.divide(ops["flops"], ops["time_s"] * peak, out=np.zeros(len(ops)), where=ops["time_s"] > 0)
    run = simulate_pipeline(stages, step.microbatches, plan.schedule, chunks=plan.vpp)
    return TrainRun(system=system, step=step, placement=placement, pipeline=run, ops=ops, stage_times=stages)
