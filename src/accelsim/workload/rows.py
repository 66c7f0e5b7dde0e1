"""A dense transformer phase as a table of rows: the stored ops of ``build``'s graph (the ops
before the layer stack, one layer standing for all of them, the head) without op objects or a
graph, whatever the point's batch and lengths, for the analytical tier's fast path
(``sim.fast.evaluate_point``, which costs the table in one compiled call).

``phase_table`` covers decoder and encoder models without experts, latent attention or a patch
embedding, uncompressed (``covers``); ``build`` builds every other graph, and the same one on
demand (``tests/test_fast_path.py`` holds the table equal to the graph's stored ops at random
points). A row's integer fields are multiples of one of the point's variables (``VARS``: tokens,
batch, query length, K/V length) by kind: a GEMM (m, n, k, batch, B shared), an elementwise op
(elements, inputs, 1 for a reduction; its function's operations per element in ``par``), a norm
or softmax (rows, cols, ``SOFTMAX`` / ``LAYERNORM`` / ``RMSNORM``), an embedding gather (tokens,
hidden, vocab), a K/V append (batch, tokens, K/V heads, head dim), a fused attention (batch,
heads, K/V heads, query length, K/V length, head dim, window, 1 for a decoder) and a collective
(elements, ranks, 1 for a reduction; bytes per element in ``par``). ``given_row`` gives a fused
attention or collective row as the tuple ``sim.fast.cost_row`` costs in Python where the compiled
call does not cover it: ``("flash", name, role, count, op)`` (the ``FlashAttention`` itself),
``("coll", name, role, count, op, bytes_per_rank, group)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..memo import IdentityCache
from .model import ModelConfig, dtype_bytes
from .ops import ELEMENTWISE, FlashAttention


def covers(m: ModelConfig) -> bool:
    """Whether ``phase_table`` holds ``m``'s phases."""
    return (m.family in ("decoder", "encoder") and m.num_hidden_layers > 0
            and not (m.is_moe or m.is_mla or m.patch_size))


def flash_op(m: ModelConfig, batch: int, q_len: int, kv_len: int, tp: int, dt: str) -> FlashAttention:
    """The fused attention of a layer of ``m`` ("L0.attn")."""
    return FlashAttention(name="L0.attn", layer=0, role="attn", batch=batch, heads=m.num_attention_heads // tp,
                          kv_heads=m.kv_heads_per_chip(tp), q_len=q_len, kv_len=kv_len, head_dim=m.head_dim,
                          causal=m.family == "decoder" and q_len > 1, dtype=dt, window=m.sliding_window or 0)


def allreduce_bytes(m: ModelConfig, tokens: int, dt: str) -> float:
    """Bytes per rank of a tensor-parallel all-reduce of ``tokens`` hidden states."""
    return tokens * m.hidden_size * dtype_bytes(dt)


def given_row(m: ModelConfig, r: tuple, batch: int, q_len: int, kv_len: int, tp: int, dt: str) -> tuple:
    """The row ``sim.fast.cost_row`` costs for ``PhaseTable`` row ``r`` of a collective or a fused
    attention at a point (see the module docstring)."""
    kind, name, role, count, extra = r[:5]
    if kind == "coll":
        return kind, name, role, count, extra, allreduce_bytes(m, batch * q_len, dt), tp
    return kind, name, role, count, flash_op(m, batch, q_len, kv_len, tp, dt)


VARS = ("one", "tokens", "batch", "q_len", "kv_len")
"""A point's variables, by place: what ``phase_table``'s integer fields multiply."""
ONE, TOK, BATCH, Q, KV = range(5)
MM, EW, ROWWISE, EMBED, KV_APPEND, GIVEN, FLASH, COLL = range(8)
"""``PhaseTable`` row kinds: a GEMM, an elementwise op, a norm or softmax, an embedding gather, a
K/V cache append, a row costed in Python, a fused attention and a collective."""
FIELDS = 8
"""Integer fields a ``PhaseTable`` row may have."""
SOFTMAX, LAYERNORM, RMSNORM = range(3)
"""A row-wise op's code (its third field)."""


class PhaseTable(NamedTuple):
    """A phase's rows whatever its batch and lengths (``phase_table``): row ``i``'s integer
    fields are ``coef[i, j] * vars[sel[i, j]]`` (``VARS``), its kind a ``sim.rowkernel`` code;
    ``rows`` names each row (kind, name, role, count), holds what is not a number (an
    elementwise function, a norm, a collective) and its fields as (coef, var) pairs."""

    rows: tuple[tuple, ...]
    kind: np.ndarray
    coef: np.ndarray
    sel: np.ndarray
    par: np.ndarray
    count: np.ndarray
    mm_fields: tuple[tuple[int, ...], ...]
    """Per GEMM row: its place and its fields' (coef, var) pairs, flat."""
    coll: tuple[int, ...]
    """Places of the collectives (one kind over the tp ranks)."""
    flash: tuple[int, ...]
    """Places of the fused attentions."""
    ops: int
    """The stored ops the rows stand for (their counts' sum)."""


def phase_table(m: ModelConfig, phase: str, tp: int, dtype: str, attention: str) -> PhaseTable:
    """The rows of ``m``'s ``phase`` with their shapes as multiples of the point's variables, for
    arguments ``checked_args`` has made whole; built once per model object and arguments."""
    return _TABLES.get((m,), dict).get((phase, tp, dtype, attention)) or _table(m, phase, tp, dtype, attention)


_TABLES = IdentityCache(32)


def _table(m: ModelConfig, phase: str, tp: int, dt: str, attention: str) -> PhaseTable:
    decoder = m.family == "decoder"
    d, hd = m.hidden_size, m.head_dim
    hq, kvl = m.num_attention_heads // tp, m.kv_heads_per_chip(tp)
    g = 2 if m.gated_mlp else 1
    f = m.intermediate_size // tp
    act = (m.activation + "_mul") if m.gated_mlp else m.activation
    norm = "rmsnorm" if m.norm == "rmsnorm" else "layernorm"
    L = m.num_hidden_layers
    out: list[tuple] = []  # (kind, name, role, count, code, fields (an int, or (coef, var)), par, extra)

    def mm(name, role, count, mv, n, k, bv, shared):
        out.append(("mm", name, role, count, MM, (mv, n, k, bv, int(shared)), (0.0, 0.0), None))

    def ew(name, role, count, fn, elements):
        inputs, per_vop, per_trans = ELEMENTWISE[fn]
        out.append(("ew", name, role, count, EW, (elements, inputs + (1 if fn == "rope" else 0), int(fn == "sum")),
                    (per_vop, per_trans), fn))

    def rowwise(kind, name, role, count, fn, rows, cols):
        code = {"softmax": SOFTMAX, "layernorm": LAYERNORM, "rmsnorm": RMSNORM}[fn]
        out.append((kind, name, role, count, ROWWISE, (rows, cols, code), (0.0, 0.0), fn))

    def coll(name, role, count, op):  # ``allreduce_bytes`` per rank over the tp ranks
        out.append(("coll", name, role, count, COLL, ((d, TOK), tp, int(op in ("allreduce", "reducescatter"))),
                    (dtype_bytes(dt), 0.0), op))

    out.append(("embed", "embed", "embed", 1, EMBED, ((1, TOK), d, -(-m.vocab_size // tp)), (0.0, 0.0), None))
    if tp > 1:
        coll("allreduce_embed", "allreduce_embed", 1, "allreduce")
    if m.position_embedding == "learned":
        ew("pos_embed", "pos_embed", 1, "add", (d, TOK))
    rowwise("norm", "L0.norm_attn", "norm_attn", L, norm, (1, TOK), d)
    mm("L0.qkv_proj", "qkv_proj", L, (1, TOK), m.qkv_width(tp), d, 1, True)
    if m.position_embedding == "rope":
        ew("L0.rope", "rope", L, "rope", ((hq + kvl) * hd, TOK))
    if decoder:
        out.append(("kv", "L0.kv_append", "kv_append", L, KV_APPEND, ((1, BATCH), (1, Q), kvl, hd), (0.0, 0.0), None))
    if attention == "flash":
        out.append(("flash", "L0.attn", "attn", L, FLASH, ((1, BATCH), hq, kvl, (1, Q), (1, KV), hd,
                                                          m.sliding_window or 0, int(decoder)), (0.0, 0.0), None))
    else:
        gq = hq // kvl if attention == "unfused_grouped" and 0 < kvl <= hq and hq % kvl == 0 else 1
        mm("L0.attn_score", "attn_score", L, (gq, Q), (1, KV), hd, (hq // gq, BATCH), False)
        rowwise("softmax", "L0.attn_softmax", "attn_softmax", L, "softmax", (hq, TOK), (1, KV))
        mm("L0.attn_context", "attn_context", L, (gq, Q), hd, (1, KV), (hq // gq, BATCH), False)
    mm("L0.out_proj", "out_proj", L, (1, TOK), d, hq * hd, 1, True)
    if tp > 1:
        coll("L0.allreduce_attn", "allreduce_attn", L, "allreduce")
    ew("L0.residual_attn", "residual_attn", L, "add", (d, TOK))
    rowwise("norm", "L0.norm_mlp", "norm_mlp", L, norm, (1, TOK), d)
    mm("L0.mlp_up", "mlp_up", L, (1, TOK), g * f, d, 1, True)
    ew("L0.mlp_act", "mlp_act", L, act, (f, TOK))
    mm("L0.mlp_down", "mlp_down", L, (1, TOK), d, f, 1, True)
    if tp > 1:
        coll("L0.allreduce_mlp", "allreduce_mlp", L, "allreduce")
    ew("L0.residual_mlp", "residual_mlp", L, "add", (d, TOK))
    rowwise("norm", "final_norm", "final_norm", 1, norm, (1, TOK), d)
    if decoder:
        mm("lm_head", "lm_head", 1, (1, BATCH), -(-m.vocab_size // tp), d, 1, True)
    elif m.num_classes:
        mm("classifier", "classifier", 1, (1, BATCH), -(-m.num_classes // tp), d, 1, True)
    n = len(out)
    coef, sel = np.zeros((n, FIELDS), np.int64), np.zeros((n, FIELDS), np.int64)
    for i, r in enumerate(out):
        for j, fld in enumerate(r[5]):
            c, v = fld if isinstance(fld, tuple) else (fld, ONE)
            coef[i, j], sel[i, j] = c, v
    t = PhaseTable(rows=tuple((r[0], r[1], r[2], r[3], r[7], tuple(x if isinstance(x, tuple) else (x, ONE)
                                                                     for x in r[5])) for r in out),
                   kind=np.array([r[4] for r in out], np.int64), coef=coef, sel=sel,
                   par=np.array([r[6] for r in out], float), count=np.array([r[3] for r in out], np.int64),
                   mm_fields=tuple((i,) + tuple(x for c, v in zip(coef[i, :5].tolist(), sel[i, :5].tolist())
                                                for x in (c, v)) for i, r in enumerate(out) if r[0] == "mm"),
                   coll=tuple(i for i, r in enumerate(out) if r[4] == COLL),
                   flash=tuple(i for i, r in enumerate(out) if r[4] == FLASH), ops=sum(r[3] for r in out))
    _TABLES.get((m,), dict)[(phase, tp, dt, attention)] = t
    return t
