"""The ops of a measurement row: a kernel row's kernel (or a composite norm's eager kernels)
and the compression recipe a row names."""

from __future__ import annotations

from typing import Any

from ..workload.ops import Elementwise, LayerNorm, MatMul, Op, RMSNorm, Softmax
from .schema import MeasurementRow


def kernel_ops(row: MeasurementRow) -> list[Op]:
    """The kernels of a kernel row: its one op, or an ``op: composite`` norm's eager ops."""
    if row.op == "composite":
        from ..workload.eager import composite_rmsnorm

        return composite_rmsnorm(row.rows, row.cols, row.dtype)
    return [kernel_op(row)]


def kernel_op(row: MeasurementRow) -> Op:
    """The op of a single-kernel row (gemm, softmax, norms, elementwise)."""
    k, dt = row.kind, row.dtype
    if k == "gemm":
        m, n = (row.n, row.m) if row.layout == "col" else (row.m, row.n)  # column-major: C^T = B^T A^T
        batch = row.batch or 1  # a batched GEMM multiplies ``batch`` pairs of matrices (bmm)
        mm = MatMul(name="gemm", role="gemm", m=m, n=n, k=row.k, batch=batch,
                    dtype_a=dt, dtype_b=dt, dtype_out=dt, b_shared=batch == 1)
        recipe = recipe_of(_recipe_tag(row))
        if recipe is not None:  # a GEMM row with a recipe: B is the weight
            import dataclasses

            upd = {"emulate": True, "sparsity": recipe.sparsity, "b_shared": True}
            if recipe.weights:
                upd["dtype_b"] = recipe.weights
            if recipe.activations:
                upd["dtype_a"] = recipe.activations
            mm = dataclasses.replace(mm, **upd)
        return mm
    if k in ("softmax", "layernorm", "rmsnorm"):
        cls = {"softmax": Softmax, "layernorm": LayerNorm, "rmsnorm": RMSNorm}[k]
        return cls(name=k, role=k, rows=row.rows, cols=row.cols, dtype=dt)
    elements = row.elements if row.elements is not None else row.rows * row.cols
    return Elementwise(name=k, role=k, fn=k, elements=elements, dtype=dt)


def _recipe_tag(row: MeasurementRow) -> str:
    """The row's compression tag ("" for none)."""
    return (row.compression or "").strip().lower()


_RECIPES: dict[str, Any] = {}


def recipe_of(tag: str):
    """The Compression recipe of a measurement tag (w8a16, w4a16-g64, w4a16-g64+sparse2:4, a
    format name), or None for ""; a WorkloadError for a tag accelsim cannot read."""
    if not tag:
        return None
    r = _RECIPES.get(tag)
    if r is None:
        from ..compress.recipes import Compression

        r = _RECIPES[tag] = Compression.from_tag(tag)
    return r


def _renamed(op: Op) -> Op:
    import dataclasses

    return dataclasses.replace(op, name=op.kind)
