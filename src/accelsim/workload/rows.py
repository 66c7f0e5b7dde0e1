"""A dense transformer phase as rows: the stored ops of ``build``'s graph (the ops before the
layer stack, one layer standing for all of them, the head) as plain tuples of their shapes,
without op objects or a graph, for the analytical tier's fast path (``sim.fast``).

``phase_rows`` covers what the fast path costs: decoder and encoder models without experts,
latent attention or a patch embedding, uncompressed (``covers``); ``build`` builds every
other graph, and the same one on demand (``tests/test_fast_path.py`` checks that both give the
same ops). A row is ``(kind, name, role, count, *shape)``:

- ``("mm", name, role, count, m, n, k, batch, b_shared)``: a ``MatMul``;
- ``("norm", name, role, count, norm, rows, cols)``: an ``RMSNorm`` / ``LayerNorm``
  (``norm`` "rmsnorm" or "layernorm"); ``("softmax", ...)`` the same with "softmax";
- ``("ew", name, role, count, fn, elements)``: an ``Elementwise``;
- ``("embed", name, role, count, tokens, hidden, vocab)``: an ``Embedding``;
- ``("kv", name, role, count, batch, tokens, kv_heads, head_dim)``: a ``KVCache`` append;
- ``("flash", name, role, count, op)``: a ``FlashAttention`` (the op itself: its costs are the
  op cost functions');
- ``("coll", name, role, count, op, bytes_per_rank, group)``: a ``Collective``.
"""

from __future__ import annotations

from .build import checked_args, phase_meta
from .graph import WorkloadMeta
from .model import ModelConfig, dtype_bytes
from .ops import FlashAttention


def covers(m: ModelConfig) -> bool:
    """Whether ``phase_rows`` builds ``m``'s phase graphs."""
    return (m.family in ("decoder", "encoder") and m.num_hidden_layers > 0
            and not (m.is_moe or m.is_mla or m.patch_size))


def phase_rows(m: ModelConfig, phase: str, batch: int, seq_len: int, context_len: int, tp: int, dtype: str,
               attention: str) -> tuple[list[tuple], WorkloadMeta]:
    """The stored ops of ``build(m, phase, ...)`` as rows (see the module docstring) and the
    graph's meta; the arguments are checked as ``build`` checks them (``covers(m)`` must hold)."""
    dt = dtype
    batch, seq_len, context_len, kv_len, tp = checked_args(m, phase, batch, seq_len, context_len, tp, dt, attention)
    decoder = m.family == "decoder"
    q_len = seq_len if phase == "prefill" else 1
    T = batch * q_len
    d, hd = m.hidden_size, m.head_dim
    hq, kvl = m.num_attention_heads // tp, m.kv_heads_per_chip(tp)
    g = 2 if m.gated_mlp else 1
    f = m.intermediate_size // tp
    act = (m.activation + "_mul") if m.gated_mlp else m.activation
    norm = "rmsnorm" if m.norm == "rmsnorm" else "layernorm"
    ar_bytes = T * d * dtype_bytes(dt)
    L = m.num_hidden_layers
    rows: list[tuple] = [("embed", "embed", "embed", 1, T, d, -(-m.vocab_size // tp))]
    if tp > 1:
        rows.append(("coll", "allreduce_embed", "allreduce_embed", 1, "allreduce", ar_bytes, tp))
    if m.position_embedding == "learned":
        rows.append(("ew", "pos_embed", "pos_embed", 1, "add", T * d))
    rows += [("norm", "L0.norm_attn", "norm_attn", L, norm, T, d),
             ("mm", "L0.qkv_proj", "qkv_proj", L, T, m.qkv_width(tp), d, 1, True)]
    if m.position_embedding == "rope":
        rows.append(("ew", "L0.rope", "rope", L, "rope", T * (hq + kvl) * hd))
    if decoder:
        rows.append(("kv", "L0.kv_append", "kv_append", L, batch, q_len, kvl, hd))
    if attention == "flash":
        op = FlashAttention(name="L0.attn", layer=0, role="attn", batch=batch, heads=hq, kv_heads=kvl, q_len=q_len,
                            kv_len=kv_len, head_dim=hd, causal=decoder and q_len > 1, dtype=dt,
                            window=m.sliding_window or 0)
        rows.append(("flash", "L0.attn", "attn", L, op))
    else:
        bh = batch * hq
        gq = hq // kvl if attention == "unfused_grouped" and 0 < kvl <= hq and hq % kvl == 0 else 1
        rows += [("mm", "L0.attn_score", "attn_score", L, q_len * gq, kv_len, hd, bh // gq, False),
                 ("softmax", "L0.attn_softmax", "attn_softmax", L, "softmax", bh * q_len, kv_len),
                 ("mm", "L0.attn_context", "attn_context", L, q_len * gq, hd, kv_len, bh // gq, False)]
    rows.append(("mm", "L0.out_proj", "out_proj", L, T, d, hq * hd, 1, True))
    if tp > 1:
        rows.append(("coll", "L0.allreduce_attn", "allreduce_attn", L, "allreduce", ar_bytes, tp))
    rows += [("ew", "L0.residual_attn", "residual_attn", L, "add", T * d),
             ("norm", "L0.norm_mlp", "norm_mlp", L, norm, T, d),
             ("mm", "L0.mlp_up", "mlp_up", L, T, g * f, d, 1, True),
             ("ew", "L0.mlp_act", "mlp_act", L, act, T * f),
             ("mm", "L0.mlp_down", "mlp_down", L, T, d, f, 1, True)]
    if tp > 1:
        rows.append(("coll", "L0.allreduce_mlp", "allreduce_mlp", L, "allreduce", ar_bytes, tp))
    rows += [("ew", "L0.residual_mlp", "residual_mlp", L, "add", T * d),
             ("norm", "final_norm", "final_norm", 1, norm, T, d)]
    if decoder:
        rows.append(("mm", "lm_head", "lm_head", 1, batch, -(-m.vocab_size // tp), d, 1, True))
    elif m.num_classes:
        rows.append(("mm", "classifier", "classifier", 1, batch, -(-m.num_classes // tp), d, 1, True))
    return rows, phase_meta(m, phase, batch, seq_len, context_len, kv_len, tp, dt, attention)
