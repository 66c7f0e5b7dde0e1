"""Replay a measured step from its durations alone, and predict it on another chip.

The step is rebuilt as an event-tier schedule, not copied from the trace's timestamps:
- the host thread is a chain of measured durations: the time it spends between runtime calls
  (Python, op dispatch), each launch call, each synchronize call's own cost (its length minus
  the time it waited for the device);
- each kernel / copy runs on its stream (one in-order queue per stream, in launch order), with
  its measured duration, once its launch has returned and the trace's launch-to-start latency
  (the median over kernels launched onto an idle stream) has passed;
- a synchronize call waits for every kernel launched before it;
- collectives are kernels on their own streams, so they overlap compute as they did.
A CPU-only profile replays as its thread: the gaps between its arithmetic ops and the ops.

``whatif`` keeps the host side and the unmatched work as measured and replaces each matched
op's duration by accelsim's prediction on another system (and stack).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..lower.schedule import BUSY, CAT_OVERHEAD, CAT_TENSOR, DELAY, ScheduleBuilder
from ..sim.engine import simulate_schedule
from .breakdown import SYNC
from .trace import Trace

LAUNCH = ("Launch", "MemcpyAsync", "MemsetAsync", "cudaMemcpy", "hipMemcpy")


@dataclass
class Replay:
    measured_s: float
    replayed_s: float
    launch_latency_s: float
    tasks: int

    @property
    def error(self) -> float:
        return self.replayed_s / self.measured_s - 1.0 if self.measured_s > 0 else float("nan")


def _window(trace: Trace) -> tuple[float, float]:
    h = trace.host
    steps = h[h["name"].str.startswith("ProfilerStep#")] if len(h) else h
    if len(steps):
        return float(steps["start_s"].min()), float(steps["end_s"].max())
    return float(trace.work["start_s"].min()), float(trace.work["end_s"].max())


def launch_latency(work: pd.DataFrame) -> float:
    """Median time from a launch call's return to its kernel's start, over kernels whose stream
    was idle when they were launched (else the wait is queueing, not latency)."""
    lat = []
    busy_until: dict = {}
    for r in work.sort_values("start_s").itertuples(index=False):
        end_launch = getattr(r, "launch_end_s", np.nan)
        if end_launch == end_launch and busy_until.get(r.lane, -np.inf) <= end_launch:
            lat.append(max(0.0, r.start_s - end_launch))
        busy_until[r.lane] = r.end_s
    return float(np.median(lat)) if lat else 0.0


def replay(trace: Trace, durations: pd.Series | None = None) -> Replay:
    """Replay ``trace``'s step; ``durations`` (aligned with ``trace.work``) replaces the
    measured kernel durations (``whatif``)."""
    t0, t1 = _window(trace)
    work = trace.work.copy()
    work["run_s"] = durations.reindex(work.index).fillna(work["dur_s"]) if durations is not None else work["dur_s"]
    b = ScheduleBuilder()
    op = b.op("step", "replay", "replay")
    lanes = {lane: b.resource(str(lane), "tensor") for lane in work["lane"].unique()}
    if trace.kind == "cpu":
        lat = 0.0
        prev, at = -1, t0
        for i, r in enumerate(work.sort_values("start_s").itertuples(index=False)):
            gap = max(0.0, r.start_s - at)
            g = b.task(DELAY, CAT_OVERHEAD, op, [prev], duration_s=gap)
            prev = b.task(BUSY, CAT_TENSOR, op, [g], resource=lanes[r.lane], duration_s=float(r.run_s), priority=i)
            at = max(at, r.end_s)
        b.task(DELAY, CAT_OVERHEAD, op, [prev], duration_s=max(0.0, t1 - at))
    else:
        host = trace.host
        calls = host[(host["cat"] == "cuda_runtime") | (host["cat"] == "cuda_driver")].sort_values("start_s")
        end_of = dict(zip(calls["correlation"], calls["end_s"]))
        work["launch_end_s"] = [end_of.get(c, np.nan) for c in work["correlation"]]
        lat = launch_latency(work)
        kernels_of = {c: r for c, r in zip(work["correlation"], work.itertuples(index=False)) if c == c}
        # device work launched (or, without a launch record, started) by a time, and the last
        # end among it: a synchronize call waits for that (sorted once, looked up per call)
        issued = work["launch_end_s"].where(work["launch_end_s"].notna(), work["start_s"]).to_numpy()
        order = np.argsort(issued, kind="stable")
        issued_sorted = issued[order]
        end_by = np.maximum.accumulate(work["end_s"].to_numpy()[order]) if len(order) else order
        launched: list[int] = []
        prev, at = -1, t0
        for c in calls.itertuples(index=False):
            gap = max(0.0, c.start_s - at)
            prev = b.task(DELAY, CAT_OVERHEAD, op, [prev], duration_s=gap)
            if SYNC.search(c.name):
                # its own cost: what is left of it after the device work it waited for ended
                n = int(np.searchsorted(issued_sorted, c.start_s, side="right"))
                own = c.end_s - max(c.start_s, float(end_by[n - 1]) if n else c.start_s)
                prev = b.task(DELAY, CAT_OVERHEAD, op, [prev] + launched, duration_s=max(0.0, own))
            else:
                prev = b.task(DELAY, CAT_OVERHEAD, op, [prev], duration_s=c.dur_s)
                k = kernels_of.get(c.correlation)
                if k is not None and any(n in c.name for n in LAUNCH):
                    ready = b.task(DELAY, CAT_OVERHEAD, op, [prev], duration_s=lat)
                    launched.append(b.task(BUSY, CAT_TENSOR, op, [ready], resource=lanes[k.lane],
                                           duration_s=float(k.run_s), priority=len(launched)))
            at = max(at, c.end_s)
        # device work the trace records without a launch: on its stream after the step starts
        for r in work[work["launch_end_s"].isna()].itertuples(index=False):
            g = b.task(DELAY, CAT_OVERHEAD, op, [], duration_s=max(0.0, r.start_s - t0))
            launched.append(b.task(BUSY, CAT_TENSOR, op, [g], resource=lanes[r.lane], duration_s=float(r.run_s),
                                   priority=len(launched)))
        b.task(DELAY, CAT_OVERHEAD, op, [prev], duration_s=max(0.0, t1 - at))
    sch = b.build()
    res = simulate_schedule(sch)
    return Replay(measured_s=t1 - t0, replayed_s=res.makespan_s, launch_latency_s=lat, tasks=sch.num_tasks)


def compressed(op, recipe):
    """``op`` under a compression recipe, as a trace allows: a GEMM whose right operand is 2-D
    (a weight) takes the recipe's weight, activation and sparsity formats (its per-layer
    exceptions cannot be placed: a trace does not say which layer a GEMM belongs to), attention
    its KV-cache format; other ops are unchanged."""
    import dataclasses

    from ..workload.ops import FlashAttention, MatMul

    if isinstance(op, MatMul) and op.b_shared and (recipe.weights or recipe.activations or recipe.sparsity):
        return dataclasses.replace(op, dtype_b=recipe.weights or op.dtype_b, dtype_a=recipe.activations or op.dtype_a,
                                   sparsity=recipe.sparsity or op.sparsity, emulate=True)
    if isinstance(op, FlashAttention) and recipe.kv_cache:
        return dataclasses.replace(op, kv_dtype=recipe.kv_cache)
    return op


def whatif(trace: Trace, system, stack=None, compression=None, tp: int | None = None, traced_tp: int = 1,
           hidden: int | None = None) -> tuple[Replay, Replay, pd.DataFrame]:
    """(measured replay, predicted replay on ``system``, per-op table of measured vs predicted
    time): matched ops take accelsim's prediction (under ``compression``, a recipe tag, file or
    Compression: see ``compressed``; at TP degree ``tp`` for a trace recorded at ``traced_tp``:
    see ``profile.tp``, each row-parallel GEMM followed by its all-reduce), everything else its
    measured duration."""
    from ..errors import WorkloadError
    from .match import match_work
    from .report import predict

    if tp is None and (hidden is not None or traced_tp != 1):
        raise WorkloadError("hidden and traced_tp describe the re-sharding to tp: give tp (they were ignored without it)")
    work = match_work(trace.work)
    if compression is not None:
        from ..compress.recipes import as_compression

        recipe = as_compression(compression)
        work["accel_op"] = [None if o is None else compressed(o, recipe) for o in work["accel_op"]]
    if tp is not None:
        from ..arch.presets import load_system
        from ..arch.spec import SystemSpec
        from ..errors import WorkloadError
        from .tp import reshard_work

        spec = system if isinstance(system, SystemSpec) else load_system(system)
        if tp > spec.num_chips:
            raise WorkloadError(f"--tp {tp} needs {tp} chips; {spec.name} has {spec.num_chips}")
        system = spec
        work, ars = reshard_work(work, tp, traced_tp, hidden)
    pred, _ = predict(work, system, stack)
    if tp is not None:
        pred = pred.where(~work["dropped"], 0.0)
        ar, _ = predict(ars, system, stack)
        pred = pred + ar.fillna(0.0)
    base = replay(trace)
    new = replay(trace, pred)
    key = work["op"].where(work["op"].notna(), work["name"])
    table = pd.DataFrame({"op": key, "kind": work["kind"], "measured_s": work["dur_s"],
                          "predicted_s": pred.fillna(work["dur_s"]), "predicted": pred.notna()})
    table = table.groupby("op", sort=False).agg(count=("kind", "size"), kind=("kind", "first"),
                                                measured_s=("measured_s", "sum"), predicted_s=("predicted_s", "sum"),
                                                predicted=("predicted", "all"))
    table["ratio"] = table["predicted_s"] / table["measured_s"]
    return base, new, table.sort_values("measured_s", ascending=False)
