"""Op-by-op correlation: each matched op instance of a trace as a row of the measurement
schema (``shared/data/measurements/SCHEMA.md``), so ``correlate``, ``calibrate`` and ``track``
work on a trace: GEMMs (m, n, k, batch folded into m for a shared weight), norms and softmax
(rows, cols), binary elementwise ops (``add``, elements), activations (``gelu`` class,
elements), copies and collectives (bytes per rank, ranks). Attention, reductions and
unmatched work have no row kind in the schema and are left out (the profile report lists them).
A softmax or norm row of a GPU trace names its kernel library when the kernel's name tells it
(``kernels`` column: ``triton_...`` kernels are Triton's, ``at::native`` ones ATen's)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..stack.spec import REDUCTION_KINDS
from ..workload.ops import Collective, Elementwise, LayerNorm, MatMul, RMSNorm, Softmax
from .match import match_work
from .trace import Trace

ACTIVATIONS = ("silu", "gelu", "relu", "sigmoid", "tanh")
BINARY = ("add", "sub", "mul", "div")
KERNEL_LIBRARIES = (("triton_", "triton"), ("at::native", "aten"))
"""Kernel-name prefixes / fragments that tell a GPU kernel's library: TorchInductor's and Liger's
Triton kernels are named ``triton_...``; PyTorch's native CUDA / HIP kernels live in
``at::native``."""


def kernel_library(kernel: str) -> str | None:
    """The kernel library (``stacks/kernels/`` name) a GPU kernel's name tells, else None."""
    for fragment, lib in KERNEL_LIBRARIES:
        if fragment in kernel:
            return lib
    return None


def _row(name: str, o) -> dict | None:
    op = name.split("::")[-1].rstrip("_")
    if isinstance(o, MatMul):
        if o.batch > 1 and o.b_shared:
            return None
        return {"kind": "gemm", "m": o.m * (o.batch if o.b_shared else 1), "n": o.n, "k": o.k,
                "batch": o.batch if not o.b_shared and o.batch > 1 else None, "dtype": o.dtype_a}
    if isinstance(o, (RMSNorm, LayerNorm, Softmax)):
        kind = "rmsnorm" if isinstance(o, RMSNorm) else ("layernorm" if isinstance(o, LayerNorm) else "softmax")
        return {"kind": kind, "rows": o.rows, "cols": o.cols, "dtype": o.dtype}
    if isinstance(o, Elementwise):
        if op in BINARY:
            return {"kind": "add", "elements": o.elements, "dtype": o.dtype}
        if op in ACTIVATIONS:
            return {"kind": "gelu", "elements": o.elements, "dtype": o.dtype}
        return None
    if isinstance(o, Collective):
        return {"kind": o.op, "bytes": o.bytes_per_rank, "ranks": o.group, "dtype": o.dtype}
    return None


def measurement_rows(trace: Trace, system: str, stack: str | None = None) -> pd.DataFrame:
    """The trace's matched op instances as measurement rows on ``system`` (a preset name or
    YAML path; a trace does not name an accelsim preset) under ``stack``."""
    work = match_work(trace.work)
    stem = Path(trace.path).name.split(".")[0]
    rows = []
    for i, r in enumerate(work.itertuples(index=False)):
        if not r.matched or r.dur_s <= 0:
            continue
        row = _row(str(r.op or r.name), r.accel_op)
        if row is None or row.get("dtype") not in ("fp32", "bf16", "fp16", "fp8"):
            continue
        if row["kind"] in REDUCTION_KINDS and trace.kind != "cpu":
            row["kernels"] = kernel_library(str(r.name))  # softmax / norms run at their library's rate
        rows.append({"id": f"{stem}:{i}:{r.op or r.name}", "system": system, "stack": stack,
                     "measured_time_s": float(r.dur_s), "source": trace.path,
                     "notes": f"{r.name} on {r.lane}", **row})
    return pd.DataFrame(rows)
