"""Hugging Face config fidelity: sliding-window attention (Mistral-7B-v0.1: 4096) bounds the keys
each query sees, the K/V bytes an attention reads and the KV cache kept; Qwen2's q/k/v biases
(none on the output) count; parameter counts exact against the checkpoints' tensor sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import accelsim
from accelsim.workload import load_model
from accelsim.workload.ops import FlashAttention

MISTRAL = Path(__file__).parent / "data" / "hf" / "mistral-7b-v0.1" / "config.json"
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
