"""TensorRT-LLM before XQA (v0.8): GQA decode attention through the masked multi-head attention
kernel, one thread block per query head."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.arch import load_system
from accelsim.correlate import correlate, load_measurements
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.stack import load_stack
from accelsim.stack.realize import realize
from accelsim.workload.ops import FlashAttention

SERVE = Path(__file__).resolve().parents[1] / "workloads/measurements/validation/serve_published.csv"


def test_each_query_head_loads_its_kv_head():
    system = load_system("h100-sxm-80gb")
    legacy = ChipModel(realize(system, load_stack("trtllm-legacy-cuda")))
    xqa = ChipModel(realize(system, load_stack("trtllm-cuda")))
    assert legacy.attn_per_head and not xqa.attn_per_head
    # Llama-2-70B on one chip: 64 query heads over 8 K/V heads, 256 sequences at 2,048 cached tokens
    op = FlashAttention(batch=256, heads=64, kv_heads=8, q_len=1, kv_len=2048, head_dim=128, dtype="bf16")
    kv = 256 * 8 * 2048 * 2 * 128 * 2  # K and V of every sequence's K/V heads, bf16
    c = op_cost(legacy, op)
    # one K/V head is 1 MiB, within half the 50 MiB L2: HBM reads it once, the load paths 8 times
    assert c.hbm_bytes == pytest.approx(kv + 256 * 64 * 256 * 2)
    load_rate = min(legacy.shared_bw, legacy.cores * legacy.core_bw)
    assert c.memory_s == pytest.approx((kv * 8 + 256 * 64 * 256 * 2) / load_rate)
    # the packed-group kernel streams it once: several times faster
    assert c.time_s > 3 * op_cost(xqa, op).time_s
    # prefill (many queries) runs the fused context kernel either way (the legacy stack enqueues it
    # without CUDA graphs: its launch costs cuda-native's 3.05 us, not cuda-graphs' 1.71 us)
    pre = FlashAttention(batch=1, heads=64, kv_heads=8, q_len=2048, kv_len=2048, head_dim=128, dtype="bf16")
    a, b = op_cost(legacy, pre), op_cost(xqa, pre)
    assert a.time_s - a.overhead_s == pytest.approx(b.time_s - b.overhead_s)
    assert a.overhead_s - b.overhead_s == pytest.approx(load_stack("cuda-native").runtime.kernel_launch_s
                                                        - load_stack("cuda-graphs").runtime.kernel_launch_s)


def test_legacy_rows_decode_as_measured():
    df = load_measurements(SERVE)
    legacy = df[df["stack"] == "trtllm-legacy"]
    assert set(legacy["id"]) == {f"sv-0{i}" for i in range(39, 54)}  # v0.5 / v0.6.1 / TensorRT 9.1 rows
    rows = correlate(legacy).per_row.set_index("id")
    ratio = rows["predicted_time_s"] / rows["measured_time_s"]
    # the Llama-2-70B decode rows (GQA); they were 0.44, 0.71 and 0.74 of measured as XQA kernels
    for r in ("sv-049", "sv-052", "sv-053"):
        assert 0.8 <= ratio[r] <= 1.15, (r, ratio[r])


def test_event_tier_lowers_the_per_head_kernel():
    from accelsim.sim.event import simulate
    from accelsim.workload.graph import WorkloadGraph, WorkloadMeta

    op = FlashAttention(name="attn", batch=64, heads=64, kv_heads=8, q_len=1, kv_len=1024, head_dim=128,
                        dtype="bf16")
    times = {}
    for stack in ("trtllm-legacy-cuda", "trtllm-cuda"):
        spec = realize(load_system("h100-sxm-80gb"), load_stack(stack))
        g = WorkloadGraph(WorkloadMeta(model="x", phase="decode", batch=64))
        g.add(op)
        times[stack] = (simulate(g, spec).makespan_s, op_cost(ChipModel(spec), op).time_s)
    ev, an = times["trtllm-legacy-cuda"]
    assert ev == pytest.approx(an, rel=0.25)  # the two tiers agree on the per-head kernel
    assert ev > 2 * times["trtllm-cuda"][0]  # and both find it slower than the packed one


def test_tensorrt_engine_rows_run_without_cuda_graphs():
    # TensorRT-LLM's C++ benchmarks run the TensorRT engine without CUDA graphs unless asked
    # (gptSessionBenchmark --enable_cuda_graph; gptManagerBenchmark cuda_graph_mode, default false):
    # every kernel and NCCL call pays the C++ enqueue cost of cuda-native, not graph replay's
    native, graphs = load_stack("cuda-native").runtime, load_stack("cuda-graphs").runtime
    # NIM for LLMs 1.x serves TensorRT engines through the same executor, whose runtime knobs
    # default to cudaGraphMode = false
    for name in ("trtllm-engine-cuda", "trtllm-legacy-cuda", "nim-cuda"):
        rt = load_stack(name).runtime
        assert rt.kernel_launch_s == native.kernel_launch_s > graphs.kernel_launch_s
        assert rt.collective_launch_s == native.collective_launch_s > graphs.collective_launch_s == 0
    assert load_stack("trtllm-cuda").runtime.kernel_launch_s == graphs.kernel_launch_s
    df = load_measurements(SERVE)
    amd = df[df["notes"].str.contains("TensorRT-LLM 0.16.0, emulated static batching", na=False)]
    assert len(amd) == 7 and set(amd["stack"]) == {"trtllm-engine"}
