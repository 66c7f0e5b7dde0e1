"""Element types on the tensor engine: the type a GEMM computes in, its rate, structured
sparsity's speed-up and the vector work of dequantizing operands stored narrower (shared by
``op_cost`` and the energy pass)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..workload.ops import MatMul
    from .op_cost import ChipModel


RATE_BITS = {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "fp6": 6, "int4": 4, "fp4": 4}
"""Width of each tensor-engine element type, to pick a mixed-operand GEMM's wider operand."""
UPCAST = {"fp4": ("fp6", "fp8", "bf16", "fp16"), "fp6": ("fp8", "bf16", "fp16"), "fp8": ("bf16", "fp16"),
          "int4": ("int8", "bf16", "fp16"), "int8": ("bf16", "fp16"), "fp16": ("bf16", "fp32"),
          "bf16": ("fp16", "fp32"), "tf32": ("fp32",)}
"""Where an emulated (dequantized) element type goes when the tensor engine lacks it: the
nearest wider type it runs, in this order."""
DEQUANT_OPS_PER_ELEMENT = 2.0
"""Vector ops to dequantize one staged element (convert to the compute type, multiply by its
scale); +1 with a zero point (subtract), +1 per group / block (load and convert its scale)."""


def rate_dtype(dtype: str) -> str:
    """The element type whose ``macs_per_cycle`` entry prices ``dtype`` (mxfp4 -> fp4, ...)."""
    from ..compress.formats import get_format

    try:
        return get_format(dtype).compute
    except ValueError:
        return dtype


def _tensor_dtype(*dtypes: str) -> str:
    """The element type a mixed-operand GEMM computes in: the wider operand's (the first on a
    tie)."""
    rates = [rate_dtype(d) for d in dtypes]
    return max(rates, key=lambda d: RATE_BITS.get(d, 16))


def compute_dtype(cm: ChipModel, mm: MatMul) -> str:
    """The type ``mm`` runs in on ``cm``'s tensor engine: the wider operand's element type;
    with ``mm.emulate``, upcast along ``UPCAST`` to the first type the engine runs."""
    key = (mm.dtype_a, mm.dtype_b, mm.emulate)
    hit = cm._compute.get(key)
    if hit is None:
        hit = cm._compute[key] = _compute_dtype(cm, mm)
    return hit


def _compute_dtype(cm: ChipModel, mm: MatMul) -> str:
    d = _tensor_dtype(mm.dtype_a, mm.dtype_b)
    if d in cm.macs or not mm.emulate:
        return d
    for up in UPCAST.get(d, ()):
        if up in cm.macs:
            return up
    return d


def sparse_factor(cm: ChipModel, mm: MatMul) -> float:
    """Tensor-engine speed-up of ``mm``'s N:M sparsity: ``min(sparsity_speedup, M/N)`` when the
    engine lists the pattern, else 1 (the weight is stored compressed but computed dense)."""
    if not mm.sparsity or mm.sparsity not in cm.sparse_patterns:
        return 1.0
    n, m = (int(v) for v in mm.sparsity.split(":"))
    return min(cm.sparse_speedup, m / n)


def gemm_speed(cm: ChipModel, mm: MatMul) -> float:
    """Streaming-rate multiplier of ``mm``: its compute type's rate times the sparsity factor."""
    return cm.speedup(compute_dtype(cm, mm)) * sparse_factor(cm, mm)


def dequant_per_element(dtype: str, compute: str) -> float:
    """Vector ops to dequantize one element stored as ``dtype`` for a GEMM computing in
    ``compute`` (0 when ``dtype``'s element type is the compute type or wider)."""
    from ..compress.formats import get_format

    f = get_format(dtype)
    if f.compute == compute or RATE_BITS.get(f.compute, 16) >= RATE_BITS.get(compute, 16):
        return 0.0
    return DEQUANT_OPS_PER_ELEMENT + (1.0 if f.zero_point else 0.0) + (1.0 / f.block if f.block else 0.0)


def dequant_ops(cm: ChipModel, mm: MatMul, tile_m: float, tile_n: float) -> float:
    """Vector ops spent dequantizing operands stored in a format other than the compute type
    (0 when the chip fuses dequantization into the GEMM). Each staging of an operand tile into
    a core is dequantized again: B once per row of output tiles (``ceil(m / tile_m)``), A once
    per column (``ceil(n / tile_n)``)."""
    if cm.fused_dequant:
        return 0.0
    comp = compute_dtype(cm, mm)
    pb, pa = dequant_per_element(mm.dtype_b, comp), dequant_per_element(mm.dtype_a, comp)
    b_elems = mm.batch * mm.k * mm.n * n_over_m(mm.sparsity)
    return (pb * b_elems * math.ceil(mm.m / max(tile_m, 1.0))
            + pa * mm.batch * mm.m * mm.k * math.ceil(mm.n / max(tile_n, 1.0)))


def dequant_seconds(cm: ChipModel, mm: MatMul) -> tuple[float, float]:
    """Vector-engine seconds to dequantize one stored element of B and of A into the compute
    type, each time a core stages it (0, 0 without dequantization or when the chip fuses it)."""
    if not (mm.emulate or mm.dtype_a != mm.dtype_b) or cm.fused_dequant:
        return 0.0, 0.0
    comp = compute_dtype(cm, mm)
    vr = cm.vec_rate.get(comp, cm.vec_rate_default)
    return (dequant_per_element(mm.dtype_b, comp) * n_over_m(mm.sparsity) / vr,
            dequant_per_element(mm.dtype_a, comp) / vr)


def n_over_m(pattern: str) -> float:
    """Kept fraction of an N:M pattern (1 for dense)."""
    if not pattern:
        return 1.0
    n, m = (int(v) for v in pattern.split(":"))
    return n / m
