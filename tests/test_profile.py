"""Profiles of real runs (accelsim.profile): Kineto / Chrome traces in, per-op table, unmatched
share and where the step's time went out. Expected splits are derived by hand from the fixture
(tests/data/profiles/gpu_step.json): step [0, 200] us; stream 7 runs a GEMM [10, 60], an
elementwise mul [70, 90] and a GEMM [130, 180]; stream 20 an NCCL all-reduce [20, 170]; the host
sits in cudaDeviceSynchronize over [185, 200]."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from accelsim.cli import main
from accelsim.errors import ConfigError
from accelsim.profile import RULES, load_trace, match_work
from accelsim.profile.report import profile_report

DATA = Path(__file__).parent / "data" / "profiles"
GPU = DATA / "gpu_step.json"
CPU = DATA / "llama_cpu_fwd_bwd.json.gz"
US = 1e-6


def test_gpu_fixture_split_by_hand():
    t = load_trace(GPU)
    assert t.kind == "gpu" and len(t.work) == 4  # every kernel kept
    assert t.step_s == pytest.approx(200 * US)
    # summing kernel times is 35 % off the step: the all-reduce overlaps the compute
    assert t.work["dur_s"].sum() == pytest.approx(270 * US)
    r = profile_report(t)
    b = r.breakdown
    # compute busy: [10,60] + [70,90] + [130,180] = 120 us, no prediction without a system
    assert b["other_work"] == pytest.approx(120 * US)
    # the all-reduce [20,170] outside compute: [60,70] + [90,130] = 50 us
    assert b["exposed_communication"] == pytest.approx(50 * US)
    # device idle [0,10] and [180,200]; the sync covers [185,200]
    assert b["synchronization"] == pytest.approx(15 * US)
    assert b["launch_host_bound"] == pytest.approx(15 * US)
    assert sum(b.values()) == pytest.approx(r.step_s)
    assert [k for k, _ in RULES] == list(b)


def test_gpu_fixture_matches_ops_with_shapes_and_predicts():
    r = profile_report(load_trace(GPU), "dgx-h100")
    w = r.work.set_index("correlation")
    mm = w.loc[101, "accel_op"]
    assert (mm.m, mm.n, mm.k, mm.dtype_a) == (4096, 1024, 8192, "bf16")
    assert w.loc[103, "accel_op"].n == 8192
    coll = w.loc[104, "accel_op"]
    assert coll.op == "allreduce" and coll.group == 8 and coll.bytes_per_rank == 4194304 * 2
    assert r.unmatched_share == 0.0 and (w["predicted_s"] > 0).all()
    b = r.breakdown
    work = sum(b[k] for k in ("compute_at_achievable", "compute_below_achievable", "memory_at_achievable",
                              "memory_below_achievable", "other_work"))
    assert work == pytest.approx(120 * US) and b["other_work"] == 0.0
    assert sum(b.values()) == pytest.approx(200 * US)


def test_cpu_profile_report_keeps_every_op():
    t = load_trace(CPU)
    assert t.kind == "cpu"
    m = match_work(t.work)
    # the forward and backward GEMMs of 2 steps x 2 blocks x 4 linears: forward 8 per step,
    # backward 16 per step (grad input and grad weight)
    assert (m["name"] == "aten::mm").sum() == 48
    assert m.loc[m["name"] == "aten::mm", "matched"].all()
    r = profile_report(t)
    assert r.ops.loc["aten::mm", "share"] > 0.5
    assert r.ops["count"].sum() == len(m)  # nothing dropped from the table
    unmatched = r.ops[~r.ops["matched"]]["measured_s"].sum() / m["dur_s"].sum()
    assert r.unmatched_share == pytest.approx(unmatched) and 0 < r.unmatched_share < 0.2
    assert sum(r.breakdown.values()) == pytest.approx(r.step_s)


def test_fresh_torch_cpu_profile(tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "t.json"
    code = f"""
import torch
x = torch.randn(64, 128)
w = torch.randn(128, 256)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as p:
    for _ in range(3):
        y = torch.nn.functional.silu(x @ w)
p.export_chrome_trace({str(out)!r})
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    m = match_work(load_trace(out).work)
    mm = m[m["kind"] == "matmul"]
    assert len(mm) == 3 and all((o.m, o.n, o.k) == (64, 256, 128) for o in mm["accel_op"])
    assert (m["name"] == "aten::silu").sum() == 3
    assert torch.__version__


def test_cli_report_text_json_plot(tmp_path):
    res = CliRunner().invoke(main, ["profile", "report", str(GPU), "--system", "dgx-h100"])
    assert res.exit_code == 0, res.output
    assert "exposed_communication" in res.output and "record_param_comms" in res.output
    res = CliRunner().invoke(main, ["profile", "report", str(CPU), "--json", "--plot", str(tmp_path / "b.png")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["kind"] == "cpu" and set(d["breakdown_s"]) == {k for k, _ in RULES}
    assert (tmp_path / "b.png").stat().st_size > 5000


def test_bad_traces_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"traceEvents": [{"ph": "X", "ts": 1, ')
    with pytest.raises(ConfigError, match="bad.json"):
        load_trace(bad)
    empty = tmp_path / "empty.json"
    empty.write_text('{"traceEvents": []}')
    with pytest.raises(ConfigError, match="no complete"):
        load_trace(empty)
    res = CliRunner().invoke(main, ["profile", "report", str(tmp_path / "missing.json")])
    assert res.exit_code == 2 and "no such trace file" in res.output


DEVICE_BOUND = DATA / "gpu_device_bound.json"


@pytest.mark.parametrize("trace", [GPU, DEVICE_BOUND, CPU])
def test_replay_within_5_percent(trace):
    from accelsim.profile.replay import replay

    r = replay(load_trace(trace))
    assert abs(r.error) < 0.05 and r.tasks > 10


def test_replay_models_queueing_not_timestamps():
    # device-bound fixture by hand: launches return at 8, 13, 18, 23 us; launch-to-start latency
    # is 2 us (the kernels launched onto an idle stream); the GEMMs queue on stream 7 back to
    # back: [10,60], [60,100], [100,160]; the host syncs at 25 and waits to 160, plus the call's
    # own 2 us, then 3 us of host time: 165 us. Doubling the GEMMs doubles the device part only.
    from accelsim.profile.replay import replay

    t = load_trace(DEVICE_BOUND)
    r = replay(t)
    assert r.launch_latency_s == pytest.approx(2 * US) and r.replayed_s == pytest.approx(165 * US)
    gemm = t.work["name"].str.contains("gemm")
    longer = replay(t, t.work["dur_s"].where(~gemm, 2 * t.work["dur_s"]))
    assert longer.replayed_s == pytest.approx((10 + 2 * 150 + 2 + 3) * US)


def test_whatif_replaces_matched_ops_only():
    from accelsim.profile.replay import whatif

    base, new, table = whatif(load_trace(GPU), "dgx-h100")
    assert base.error == pytest.approx(0.0, abs=1e-9)
    assert table.loc["aten::mm", "predicted"] and table.loc["aten::mul", "predicted"]
    assert new.replayed_s != base.replayed_s and new.replayed_s > 0
    res = CliRunner().invoke(main, ["profile", "whatif", str(DEVICE_BOUND), "--system", "trn2"])
    assert res.exit_code == 0 and "aten::mm" in res.output and "no prediction" in res.output
    res = CliRunner().invoke(main, ["profile", "replay", str(DEVICE_BOUND), "--json"])
    assert res.exit_code == 0 and abs(json.loads(res.output)["error"]) < 0.05


def test_trace_ops_become_measurement_rows_for_correlate():
    from accelsim.correlate.compare import correlate
    from accelsim.profile.rows import measurement_rows

    rows = measurement_rows(load_trace(DEVICE_BOUND), "dgx-h100")
    rows = rows.sort_values("measured_time_s").reset_index(drop=True)  # 40, 50, 60 us GEMMs, the 100 us all-reduce
    assert list(rows["kind"]) == ["gemm", "gemm", "gemm", "allreduce"]
    g = rows.iloc[2]
    assert (g["m"], g["n"], g["k"], g["dtype"]) == (8192, 8192, 4096, "bf16")
    assert rows.iloc[3]["bytes"] == 33554432 * 2 and rows.iloc[3]["ranks"] == 8
    assert rows["measured_time_s"].tolist() == pytest.approx([40 * US, 50 * US, 60 * US, 100 * US])
    res = correlate(rows)
    assert res.overall["predicted"] == 4
    out = CliRunner().invoke(main, ["correlate", str(DEVICE_BOUND), "--system", "dgx-h100"])
    assert out.exit_code == 0 and "4 rows: 4 predicted" in out.output
    out = CliRunner().invoke(main, ["correlate", str(DEVICE_BOUND)])
    assert out.exit_code == 2 and "--system" in out.output


def test_calibrate_takes_a_trace(tmp_path):
    out = tmp_path / "cal.yaml"
    res = CliRunner().invoke(main, ["calibrate", str(DEVICE_BOUND), "--system", "dgx-h100", "-o", str(out),
                                    "--k", "2"])
    assert res.exit_code == 0, res.output
    assert "on 4 rows" in res.output and out.exists()


def test_rows_track_and_dashboard_section(tmp_path):
    rows, db, rep, page = (tmp_path / n for n in ("rows.csv", "t.db", "rep.json", "d.html"))
    runner = CliRunner()
    res = runner.invoke(main, ["profile", "rows", str(DEVICE_BOUND), "--system", "dgx-h100", "-o", str(rows)])
    assert res.exit_code == 0 and "4 rows" in res.output
    assert runner.invoke(main, ["track", str(rows), "--db", str(db)]).exit_code == 0
    res = runner.invoke(main, ["profile", "report", str(GPU), "--system", "dgx-h100", "--json"])
    rep.write_text(res.output)
    res = runner.invoke(main, ["dashboard", "--db", str(db), "-o", str(page), "--profile", str(rep)])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    assert "where each traced step" in html and "exposed_communication" in html and "record_param_comms" in html
    assert html.count("data:image/png") >= 3  # history, scatter and the profile's breakdown


def test_whatif_under_a_compression_recipe():
    from accelsim.compress.recipes import as_compression
    from accelsim.profile.replay import compressed, whatif
    from accelsim.workload.ops import FlashAttention, MatMul

    r = as_compression("w4a16-g128")
    w = compressed(MatMul(m=8, n=4096, k=4096, b_shared=True), r)
    assert w.dtype_b == r.weights and w.emulate
    act = MatMul(m=8, n=64, k=128, batch=32)  # activations @ activations: not a weight
    assert compressed(act, r) is act
    fa = FlashAttention(batch=1, heads=8, kv_heads=8, q_len=1, kv_len=4096, head_dim=128)
    assert compressed(fa, r) is fa or compressed(fa, r).kv_dtype == r.kv_cache
    _, plain, t0 = whatif(load_trace(DEVICE_BOUND), "dgx-h100")
    _, w4, t1 = whatif(load_trace(DEVICE_BOUND), "dgx-h100", compression="w4a16-g128")
    assert t1.loc["aten::mm", "predicted_s"] != t0.loc["aten::mm", "predicted_s"]
    assert t1.loc["record_param_comms", "predicted_s"] == t0.loc["record_param_comms", "predicted_s"]


def test_tp_reshard_follows_megatron_roles():
    from accelsim.errors import WorkloadError
    from accelsim.profile.tp import reshard
    from accelsim.workload.ops import Elementwise, FlashAttention, MatMul, RMSNorm, Softmax

    T, H, I = 2048, 4096, 14336  # Llama-3-8B shapes, one layer's forward and one weight gradient
    lin = lambda n, k, m=T: MatMul(m=m, n=n, k=k, b_shared=True)  # noqa: E731
    ops = [RMSNorm(rows=T, cols=H), lin(H, H), lin(1024, H), FlashAttention(batch=1, heads=32, kv_heads=8, q_len=T,
           kv_len=T, head_dim=128), lin(H, H), Elementwise(fn="add", elements=T * H), lin(I, H),
           Elementwise(fn="mul", elements=T * I), lin(H, I), lin(H, T, m=I), None,
           Softmax(rows=T, cols=128256), Softmax(rows=32 * T, cols=T)]
    new, ar = reshard(ops, tp=4)
    assert new[0] == ops[0] and new[5] == ops[5] and new[10] is None     # norm, residual add: whole
    assert (new[1].n, new[1].k) == (1024, H)                              # q_proj: column-parallel
    assert new[2].n == 256                                                # k_proj: column-parallel
    assert (new[3].heads, new[3].kv_heads) == (8, 2)                      # attention: by heads
    assert (new[4].n, new[4].k) == (H, 1024)                              # o_proj after attention: row-parallel
    assert new[6].n == I // 4 and new[7].elements == T * I // 4           # gate and the SiLU x mul
    assert (new[8].n, new[8].k) == (H, I // 4)                            # down_proj: row-parallel
    assert (new[9].m, new[9].n, new[9].k) == (I // 4, H, T)               # down_proj's weight gradient
    assert (new[11].rows, new[11].cols) == (T, 128256 // 4)               # the loss: vocab-parallel
    assert (new[12].rows, new[12].cols) == (8 * T, T)                     # attention probabilities: by heads
    # the two row-parallel GEMMs are followed by an all-reduce of their T x H bf16 output over 4 ranks
    assert [i for i, a in enumerate(ar) if a is not None] == [4, 8]
    assert ar[4].bytes_per_rank == T * H * 2 and ar[4].group == 4 and ar[4].op == "allreduce"
    # from TP 4 back to 1: the shapes come back, no all-reduce
    back, none = reshard(new, tp=1, traced_tp=4, hidden=H)
    assert back[1:5] == ops[1:5] and back[8] == ops[8] and not any(none)
    with pytest.raises(WorkloadError, match="attention heads = 32 does not shard"):
        reshard(ops, tp=64)


def test_whatif_at_another_tp_degree():
    from accelsim.profile.replay import whatif

    t = load_trace(CPU)
    _, one, t1 = whatif(t, "dgx-h100")
    _, same, ts = whatif(t, "dgx-h100", tp=1)
    assert same.replayed_s == pytest.approx(one.replayed_s)  # degree 1 -> 1: nothing re-sharded
    _, two, t2 = whatif(t, "dgx-h100", tp=2)
    # the MLP GEMMs halve their intermediate side: less work per GEMM, but each row-parallel one
    # now waits for an all-reduce, which at these tiny shapes costs more than it saves
    assert t2.loc["aten::mm", "predicted_s"] > t1.loc["aten::mm", "predicted_s"]
    assert t2.loc["aten::silu", "predicted_s"] < t1.loc["aten::silu", "predicted_s"]
    res = CliRunner().invoke(main, ["profile", "whatif", str(CPU), "--system", "dgx-h100", "--tp", "2"])
    assert res.exit_code == 0 and "at TP 2" in res.output
    res = CliRunner().invoke(main, ["profile", "whatif", str(CPU), "--system", "dgx-h100", "--tp", "16"])
    assert res.exit_code != 0 and "needs 16 chips" in res.output and "Traceback" not in res.output


def test_trace_rows_name_their_kernel_library(tmp_path):
    """A LayerNorm launched as a Triton kernel and a softmax as an ATen one (Kineto-shaped,
    written here): their rows carry the library, so each is predicted at its library's rate."""
    from accelsim.profile.rows import kernel_library, measurement_rows
    from accelsim.stack.presets import load_kernels

    def op(name, eid, ts, dims):
        return {"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": 4.0,
                "args": {"External id": eid, "Input Dims": dims, "Input type": ["float"]}}

    def launch(eid, ts, corr):
        return {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": ts,
                "dur": 2.0, "args": {"correlation": corr, "External id": eid}}

    def kernel(name, ts, dur, corr):
        return {"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": 7, "ts": ts, "dur": dur,
                "args": {"correlation": corr, "stream": 7}}

    dims = [[8192, 8192], [8192], [8192], []]
    ev = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0, "dur": 2000},
          op("aten::layer_norm", 1, 10, dims), launch(1, 11, 101),
          kernel("triton_red_fused_native_layer_norm_0", 20, 400.0, 101),
          op("aten::_softmax", 2, 30, [[8192, 8192], [], []]), launch(2, 31, 102),
          kernel("void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>", 500, 500.0, 102)]
    path = tmp_path / "norms.json"
    path.write_text(json.dumps({"traceEvents": ev}))
    rows = measurement_rows(load_trace(path), "a100-sxm-80gb", "cuda-native").set_index("kind")
    assert rows.loc["layernorm", "kernels"] == "triton" and rows.loc["softmax", "kernels"] == "aten"
    assert kernel_library("sm90_xmma_gemm_bf16") is None
    from accelsim.correlate.compare import correlate

    res = correlate(rows.reset_index())
    assert res.overall["predicted"] == 2
    per = res.per_row.set_index("kind")
    # both 8192 x 8192 fp32, 256 MiB each way: the ATen softmax is predicted slower by the ratio of
    # the libraries' fractions (launch costs are < 1 %)
    ratio = per.loc["softmax", "predicted_time_s"] / per.loc["layernorm", "predicted_time_s"]
    assert ratio == pytest.approx(load_kernels("triton").reduction_efficiency
                                  / load_kernels("aten").reduction_efficiency, rel=0.03)


# --------------------------------------------------------------------------------------------
# real traces: Llama-3-8B eager steps on one H200 (benchmarks/silicon/trace_steps.py, PyTorch
# 2.11 + CUDA 13: cuBLAS and cuDNN launch their kernels through the driver API)

H200_DECODE = DATA / "h200_llama3_8b_decode_8x1024.json.gz"  # 2 decode steps, batch 8, context 1024
H200_PREFILL = DATA / "h200_llama3_8b_prefill_1x512.json.gz"  # 1 prefill, 512 tokens


def test_driver_api_launches_join_their_ops():
    """nvjet GEMMs (cuLaunchKernelEx) belong to aten::mm; Llama-3-8B's projections at batch 8,
    by hand from its config: QKV 8x6144x4096, out 8x4096x4096, gate/up 8x28672x4096, down
    8x4096x14336, LM head 8x128256x4096 (the last token of each of the 8 sequences)."""
    w = match_work(load_trace(H200_DECODE).work)
    mm = w[w["op"] == "aten::mm"]
    shapes = {(o.m, o.n, o.k) for o in mm["accel_op"] if o is not None}
    assert shapes == {(8, 6144, 4096), (8, 4096, 4096), (8, 28672, 4096), (8, 4096, 14336), (8, 128256, 4096)}
    assert mm["name"].str.startswith("nvjet").any()
    device = w["dur_s"].sum()
    assert w.loc[~w["matched"], "dur_s"].sum() / device < 0.05


def test_cudnn_attention_is_attention_and_gathers_count_rows():
    rep = profile_report(load_trace(H200_PREFILL), "h200-sxm-141gb", "cuda-eager")
    ops = rep.ops
    assert ops.loc["aten::_cudnn_attention_forward", "kind"] == "attention"  # not its workspace memset
    w = match_work(load_trace(H200_DECODE).work)
    emb = [o for o in w.loc[w["op"] == "aten::index_select", "accel_op"] if o is not None]
    assert emb and all(o.elements == 8 * 4096 for o in emb)  # 8 token rows of the 128256 x 4096 table


def test_trace_predictions_are_device_time_without_host_dispatch():
    """A trace times host dispatch as gaps between kernels, so a kernel's prediction must not
    carry the stack's per-call host cost (cuda-eager: ~13.5 us a kernel)."""
    from accelsim.stack.presets import load_stack

    rep = profile_report(load_trace(H200_DECODE), "h200-sxm-141gb", "cuda-eager")
    w = rep.work
    launch = load_stack("cuda-eager").runtime.kernel_launch_s
    adds = w.loc[w["op"] == "aten::add", "predicted_s"]
    assert len(adds) and (adds < launch).all()
    head = w.loc[[getattr(o, "n", 0) == 128256 for o in w["accel_op"]], "predicted_s"]
    # 1.05 GB of weights: between the 4.8 TB/s peak and half of it
    assert ((head > 1.0528e9 / 4.8e12) & (head < 1.0528e9 / 2.4e12)).all()
    assert rep.breakdown["launch_host_bound"] > 0.5 * rep.step_s  # eager decode is host-bound


H200_TRAIN = DATA / "h200_gpt3_5b_train_1x2048.json.gz"  # gpt3-5b: forward, backward, AdamW on fp32 master


def test_an_op_call_with_several_kernels_is_predicted_once():
    """Split-K GEMMs launch a reduction after the GEMM, cuDNN's attention backward four kernels:
    the op's prediction is spread over its kernels, so the kernels of one call sum to it."""
    from accelsim.arch.presets import load_system
    from accelsim.cost.op_cost import ChipModel, op_cost
    from accelsim.profile.report import predict
    from accelsim.stack.presets import load_stack
    from accelsim.stack.realize import realize

    w = match_work(load_trace(H200_DECODE).work)
    pred, _ = predict(w, "h200-sxm-141gb", "cuda-eager")
    mm = w[(w["op"] == "aten::mm") & w["matched"]]
    calls = mm.groupby("external_id").size()
    split = calls[calls == 2].index  # the split-K ones: GEMM + reduction
    assert len(split) > 0
    st = load_stack("cuda-eager")
    device_only = st.model_copy(update={"runtime": st.runtime.model_copy(
        update={"kernel_launch_s": 0.0, "tensor_launch_s": 0.0, "collective_launch_s": 0.0})})
    cm = ChipModel(realize(load_system("h200-sxm-141gb"), device_only))
    for eid in split[:5]:
        rows = mm[mm["external_id"] == eid]
        assert pred[rows.index].sum() == pytest.approx(op_cost(cm, rows["accel_op"].iloc[0]).time_s, rel=1e-9)


def test_training_trace_matches_casts_and_attention_backward():
    w = match_work(load_trace(H200_TRAIN).work)
    # logits.float() before the loss: a bf16 -> fp32 copy of 2048 x 50257 (gpt3-5b's vocabulary)
    casts = [o for o in w.loc[w["op"] == "aten::copy_", "accel_op"] if o is not None and o.elements == 2048 * 50257]
    assert casts and casts[0].dtype == "bf16" and casts[0].dtype_out == "fp32"
    # cuDNN's attention backward: the forward op at 2.5 x the head dim (the training graph's bwd.attn)
    bwd = [o for o in w.loc[w["op"] == "aten::_cudnn_attention_backward", "accel_op"] if o is not None]
    assert bwd and {(o.batch, o.heads, o.q_len, o.head_dim) for o in bwd} == {(1, 32, 2048, 320)}
    # AdamW's fused kernels record no tensor-list shapes: left unmatched, said so
    assert not w.loc[w["op"] == "aten::_fused_adamw_", "matched"].any()


def test_hugging_face_decode_is_host_bound_with_its_own_kernels():
    """Hugging Face transformers' Llama-3-8B decode step (batch 1, context 1024) on an H200:
    separate q / k / v projections (4096x4096, 4096x1024, 4096x1024 at m = 1), an eight-kernel
    RMSNorm (its pow / mean / rsqrt), and most of the step spent with the device idle."""
    t = load_trace(DATA / "h200_hf_llama3_8b_decode_1x1024.json.gz")
    w = match_work(t.work)
    shapes = {(o.m, o.n, o.k) for o in w.loc[w["op"] == "aten::mm", "accel_op"] if o is not None}
    assert {(1, 4096, 4096), (1, 1024, 4096), (1, 14336, 4096), (1, 4096, 14336)} <= shapes
    assert {"aten::pow", "aten::mean", "aten::rsqrt"} <= set(w["op"].dropna())
    rep = profile_report(t, "h200-sxm-141gb", "cuda-eager")
    assert rep.breakdown["launch_host_bound"] > 0.8 * rep.step_s


def test_options_that_need_another_are_refused_without_it():
    """A stack without a system (report) and --hidden / --traced-tp without --tp (whatif) were
    dropped silently."""
    from accelsim.errors import WorkloadError
    from accelsim.profile.replay import whatif

    trace = load_trace(DATA / "gpu_device_bound.json")
    with pytest.raises(WorkloadError, match="give the system too"):
        profile_report(trace, stack="cuda-eager")
    for kw in (dict(hidden=4096), dict(traced_tp=2)):
        with pytest.raises(WorkloadError, match="give tp"):
            whatif(trace, "h100-sxm-80gb", **kw)
    t = str(DATA / "gpu_device_bound.json")
    r = CliRunner().invoke(main, ["profile", "report", t, "--stack", "cuda-eager"])
    assert r.exit_code == 2 and "needs --system" in r.output
    r = CliRunner().invoke(main, ["profile", "whatif", t, "--system", "h100-sxm-80gb", "--traced-tp", "2"])
    assert r.exit_code == 2 and "they need --tp" in r.output


def test_garbled_event_times_and_shapes(tmp_path):
    """A trace whose event time is NaN or negative is refused naming the file and the event (a
    NaN duration had left `profile whatif`'s replay running forever); an op whose recorded shape
    or group size is not a size (a NaN, a string, a negative or fractional dimension) stays
    unmatched, of its kind, instead of being priced at a made-up shape or crashing."""
    from accelsim.profile.match import classify

    base = json.loads(DEVICE_BOUND.read_text())
    for value in ("nan", -1.0, True):
        t = json.loads(json.dumps(base))
        t["traceEvents"][13]["dur"] = value
        f = tmp_path / "t.json"
        f.write_text(json.dumps(t))
        with pytest.raises(ConfigError, match=r"t\.json.*ncclDevKernel.*dur"):
            load_trace(f)
    for dims in ([[8192, "nan"], [4096, 4096]], [[8192, -4096], [4096, 4096]], [[8192, 4096.5], [4096, 4096]]):
        assert classify("aten::mm", "aten::mm", dims, ["c10::BFloat16"] * 2, None, "cpu_op") == ("matmul", None)
    good = classify("aten::mm", "aten::mm", [[8192, 4096], [4096, 4096]], ["c10::BFloat16"] * 2, None, "cpu_op")
    assert good[0] == "matmul" and (good[1].m, good[1].n, good[1].k) == (8192, 4096, 4096)
    for group in ("nan", -8, 8.5, [8]):
        extra = {"Collective name": "allreduce", "In msg nelems": 1024, "Group size": group, "dtype": "BFloat16"}
        assert classify("record_param_comms", "nccl:all_reduce", None, None, extra, "cpu_op")[1] is None
    extra = {"Collective name": -1, "In msg nelems": 1024, "Group size": 8, "dtype": "BFloat16"}
    classify("ncclDevKernel_AllReduce", None, None, None, extra, "kernel")  # a number where a name belongs


def test_the_engine_refuses_a_schedule_that_would_never_end():
    import numpy as np

    from accelsim.errors import LoweringError
    from accelsim.lower.schedule import CAT_OVERHEAD, DELAY, ScheduleBuilder
    from accelsim.sim.engine import simulate_schedule

    b = ScheduleBuilder()
    op = b.op("x", "x", "delay")
    b.task(DELAY, CAT_OVERHEAD, op, [], duration_s=float("nan"))
    with pytest.raises(LoweringError, match="never end"):
        simulate_schedule(b.build())
    ok = ScheduleBuilder()
    ok.task(DELAY, CAT_OVERHEAD, ok.op("x", "x", "delay"), [], duration_s=1e-6)
    assert np.isclose(simulate_schedule(ok.build()).makespan_s, 1e-6)
