"""Hugging Face config fidelity: sliding-window attention (Mistral-7B-v0.1: 4096) bounds the keys
each query sees, the K/V bytes an attention reads and the KV cache kept; Qwen2's q/k/v biases
(none on the output) count; parameter counts exact against the checkpoints' tensor sizes
(Llama-3.1-8B, Mixtral-8x7B, Qwen2-7B, Mistral-7B); config keys the builder does not model
(DeepSeek-V2-Lite's multi-head latent attention) reported, never dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from click.testing import CliRunner

import accelsim
from accelsim.cli import main
from accelsim.workload import load_model
from accelsim.workload.ops import FlashAttention

DATA = Path(__file__).parent / "data" / "hf"
MISTRAL = DATA / "mistral-7b-v0.1" / "config.json"
QWEN2 = Path(__file__).parent / "data" / "hf" / "qwen2-7b" / "config.json"


def test_window_score_elements_by_hand():
    # causal, 8 queries over 8 keys, window 4: positions 1..8 see 1+2+3+4+4+4+4+4 = 26 keys
    op = FlashAttention(heads=1, kv_heads=1, q_len=8, kv_len=8, head_dim=2, causal=True, window=4)
    assert op.score_elements() == pytest.approx(26)
    assert FlashAttention(q_len=8, kv_len=8, causal=True).score_elements() == pytest.approx(36)  # 8*9/2
    # decode: one query at position 1000 sees the last 4 keys; it reads 4 K/V rows, not 1000
    d = FlashAttention(q_len=1, kv_len=1000, head_dim=2, causal=True, window=4)
    assert d.score_elements() == 4 and d.kv_read() == 4
    # a prefill chunk of 3 queries at positions 998..1000 reads keys 995..1000: 4 + 3 - 1 = 6
    assert FlashAttention(q_len=3, kv_len=1000, causal=True, window=4).kv_read() == 6


def test_mistral_config_loads_its_window_and_exact_parameter_count():
    m = load_model(MISTRAL)
    assert m.sliding_window == 4096
    # per layer: q 4096^2 + k, v 4096 x 1024 + o 4096^2 = 41,943,040; MLP 3 x 4096 x 14336 =
    # 176,160,768; two RMSNorms 8,192 -> 218,112,000 x 32 = 6,979,584,000; embeddings and LM
    # head 2 x 32000 x 4096 = 262,144,000; final norm 4,096: 7,241,732,096 (the checkpoint's
    # tensor sizes; the model card rounds to 7.3 B)
    assert m.params() == 7_241_732_096


def test_mistral_32k_faster_and_smaller_with_its_window():
    m = load_model(MISTRAL)
    full = m.model_copy(update={"sliding_window": None})
    kw = dict(phase="decode", batch=8, context_len=32768)
    win, nowin = accelsim.evaluate("h100-sxm-80gb", m, **kw), accelsim.evaluate("h100-sxm-80gb", full, **kw)
    assert win.summary["latency_s"] < 0.6 * nowin.summary["latency_s"]
    # KV cache: 2 x 32 layers x 8 KV heads x 128 x 8 sequences x tokens x 2 B
    per_token = 2 * 32 * 8 * 128 * 8 * 2
    assert win.summary["kv_cache_bytes_per_chip"] == per_token * 4096
    assert nowin.summary["kv_cache_bytes_per_chip"] == per_token * 32769  # the context and the new token
    p = dict(phase="prefill", batch=1, seq_len=32768)
    assert accelsim.evaluate("h100-sxm-80gb", m, **p).summary["latency_s"] < \
        accelsim.evaluate("h100-sxm-80gb", full, **p).summary["latency_s"]


def test_a_declared_but_disabled_window_is_not_used(tmp_path):
    cfg = json.loads(MISTRAL.read_text())
    cfg.update({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "use_sliding_window": False})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert load_model(path).sliding_window is None


def test_qwen2_qkv_biases_and_exact_parameter_count():
    m = load_model(QWEN2)
    assert m.qkv_bias and not m.attention_bias and m.sliding_window is None  # use_sliding_window: false
    # per layer: q 3584^2 + 3584, k and v 3584 x 512 + 512 each, o 3584^2 (no bias): 29,364,736;
    # MLP 3 x 3584 x 18944 = 203,685,888; two RMSNorms 7,168 -> 233,057,792 x 28 =
    # 6,525,618,176; embeddings and LM head (untied) 2 x 152064 x 3584 = 1,089,994,752; final
    # norm 3,584: 7,615,616,512 (the checkpoint's tensor sizes; the model card says 7.6 B)
    assert m.params() == 7_615_616_512


def test_llama31_and_mixtral_exact_parameter_counts():
    # Llama-3.1-8B: Llama-3-8B's shapes (its RoPE scaling changes frequencies, not work): per layer
    # q 4096^2, k and v 4096 x 1024, o 4096^2, MLP 3 x 4096 x 14336, two norms 8,192 =
    # 218,112,000 x 32 = 6,979,584,000; embeddings and LM head 2 x 128256 x 4096; final norm 4,096:
    # 8,030,261,248 (the checkpoint's model.safetensors.index.json total_size 16,060,522,496 bytes
    # of bf16 / 2)
    m = load_model(DATA / "llama-3.1-8b" / "config.json")
    assert m.params() == 8_030_261_248 and m.unmodelled == ()
    # Mixtral-8x7B: per layer attention 41,943,040, 8 experts x 3 x 4096 x 14336 = 1,409,286,144,
    # router 4096 x 8 = 32,768, norms 8,192 -> 1,451,270,144 x 32 = 46,440,644,608; embeddings and
    # LM head 2 x 32000 x 4096 = 262,144,000; final norm 4,096: 46,702,792,704 (total_size
    # 93,405,585,408 bytes / 2)
    mx = load_model(DATA / "mixtral-8x7b-v0.1" / "config.json")
    assert (mx.num_experts, mx.num_experts_per_tok) == (8, 2)
    assert mx.params() == 46_702_792_704 and mx.unmodelled == ()


def test_unmodelled_config_keys_are_reported_not_dropped(tmp_path):
    from accelsim.api import evaluate

    cfg = json.loads((DATA / "llama-3-8b" / "config.json").read_text())
    cfg["fancy_new_attention"] = 3  # a key nobody knows
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    m = load_model(p)
    assert m.unmodelled == ("fancy_new_attention",)
    res = evaluate("h100-sxm-80gb", m, phase="decode", batch=1, context_len=512)
    assert any("fancy_new_attention" in w and "does not model" in w for w in res.warnings)
    out = CliRunner().invoke(main, ["run", "h100-sxm-80gb", str(tmp_path), "--phase", "decode"])
    assert out.exit_code == 0 and "does not model" in out.output


DEEPSEEK = DATA / "deepseek-v2-lite" / "config.json"


def test_deepseek_v2_lite_latent_attention_exact_parameter_count():
    m = load_model(DEEPSEEK)
    assert m.is_mla and m.unmodelled == ()
    assert (m.num_experts, m.num_shared_experts, m.first_dense_layers, m.moe_intermediate_size) == (64, 2, 1, 1408)
    # per layer attention: q_proj 2048 x 16 x (128 + 64) = 6,291,456; kv_a_proj_with_mqa 2048 x (512 + 64)
    # = 1,179,648; kv_a_layernorm 512; kv_b_proj 512 x 16 x (128 + 128) = 2,097,152; o_proj 16 x 128 x
    # 2048 = 4,194,304 -> 13,763,072, plus two norms 4,096, x 27 layers = 371,713,536. MLP: layer 0
    # dense 3 x 2048 x 10944 = 67,239,936; layers 1-26: 64 experts x 3 x 2048 x 1408 = 553,648,128,
    # two shared 17,301,504, router 64 x 2048 = 131,072 -> 571,080,704 x 26 = 14,848,098,304.
    # Embeddings and LM head 2 x 102400 x 2048 = 419,430,400; final norm 2,048. Total 15,706,484,224
    # (the model card: 15.7 B)
    assert m.params() == 15_706_484_224
    # the cache keeps the 512-wide latent and the 64-wide rotary key per token and layer, bf16
    assert m.kv_cache_bytes(1, 1) == 27 * (512 + 64) * 2


def test_latent_attention_ops_by_hand():
    from accelsim.workload import build

    m = load_model(DEEPSEEK)
    dec = {o.role: o for o in build(m, "decode", batch=1, context_len=4096).ops() if o.layer == 0}
    a = dec["attn"]
    # decode attends over the cached latent: one 576-wide vector per position read once for K and V
    assert (a.heads, a.kv_heads, a.head_dim, a.vd, a.kv_shared) == (16, 1, 576, 512, True)
    assert a.bytes() == 2 * (16 * (576 + 512) + 4097 * 576)
    assert a.flops() == 2 * 16 * 4097 * (576 + 512)
    assert (dec["q_absorb"].batch, dec["q_absorb"].n, dec["q_absorb"].k) == (16, 512, 128)
    assert (dec["v_up"].n, dec["v_up"].k) == (128, 512) and dec["out_proj"].k == 16 * 128
    assert dec["kv_append"].bytes() == 2 * 576 * 2  # read the new latent, write it to the cache
    pre = {o.role: o for o in build(m, "prefill", batch=1, seq_len=2048).ops() if o.layer == 0}
    # prefill decompresses every position: keys 128 + 64 wide, values 128
    assert (pre["kv_up"].m, pre["kv_up"].n, pre["kv_up"].k) == (2048, 16 * 256, 512)
    f = pre["attn"]
    assert (f.head_dim, f.vd, f.kv_heads) == (192, 128, 16)
    assert f.flops() == 2 * f.score_elements() * (192 + 128)


def test_latent_attention_decodes_long_contexts_faster_than_plain_attention():
    from accelsim.api import evaluate

    m = load_model(DEEPSEEK)
    plain = m.model_copy(update={"kv_lora_rank": 0})  # the same model read as 16-head attention
    kw = dict(phase="decode", batch=16, context_len=32768)
    mla, mha = (evaluate("h100-sxm-80gb", x, **kw).summary for x in (m, plain))
    # 1,152 bytes of cache per token and layer against 2 x 16 x 128 x 2 = 8,192
    assert mha["memory_bytes_per_chip"] > mla["memory_bytes_per_chip"] + 16 * 32768 * 27 * (8192 - 1152) * 0.99
    assert mla["latency_s"] < 0.6 * mha["latency_s"]


def test_latent_attention_training_step_by_hand():
    m = load_model(DEEPSEEK)
    ops = accelsim.evaluate_train("dgx-h100", m, 64, 4096, dp=8, zero=2).ops
    f = ops[ops["layer"] == 0].set_index("role")["flops"]
    T = 4096  # one microbatch of one 4,096-token sequence per chip
    # the fused projection: 16 query heads of 128 + 64, the 512-wide latent and the 64-wide rotary key
    assert f["fwd.qkv_proj"] == 2 * T * (16 * 192 + 512 + 64) * 2048
    # every position's latent decompressed into 16 keys (128, no rope) and values (128)
    assert f["fwd.kv_up"] == 2 * T * 16 * 256 * 512
    # causal attention: 16 x 4096 x 4097 / 2 query-key pairs, QK^T 192 wide and PV 128 wide
    assert f["fwd.attn"] == 2 * (16 * T * (T + 1) / 2) * (192 + 128)
    assert f["fwd.out_proj"] == 2 * T * 2048 * 16 * 128
    # the backward runs the decompression's data and weight gradients
    assert f["bwd.kv_up_dgrad"] == f["bwd.kv_up_wgrad"] == f["fwd.kv_up"]
