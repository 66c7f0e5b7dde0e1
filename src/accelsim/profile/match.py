"""Match measured work to accelsim ops: each row of ``Trace.work`` gets a ``kind`` and, where
the launching op recorded its input shapes, the op accelsim would cost (``MatMul`` with m, n,
k and batch; ``FlashAttention``; a norm, softmax or elementwise op over its elements; a
``Collective`` with its bytes and ranks). A row that matches nothing keeps ``kind="other"``
and is reported with its time share; no row is ever dropped.

Names are matched by the aten op that launched the work (CPU traces: the op itself), then by
kernel name patterns (cuBLAS / CUTLASS GEMMs, flash / fused attention, NCCL).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from ..configio import MAX_EXACT_INT
from ..workload.ops import (FLASH_BWD_FACTOR, Collective, Elementwise, FlashAttention, LayerNorm, MatMul, Op, RMSNorm,
                            Softmax)

GEMM_OPS = {"aten::mm": (0, 1, None), "aten::addmm": (1, 2, None), "aten::bmm": (0, 1, None),
            "aten::baddbmm": (1, 2, None), "aten::matmul": (0, 1, None), "aten::linear": (0, 1, "t")}
"""aten op -> (index of A's dims, index of B's dims, "t" when B is stored [N, K])."""
ATTENTION = re.compile(r"scaled_dot_product|flash|fmha|efficient_attention|attention", re.I)
NORMS = {"aten::layer_norm": "layernorm", "aten::native_layer_norm": "layernorm", "aten::rms_norm": "rmsnorm",
         "aten::_fused_rms_norm": "rmsnorm", "aten::group_norm": "layernorm", "aten::native_group_norm": "layernorm"}
SOFTMAX = re.compile(r"^aten::_?(log_)?softmax")
ELEMENTWISE = re.compile(r"^aten::(add|sub|mul|div|pow|rsqrt|sqrt|exp|neg|silu|gelu|relu|sigmoid|tanh|mean|sum|"
                         r"where|masked_fill|cat|threshold|embedding|index|gather|scatter|clamp|max|min|"
                         r"native_dropout|dropout|abs|sign|reciprocal|log|argmax|topk|cumsum|tril|triu)", re.I)
UNVECTORIZED = re.compile(r"at::native::elementwise_kernel<|unrolled_elementwise_kernel|CatArrayBatchedCopy")
"""Kernels of ATen's unvectorized loops (a strided or broadcast operand, a widening cast) and its
strided batched copy (``torch.cat``): the traced kernel name tells which path an op took."""
GEMM_KERNEL = re.compile(r"gemm|cutlass|xmma|cublas|matmul|wgmma", re.I)
NCCL = re.compile(r"nccl|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|broadcast|sendrecv", re.I)
COLLECTIVE_KIND = (("reduce_?scatter", "reducescatter"), ("all_?gather", "allgather"), ("all_?reduce", "allreduce"),
                   ("all_?to_?all", "alltoall"), ("broadcast", "broadcast"), ("send|recv", "sendrecv"))
DTYPES = {"float": "fp32", "c10::BFloat16": "bf16", "c10::Half": "fp16", "double": "fp32",
          "c10::Float8_e4m3fn": "fp8", "c10::Float8_e5m2": "fp8", "signed char": "int8"}


def _dtype(types) -> str:
    for t in types or ():
        if t in DTYPES:
            return DTYPES[t]
    return "bf16"


class _Garbled(ValueError):
    """A trace value where a size (a dimension, an element count, a group size) belongs that is
    not one: the op is left unmatched rather than priced at a made-up shape."""


def _size(v) -> int:
    """``v`` as a size: a whole, finite number from 0 to 2^53 (``configio.MAX_EXACT_INT``)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or v != int(v) \
            or v > MAX_EXACT_INT:
        raise _Garbled(f"not a size: {v!r}")
    return int(v)


def _numel(dims) -> int:
    """Elements of one tensor's shape; a tensor list's shape (``aten::cat``) counts all of them."""
    if not dims:
        return 0
    if any(isinstance(d, (list, tuple)) for d in dims):
        return sum(_numel(d) for d in dims if isinstance(d, (list, tuple)))
    return _size(math.prod(_size(d) for d in dims))


def _gemm(op: str, dims: list, dt: str) -> Op | None:
    ia, ib, layout = GEMM_OPS[op]
    if dims is None or len(dims) <= max(ia, ib):
        return None
    a, b = dims[ia], dims[ib]
    if len(a) < 2 or len(b) < 1:
        return None
    if layout == "t":  # linear: x [..., K] @ W[N, K]^T
        m, k, n, batch = _numel(a[:-1]), a[-1], b[0], 1
    elif len(a) == 3 and len(b) == 3:
        batch, m, k, n = a[0], a[1], a[2], b[2]
    elif len(b) == 2:
        m, k, n, batch = _numel(a[:-1]), a[-1], b[1], 1
    else:
        return None
    shared = len(b) == 2
    return MatMul(m=_size(m), n=_size(n), k=_size(k), batch=_size(batch), b_shared=shared, dtype_a=dt, dtype_b=dt,
                  dtype_out=dt)




def _attention(dims: list, dt: str, name: str, backward: bool = False) -> Op | None:
    if not dims or len(dims[0]) != 4:
        return None
    b, h, t, d = dims[0]
    # the backward's first input is the output gradient (q's shape); K follows Q in both
    i = 2 if backward else 1
    kv = dims[i] if len(dims) > i and len(dims[i]) == 4 else dims[0]
    return FlashAttention(batch=_size(b), heads=_size(h), kv_heads=_size(kv[1]), q_len=_size(t), kv_len=_size(kv[2]),
                          head_dim=round(FLASH_BWD_FACTOR * _size(d)) if backward else _size(d), causal=True, dtype=dt,
                          backward=backward)


def _collective(name: str, extra: dict | None, dt: str) -> Op | None:
    extra = extra or {}
    what = str(extra.get("Collective name") or name).lower()
    kind = next((k for pat, k in COLLECTIVE_KIND if re.search(pat, what)), None)
    n, group = extra.get("In msg nelems"), extra.get("Group size")
    if kind is None or not n or not group:
        return None
    n, group = _size(n), _size(group)
    if n == 0 or group < 2:
        return None
    el = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}.get(_dtype([extra.get("dtype")]) if extra.get(
        "dtype") else dt, 2)
    return Collective(op=kind, bytes_per_rank=float(n) * el, group=int(group), dtype=dt)


def classify(name: str, op: str | None, dims, types, extra, cat: str) -> tuple[str, Op | None]:
    """(kind, accelsim op or None) of one unit of measured work; an op whose shapes or sizes the
    trace garbled (a NaN, a string, a negative or fractional dimension) is of its kind, unmatched."""
    try:
        return _classify(name, op, dims, types, extra, cat)
    except (_Garbled, TypeError, IndexError, AttributeError):
        return _classify(name, op, None, types, None, cat)[0], None


def _classify(name: str, op: str | None, dims, types, extra, cat: str) -> tuple[str, Op | None]:
    dt = _dtype(types)
    key = op or name
    if cat in ("gpu_memcpy", "gpu_memset"):
        return "copy", None
    if NCCL.search(name) or (op and NCCL.search(op) and "nccl" in (op or "").lower()):
        return "collective", _collective(name if not op else op, extra, dt)
    if key in GEMM_OPS:
        return "matmul", _gemm(key, dims, dt)
    if ATTENTION.search(key) or ATTENTION.search(name):
        return "attention", _attention(dims, dt, key, backward="backward" in key)
    if key in NORMS:
        rows = _numel(dims[0][:-1]) if dims and dims[0] else 0
        cols = dims[0][-1] if dims and dims[0] else 0
        cls = RMSNorm if NORMS[key] == "rmsnorm" else LayerNorm
        return "norm", cls(rows=_size(rows), cols=_size(cols), dtype=dt) if rows and cols else None
    if SOFTMAX.search(key):
        rows = _numel(dims[0][:-1]) if dims and dims[0] else 0
        return "softmax", Softmax(rows=_size(rows), cols=_size(dims[0][-1]), dtype=dt) if rows else None
    if key == "aten::copy_" and dims and isinstance(dims[0], list) and dims[0]:
        # copy_(dst, src): a cast when the types differ (logits.float(), a gradient to fp32)
        src, dst = (_dtype([types[1]]) if types and len(types) > 1 else dt), dt
        return "elementwise", Elementwise(fn="copy", elements=_numel(dims[0]), dtype=src, dtype_out=dst,
                                          unvectorized=bool(UNVECTORIZED.search(name)))
    if key in GATHERS:  # reads and writes the rows it picks, not the whole table
        n = _gathered(key, dims or [])
        return "elementwise", Elementwise(fn="add", elements=_size(n), dtype=dt) if n else None
    if ELEMENTWISE.search(key) or key.endswith("_backward"):
        n = max((_numel(d) for d in (dims or []) if isinstance(d, list)), default=0)
        fn = "mul" if "mul" in key else "add"
        loop = bool(UNVECTORIZED.search(name))
        return "elementwise", Elementwise(fn=fn, elements=_size(n), dtype=dt, unvectorized=loop) if n else None
    if GEMM_KERNEL.search(name):
        return "matmul", None
    return "other", None


GATHERS = ("aten::index_select", "aten::embedding", "aten::gather", "aten::take")


def _gathered(op: str, dims: list) -> int:
    """Output elements of a gather: index_select(table, dim, index) and embedding(table, index)
    copy one table row per index; gather / take write one element per index."""
    shapes = [d for d in dims if isinstance(d, (list, tuple))]
    if not shapes:
        return 0
    index = shapes[-1]
    if op in ("aten::gather", "aten::take"):
        return _numel(index)
    table = shapes[0]
    return _numel(index) * (_numel(table[1:]) if len(table) > 1 else 1)


def _listed(v):
    return v if isinstance(v, (list, tuple)) else None


def match_work(work: pd.DataFrame) -> pd.DataFrame:
    """``work`` with ``kind``, ``matched`` (an accelsim op could be built) and ``accel_op``
    (the op, or None)."""
    out = work.copy()
    kinds, ops = [], []
    for r in work.itertuples(index=False):
        # a kernel that no recorded CPU op launched has no shapes (NaN in the frame)
        k, o = classify(r.name, r.op if isinstance(r.op, str) else None, _listed(r.dims), _listed(r.dtypes),
                        r.extra if isinstance(r.extra, dict) else None, r.cat)
        kinds.append(k)
        ops.append(o)
    out["kind"] = kinds
    out["accel_op"] = ops
    out["matched"] = [o is not None for o in ops]
    return out


def unmatched_share(matched: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """(share of device time in work that matched no accelsim op, those rows by name)."""
    total = float(matched["dur_s"].sum())
    miss = matched[~matched["matched"]]
    table = miss.groupby("name", sort=False)["dur_s"].agg(["count", "sum"]).sort_values("sum", ascending=False)
    return (float(miss["dur_s"].sum()) / total if total > 0 else 0.0), table
