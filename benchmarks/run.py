"""accelsim performance benchmarks: one JSON line per case on stdout.

Run: ``python benchmarks/run.py [--repeat N]``. JIT compilation and first-call warm-up happen
before any timer starts. Targets (../shared/DESIGN.md, 2-core machine):
- analytical: one Llama-3-70B decode step on an 8-chip system in < 20 ms;
- analytical: >= 1,000 design points per second per core for a single-layer graph;
- analytical: one Llama-3-70B training step on 64 chips in < 100 ms;
- sweeps: >= 1,000 design points per second per core for one Llama-3-8B decoder layer (prefill +
  decode), and a 10,000-point sweep of it in < 60 s on the 2-core machine;
- event: one 8192x8192x8192 bf16 GEMM on trn2 in < 0.5 s; Llama-3-70B decode on dgx-h100 TP8 through
  the public API in < 2 s (issue 15); a Llama-2-70B training step on 64 H100
  op by op on shared links < 30 s; a 64-chip 2D-torus all-reduce < 1 s; one Llama-3-8B decode step (all 32
  layers) on trn2 in < 2 s (lowering + simulation + attribution); tasks simulated per second;
  a 1 GiB all-reduce on a 64-chip 8x8 2D torus in < 1 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

from accelsim.api import evaluate
from accelsim.arch import load_system
from accelsim.arch.presets import load_raw
from accelsim.arch.spec import SystemSpec
from accelsim.configio import apply_overrides
from accelsim.report.results import build_results
from accelsim.sim.analytical import evaluate_arrays
from accelsim.sim.engine import simulate_schedule
from accelsim.sim.event import simulate
from accelsim.lower.lowering import lower
from accelsim.workload.graph import WorkloadGraph, WorkloadMeta
from accelsim.workload.ops import MatMul
from accelsim.workload import build, load_model


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up (JIT, caches)
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def emit(case: str, samples: list[float], **extra) -> None:
    print(json.dumps({"case": case, "median_s": statistics.median(samples), "min_s": min(samples),
                      "repeat": len(samples), **extra}), flush=True)


def design_points(model, rounds: int) -> None:
    """``evaluate()`` through the public API on reused system and model objects, every call a
    different design point: decode over batch sizes (new GEMM shapes each call: no batch size
    repeats across rounds, so no GEMM mapping comes from an earlier round's cache), decode over
    context lengths (the GEMMs repeat, attention is new), prefill over prompt lengths (all new).
    The numba kernels are compiled before any timer starts (they would otherwise compile inside
    the first round, once their plain-Python calls have taken their budget)."""
    from accelsim.jit import compile_all

    compile_all()
    kinds = {"decode_batch": lambda r, i: dict(phase="decode", batch=1 + i + 32 * r, context_len=2048 + r),
             "decode_context": lambda r, i: dict(phase="decode", batch=8, context_len=1024 + 64 * i + r),
             "prefill_tokens": lambda r, i: dict(phase="prefill", batch=1, seq_len=512 + 64 * i + r)}
    for name, point in kinds.items():
        per = []
        for r in range(max(3, rounds // 4)):
            system = load_system("dgx-h100")
            evaluate(system, model, tp=8, **point(r, 999))  # warm-up outside the timed points
            gc.collect()  # the collector's full pass over what the process made before (imports, JIT) is not the points'
            c = time.process_time()
            for i in range(32):
                evaluate(system, model, tp=8, **point(r, i))
            per.append((time.process_time() - c) / 32)
        emit(f"design_point_llama3_70b_{name}_dgx_h100_public_api", per, unit="CPU seconds per point",
             target_s=1e-4, meets_target=statistics.median(per) < 1e-4)
    # the same decode points with the system and model named in every call, as a notebook loop
    # writes them: a shipped preset is read and validated once (until its file changes), so
    # the chip model and op costs kept for that object apply as with reused objects
    per = []
    for r in range(max(3, rounds // 4)):
        evaluate("dgx-h100", "llama-3-70b", tp=8, **kinds["decode_batch"](r + 100, 999))
        gc.collect()
        c = time.process_time()
        for i in range(32):
            evaluate("dgx-h100", "llama-3-70b", tp=8, **kinds["decode_batch"](r + 100, i))
        per.append((time.process_time() - c) / 32)
    emit("design_point_llama3_70b_decode_batch_dgx_h100_preset_names", per, unit="CPU seconds per point")


def startup() -> None:
    """``accelsim --help`` and a first analytical run, each in a fresh process (median of 5)."""
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("accelsim"))
    first = ("import accelsim; accelsim.evaluate('dgx-h100', 'llama-3-70b', phase='decode', batch=8, "
             "context_len=2048, tp=8)")
    for case, cmd, target in (("startup_accelsim_help", [cli, "--help"], 0.3),
                              ("startup_first_analytical_run", [sys.executable, "-c", first], 0.5)):
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            samples.append(time.perf_counter() - t)
        emit(case, samples, target_s=target, meets_target=statistics.median(samples) < target)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--sweep-points", type=int, default=10000, help="points of the process-pool sweep case")
    args = ap.parse_args()

    system = load_system("dgx-h100")
    model = load_model("llama-3-70b")

    # 1. whole pipeline: build the 80-layer graph, cost it, assemble the tables
    s = timed(lambda: evaluate(system, model, phase="decode", batch=8, context_len=2048, tp=8), args.repeat)
    emit("analytical_llama3_70b_decode_dgx_h100_end_to_end", s, target_s=0.020, meets_target=statistics.median(s) < 0.020)
    design_points(model, args.repeat)
    startup()
    graph = build(model, "decode", batch=8, context_len=2048, tp=8)
    s = timed(lambda: build(model, "decode", batch=8, context_len=2048, tp=8), args.repeat)
    emit("build_graph_llama3_70b_decode_tp8", s, ops=len(graph))
    s = timed(lambda: evaluate_arrays(graph, system), args.repeat)
    emit("analytical_llama3_70b_decode_cost_only", s, ops=len(graph))
    arrays = evaluate_arrays(graph, system)
    s = timed(lambda: build_results(graph, system, arrays), args.repeat)
    emit("results_tables_llama3_70b_decode", s)

    # 2. event tier
    trn2 = load_system("trn2")
    gemm = WorkloadGraph(WorkloadMeta(model="gemm", phase="prefill", batch=1))
    gemm.add(MatMul(name="gemm", role="gemm", m=8192, n=8192, k=8192, b_shared=True))
    reps = max(3, args.repeat // 4)
    s = timed(lambda: simulate(gemm, trn2), reps)
    run = simulate(gemm, trn2)
    emit("event_gemm_8192_trn2", s, tasks=run.schedule.num_tasks, simulated_s=run.makespan_s,
         target_s=0.5, meets_target=statistics.median(s) < 0.5)
    dec = build(load_model("llama-3-8b"), "decode", batch=8, context_len=2048)
    s = timed(lambda: simulate(dec, trn2), reps)
    run = simulate(dec, trn2)
    emit("event_llama3_8b_decode_32_layers_trn2", s, tasks=run.schedule.num_tasks, simulated_s=run.makespan_s,
         target_s=2.0, meets_target=statistics.median(s) < 2.0)
    sched = lower(dec, trn2)
    s = timed(lambda: lower(dec, trn2), reps)
    emit("event_lowering_only_llama3_8b_decode", s, tasks=sched.num_tasks)
    s = timed(lambda: simulate_schedule(sched), reps)
    emit("event_engine_only_llama3_8b_decode", s, tasks=sched.num_tasks,
         tasks_per_s=sched.num_tasks / statistics.median(s))

    # 2b. issue 15's event-tier case: Llama-3-70B decode (batch 8, context 2048) on dgx-h100 TP8
    #     through the public API (realized stack, lowering, engine, attribution); the engine is
    #     compiled by the cases above. First the process's first run of it (which also pays this
    #     virtual machine's first touch of ~1 GB), then the next design points, contexts
    #     2049-2050 (GEMM shapes repeat, attention is new), each timed on its own
    t0 = time.perf_counter()
    r70 = evaluate(system, model, phase="decode", batch=8, context_len=2048, tp=8, fidelity="event")
    s = [time.perf_counter() - t0]
    emit("event_llama3_70b_decode_dgx_h100_tp8_public_api", s, tasks=r70.summary["num_tasks"],
         simulated_s=r70.summary["latency_s"], target_s=2.0, meets_target=s[0] < 2.0)
    del r70
    s = []
    for ctx in (2049, 2050):
        t0 = time.perf_counter()
        evaluate(system, model, phase="decode", batch=8, context_len=ctx, tp=8, fidelity="event")
        s.append(time.perf_counter() - t0)
    emit("event_llama3_70b_decode_dgx_h100_tp8_public_api_next_points", s, target_s=2.0,
         meets_target=statistics.median(s) < 2.0)

    # 3. a Llama-3-70B training step on 64 chips (analytical stages + event-scheduled pipeline)
    from accelsim.api import evaluate_train

    s = timed(lambda: evaluate_train(system, model, 128, 4096, tp=4, pp=4, dp=4), args.repeat)
    emit("analytical_llama3_70b_train_step_64_h100", s, target_s=0.1, meets_target=statistics.median(s) < 0.1)

    # 3b. the same size of step in the event tier: Llama-2-70B on 64 H100 (TP4 PP4 DP4, global
    #     batch 128 x 4096, Megatron defaults), every op of every microbatch, shared links
    #     (the engine is compiled by section 2, so one timed run suffices)
    t0 = time.perf_counter()
    ev = evaluate_train(system, "llama-2-70b", 128, 4096, tp=4, pp=4, dp=4, stack="megatron-cuda", fidelity="event")
    s = [time.perf_counter() - t0]
    emit("event_llama2_70b_train_step_64_h100", s, tasks=ev.summary["num_tasks"], simulated_s=ev.summary["step_time_s"],
         analytical_s=ev.summary["analytical_step_time_s"], target_s=30.0, meets_target=statistics.median(s) < 30.0)

    # 4. design points: a single-layer Llama-3-8B decode graph on trn2 variants (HBM bandwidth x
    #    SRAM size x array size); each point re-validates its spec and costs the graph
    layer = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 1})
    g1 = build(layer, "decode", batch=8, context_len=2048)
    raw, _ = load_raw("trn2")
    points = []
    for i in range(args.points):
        points.append([f"chip.hbm.bandwidth_Bps={1e12 + 1e9 * i}",
                       f"chip.core.sram.capacity_bytes={(8 + i % 32) * 2**20}",
                       f"chip.core.tensor.rows={(64, 128, 256)[i % 3]}"])

    def sweep_points():
        for ov in points:
            spec = SystemSpec.model_validate(apply_overrides(raw, ov))
            evaluate_arrays(g1, spec)

    evaluate_arrays(g1, SystemSpec.model_validate(apply_overrides(raw, points[0])))
    t = time.perf_counter()
    sweep_points()
    dt = time.perf_counter() - t
    rate = args.points / dt
    print(json.dumps({"case": "analytical_design_points_single_layer_trn2", "points": args.points,
                      "seconds": dt, "points_per_s": rate, "ops_per_point": len(g1),
                      "target_points_per_s": 1000, "meets_target": rate >= 1000}), flush=True)

    # 4. event tier, collectives: a 1 GiB all-reduce over a 64-chip 8x8 2D torus of TPU v5e
    #    chips (the tpu-v5e-256 preset cut to 8x8), plan + lowering + simulation
    from accelsim.sim.collective import simulate_collective
    from accelsim.cost.collectives import collective_cost

    torus = load_system("tpu-v5e-256", ["num_chips=64", "interconnect.dims=[8, 8]"])
    s = timed(lambda: simulate_collective(torus, "allreduce", 2**30, 64), reps)
    t_event, res = simulate_collective(torus, "allreduce", 2**30, 64)
    ana = collective_cost(torus, "allreduce", 2**30, 64)
    emit("event_allreduce_1gib_64chip_torus2d_8x8", s, tasks=res.schedule.num_tasks, simulated_s=t_event,
         analytical_s=ana.time_s, algorithm=ana.algorithm, target_s=1.0, meets_target=statistics.median(s) < 1.0)

    # 5. design-space sweeps (accelsim.sweep): one Llama-3-8B decoder layer (layers: 1, plus the
    #    embedding and LM head) on Trainium2 variants, prefill (batch 8 x 2048) and decode (batch 8,
    #    2048 cached): a Latin hypercube over HBM bandwidth and SRAM (continuous, so every point is
    #    a distinct chip and no mapping is reused) x array rows x phase. Each point re-validates
    #    its SystemSpec, costs the graph and summarizes it.
    import os

    from accelsim.sweep import DesignSpace, sweep as run_sweep

    def design_space(n: int, seed: int) -> DesignSpace:
        return DesignSpace.load({
            "name": "bench", "system": "trn2",
            "workload": {"model": "llama-3-8b", "layers": 1, "batch": 8, "seq_len": 2048, "context_len": 2048},
            "axes": {"workload.phase": ["prefill", "decode"], "chip.core.tensor.rows": [64, 128, 256],
                     "chip.core.sram.capacity_bytes": {"low": "8 MiB", "high": "64 MiB", "log": True},
                     "chip.hbm.bandwidth_Bps": {"low": "1 TB/s", "high": "8 TB/s", "log": True}},
            "sampling": "lhs", "samples": n, "seed": seed})

    run_sweep(design_space(64, 0), progress=False, workers=1)  # warm-up: imports, JIT, graphs
    per_core = design_space(args.sweep_points // 2, 1)
    t, c = time.perf_counter(), time.process_time()
    df = run_sweep(per_core, progress=False, workers=1)  # this process only: one core
    dt, dc = time.perf_counter() - t, time.process_time() - c
    rate = len(df) / dt
    print(json.dumps({"case": "sweep_design_points_per_core_llama3_8b_layer_prefill_decode_trn2", "points": len(df),
                      "ok": int((df["status"] == "ok").sum()), "seconds": dt, "points_per_s": rate,
                      "cpu_seconds": dc, "points_per_cpu_s": len(df) / dc,
                      "target_points_per_s": 1000, "meets_target": rate >= 1000}), flush=True)
    # the same on a workload grid: Llama-3-70B decode on dgx-h100 TP8 over batch sizes 1-64 x 80
    # contexts (5,120 points; each batch size's GEMMs and vector ops are new once, every point's
    # attention is new), as a notebook sweeps a serving configuration on one system
    serving = {"name": "grid", "system": "dgx-h100", "sampling": "grid",
               "workload": {"model": "llama-3-70b", "phase": "decode", "batch": 8, "context_len": 2048, "tp": 8}}
    grid = DesignSpace.load({**serving, "axes": {"workload.batch": list(range(1, 65)),
                                                 "workload.context_len": [512 + 97 * i for i in range(80)]}})
    run_sweep(DesignSpace.load({**serving, "axes": {"workload.batch": [1, 2]}}), progress=False,
              workers=1)  # warm-up: the model and the chip model
    gc.collect()
    c = time.process_time()
    df = run_sweep(grid, progress=False, workers=1)
    rate = len(df) / (time.process_time() - c)
    print(json.dumps({"case": "sweep_design_points_per_core_llama3_70b_decode_batch_x_context_dgx_h100_tp8",
                      "points": len(df), "ok": int((df["status"] == "ok").sum()), "points_per_cpu_s": rate,
                      "target_points_per_cpu_s": 10_000, "meets_target": rate >= 10_000}), flush=True)
    big = design_space(args.sweep_points, 2)
    t = time.perf_counter()
    df = run_sweep(big, progress=False)  # default executor: a process pool over all cores
    dt = time.perf_counter() - t
    print(json.dumps({"case": f"sweep_{args.sweep_points}_points_llama3_8b_layer_prefill_decode_trn2",
                      "points": len(df), "ok": int((df["status"] == "ok").sum()), "workers": os.cpu_count(),
                      "seconds": dt, "points_per_s": len(df) / dt, "target_s": 60.0, "meets_target": dt < 60.0}),
          flush=True)


if __name__ == "__main__":
    main()
