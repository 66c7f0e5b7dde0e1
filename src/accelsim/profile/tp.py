"""Tensor-parallel what-if: a traced step's matched ops re-sharded to another TP degree, as
Megatron-style tensor parallelism shards a transformer (column-parallel QKV / gate / up / LM
head, row-parallel output and down projections followed by an all-reduce, attention split by
heads; norms and residual-sized activations replicated). A trace records shapes, not which
layer a GEMM belongs to, so the roles come from the shapes:

- ``H``, the hidden size: ``--hidden``, else the most common contraction size of the weight
  GEMMs; ``T``, the tokens per step: the most common row count of the weight GEMMs that
  contract over ``H``.
- A weight GEMM (2-D right operand) splits its first dimension, in the order n, k, m, that is
  neither ``H`` nor ``T`` (forward column-parallel: n; forward row-parallel and the backward
  data-gradient of a column-parallel layer: k; weight gradients: the weight's sharded side).
  Split along k with n = ``H``, its output is a partial sum: an all-reduce of m x n over the TP
  group follows it on its stream (blocking, as Megatron runs it without overlap). A square
  ``H`` x ``H`` GEMM has no such dimension: it is row-parallel when the matched op before it
  is attention or a batched matmul (the output projection), else column-parallel (a query
  projection).
- Batched matmuls (attention scores) and softmax rows scale with the heads; fused attention
  splits its heads (KV heads too, kept at least one: replicated when fewer than the degree); a
  softmax with one row per token (the loss) splits its vocabulary columns instead.
- Norms stay whole; an elementwise op over ``T`` x ``H`` or ``T`` elements stays whole, any
  other size (MLP intermediate, QKV) is split.
- A traced collective keeps its bytes and runs over the new group (none at degree 1).

Unmatched work keeps its measured time, at any degree.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from fractions import Fraction

import pandas as pd

from ..errors import WorkloadError
from ..workload.ops import Collective, Elementwise, FlashAttention, MatMul, Softmax, nbytes


def _weight_gemm(o) -> bool:
    return isinstance(o, MatMul) and o.b_shared and o.batch == 1


def sizes(ops, hidden: int | None = None) -> tuple[int, int]:
    """(hidden size H, tokens per step T) of a traced step's matched ops."""
    gemms = [o for o in ops if _weight_gemm(o)]
    if hidden is None:
        if not gemms:
            raise WorkloadError("a TP what-if needs the trace's weight GEMMs (aten::linear / mm with recorded "
                                "shapes) to tell the hidden size; none matched (give --hidden)")
        hidden = Counter(o.k for o in gemms).most_common(1)[0][0]
    rows = Counter(o.m for o in gemms if o.k == hidden)
    tokens = rows.most_common(1)[0][0] if rows else 0
    return int(hidden), int(tokens)


def _scale(value: int, f: Fraction, what: str) -> int:
    v = value * f
    if v.denominator != 1 or v < 1:
        raise WorkloadError(f"TP what-if: {what} = {value} does not shard by {f.denominator}/{f.numerator} "
                            f"(pick a degree that divides it)")
    return int(v)


def reshard(ops: list, tp: int, traced_tp: int = 1, hidden: int | None = None) -> tuple[list, list]:
    """(each op as one rank runs it at degree ``tp``, the all-reduce that follows it or None),
    for ops traced at degree ``traced_tp`` (None entries pass through)."""
    if tp < 1 or traced_tp < 1:
        raise WorkloadError(f"TP degrees must be >= 1, got tp={tp}, traced tp={traced_tp}")
    f = Fraction(traced_tp, tp)
    H, T = sizes([o for o in ops if o is not None], hidden)
    out, reduce = [], []
    prev = None
    for o in ops:
        new, ar = o, None
        if o is None:
            pass
        elif _weight_gemm(o):
            keep = {H, T}
            dim = next((d for d in ("n", "k", "m") if getattr(o, d) not in keep), None)
            if dim is None:  # square H x H: the output projection after attention, else a query one
                dim = "k" if isinstance(prev, FlashAttention) or (isinstance(prev, MatMul) and not prev.b_shared) \
                    else "n"
            new = dataclasses.replace(o, **{dim: _scale(getattr(o, dim), f, f"a GEMM's {dim}")})
            if dim == "k" and o.n == H and tp > 1:
                ar = Collective(op="allreduce", bytes_per_rank=float(o.m * o.n * nbytes(o.dtype_out)), group=tp,
                                dtype=o.dtype_out)
        elif isinstance(o, MatMul):
            if o.batch > 1:
                new = dataclasses.replace(o, batch=_scale(o.batch, f, "a batched matmul's batch (heads)"))
        elif isinstance(o, FlashAttention):
            kv = max(1, int(o.kv_heads * f)) if o.kv_heads * f < 1 else _scale(o.kv_heads, f, "attention KV heads")
            new = dataclasses.replace(o, heads=_scale(o.heads, f, "attention heads"), kv_heads=kv)
        elif isinstance(o, Softmax):
            if o.rows == T:  # one row per token: the loss over the vocabulary, split vocab-parallel
                new = dataclasses.replace(o, cols=_scale(o.cols, f, "the vocabulary (softmax columns)"))
            else:  # attention probabilities: a row per (sequence, head, query)
                new = dataclasses.replace(o, rows=_scale(o.rows, f, "softmax rows (heads)"))
        elif isinstance(o, Elementwise):
            if o.elements not in (T * H, T, H) and (o.elements * f).denominator == 1:
                new = dataclasses.replace(o, elements=int(o.elements * f))
        elif isinstance(o, Collective):
            new = dataclasses.replace(o, group=tp) if tp > 1 else None
        out.append(new)
        reduce.append(ar)
        if o is not None and not isinstance(o, Elementwise):
            prev = o
    return out, reduce


def reshard_work(work: pd.DataFrame, tp: int, traced_tp: int = 1, hidden: int | None = None) -> tuple[pd.DataFrame,
                                                                                                     pd.DataFrame]:
    """``work`` (matched) with ``accel_op`` re-sharded, and a frame of the all-reduces that follow
    row-parallel GEMMs (``accel_op``; None elsewhere), on the same index. A traced collective
    that vanishes at degree 1 is marked ``dropped``."""
    ops, ars = reshard(list(work["accel_op"]), tp, traced_tp, hidden)
    out = work.copy()
    out["dropped"] = [o is not None and n is None for o, n in zip(work["accel_op"], ops)]
    out["accel_op"] = ops
    return out, pd.DataFrame({"accel_op": ars}, index=work.index)


__all__ = ["reshard", "reshard_work", "sizes"]
