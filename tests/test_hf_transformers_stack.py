"""The ``hf-transformers`` stack: Hugging Face transformers' own Llama code in PyTorch eager
issues more kernels a layer than a decoder with fused projections and a fused RMSNorm.
Expected values are counted from the library's source (modeling_llama) by hand."""

from __future__ import annotations

import pytest

from accelsim.api import evaluate
from accelsim.arch.presets import load_system
from accelsim.cost.op_cost import ChipModel, kernel_count, op_cost
from accelsim.stack.presets import for_platform, load_stack
from accelsim.stack.realize import realize
from accelsim.workload import build, load_model
from accelsim.workload.eager import composite_rmsnorm
from accelsim.workload.ops import MatMul, RMSNorm


def _cm(stack: str) -> ChipModel:
    return ChipModel(realize(load_system("h200-sxm-141gb"), load_stack(stack)))


def test_the_engine_name_means_the_cuda_stack_on_an_nvidia_system():
    assert for_platform("hf-transformers", "cuda-eager") == "hf-transformers-cuda"
    st = load_stack("hf-transformers-cuda")
    assert st.runtime.host_async  # PyTorch eager's runtime, from its base
    assert st.runtime.kernel_launch_s == load_stack("cuda-eager").runtime.kernel_launch_s


def test_an_rmsnorm_runs_as_the_eight_kernels_of_llamarmsnorm():
    hf, eager = _cm("hf-transformers-cuda"), _cm("cuda-eager")
    norm = RMSNorm(name="n", role="norm_attn", rows=4096, cols=4096, dtype="bf16")
    assert kernel_count(eager, norm) == 1 and kernel_count(hf, norm) == 8
    c = op_cost(hf, norm)
    # eight launches of the eager runtime, and the eight kernels' bytes (36 B an element and
    # 24 B a row: tests/test_composite_norm.py derives them)
    assert c.host_s == pytest.approx(8 * load_stack("cuda-eager").runtime.kernel_launch_s)
    assert c.hbm_bytes == pytest.approx(36 * 4096 * 4096 + 24 * 4096)
    assert c.hbm_bytes == pytest.approx(sum(o.bytes() for o in composite_rmsnorm(4096, 4096, "bf16")))
    assert op_cost(eager, norm).hbm_bytes == pytest.approx(4 * 4096 * 4096 + 2 * 4096)


def test_separate_projections_are_separate_library_calls():
    hf, eager = _cm("hf-transformers-cuda"), _cm("cuda-eager")
    qkv = MatMul(name="q", role="qkv_proj", m=1, n=6144, k=4096, b_shared=True)
    up = MatMul(name="u", role="mlp_up", m=1, n=2 * 14336, k=4096, b_shared=True)
    assert (kernel_count(hf, qkv), kernel_count(hf, up)) == (3, 2)  # q / k / v, gate / up
    assert (kernel_count(eager, qkv), kernel_count(eager, up)) == (1, 1)
    assert op_cost(hf, qkv).host_s == pytest.approx(3 * op_cost(eager, qkv).host_s)


def test_a_decoder_layer_issues_seventeen_kernels_more():
    # per layer, against the fused decoder: two norms of 8 kernels instead of 1 (+14), q / k / v
    # as three GEMMs instead of one (+2), gate and up as two (+1): +17 (the H200 trace in the
    # stack's sources: 46.6 a layer against accelsim.bench.model's 26, its 3 further split-K
    # reduction kernels being part of a GEMM's library call)
    m = load_model("llama-3-8b")
    g = build(m, phase="decode", batch=1, context_len=1024)
    layer = [o for o in g.ops() if getattr(o, "layer", None) == 0]
    hf, eager = _cm("hf-transformers-cuda"), _cm("cuda-eager")
    assert sum(kernel_count(hf, o) for o in layer) - sum(kernel_count(eager, o) for o in layer) == 17


def test_eager_hf_decode_is_slower_and_its_long_prefill_reads_the_norms_in_fp32():
    kw = dict(phase="decode", batch=1, context_len=1024)
    hf = evaluate("h200-sxm-141gb", "llama-3-8b", stack="hf-transformers", **kw).summary["latency_s"]
    eager = evaluate("h200-sxm-141gb", "llama-3-8b", stack="cuda-eager", **kw).summary["latency_s"]
    # host-bound: 17 more launches a layer at the eager runtime's cost each (14 of them vector
    # kernels, 3 library GEMM calls), 32 layers, 7 more for the final norm, and the library's
    # forward outside its layers once a step
    rt = load_stack("cuda-eager").runtime
    extra = (32 * (14 * rt.kernel_launch_s + 3 * (rt.kernel_launch_s + rt.tensor_launch_s))
             + 7 * rt.kernel_launch_s + load_stack("hf-transformers-cuda").serving.step_overhead_s)
    assert hf - eager == pytest.approx(extra, rel=0.02)
    # a 2048-token prefill is device-bound: each eager norm moves 36 B an element and 24 B a
    # row where the fused kernel moves 4 B an element and its weight (2 B a column), over the
    # 64 layer norms and the final norm (run over every token)
    kw = dict(phase="prefill", batch=1, seq_len=2048)
    r_hf = evaluate("h200-sxm-141gb", "llama-3-8b", stack="hf-transformers", **kw)
    r_eager = evaluate("h200-sxm-141gb", "llama-3-8b", stack="cuda-eager", **kw)
    added = r_hf.summary["hbm_bytes_per_chip"] - r_eager.summary["hbm_bytes_per_chip"]
    assert added == 65 * (32 * 2048 * 4096 + 24 * 2048 - 2 * 4096)
    assert r_hf.summary["latency_s"] > r_eager.summary["latency_s"]


def test_a_dynamic_cache_copies_the_whole_cache_every_step():
    # DynamicCache.update concatenates: per layer, K and V are each read (cached + new tokens)
    # and written whole, where a fixed cache reads and writes only the new token's K and V;
    # the difference is 2 tensors x (read + write) x batch x context x kv heads x head dim x 2 B
    kw = dict(phase="decode", batch=64, context_len=8192)
    concat = evaluate("h200-sxm-141gb", "llama-3-8b", stack="hf-transformers", **kw)
    fixed = evaluate("h200-sxm-141gb", "llama-3-8b",
                     stack=load_stack("hf-transformers-cuda", ["serving.kv_cache=fixed"]), **kw)
    added = concat.summary["hbm_bytes_per_chip"] - fixed.summary["hbm_bytes_per_chip"]
    assert added == 32 * 2 * 2 * 64 * 8192 * 8 * 128 * 2
    assert concat.summary["kv_cache"] == "concat" and "kv_cache" not in fixed.summary
    # 137 GB a step more: the step turns device-bound and slower by at least that traffic at
    # the chip's HBM peak
    chip = load_system("h200-sxm-141gb").chip
    assert concat.summary["latency_s"] - fixed.summary["latency_s"] > added / chip.hbm.bandwidth_Bps
    # the same two launches a layer as an in-place write; at batch 1 the step stays host-bound
    hf = _cm("hf-transformers-cuda")
    from accelsim.workload.ops import KVCache

    kv = KVCache(name="k", role="kv_append", mode="append", batch=1, tokens=1, kv_heads=8, head_dim=128,
                 cached=1024)
    assert kernel_count(hf, kv) == kernel_count(_cm("cuda-eager"), kv) == 2
    # a prefill's append has nothing cached to copy again: its bytes equal a fixed cache's
    assert op_cost(hf, KVCache(name="k", role="kv_append", mode="append", batch=1, tokens=2048, kv_heads=8,
                               head_dim=128)).hbm_bytes == pytest.approx(2 * 2 * 2048 * 8 * 128 * 2)


def test_a_layers_dispatch_matches_the_h200_measurement_of_both_implementations():
    # measured as a part on an H200 (workloads/measurements/notes/h200_layer_host.json: tiny
    # Llama-shaped models of 2 and 10 layers, host time per layer = (t10 - t2) / 8, and the
    # kernels each layer launched): the plain decoder 23 kernels / 0.389 ms a decode layer, the
    # library 40 kernels / 0.596 ms; the stacks' launch costs were fitted on bare kernel rows,
    # never on these
    import json
    from pathlib import Path

    from accelsim.workload.model import ModelConfig

    notes = Path(__file__).resolve().parents[1] / "workloads/measurements/notes/h200_layer_host.json"
    meas = json.loads(notes.read_text())
    tiny = ModelConfig(name="tiny-llama", family="decoder", hidden_size=256, intermediate_size=512,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=64, num_hidden_layers=2,
                       vocab_size=512, max_position_embeddings=4096, activation="silu", gated_mlp=True,
                       norm="rmsnorm", tied_embeddings=False, position_embedding="rope")
    layer = [o for o in build(tiny, phase="decode", batch=1, context_len=128).ops() if o.layer == 0]
    for stack, key in (("cuda-eager", "plain_decode"), ("hf-transformers-cuda", "hf_decode")):
        cm = _cm(stack)
        assert sum(kernel_count(cm, o) for o in layer) == meas[key]["kernels_per_layer"]
        host = sum(op_cost(cm, o).host_s for o in layer)
        assert host == pytest.approx(meas[key]["host_s_per_layer"], rel=0.15)


def test_eager_attention_runs_as_two_products_and_four_softmax_kernels():
    # attn_implementation="eager": K / V repeated to the query heads, Q K^T, then the scores
    # scaled, masked, softmaxed in fp32 and cast back, then P V and the transposed copy
    from accelsim.stack.realize import attention_of
    from accelsim.workload.eager import composite_attn_softmax
    from accelsim.workload.ops import Softmax

    st = load_stack("hf-transformers-eager-cuda")
    assert attention_of(st) == "unfused" and attention_of(load_stack("hf-transformers-cuda")) == "flash"
    assert attention_of(load_stack("transformers-neuronx")) == "unfused_grouped"
    eager = _cm("hf-transformers-eager-cuda")
    sm = Softmax(name="L0.attn_softmax", role="attn_softmax", rows=32 * 256, cols=256, dtype="fp16")
    assert kernel_count(eager, sm) == 4 and kernel_count(_cm("hf-transformers-cuda"), sm) == 1
    # bytes an element of the scores (fp16): scale 2 + 2, mask 2 + 2, softmax 2 + 2, cast 4 + 2
    n = 32 * 256 * 256
    assert sum(o.bytes() for o in composite_attn_softmax(32 * 256, 256, "fp16")) == 18 * n
    assert op_cost(eager, sm).hbm_bytes == pytest.approx(18 * n)
    # a decode layer: the fused kernel (1) becomes Q K^T (1), the softmax (4) and P V with its
    # copy (2): six more launches a layer
    m = load_model("llama-2-7b")
    flash = [o for o in build(m, phase="decode", batch=1, context_len=512).ops() if o.layer == 0]
    unfused = [o for o in build(m, phase="decode", batch=1, context_len=512, attention="unfused").ops()
               if o.layer == 0]
    hf = _cm("hf-transformers-cuda")
    assert sum(kernel_count(eager, o) for o in unfused) - sum(kernel_count(hf, o) for o in flash) == 6


def test_the_library_decomposes_a_layer_alike_on_rocm():
    # the same library code on rocm-eager's runtime: the same kernels a layer, ROCm's launch costs
    assert for_platform("hf-transformers", "rocm-graphs") == "hf-transformers-rocm"
    assert for_platform("hf-transformers-eager", "rocm-graphs") == "hf-transformers-eager-rocm"
    m = load_model("llama-3-8b")
    for attention, cuda, rocm in ((None, "hf-transformers-cuda", "hf-transformers-rocm"),
                                  ("unfused", "hf-transformers-eager-cuda", "hf-transformers-eager-rocm")):
        kw = {} if attention is None else {"attention": attention}
        layer = [o for o in build(m, phase="decode", batch=1, context_len=1024, **kw).ops() if o.layer == 0]
        a = ChipModel(realize(load_system("mi300x"), load_stack(rocm)))
        assert sum(kernel_count(a, o) for o in layer) == sum(kernel_count(_cm(cuda), o) for o in layer)
        assert a.kv_concat and load_stack(rocm).runtime.kernel_launch_s == load_stack("rocm-eager").runtime.kernel_launch_s
