"""Model configs, presets and graph builders: golden parameter counts, Hugging Face loading,
FLOP closed forms derived by hand, tensor-parallel sharding, validation and role names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.errors import WorkloadError
from accelsim.workload import (Collective, Conv2D, FlashAttention, KVCache, MatMul, ModelConfig, build,
                               decode, list_models, load_model, prefill)
from accelsim.workload.build import CNN_ROLES, GLOBAL_ROLES, LAYER_ROLES, active_experts
from accelsim.workload.loaders import preset_dir

DATA = Path(__file__).parent / "data"

# Published parameter counts. Llama/Mixtral: the safetensors totals of the Hugging Face
# checkpoints; GPT-3: the paper (175.0B); ViT-B/16 and ResNet-50: torchvision's num_params.
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "mixtral-8x7b": 46_702_792_704,
    "gpt3-175b": 175e9,
    "vit-b16": 86_567_656,
    "resnet50": 25_557_032,
}


# --- presets and parameter counts ----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_count_matches_published(name):
    p = load_model(name).params()
    assert abs(p - PUBLISHED[name]) / PUBLISHED[name] < 0.01
    if name != "gpt3-175b":  # the other figures are exact counts, and so are our formulas
        assert p == PUBLISHED[name]


def test_presets_listed_and_sourced():
    names = list_models()
    assert set(PUBLISHED) | {"tiny"} <= set(names)
    for n in names:
        m = load_model(n)
        assert m.name == n
        assert m.source, f"preset {n} has no source"


def test_tiny_model_shape():
    m = load_model("tiny")
    assert (m.num_hidden_layers, m.hidden_size, m.num_attention_heads, m.num_key_value_heads,
            m.intermediate_size, m.vocab_size) == (2, 64, 4, 2, 128, 256)


def test_gpt3_per_layer_formula():
    # 12 d^2 + 13 d per layer (4d^2 + 4d attention, 8d^2 + 5d MLP, 2 LayerNorms of 2d),
    # tied embeddings of 50257 x d and 2048 learned positions, final LayerNorm.
    d = 12288
    expected = 96 * (12 * d * d + 13 * d) + 50257 * d + 2048 * d + 2 * d
    assert load_model("gpt3-175b").params() == expected


def test_weight_and_kv_cache_bytes():
    m = load_model("llama-2-7b")
    assert m.weight_bytes("bf16") == 2 * m.params()
    assert m.weight_bytes("int4") == 0.5 * m.params()
    # Llama-2-7B keeps 2 (K,V) * 32 layers * 32 heads * 128 * 2 bytes = 0.5 MiB per token in bf16
    assert m.kv_cache_bytes(1, 1, "bf16") == 524288
    assert m.kv_cache_bytes(4, 1000, "fp8") == 4 * 1000 * 262144
    assert load_model("vit-b16").kv_cache_bytes(1, 197) == 0
    # GQA: Llama-3-8B has 8 KV heads -> 128 KiB per token
    assert load_model("llama-3-8b").kv_cache_bytes(1, 1) == 131072


# --- loaders ---------------------------------------------------------------------------------

def test_hf_config_equals_preset():
    hf = load_model(DATA / "hf" / "llama-3-8b" / "config.json")
    preset = load_model("llama-3-8b")
    assert hf.model_copy(update={"source": preset.source}) == preset
    assert load_model(DATA / "hf" / "llama-3-8b") == hf  # a folder holding config.json


def _write_json(tmp_path, cfg, name="config.json"):
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


def test_hf_mixtral_equals_preset(tmp_path):
    cfg = {"architectures": ["MixtralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
           "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
           "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
           "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
           "rms_norm_eps": 1e-05, "rope_theta": 1e6, "router_aux_loss_coef": 0.02,
           "sliding_window": None, "tie_word_embeddings": False, "vocab_size": 32000,
           "_name_or_path": "mistralai/Mixtral-8x7B-v0.1"}
    m = load_model(_write_json(tmp_path, cfg))
    preset = load_model("mixtral-8x7b")
    assert m.name == "Mixtral-8x7B-v0.1"
    assert m.model_copy(update={"name": preset.name, "source": preset.source}) == preset


def test_hf_deepseek_moe_shared_experts(tmp_path):
    # deepseek-ai/deepseek-moe-16b-base: 64 fine-grained routed experts (top-6) + 2 shared,
    # first layer dense. Paper (arXiv:2401.06066): 16.4B parameters.
    cfg = {"model_type": "deepseek", "hidden_act": "silu", "hidden_size": 2048,
           "intermediate_size": 10944, "moe_intermediate_size": 1408, "n_routed_experts": 64,
           "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1,
           "moe_layer_freq": 1, "num_hidden_layers": 28, "num_attention_heads": 16,
           "num_key_value_heads": 16, "vocab_size": 102400, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "scoring_func": "softmax"}
    m = load_model(_write_json(tmp_path, cfg))
    assert (m.num_experts, m.num_shared_experts, m.first_dense_layers) == (64, 2, 1)
    assert abs(m.params() - 16.4e9) / 16.4e9 < 0.01
    g = decode(m, batch=4, context_len=100)
    roles = {o.role for o in g.ops()}
    assert {"router", "moe_up", "moe_act", "moe_down", "shared_up", "shared_act", "shared_down"} <= roles
    assert "mlp_up" in {o.role for o in g.ops() if o.layer == 0}
    assert g.op("L1.shared_up").n == 2 * 2 * 1408
    assert g.op("L1.moe_up").batch == active_experts(64, 6, 4)


def test_hf_missing_key_names_key_and_file(tmp_path):
    cfg = json.loads((DATA / "hf" / "llama-3-8b" / "config.json").read_text())
    del cfg["num_hidden_layers"]
    p = _write_json(tmp_path, cfg)
    with pytest.raises(WorkloadError, match="num_hidden_layers") as e:
        load_model(p)
    assert str(p) in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(WorkloadError, match="malformed JSON") as e:
        load_model(bad)
    assert str(bad) in str(e.value)


def test_hf_gpt2_style_keys(tmp_path):
    # GPT-2 small: 124,439,808 parameters (tied head, learned positions, biases).
    cfg = {"model_type": "gpt2", "activation_function": "gelu_new", "n_embd": 768, "n_head": 12,
           "n_layer": 12, "n_positions": 1024, "n_inner": None, "vocab_size": 50257,
           "layer_norm_epsilon": 1e-05}
    m = load_model(_write_json(tmp_path, cfg))
    assert (m.norm, m.activation, m.gated_mlp, m.position_embedding, m.tied_embeddings) == (
        "layernorm", "gelu", False, "learned", True)
    assert m.params() == 124_439_808


def test_unknown_model_suggests_close_names():
    with pytest.raises(WorkloadError) as e:
        load_model("llama-3-8")
    assert "llama-3-8b" in str(e.value) and "accelsim presets" in str(e.value)


def test_yaml_errors_name_file_and_field(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("family: decoder\nhidden_sise: 64\nactivation: silu\nnorm: rmsnorm\n")
    with pytest.raises(WorkloadError) as e:
        load_model(p)
    assert str(p) in str(e.value) and "hidden_sise" in str(e.value)
    p.write_text("family: decoder\nhidden_size: 64\nintermediate_size: 128\nnum_attention_heads: 4\n"
                 "num_key_value_heads: 3\nnum_hidden_layers: 1\nvocab_size: 10\nactivation: silu\n"
                 "gated_mlp: true\nnorm: rmsnorm\n")
    with pytest.raises(WorkloadError, match="num_key_value_heads"):
        load_model(p)
    assert load_model(preset_dir() / "tiny.yaml") == load_model("tiny")


def test_models_are_frozen():
    m = load_model("tiny")
    with pytest.raises(Exception):
        m.hidden_size = 1  # type: ignore[misc]
    # field docstrings become descriptions when a schema asks for them (``accelsim.fielddocs``),
    # whether or not another test in this process already did
    from accelsim.fielddocs import describe

    describe(ModelConfig)
    assert "residual stream" in ModelConfig.model_fields["hidden_size"].description


# --- FLOP closed forms -----------------------------------------------------------------------

def _attn_width(m):
    return m.num_attention_heads * m.head_dim


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-3-8b", "llama-3-70b", "tiny"])
@pytest.mark.parametrize("batch,ctx", [(1, 1), (8, 2048), (3, 777)])
def test_decode_flops_closed_form(name, batch, ctx):
    # A dense decoder's decode step does 2 FLOPs per weight (all but the input embedding) per
    # sequence, plus QK^T and PV over the context: 4 * layers * heads*head_dim * (ctx+1).
    # Norm weights are not multiplied (vector work): exact without them, and within 1e-4 with
    # them for real models (norms are < 0.01% of their weights; not so for `tiny`).
    m = load_model(name)
    g = decode(m, batch, ctx)
    attention = 4 * m.num_hidden_layers * _attn_width(m) * (ctx + 1)
    norms = m.param_breakdown()["norms"]
    assert g.flops() == pytest.approx(batch * (2 * (m.non_embedding_params() - norms) + attention), rel=1e-12)
    if name != "tiny":
        assert g.flops() == pytest.approx(batch * (2 * m.non_embedding_params() + attention), rel=1e-4)
    assert decode(m, batch, ctx, attention="unfused").flops() == pytest.approx(g.flops(), rel=1e-12)


def test_prefill_flops_closed_form():
    # Prefill of S tokens: 2*T FLOPs per layer weight (T = batch*S), the LM head only for the
    # last position, and causal flash attention over S(S+1)/2 query-key pairs per head.
    m = load_model("llama-3-8b")
    B, S = 2, 1000
    layer_weights = m.params() - 2 * m.vocab_size * m.hidden_size - (2 * m.num_hidden_layers + 1) * m.hidden_size
    expected = (2 * B * S * layer_weights + 2 * B * m.vocab_size * m.hidden_size
                + 4 * m.num_hidden_layers * B * _attn_width(m) * S * (S + 1) / 2)
    assert prefill(m, B, S).flops() == pytest.approx(expected, rel=1e-12)
    # unfused computes the full (masked) score matrix: S*S pairs
    unfused = expected + 4 * m.num_hidden_layers * B * _attn_width(m) * (S * S - S * (S + 1) / 2)
    assert prefill(m, B, S, attention="unfused").flops() == pytest.approx(unfused, rel=1e-12)


def test_moe_decode_flops():
    # Mixtral decode with one sequence: each token visits exactly top-2 experts.
    m = load_model("mixtral-8x7b")
    g = decode(m, 1, 100)
    d, f, L = m.hidden_size, m.intermediate_size, m.num_hidden_layers
    attn_w = L * (2 * d * d + 2 * d * 1024)
    expected = 2 * (attn_w + L * (2 * 3 * d * f + d * 8) + m.vocab_size * d) + 4 * L * d * 101
    assert g.flops() == pytest.approx(expected, rel=1e-12)
    up = g.op("L0.moe_up")
    assert (up.batch, up.m, up.n, up.b_shared) == (2, 1, 2 * f, False)


def test_vision_flops_match_published():
    # torchvision: ViT-B/16 17.56 GFLOPS and ResNet-50 4.09 GFLOPS, counted as multiply-adds
    assert prefill("vit-b16", 1).flops() / 2 == pytest.approx(17.56e9, rel=0.01)
    assert prefill("resnet50", 1).flops() / 2 == pytest.approx(4.09e9, rel=0.01)


# --- tensor parallelism --------------------------------------------------------------------

@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_tp_qkv_split(tp):
    m = load_model("llama-3-8b")
    g = decode(m, 4, 128, tp=tp)
    qkv = g.op("L0.qkv_proj")
    assert qkv.n == (m.num_attention_heads + 2 * m.num_key_value_heads) * m.head_dim // tp
    assert (qkv.m, qkv.k, qkv.b_shared) == (4, m.hidden_size, True)
    assert g.op("L0.mlp_up").n == 2 * m.intermediate_size // tp
    assert g.op("L0.mlp_down").k == m.intermediate_size // tp
    assert g.op("lm_head").n == m.vocab_size // tp
    ar = [o for o in g.ops() if isinstance(o, Collective)]
    if tp == 1:
        assert not ar
    else:
        assert len(ar) == 2 * m.num_hidden_layers + 1
        assert all(o.bytes_per_rank == 4 * m.hidden_size * 2 and o.group == tp for o in ar)


def test_tp_replicates_kv_heads_when_fewer_than_tp():
    m = load_model("llama-3-70b")  # 64 heads, 8 KV heads
    g = decode(m, 1, 10, tp=16)
    assert g.op("L0.qkv_proj").n == (64 // 16 + 2 * 1) * 128
    fa = g.op("L0.attn")
    assert (fa.heads, fa.kv_heads) == (4, 1)


def test_tp_must_divide_heads():
    with pytest.raises(WorkloadError) as e:
        decode("llama-3-8b", 1, 10, tp=3)
    assert "num_attention_heads=32" in str(e.value) and "tp=3" in str(e.value)


def test_vocab_padded_up():
    g = decode("gpt3-175b", 1, 10, tp=8)  # 50257 is odd
    assert g.op("lm_head").n == math.ceil(50257 / 8)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["llama-3-8b", "llama-2-7b", "tiny"]), tp=st.sampled_from([1, 2, 4, 8]),
       batch=st.integers(1, 64), n=st.integers(1, 4096), phase=st.sampled_from(["prefill", "decode"]),
       attention=st.sampled_from(["flash", "unfused"]))
def test_tp_conserves_flops(name, tp, batch, n, phase, attention):
    m = load_model(name)
    kw = dict(seq_len=n) if phase == "prefill" else dict(context_len=n)
    if m.num_attention_heads % tp:
        return
    one = build(m, phase, batch, tp=1, attention=attention, **kw)
    shard = build(m, phase, batch, tp=tp, attention=attention, **kw)
    total = tp * shard.flops()
    if m.num_key_value_heads % tp == 0:  # nothing replicated but norms (which do no FLOPs)
        assert total == pytest.approx(one.flops(), rel=1e-12)
    else:  # KV heads replicated: the K/V projections are computed on every chip
        assert total > one.flops()
    assert tp * shard.meta.weight_bytes_per_chip >= one.meta.weight_bytes_per_chip


def test_meta():
    m = load_model("llama-3-70b")
    g = decode(m, 8, 2047, tp=8)
    assert (g.meta.tokens, g.meta.tp, g.meta.params, g.meta.context_len) == (8, 8, m.params(), 2047)
    assert g.meta.kv_cache_bytes_per_chip == m.kv_cache_bytes(8, 2048) / 8
    assert 8 * g.meta.weight_bytes_per_chip == pytest.approx(m.weight_bytes(), rel=1e-3)
    one = decode(m, 8, 2047)
    assert one.meta.weight_bytes_per_chip == m.weight_bytes()
    p = prefill(m, 2, 512)
    assert (p.meta.tokens, p.meta.kv_cache_bytes_per_chip) == (1024, m.kv_cache_bytes(2, 512))
    assert p.meta.activation_bytes_per_chip > one.meta.activation_bytes_per_chip > 0


# --- graph structure and roles ---------------------------------------------------------------

DENSE_FLASH = {"norm_attn", "qkv_proj", "rope", "kv_append", "attn", "out_proj", "residual_attn",
               "norm_mlp", "mlp_up", "mlp_act", "mlp_down", "residual_mlp"}


def _roles(g, layer):
    return {o.role for o in g.ops() if o.layer == layer}


def test_role_names_and_op_names():
    g = decode("llama-3-8b", 2, 100)
    assert _roles(g, 0) == DENSE_FLASH
    assert _roles(g, -1) == {"embed", "final_norm", "lm_head"}
    for o in g.ops():
        assert o.name == (f"L{o.layer}.{o.role}" if o.layer >= 0 else o.role)
        assert o.role in LAYER_ROLES + GLOBAL_ROLES
    g = prefill("llama-3-8b", 2, 100, tp=2, attention="unfused")
    assert _roles(g, 5) == (DENSE_FLASH - {"attn"}) | {"attn_score", "attn_softmax", "attn_context",
                                                      "allreduce_attn", "allreduce_mlp"}
    assert _roles(g, -1) == {"embed", "allreduce_embed", "final_norm", "lm_head"}
    g = decode("mixtral-8x7b", 4, 100)
    assert _roles(g, 0) == (DENSE_FLASH - {"mlp_up", "mlp_act", "mlp_down"}) | {"router", "moe_up", "moe_act",
                                                                                 "moe_down"}
    g = prefill("gpt3-175b", 1, 16)
    assert "rope" not in _roles(g, 0) and "pos_embed" in _roles(g, -1)


def test_dataflow_dependencies():
    g = prefill("llama-2-7b", 1, 64, tp=2)
    assert nx.is_directed_acyclic_graph(g.g)
    chain = ["L0.norm_attn", "L0.qkv_proj", "L0.rope", "L0.kv_append", "L0.attn", "L0.out_proj",
             "L0.allreduce_attn", "L0.residual_attn", "L0.norm_mlp", "L0.mlp_up", "L0.mlp_act",
             "L0.mlp_down", "L0.allreduce_mlp", "L0.residual_mlp", "L1.norm_attn"]
    for a, b in zip(chain, chain[1:]):
        assert g.g.has_edge(a, b), (a, b)
    assert g.g.has_edge("allreduce_embed", "L0.residual_attn")  # residual stream
    assert g.g.has_edge("L31.residual_mlp", "final_norm") and g.g.has_edge("final_norm", "lm_head")
    ops = g.ops()
    assert ops[0].name == "embed" and ops[-1].name == "lm_head"
    assert [o.name for o in ops] == list(g.g.nodes)  # emitted order is the topological order


def test_attention_shapes():
    g = prefill("llama-3-8b", 2, 300, context_len=100, attention="unfused", tp=2)
    s, c, sm = g.op("L3.attn_score"), g.op("L3.attn_context"), g.op("L3.attn_softmax")
    assert (s.batch, s.m, s.n, s.k) == (2 * 16, 300, 400, 128)
    assert (c.batch, c.m, c.n, c.k) == (2 * 16, 300, 128, 400)
    assert (sm.rows, sm.cols) == (2 * 16 * 300, 400)
    fa = decode("llama-3-8b", 2, 99).op("L0.attn")
    assert isinstance(fa, FlashAttention)
    assert (fa.batch, fa.heads, fa.kv_heads, fa.q_len, fa.kv_len, fa.causal) == (2, 32, 8, 1, 100, False)
    assert prefill("llama-3-8b", 1, 10).op("L0.attn").causal
    kv = decode("llama-3-8b", 2, 99).op("L0.kv_append")
    assert isinstance(kv, KVCache) and (kv.mode, kv.batch, kv.tokens, kv.kv_heads) == ("append", 2, 1, 8)


def test_encoder_graph():
    g = prefill("vit-b16", 4)
    assert g.meta.seq_len == 197 and g.meta.tokens == 4 * 197
    assert isinstance(g.op("patch_embed"), Conv2D)
    assert not any(isinstance(o, KVCache) for o in g.ops())
    assert not g.op("L0.attn").causal and g.op("L0.attn").q_len == 197
    assert g.op("classifier").n == 1000 and g.op("classifier").m == 4
    assert type(g.op("L0.norm_attn")).__name__ == "LayerNorm" and g.op("L0.mlp_act").fn == "gelu"
    with pytest.raises(WorkloadError, match="prefill"):
        decode("vit-b16", 1, 10)


def test_cnn_graph():
    g = prefill("resnet50", 2)
    roles = {o.role for o in g.ops()}
    assert roles == set(CNN_ROLES)
    convs = [o for o in g.ops() if isinstance(o, Conv2D)]
    assert len(convs) == 1 + 16 * 3 + 4  # stem, 16 bottlenecks, 4 projection shortcuts
    assert sum(o.role == "residual" for o in g.ops()) == 16
    assert g.op("L15.conv3").out_h == 7 and g.op("fc").k == 2048
    assert nx.is_directed_acyclic_graph(g.g)
    with pytest.raises(WorkloadError, match="prefill"):
        decode("resnet50", 1, 1)
    with pytest.raises(WorkloadError, match="tp=1"):
        prefill("resnet50", 1, tp=2)


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: build("tiny", "train", 1, 8), "unknown phase"),
    (lambda: build("tiny", "prefil", 1, 8), "prefill"),
    (lambda: prefill("tiny", 0, 8), "batch must be positive"),
    (lambda: prefill("tiny", 1, 0), "seq_len"),
    (lambda: decode("tiny", 1, 0), "context_len"),
    (lambda: decode("tiny", 1, -5), "context_len"),
    (lambda: decode("tiny", 1, 5, dtype="bf61"), "unknown dtype"),
    (lambda: decode("tiny", 1, 5, attention="paged"), "unknown attention"),
    (lambda: decode("tiny", 1, 5, tp=0), "tp must be positive"),
    (lambda: prefill("gpt3-175b", 1, 4096), "max_position_embeddings=2048"),
    (lambda: prefill("vit-b16", 1, 100), "197"),
])
def test_build_validation(call, match):
    with pytest.raises(WorkloadError, match=match):
        call()


def test_active_experts():
    assert active_experts(8, 2, 1) == 2
    assert active_experts(8, 2, 1000) == 8
    assert active_experts(64, 6, 1) == 6
    assert 6 < active_experts(64, 6, 4) <= 24
    # expected distinct experts for 2 tokens, top-2 of 8: 8*(1-(6/8)^2) = 3.5 -> 4
    assert active_experts(8, 2, 2) == 4


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 32), ctx=st.integers(1, 8000), extra=st.integers(1, 500))
def test_decode_cost_monotone_in_context(batch, ctx, extra):
    a, b = decode("tiny", batch, ctx), decode("tiny", batch, ctx + extra)
    assert b.flops() > a.flops() and b.bytes() > a.bytes()
    assert b.meta.kv_cache_bytes_per_chip > a.meta.kv_cache_bytes_per_chip
    assert all(isinstance(o, MatMul) == (o.kind == "matmul") for o in a.ops())


def test_a_prebuilt_graph_refuses_arguments_it_would_ignore():
    """A WorkloadGraph carries its own shape: evaluate() refuses a batch, a length or a dtype
    given beside it (they were silently ignored) and accepts the graph's own phase."""
    from accelsim.api import evaluate

    g = build(load_model("tiny"), "prefill", batch=2, seq_len=64)
    t = evaluate("h100-sxm-80gb", g).summary["latency_s"]
    assert evaluate("h100-sxm-80gb", g, phase="prefill").summary["latency_s"] == t
    for kw in ({"batch": 8}, {"seq_len": 128}, {"context_len": 10}, {"tp": 2}, {"dtype": "fp8"},
               {"compression": "w4a16-g128"}, {"phase": "decode", "batch": 3}):
        with pytest.raises(WorkloadError, match="prebuilt WorkloadGraph") as e:
            evaluate("h100-sxm-80gb", g, **kw)
        assert all(f"{k}=" in str(e.value) for k in kw if k != "phase")
    with pytest.raises(WorkloadError, match="tp=2"):  # 2 NeuronCores on one Trainium2 chip: still a tp given
        evaluate("trn2", g, tp=2)


def test_evaluate_refuses_zero_lengths_booleans_and_a_tp_below_one():
    """A prefill of 0 tokens and a decode of 0 cached tokens ran as the default 2048 (0 read as
    "not given"); tp 0 or -2 ran as 1 and batch=True as 1. All are refused, naming the argument."""
    from accelsim.api import evaluate

    for kw, says in ((dict(phase="prefill", seq_len=0), "prefill needs seq_len >= 1"),
                     (dict(phase="decode", context_len=0), "decode needs context_len >= 1"),
                     (dict(tp=0), "tp must be positive"), (dict(tp=-2), "tp must be positive"),
                     (dict(tp=2.0), "tp must be an integer"), (dict(batch=True), "batch must be an integer")):
        with pytest.raises(WorkloadError, match=says):
            evaluate("dgx-h100", "tiny", **kw)
    assert evaluate("dgx-h100", "tiny", phase="prefill").summary["seq_len"] == 2048  # None: the default
