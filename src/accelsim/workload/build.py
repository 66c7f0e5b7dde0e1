"""Builders: a ModelConfig and a phase become the op graph of ONE chip's share of one step.

Parallelism is Megatron-style tensor parallelism over ``tp`` chips (every chip runs the same
graph on its shard):

- ``qkv_proj`` is column-parallel: ``heads/tp`` query heads and ``ceil(kv_heads/tp)`` KV heads
  per chip (when ``kv_heads < tp`` each chip holds one replicated KV head).
- ``out_proj`` is row-parallel and followed by an all-reduce of the [tokens, hidden] activation
  (``allreduce_attn``; omitted when ``tp == 1``). Likewise ``mlp_up`` (gate and up fused into
  one MatMul of width ``2*ffn/tp`` when gated) is column-parallel and ``mlp_down`` row-parallel,
  followed by ``allreduce_mlp``.
- The token embedding and the LM head are vocabulary-parallel: each chip holds
  ``ceil(vocab/tp)`` rows (the vocabulary is padded up to a multiple of ``tp``, as Megatron
  does); the embedding lookup is followed by ``allreduce_embed`` when ``tp > 1``.
- Norms, residual adds, RoPE tables, routers, position tables and patch embeddings are
  replicated.

Decisions worth knowing:

- Weight MatMuls have ``b_shared=True`` and ``m`` = tokens of the step (``batch*seq_len`` in
  prefill, ``batch`` in decode). The LM head is the exception in prefill: only the last
  position of each sequence needs logits to generate (what serving stacks do), so its ``m`` is
  ``batch`` in both phases. The final norm still runs over all tokens.
- Unfused attention (``attention="unfused"``) is the eager implementation: scores are computed
  for the full (masked) matrix and K/V are read once per *query* head (repeat_kv), so with GQA
  their bytes are counted ``heads/kv_heads`` times. Flash attention skips the masked half of a
  causal block and reads K/V once per KV head.
- MoE: ``tokens*top_k`` token-slots go to the experts. The routed experts are one batched
  MatMul with ``batch`` = the expected number of distinct experts hit,
  ``ceil(E*(1-(1-k/E)**tokens))`` (at least k, at most E), ``m = ceil(tokens*k/batch)`` slots
  per expert (uniform routing), ``b_shared=False`` so every active expert's weights are read
  once. Experts are not expert-parallel: every chip holds all experts with their width split
  by ``tp`` like a dense MLP. Shared experts (DeepSeek) are one dense MatMul of width
  ``num_shared_experts * moe_intermediate_size / tp`` running beside the routed ones. A gated
  GELU MLP (GeGLU) is costed as ``gelu_mul``.
- Encoders (ViT) run prefill only: a Conv2D patch embedding, learned positions, bidirectional
  attention, no KV cache, a classifier MatMul on the class token (``m = batch``).
- CNNs (ResNet) run prefill only (a forward pass of ``batch`` images, ``tp`` must be 1): every
  convolution is a Conv2D with its batch norm and ReLU fused into the epilogue (inference
  folding); residual adds are Elementwise adds; max and average pooling are Elementwise
  ``copy`` ops over the pooled input (reads it once; the write is overstated); ``fc`` is a
  MatMul. ``tokens`` is the number of images.
"""

from __future__ import annotations

import math
from typing import Any

from ..configio import suggest, whole_number
from ..errors import WorkloadError
from ..memo import IdentityCache
from .graph import Block, WorkloadGraph, WorkloadMeta
from .loaders import load_model
from .model import ModelConfig, cnn_blocks, dtype_bytes
from .ops import (Collective, Conv2D, Elementwise, Embedding, FlashAttention, KVCache, LayerNorm,
                  MatMul, RMSNorm, Softmax)

PHASES = ("prefill", "decode")
ATTENTION = ("flash", "unfused", "unfused_grouped")

LAYER_ROLES = ("norm_attn", "qkv_proj", "rope", "kv_append", "attn", "attn_score", "attn_softmax",
               "attn_context", "out_proj", "allreduce_attn", "residual_attn", "norm_mlp", "mlp_up",
               "mlp_act", "mlp_down", "router", "moe_up", "moe_act", "moe_down", "shared_up",
               "shared_act", "shared_down", "allreduce_mlp", "residual_mlp")
"""Roles of the ops inside a transformer layer (named ``L{layer}.{role}``)."""
GLOBAL_ROLES = ("embed", "allreduce_embed", "pos_embed", "patch_embed", "final_norm", "lm_head",
                "classifier")
"""Roles of the transformer ops outside the layer stack (named ``{role}``)."""
CNN_ROLES = ("stem", "maxpool", "conv1", "conv2", "conv3", "downsample", "residual", "avgpool", "fc")
"""Roles of CNN ops: blocks are layers (``L{block}.conv1``), the rest are plain names."""


def prefill(model: ModelConfig | str, batch: int, seq_len: int = 0, **kw: Any) -> WorkloadGraph:
    """One prefill (forward) step over ``batch`` prompts of ``seq_len`` tokens; see ``build``."""
    return build(model, "prefill", batch, seq_len=seq_len, **kw)


def decode(model: ModelConfig | str, batch: int, context_len: int, **kw: Any) -> WorkloadGraph:
    """One decode step: ``batch`` sequences each generate one token after ``context_len`` cached
    tokens; see ``build``."""
    return build(model, "decode", batch, context_len=context_len, **kw)


def build(model: ModelConfig | str, phase: str, batch: int, seq_len: int = 0, context_len: int = 0,
          tp: int = 1, dtype: str = "bf16", attention: str = "flash", compression=None) -> WorkloadGraph:
    """The op graph of one chip's share of one ``phase`` step under ``tp``-way tensor
    parallelism (see the module docstring for the sharding and modelling decisions).

    ``phase="prefill"`` processes ``seq_len`` new tokens per sequence after ``context_len``
    cached ones (0 unless chunked prefill); ``phase="decode"`` generates one token per sequence
    after ``context_len`` cached ones. ``tp`` must divide the attention heads and the MLP (and
    expert) widths; the vocabulary is padded up to a multiple of ``tp``. Raises WorkloadError
    for an invalid phase, shape, dtype or parallelism. ``compression`` (a
    ``compress.recipes.Compression``, a tag such as "w4a16-g128" or a recipe YAML path)
    prunes the model first and then sets the formats and sparsity of the graph's ops."""
    model = load_model(model)
    comp = None
    if compression is not None:
        from ..compress.recipes import as_compression

        comp = as_compression(compression)
    if comp is not None and not comp.is_identity:
        from .compress_graph import apply_compression

        model = comp.apply_model(model)
        graph = build(model, phase, batch, seq_len, context_len, tp, dtype, attention)
        layers = model.num_hidden_layers if model.family != "cnn" else len(graph.ops())
        return apply_compression(comp, graph, layers)
    if model.family == "cnn":
        batch = checked_args(model, phase, batch, seq_len, context_len, tp, dtype, attention)[0]
        return _build_cnn(model, batch, dtype)
    batch, seq_len, context_len, kv_len, tp = checked_args(model, phase, batch, seq_len, context_len, tp, dtype,
                                                           attention)
    return _build_transformer(model, phase, batch, seq_len, context_len, kv_len, tp, dtype, attention)


def checked_args(model: ModelConfig, phase: str, batch: int, seq_len: int, context_len: int, tp: int, dtype: str,
                 attention: str) -> tuple[int, int, int, int, int]:
    """``build``'s arguments checked for ``model`` (WorkloadError naming the one that is wrong)
    and made whole: (batch, seq_len, context_len, kv_len, tp); a vision model's seq_len is its
    patch count plus the class token."""
    if phase not in PHASES:
        raise WorkloadError(f"unknown phase {phase!r}.{suggest(str(phase), PHASES)} Known: {', '.join(PHASES)}")
    if attention not in ATTENTION:
        raise WorkloadError(f"unknown attention {attention!r}.{suggest(str(attention), ATTENTION)}"
                            f" Known: {', '.join(ATTENTION)}")
    dtype_bytes(dtype)
    batch = whole_number("batch", batch, 1)
    tp = whole_number("tp", tp, 1)
    seq_len = whole_number("seq_len", seq_len, 0)
    context_len = whole_number("context_len", context_len, 0)
    if phase == "decode" and model.family != "decoder":
        raise WorkloadError(f"phase 'decode' needs a KV cache, but {model.name!r} is a {model.family} "
                            f"model that processes its whole input in one forward pass; use phase='prefill'")
    if model.family == "cnn":
        if tp != 1:
            raise WorkloadError(f"tensor parallelism is not modelled for CNNs ({model.name!r}); use tp=1")
        return batch, seq_len, context_len, 0, tp
    _check_tp(model, tp)
    if model.is_vision:
        expected = model.num_patches + 1
        if seq_len not in (0, expected):
            raise WorkloadError(f"seq_len={seq_len} does not match {model.name!r}: "
                                f"{model.image_size}/{model.patch_size} patches squared + class token = {expected}"
                                f" tokens; omit seq_len")
        seq_len = expected
    if phase == "prefill" and seq_len < 1:
        raise WorkloadError(f"prefill needs seq_len >= 1 (prompt tokens per sequence), got {seq_len}")
    if phase == "decode" and context_len < 1:
        raise WorkloadError(f"decode needs context_len >= 1 (tokens already in the KV cache), got {context_len}")
    if model.family == "encoder" and context_len:
        raise WorkloadError(f"context_len must be 0 for the encoder {model.name!r} (no KV cache)")
    kv_len = context_len + (seq_len if phase == "prefill" else 1)
    if model.position_embedding == "learned" and kv_len > model.max_position_embeddings:
        raise WorkloadError(f"{kv_len} tokens exceed max_position_embeddings="
                            f"{model.max_position_embeddings} of {model.name!r} (learned positions)")
    return batch, seq_len, context_len, kv_len, tp


def check_heads(m: ModelConfig, degree: int, what: str = "tp") -> None:
    """Refuse a tensor-parallel degree that does not split the attention heads evenly."""
    heads = m.num_attention_heads
    if heads % degree:
        ok = [t for t in range(1, heads + 1) if heads % t == 0]
        raise WorkloadError(f"{what}={degree} does not divide num_attention_heads={heads} of {m.name!r}; "
                            f"tensor parallelism splits whole heads. Valid tp: {ok}")


def _check_tp(m: ModelConfig, tp: int) -> None:
    ok = _TP_OK.get((m,), set)
    if tp in ok:  # checked for this model object before (it is frozen)
        return
    check_heads(m, tp)
    widths = [("intermediate_size", m.intermediate_size)]
    if m.is_moe:
        widths.append(("moe_intermediate_size", m.moe_intermediate_size))
    for field, w in widths:
        if w % tp:
            raise WorkloadError(f"tp={tp} does not divide {field}={w} of {m.name!r}")
    ok.add(tp)


class _Emit:
    """Collects ops and edges in program order, in blocks (a run of identical layers is one
    block holding its first layer); made into a graph in bulk."""

    __slots__ = ("ops", "edges", "blocks")

    def __init__(self) -> None:
        self.ops: list = []
        self.edges: list[tuple[str, str]] = []
        self.blocks: list[Block] = []

    def __call__(self, op, *deps: str) -> str:
        name = op.name
        self.ops.append(op)
        for d in deps:
            self.edges.append((d, name))
        return name

    def close(self, layers: range | None = None) -> None:
        """End the current block; with ``layers``, it holds layer ``layers.start`` and stands
        for every layer of the range."""
        if self.ops:
            self.blocks.append(Block(tuple(self.ops), tuple(self.edges), layers))
        self.ops, self.edges = [], []

    def graph(self, meta: WorkloadMeta) -> WorkloadGraph:
        # ops were emitted in a topological order (each after its dependencies)
        self.close()
        return WorkloadGraph.from_blocks(meta, self.blocks)


def active_experts(num_experts: int, top_k: int, tokens: int) -> int:
    """Expected distinct experts hit when ``tokens`` tokens each pick ``top_k`` of
    ``num_experts`` uniformly: ``E*(1-(1-k/E)**tokens)`` rounded up, in ``[k, E]``."""
    expected = num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)
    return min(num_experts, max(top_k, math.ceil(expected - 1e-9)))


_PARAMS = IdentityCache(64)
_TP_OK = IdentityCache(64)
"""The tp degrees ``_check_tp`` has passed, per model object."""


def _param_counts(m: ModelConfig, tp: int) -> tuple[int, int]:
    """(parameters of the model, parameters one chip holds under ``tp``), once per model object."""
    per = _PARAMS.get((m,), dict)
    hit = per.get(tp)
    if hit is None:
        hit = per[tp] = (m.params(), sum(m.param_breakdown(tp).values()))
    return hit


def _build_transformer(m: ModelConfig, phase: str, batch: int, seq_len: int, context_len: int,
                       kv_len: int, tp: int, dt: str, attention: str) -> WorkloadGraph:
    # ``workload/rows.py`` restates the dense branch of this function as a table of shapes per point
    # variable (``phase_table``) for the analytical fast path; ``tests/test_fast_path.py`` holds the
    # two equal, so a change here goes there too.
    e = _Emit()
    decoder = m.family == "decoder"
    q_len = seq_len if phase == "prefill" else 1
    T = batch * q_len
    d, hd = m.hidden_size, m.head_dim
    hq, kvl = m.num_attention_heads // tp, m.kv_heads_per_chip(tp)
    qkv_n = m.qkv_width(tp)
    o_width = m.v_head_dim if m.is_mla else hd
    g = 2 if m.gated_mlp else 1
    f = m.intermediate_size // tp
    act = (m.activation + "_mul") if m.gated_mlp else m.activation
    Norm = RMSNorm if m.norm == "rmsnorm" else LayerNorm
    flash = attention == "flash"
    grouped = attention == "unfused_grouped"
    causal = decoder and q_len > 1
    ar_bytes = T * d * dtype_bytes(dt)
    rope = m.position_embedding == "rope"
    mm = dict(dtype_a=dt, dtype_b=dt, dtype_out=dt)

    # --- input embedding --------------------------------------------------------------------
    if m.patch_size:
        x = e(Conv2D(name="patch_embed", role="patch_embed", batch=batch, in_h=m.image_size,
                     in_w=m.image_size, in_channels=m.num_channels, out_channels=d,
                     kernel_h=m.patch_size, kernel_w=m.patch_size, stride=m.patch_size, dtype=dt))
    else:
        x = e(Embedding(name="embed", role="embed", tokens=T, hidden=d,
                        vocab=-(-m.vocab_size // tp), dtype=dt))
        if tp > 1:
            x = e(Collective(name="allreduce_embed", role="allreduce_embed", op="allreduce",
                             bytes_per_rank=ar_bytes, group=tp, dtype=dt), x)
    if m.position_embedding == "learned":
        x = e(Elementwise(name="pos_embed", role="pos_embed", fn="add", elements=T * d, dtype=dt), x)

    # --- layers ---------------------------------------------------------------------------
    moe_slots = 0
    if m.is_moe:
        k, E = m.num_experts_per_tok, m.num_experts
        n_act = active_experts(E, k, T)
        m_exp = -(-T * k // n_act)
        fm = m.moe_intermediate_size // tp
        moe_slots = n_act * m_exp
    L = m.num_hidden_layers
    dense = min(L, m.first_dense_layers) if m.is_moe else L
    runs = [r for r in (range(0, dense), range(dense, L)) if len(r)]  # layers alike are built once
    for run in runs:
        e.close()
        li = run.start
        p = f"L{li}."
        h = e(Norm(name=p + "norm_attn", layer=li, role="norm_attn", rows=T, cols=d, dtype=dt), x)
        if m.is_mla:
            h = _mla_attention(e, m, p, li, h, batch, q_len, kv_len, hq, qkv_n, dt, decoder, causal)
        else:
            h = _attention(e, m, p, li, h, batch, q_len, kv_len, hq, kvl, qkv_n, dt, decoder, causal, flash, rope,
                           grouped)
        h = e(MatMul(name=p + "out_proj", layer=li, role="out_proj", m=T, n=d, k=hq * o_width, b_shared=True, **mm), h)
        if tp > 1:
            h = e(Collective(name=p + "allreduce_attn", layer=li, role="allreduce_attn", op="allreduce",
                             bytes_per_rank=ar_bytes, group=tp, dtype=dt), h)
        r = e(Elementwise(name=p + "residual_attn", layer=li, role="residual_attn", fn="add",
                          elements=T * d, dtype=dt), h, x)
        n2 = e(Norm(name=p + "norm_mlp", layer=li, role="norm_mlp", rows=T, cols=d, dtype=dt), r)
        if m.is_moe_layer(li):
            h = e(MatMul(name=p + "router", layer=li, role="router", m=T, n=E, k=d, b_shared=True, **mm), n2)
            h = e(MatMul(name=p + "moe_up", layer=li, role="moe_up", batch=n_act, m=m_exp, n=g * fm, k=d, **mm), h)
            h = e(Elementwise(name=p + "moe_act", layer=li, role="moe_act", fn=act, elements=moe_slots * fm,
                              dtype=dt), h)
            h = e(MatMul(name=p + "moe_down", layer=li, role="moe_down", batch=n_act, m=m_exp, n=d, k=fm, **mm), h)
            outs = [h]
            if m.num_shared_experts:
                fs = m.num_shared_experts * fm
                s = e(MatMul(name=p + "shared_up", layer=li, role="shared_up", m=T, n=g * fs, k=d,
                             b_shared=True, **mm), n2)
                s = e(Elementwise(name=p + "shared_act", layer=li, role="shared_act", fn=act, elements=T * fs,
                                  dtype=dt), s)
                outs.append(e(MatMul(name=p + "shared_down", layer=li, role="shared_down", m=T, n=d, k=fs,
                                     b_shared=True, **mm), s))
        else:
            h = e(MatMul(name=p + "mlp_up", layer=li, role="mlp_up", m=T, n=g * f, k=d, b_shared=True, **mm), n2)
            h = e(Elementwise(name=p + "mlp_act", layer=li, role="mlp_act", fn=act, elements=T * f, dtype=dt), h)
            outs = [e(MatMul(name=p + "mlp_down", layer=li, role="mlp_down", m=T, n=d, k=f, b_shared=True,
                             **mm), h)]
        if tp > 1:
            outs = [e(Collective(name=p + "allreduce_mlp", layer=li, role="allreduce_mlp", op="allreduce",
                                 bytes_per_rank=ar_bytes, group=tp, dtype=dt), *outs)]
        x = e(Elementwise(name=p + "residual_mlp", layer=li, role="residual_mlp", fn="add", elements=T * d,
                          dtype=dt), *outs, r)
        e.close(run)
        x = f"L{run.stop - 1}.residual_mlp"

    # --- head -----------------------------------------------------------------------------
    x = e(Norm(name="final_norm", role="final_norm", rows=T, cols=d, dtype=dt), x)
    if decoder:
        e(MatMul(name="lm_head", role="lm_head", m=batch, n=-(-m.vocab_size // tp), k=d, b_shared=True, **mm), x)
    elif m.num_classes:
        e(MatMul(name="classifier", role="classifier", m=batch, n=-(-m.num_classes // tp), k=d, b_shared=True,
                 **mm), x)

    moe_live = T * d + moe_slots * (g * fm + fm) + T * m.num_shared_experts * fm * (g + 1) if m.is_moe else 0
    return e.graph(phase_meta(m, phase, batch, seq_len, context_len, kv_len, tp, dt, attention, moe_live))


def phase_meta(m: ModelConfig, phase: str, batch: int, seq_len: int, context_len: int, kv_len: int, tp: int,
               dt: str, attention: str, moe_live: int = 0) -> WorkloadMeta:
    """What a transformer phase graph represents (``WorkloadMeta``): its tokens, parameters and
    the bytes one chip holds (weights, K/V cache, the peak live activations of a layer);
    ``moe_live``: a MoE layer's live activations."""
    decoder, d, hq, o_width, g, f, b, qkv_w, mla, moe, params, per_chip, kv_per_token = _meta_terms(m, tp, dt)
    q_len = seq_len if phase == "prefill" else 1
    T = batch * q_len
    attn_live = (T * (d + qkv_w + hq * o_width)
                 + (0 if attention == "flash" or mla else 2 * batch * hq * q_len * kv_len))
    mlp_live = T * (d + g * f + f)
    if moe:
        mlp_live = max(mlp_live, moe_live)
    if not decoder:
        kv = 0.0
    elif mla:
        kv = m.kv_cache_bytes(batch, kv_len, dt)
    else:
        kv = kv_per_token * batch * min(kv_len, m.sliding_window or kv_len) * b
    return WorkloadMeta(
        model=m.name, phase=phase, batch=batch, seq_len=seq_len if phase == "prefill" else 0,
        context_len=context_len, tp=tp, dtype=dt, tokens=T, params=params,
        weight_bytes_per_chip=per_chip * b, kv_cache_bytes_per_chip=kv,
        activation_bytes_per_chip=(T * d + max(attn_live, mlp_live)) * b,
        attention=attention)


_META = IdentityCache(64)


def _meta_terms(m: ModelConfig, tp: int, dt: str) -> tuple:
    """What ``phase_meta`` takes from the model, ``tp`` and ``dt`` alone, once per model object."""
    per = _META.get((m,), dict)
    hit = per.get((tp, dt))
    if hit is None:
        params, per_chip = _param_counts(m, tp)
        hq = m.num_attention_heads // tp
        hit = per[(tp, dt)] = (
            m.family == "decoder", m.hidden_size, hq, m.v_head_dim if m.is_mla else m.head_dim,
            2 if m.gated_mlp else 1, m.intermediate_size // tp, dtype_bytes(dt), m.qkv_width(tp), m.is_mla, m.is_moe,
            params, per_chip, 2.0 * m.num_hidden_layers * m.kv_heads_per_chip(tp) * m.head_dim)
    return hit


def _attention(e, m: ModelConfig, p: str, li: int, h: str, batch: int, q_len: int, kv_len: int, hq: int, kvl: int,
               qkv_n: int, dt: str, decoder: bool, causal: bool, flash: bool, rope: bool,
               grouped: bool = False) -> str:
    """Standard (grouped-query) attention of one layer: the fused QKV projection, RoPE, the KV
    append and the attention itself (fused, or as its score, softmax and context ops; ``grouped``:
    each KV head's keys and values read once for its group of query heads, the group's queries
    stacked as rows of one product, as a graph compiler runs a grouped-query einsum)."""
    T, d, hd = batch * q_len, m.hidden_size, m.head_dim
    mm = dict(dtype_a=dt, dtype_b=dt, dtype_out=dt)
    h = e(MatMul(name=p + "qkv_proj", layer=li, role="qkv_proj", m=T, n=qkv_n, k=d, b_shared=True, **mm), h)
    if rope:
        h = e(Elementwise(name=p + "rope", layer=li, role="rope", fn="rope",
                          elements=T * (hq + kvl) * hd, dtype=dt), h)
    deps = (h,)
    if decoder:
        deps = (h, e(KVCache(name=p + "kv_append", layer=li, role="kv_append", mode="append", batch=batch,
                             tokens=q_len, kv_heads=kvl, head_dim=hd, dtype=dt,
                             cached=min(kv_len - q_len, m.sliding_window or kv_len)), h))
    if flash:
        h = e(FlashAttention(name=p + "attn", layer=li, role="attn", batch=batch, heads=hq, kv_heads=kvl,
                             q_len=q_len, kv_len=kv_len, head_dim=hd, causal=causal, dtype=dt,
                             window=m.sliding_window or 0), *deps)
    else:
        bh = batch * hq
        g = hq // kvl if grouped and 0 < kvl <= hq and hq % kvl == 0 else 1  # query heads sharing one K / V read
        h = e(MatMul(name=p + "attn_score", layer=li, role="attn_score", batch=bh // g, m=q_len * g, n=kv_len,
                     k=hd, **mm), *deps)
        h = e(Softmax(name=p + "attn_softmax", layer=li, role="attn_softmax", rows=bh * q_len,
                      cols=kv_len, dtype=dt), h)
        h = e(MatMul(name=p + "attn_context", layer=li, role="attn_context", batch=bh // g, m=q_len * g, n=hd,
                     k=kv_len, **mm), h)
    return h


def _mla_attention(e, m: ModelConfig, p: str, li: int, h: str, batch: int, q_len: int, kv_len: int, hq: int,
                   qkv_n: int, dt: str, decoder: bool, causal: bool) -> str:
    """Multi-head latent attention (DeepSeek-V2/V3) of one layer, as inference engines run it.
    The query projection (through ``q_lora_rank`` when the model compresses queries) is fused
    with the K/V down-projection to the latent and the shared rotary key (replicated over TP);
    the latent is normalised, RoPE rotates the rotary parts, and the cache keeps the latent and
    rotary key (``kv_lora_rank + qk_rope_head_dim`` per token, one vector for K and V). Prefill
    decompresses the latent of every position into per-head keys and values and runs attention
    with 192-wide queries / keys and 128-wide values; decode absorbs the key up-projection into
    the query (a per-head GEMM onto the latent), attends over the cached latent itself (keys and
    values one vector) and projects each head's result back to ``v_head_dim``."""
    T, d = batch * q_len, m.hidden_size
    r, rope, nope, vd = m.kv_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim
    qk = nope + rope
    mm = dict(dtype_a=dt, dtype_b=dt, dtype_out=dt)
    h = q = e(MatMul(name=p + "qkv_proj", layer=li, role="qkv_proj", m=T, n=qkv_n, k=d, b_shared=True, **mm), h)
    if m.q_lora_rank:
        qn = e(RMSNorm(name=p + "q_norm", layer=li, role="q_norm", rows=T, cols=m.q_lora_rank, dtype=dt), h)
        q = e(MatMul(name=p + "q_up", layer=li, role="q_up", m=T, n=hq * qk, k=m.q_lora_rank, b_shared=True, **mm), qn)
    kv = e(RMSNorm(name=p + "kv_norm", layer=li, role="kv_norm", rows=T, cols=r, dtype=dt), h)
    rot = e(Elementwise(name=p + "rope", layer=li, role="rope", fn="rope", elements=T * (hq + 1) * rope, dtype=dt),
            *dict.fromkeys((q, h)))
    deps = [rot]
    if decoder:
        deps.append(e(KVCache(name=p + "kv_append", layer=li, role="kv_append", mode="append", batch=batch,
                              tokens=q_len, kv_heads=1, head_dim=r + rope, dtype=dt, kv_shared=True,
                              cached=kv_len - q_len), kv, rot))
    if q_len > 1:  # prefill: decompress every position's keys and values
        up = e(MatMul(name=p + "kv_up", layer=li, role="kv_up", m=batch * kv_len, n=hq * (nope + vd), k=r,
                      b_shared=True, **mm), kv, *deps)
        return e(FlashAttention(name=p + "attn", layer=li, role="attn", batch=batch, heads=hq, kv_heads=hq,
                                q_len=q_len, kv_len=kv_len, head_dim=qk, v_head_dim=vd, causal=causal, dtype=dt),
                 up, *deps)
    qa = e(MatMul(name=p + "q_absorb", layer=li, role="q_absorb", batch=hq, m=batch, n=r, k=nope, **mm), *deps)
    a = e(FlashAttention(name=p + "attn", layer=li, role="attn", batch=batch, heads=hq, kv_heads=1, q_len=1,
                         kv_len=kv_len, head_dim=r + rope, v_head_dim=r, kv_shared=True, dtype=dt), qa)
    return e(MatMul(name=p + "v_up", layer=li, role="v_up", batch=hq, m=batch, n=vd, k=r, **mm), a)


def _build_cnn(m: ModelConfig, batch: int, dt: str) -> WorkloadGraph:
    e = _Emit()
    H = m.image_size
    stem = Conv2D(name="stem", role="stem", batch=batch, in_h=H, in_w=H, in_channels=m.num_channels,
                  out_channels=m.stem_width, kernel_h=7, kernel_w=7, stride=2, padding=3, dtype=dt)
    x = e(stem)
    H = stem.out_h
    x = e(Elementwise(name="maxpool", role="maxpool", fn="copy", elements=batch * H * H * m.stem_width,
                      dtype=dt), x)
    H = (H + 2 - 3) // 2 + 1  # 3x3, stride 2, padding 1
    peak = 0
    cout = m.stem_width
    for i, (_, _, cin, w, cout, stride) in enumerate(cnn_blocks(m)):
        p = f"L{i}."
        conv = dict(layer=i, batch=batch, in_w=H, dtype=dt)
        h = e(Conv2D(name=p + "conv1", role="conv1", in_h=H, in_channels=cin, out_channels=w, **conv), x)
        c2 = Conv2D(name=p + "conv2", role="conv2", in_h=H, in_channels=w, out_channels=w, kernel_h=3,
                    kernel_w=3, stride=stride, padding=1, **conv)
        h = e(c2, h)
        Ho = c2.out_h
        conv["in_w"] = Ho
        h = e(Conv2D(name=p + "conv3", role="conv3", in_h=Ho, in_channels=w, out_channels=cout, **conv), h)
        short = x
        if cin != cout or stride != 1:
            conv["in_w"] = H
            short = e(Conv2D(name=p + "downsample", role="downsample", in_h=H, in_channels=cin, out_channels=cout,
                             stride=stride, **conv), x)
        x = e(Elementwise(name=p + "residual", layer=i, role="residual", fn="add",
                          elements=batch * Ho * Ho * cout, dtype=dt), h, short)
        peak = max(peak, batch * (H * H * (cin + w) + Ho * Ho * (w + 2 * cout)))
        H = Ho
    x = e(Elementwise(name="avgpool", role="avgpool", fn="copy", elements=batch * H * H * cout, dtype=dt), x)
    if m.num_classes:
        e(MatMul(name="fc", role="fc", m=batch, n=m.num_classes, k=cout, b_shared=True,
                 dtype_a=dt, dtype_b=dt, dtype_out=dt), x)
    b = dtype_bytes(dt)
    meta = WorkloadMeta(model=m.name, phase="prefill", batch=batch, tp=1, dtype=dt, tokens=batch,
                        params=m.params(), weight_bytes_per_chip=m.params() * b,
                        activation_bytes_per_chip=peak * b, attention="flash")
    return e.graph(meta)


__all__ = ["build", "prefill", "decode", "active_experts", "PHASES", "ATTENTION", "LAYER_ROLES",
           "GLOBAL_ROLES", "CNN_ROLES"]
