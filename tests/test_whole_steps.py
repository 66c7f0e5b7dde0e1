"""Whole steps as production runs them: the published training / serving validation set, the
schema's training and serving columns, framework and engine stacks, GEMM-only FP8 training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from accelsim.api import evaluate_train
from accelsim.correlate import correlate, load_measurements
from accelsim.correlate.schema import COLUMNS
from accelsim.errors import MeasurementError
from accelsim.stack.presets import for_platform, load_stack
from accelsim.workload.ops import Elementwise, MatMul
from accelsim.workload.train import build_train
from accelsim.workload.train_graph import LINEAR_ROLES

VALIDATION = Path(__file__).resolve().parents[1] / "workloads" / "measurements" / "validation"
PUBLISHED = {"train_published.csv": 69, "serve_published.csv": 92, "h200_accelsim_bench.csv": 45,
             "h200_hf_transformers.csv": 11, "hf_transformers_published.csv": 55}
"""Rows of each validation file (published ones, and accelsim's own H200 rows): pinned, so no row
is dropped later."""


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows])


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_rows_are_all_kept_and_cited(name):
    df = load_measurements(VALIDATION / name)
    assert len(df) == PUBLISHED[name]
    assert df["source"].notna().all() and (df["source"].str.len() > 10).all()
    assert (df["kind"] == "model").all()


def test_every_published_row_is_predicted_or_skipped_with_a_reason():
    res = correlate([VALIDATION / n for n in sorted(PUBLISHED)])
    rows = res.per_row
    assert len(rows) == sum(PUBLISHED.values())
    skipped = rows[rows["skipped"]]
    assert (skipped["reason"].str.len() > 10).all()
    assert (rows.loc[~rows["skipped"], "predicted_time_s"] > 0).all()


def test_published_steps_meet_the_whole_step_targets():
    """Issue 12's must-show on the published training and serving rows, shipped presets and no
    calibration: MAPE <= 12 % and at least 80 % of the predicted rows within 15 % of measured
    (the targets are the issue's, not this code's output; a change that loses them fails here)."""
    res = correlate([VALIDATION / "train_published.csv", VALIDATION / "serve_published.csv"])
    rows = res.per_row[~res.per_row["skipped"]]
    assert len(rows) >= 150
    assert rows["ape"].mean() <= 0.12
    assert (rows["ape"] <= 0.15).mean() >= 0.80


def test_framework_and_engine_names_resolve_per_platform():
    assert for_platform("vllm", "rocm-graphs") == "vllm-rocm"
    assert for_platform("vllm", "cuda-graphs") == "vllm-cuda"
    assert for_platform("maxtext", "xla-tpu") == "maxtext-tpu"
    assert for_platform("megatron", "cuda-graphs") == "megatron-cuda"
    assert for_platform("nxd-training", "neuron") == "nxd-training"  # a stack file of its own
    assert for_platform("no-such-engine", "cuda-graphs") == "no-such-engine"  # load_stack then names close matches
    assert load_stack("megatron-cuda").training.zero == 1  # distributed optimizer
    assert load_stack("torchtitan-cuda").training.zero == 3  # FSDP2
    assert load_stack("vllm-rocm").collectives.name.startswith("RCCL")


def test_training_and_serving_columns_are_checked():
    base = {"kind": "model", "system": "dgx-h100", "model": "tiny", "dtype": "bf16", "measured_time_s": 1.0}
    with pytest.raises(MeasurementError, match="column global_batch"):
        load_frame(frame({"id": "t", "phase": "train", "seq_len": 128, **base}))
    with pytest.raises(MeasurementError, match="column metric.*prefill figure"):
        load_frame(frame({"id": "m", "phase": "decode", "metric": "ttft", "input_len": 128, "batch": 1, **base}))
    with pytest.raises(MeasurementError, match="column recompute"):
        load_frame(frame({"id": "r", "phase": "train", "seq_len": 128, "global_batch": 8, "recompute": "most",
                          **base}))
    with pytest.raises(MeasurementError, match="column vocab_tiles"):
        load_frame(frame({"id": "v", "phase": "train", "seq_len": 128, "global_batch": 8, "vocab_tiles": 0,
                          **base}))
    # a training row's vocabulary tiles reach its plan: the loss's logits are not kept
    row = {"id": "v", "phase": "train", "seq_len": 2048, "global_batch": 8, "tp": 1, "dp": 8, "chips": 8, **base}
    whole, tiled = (correlate(frame({**row, "vocab_tiles": v})).per_row.loc[0, "predicted_time_s"] for v in (1, 4))
    assert tiled > whole  # and each tile's logits are computed again in the backward
    # a throughput row without its lengths loads, and is skipped with the reason
    res = correlate(frame({"id": "o", "phase": "decode", "metric": "throughput", "batch": 1, **base}))
    assert "input_len and output_len" in res.per_row.loc[0, "reason"]


def load_frame(df):
    from accelsim.correlate.schema import validate_frame

    return validate_frame(df)


def test_zero_in_compression_loads_as_the_zero_column_with_a_deprecation_note():
    df = frame({"id": "t", "kind": "model", "system": "dgx-a100", "model": "tiny", "dtype": "bf16", "phase": "train",
                "seq_len": 128, "batch": 8, "tp": 2, "dp": 2, "chips": 4, "compression": "fsdp",
                "measured_time_s": 1.0})
    with pytest.warns(FutureWarning, match="zero = 3"):
        out = load_frame(df)
    assert out.loc[0, "zero"] == 3 and pd.isna(out.loc[0, "compression"])


def test_serving_metrics_by_hand():
    """TPOT runs one decode step at input_len + output_len / 2; throughput is (prefill + output_len
    decode steps) / (batch x output_len)."""
    base = {"kind": "model", "system": "h100-sxm-80gb", "model": "tiny", "dtype": "bf16", "batch": 4,
            "input_len": 128, "output_len": 64}
    df = frame({"id": "ttft", "phase": "prefill", "metric": "ttft", "measured_time_s": 1e-3, **base},
               {"id": "tpot", "phase": "decode", "metric": "tpot", "measured_time_s": 1e-3, **base},
               {"id": "thr", "phase": "decode", "metric": "throughput", "measured_time_s": 1e-3, **base},
               {"id": "ctx", "phase": "decode", "context_len": 160, "measured_time_s": 1e-3, **base},
               {"id": "none", "phase": "decode", "measured_time_s": 1e-3, **base, "batch": None})
    r = correlate(df).per_row.set_index("id")["predicted_time_s"]
    assert r["tpot"] == pytest.approx(r["ctx"])  # 128 + 64 / 2 = 160
    assert r["thr"] == pytest.approx((r["ttft"] + 64 * r["tpot"]) / (4 * 64))
    assert correlate(df).per_row.set_index("id").loc["none", "skipped"]


def test_fp8_gemm_scope_runs_only_the_linear_layers_in_fp8():
    step = build_train("tiny", 8, 128, dtype="fp8", fp8_scope="gemm")
    m = step.model
    ops = [op for g in step.fwd + step.bwd for op in g.ops()]
    mms = [op for op in ops if isinstance(op, MatMul)]
    linear = [op for op in mms if op.role.split(".", 1)[1].removesuffix("_dgrad").removesuffix("_wgrad")
              in LINEAR_ROLES]
    assert linear and all(op.dtype_a == "fp8" and op.dtype_out != "fp8" for op in linear)
    assert all(op.dtype_a == "bf16" for op in mms if op not in linear)  # LM head, attention
    assert all(getattr(op, "dtype", "bf16") != "fp8" for op in ops if not isinstance(op, (MatMul, Elementwise)))
    casts = [op for op in ops if isinstance(op, Elementwise) and op.name.endswith("_cast")]
    fwd_linear = [op for op in linear if op.role.startswith("fwd.")]
    dgrad = [op for op in linear if op.role.endswith("_dgrad")]
    assert len(casts) == len(fwd_linear) + len(dgrad)  # wgrad reuses both casts
    # the QKV cast of layer 0: T = microbatch x seq_len tokens x hidden, bf16 in, fp8 out: 3 bytes each
    qkv = next(op for op in casts if op.role == "fwd.qkv_proj_cast" and op.layer == 0)
    assert qkv.elements == 128 * m.hidden_size and qkv.bytes() == 3 * 128 * m.hidden_size
    assert step.memory().total_bytes == build_train("tiny", 8, 128, dtype="bf16").memory().total_bytes


def test_fp8_scope_defaults_gemm_when_realistic_and_all_when_ideal():
    real = evaluate_train("h100-sxm-80gb", "tiny", 8, 128, dtype="fp8")
    ideal = evaluate_train("h100-sxm-80gb", "tiny", 8, 128, dtype="fp8", mode="ideal")
    assert real.summary["fp8_scope"] == "gemm" and ideal.summary["fp8_scope"] == "all"
    # the same model under the same ideal hardware: fp8 everywhere is faster than GEMMs only
    gemm_only = evaluate_train("h100-sxm-80gb", "tiny", 8, 128, dtype="fp8", mode="ideal", fp8_scope="gemm")
    assert gemm_only.summary["step_time_s"] > ideal.summary["step_time_s"]


def test_framework_defaults_fill_what_the_plan_leaves():
    r = evaluate_train("dgx-h100", "tiny", 8, 128, tp=2, dp=4, stack="megatron-cuda")
    assert r.summary["sp"] is True and r.summary["zero"] == 1
    r = evaluate_train("dgx-h100", "tiny", 8, 128, tp=2, dp=4, stack="megatron-cuda", sp=False, zero=0)
    assert r.summary["sp"] is False and r.summary["zero"] == 0


def test_host_enqueue_is_paid_once_per_device_the_process_drives():
    """nccl-tests -g 8 (one process, 8 GPUs) pays the runtime's per-device host enqueue 8 times, one
    process per GPU once, graph replay never (0 by definition)."""
    row = {"kind": "allreduce", "system": "dgx-a100", "chips": 8, "ranks": 8, "bytes": 8, "dtype": "fp32",
           "measured_time_s": 1e-5}
    df = frame({"id": "g8", "gpus_per_process": 8, "stack": "cuda-native", **row},
               {"id": "np8", "gpus_per_process": 1, "stack": "cuda-native", **row},
               {"id": "dflt", "stack": "cuda-native", **row},
               {"id": "graph8", "gpus_per_process": 8, "stack": "cuda-graphs", **row},
               {"id": "graph1", "gpus_per_process": 1, "stack": "cuda-graphs", **row})
    r = correlate(df).per_row.set_index("id")["predicted_time_s"]
    host = load_stack("cuda-native").runtime.collective_launch_s
    assert host > 0
    assert r["g8"] - r["np8"] == pytest.approx(7 * host)
    assert r["dflt"] == pytest.approx(r["np8"])
    assert r["graph8"] == pytest.approx(r["graph1"])
    assert r["np8"] - r["graph1"] == pytest.approx(host)


def test_a_loop_of_back_to_back_calls_hides_the_host_behind_the_devices():
    """nccl-tests times -n calls enqueued back to back and divides (timing "loop"): a call costs
    the larger of the host enqueue (once per device the thread drives) and the device work, not
    their sum. Small messages: the -g 8 host enqueue (8 x h) sets the time when it exceeds the
    device latency; large ones: the device time alone, the same as one process per GPU."""
    base = {"kind": "allreduce", "system": "dgx-a100", "chips": 8, "ranks": 8, "dtype": "fp32",
            "stack": "cuda-native", "measured_time_s": 1e-5}
    rows = []
    for size in (8, 2**30):
        for g in (1, 8):
            for timing in ("loop", "call"):
                rows.append({"id": f"{size}-{g}-{timing}", "bytes": size, "gpus_per_process": g, "timing": timing,
                             **base})
    r = correlate(frame(*rows)).per_row.set_index("id")["predicted_time_s"]
    h = load_stack("cuda-native").runtime.collective_launch_s
    for size in (8, 2**30):
        dev = r[f"{size}-1-call"] - h  # one process per GPU, timed one call at a time: device + one enqueue
        assert r[f"{size}-8-call"] == pytest.approx(dev + 8 * h)
        assert r[f"{size}-8-loop"] == pytest.approx(max(dev, 8 * h))
        assert r[f"{size}-1-loop"] == pytest.approx(max(dev, h))
    assert r["1073741824-8-loop"] == pytest.approx(r["1073741824-1-loop"])  # bandwidth-bound: host hidden
    with pytest.raises(MeasurementError, match="timing.*collective row"):
        correlate(frame({"id": "k", "kind": "gemm", "system": "a100-sxm-80gb", "m": 8, "n": 8, "k": 8,
                         "dtype": "bf16", "timing": "loop", "measured_time_s": 1e-5}))


def test_continuous_batching_reduces_to_the_static_step_at_one_request():
    """One request in flight brings no other prompts: its TPOT is the plain decode step (within
    the prefill-of-one-token vs decode-at-context-1 difference), and more requests in flight
    make every iteration slower (their decode tokens and their amortised prompts)."""
    base = {"kind": "model", "system": "h100-sxm-80gb", "model": "llama-3-8b", "dtype": "bf16", "phase": "decode",
            "metric": "tpot", "input_len": 1024, "output_len": 256, "measured_time_s": 1e-3}
    df = frame({"id": "static", "batch": 1, **base}, {"id": "c1", "concurrency": 1, **base},
               {"id": "c16", "concurrency": 16, **base}, {"id": "s16", "batch": 16, **base})
    r = correlate(df).per_row.set_index("id")["predicted_time_s"]
    assert r["c1"] == pytest.approx(r["static"], rel=0.02)
    assert r["c16"] > r["s16"]  # the same decode tokens plus 15 x 1024 / 256 = 60 prompt tokens per iteration


def test_a_serving_row_whose_kv_cache_outgrows_the_hbm_is_skipped():
    """Llama-3-8B in bf16 on one 80 GiB H100: weights 8.03e9 x 2 B = 14.96 GiB, KV cache
    32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B = 128 KiB a token. 64 sequences of
    1024 + 7000 tokens hold 62.7 GiB of KV (77.7 GiB in all: fits); of 1024 + 8000 tokens
    70.5 GiB (85.5 GiB: does not fit), whether batched statically or 64 requests in flight."""
    base = {"kind": "model", "system": "h100-sxm-80gb", "model": "llama-3-8b", "dtype": "bf16", "phase": "decode",
            "metric": "throughput", "input_len": 1024, "measured_time_s": 1e-3}
    res = correlate(frame({"id": "fits", "batch": 64, "output_len": 7000, **base},
                          {"id": "static", "batch": 64, "output_len": 8000, **base},
                          {"id": "continuous", "concurrency": 64, "output_len": 8000, **base},
                          {"id": "tpot", "batch": 64, "output_len": 8000, "context_len": 9000,
                           **{**base, "metric": "tpot"}})).per_row.set_index("id")
    assert not res.loc["fits", "skipped"] and res.loc["fits", "predicted_time_s"] > 0
    for rid in ("static", "continuous", "tpot"):
        assert res.loc[rid, "skipped"] and "does not fit" in res.loc[rid, "reason"] and "80 GiB" in res.loc[rid, "reason"]


@pytest.mark.parametrize("p,m,v", [(4, 8, 1), (4, 8, 2), (4, 8, 4), (2, 6, 3)])
def test_interleaved_pipeline_bubble_is_the_closed_form(p, m, v):
    """Equal stages, no communication: interleaved 1F1B finishes at (m + (p - 1) / v)(t_f + t_b)
    (Narayanan et al. 2021, section 2.2.2: the bubble shrinks by the number of chunks v)."""
    from accelsim.sim.pipeline import StageTimes, simulate_pipeline

    run = simulate_pipeline([StageTimes(1.0, 0.0, 2.0, 0.0) for _ in range(p)], m, chunks=v)
    assert run.pipeline_time_s == pytest.approx((m + (p - 1) / v) * 3.0)
    assert run.bubble_fraction == pytest.approx(((p - 1) / v) / (m + (p - 1) / v))


def test_interleaving_needs_whole_groups_of_microbatches():
    from accelsim.sim.pipeline import StageTimes, simulate_pipeline

    with pytest.raises(Exception, match="multiple of pp"):
        simulate_pipeline([StageTimes(1.0, 0.0, 2.0, 0.0)] * 4, 6, chunks=2)


def test_a_program_runtime_pays_one_program_execution_per_step():
    """XLA / Neuron run a model step as one compiled program: the runtime's cost per program
    execution is paid once per step, on top of the ops (which pay no per-kernel launch)."""
    from accelsim.api import evaluate

    for fidelity in ("analytical", "event"):
        r = evaluate("tpu-v5e", "tiny", phase="decode", batch=1, context_len=64, fidelity=fidelity)
        call = load_stack("xla-tpu").runtime.kernel_launch_s
        assert call > 0
        span = r.ops["time_s"].sum() if fidelity == "analytical" else r.event.makespan_s
        assert r.summary["latency_s"] == pytest.approx(span + call)
        assert r.summary["time_by_bound_s"]["overhead"] >= call
    # a kernel-dispatch runtime has no per-step cost of its own
    g = evaluate("h100-sxm-80gb", "tiny", phase="decode", batch=1, context_len=64)
    assert g.summary["latency_s"] == pytest.approx(g.ops["time_s"].sum())


def test_a_synchronous_engine_pays_per_step_and_per_request():
    """vLLM's V0 engine does its host work between steps request by request: a decode step of
    b requests pays step_overhead_s + b * request_overhead_s on top of its ops (0.1 ms + b x
    0.1 ms, cited in the stack file); the same cost in sweeps."""
    from accelsim.api import evaluate
    from accelsim.stack.realize import step_cost_s

    st = load_stack("vllm-cuda")
    assert st.serving.step_overhead_s == pytest.approx(1e-4) and st.serving.request_overhead_s == pytest.approx(1e-4)
    assert step_cost_s(st, 32) == pytest.approx(1e-4 + 32e-4)
    for b in (1, 32):
        r = evaluate("h100-sxm-80gb", "tiny", phase="decode", batch=b, context_len=64, stack="vllm-cuda")
        assert r.summary["latency_s"] == pytest.approx(r.ops["time_s"].sum() + 1e-4 * (1 + b))
    # an engine without a cited figure adds nothing
    assert step_cost_s(load_stack("trtllm-cuda"), 64) == 0.0


def test_neuron_tp_counts_cores_and_pads_heads_it_does_not_divide():
    """inf2-48xl: 24 NeuronCores on 12 Inferentia2 chips; Llama-2-7B's 32 heads are padded to 48
    (2 per core), its 11008-wide MLP to 11016 (a multiple of 24), as the Neuron stack pads."""
    from click.testing import CliRunner

    from accelsim.api import evaluate
    from accelsim.cli import main

    r = evaluate("inf2-48xl", "llama-2-7b", phase="decode", batch=1, context_len=256, tp=24)
    assert r.summary["tp"] == 12 and r.summary["tp_ranks"] == 24
    assert "heads 32 -> 48" in r.summary["padding"] and "11008 -> 11016" in r.summary["padding"]
    out = CliRunner().invoke(main, ["run", "inf2-48xl", "llama-2-7b", "--tp", "24"])
    assert out.exit_code == 0, out.output
    assert "tp=24 NeuronCores on 12 chips" in out.output and "padded for tp=24" in out.output
    # a degree that divides the heads pads nothing
    r = evaluate("inf2-48xl", "llama-2-7b", phase="decode", batch=1, context_len=256, tp=8)
    assert r.summary["tp"] == 4 and "padding" not in r.summary


def test_cli_training_takes_the_framework_defaults_unless_given():
    from click.testing import CliRunner

    from accelsim.cli import main

    args = ["run", "dgx-h100", "tiny", "--phase", "train", "--batch", "8", "--seq", "128", "--tp", "2", "--dp", "4"]
    out = CliRunner().invoke(main, args + ["--stack", "megatron"])
    assert out.exit_code == 0, out.output
    assert "dp=4 ep=1 cp=1 sp (tp overlap), zero 1, recompute none" in out.output and "stack megatron-cuda" in out.output
    out = CliRunner().invoke(main, args + ["--stack", "megatron", "--no-tp-overlap"])
    assert "dp=4 ep=1 cp=1 sp, zero 1" in out.output
    out = CliRunner().invoke(main, args + ["--stack", "megatron", "--no-sp", "--zero", "0"])
    assert "cp=1, zero 0" in out.output  # no sequence parallelism: nothing to overlap
    out = CliRunner().invoke(main, args)  # no framework: nothing on
    assert "cp=1, zero 0, recompute none" in out.output


def test_training_reports_model_tflops_per_chip_against_the_dtype_dense_peak():
    """MFU = model FLOP/s per chip / the dense peak of the run's compute dtype: for an FP8 run on
    H100 SXM that peak is 1,979 TFLOP/s (NVIDIA H100 datasheet, FP8 Tensor Core without sparsity)."""
    r = evaluate_train("dgx-h100", "tiny", 8, 128, tp=2, dp=4, dtype="fp8").summary
    assert r["peak_flops_per_chip"] == pytest.approx(1979e12, rel=0.01)
    assert r["mfu"] == pytest.approx(r["model_flops_per_s_per_chip"] / r["peak_flops_per_chip"])
