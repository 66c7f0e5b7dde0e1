"""Compression recipes applied to a workload graph: weight, activation and KV-cache formats and
N:M sparsity set on the ops a recipe touches (the recipe itself is data, ``accelsim.compress``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..compress.recipes import HEAD_ROLES, WEIGHT_ROLES, Compression
from .graph import WorkloadGraph
from .ops import FlashAttention, KVCache, MatMul


def apply_compression(recipe: Compression, graph: WorkloadGraph, num_layers: int, train: bool = False) -> WorkloadGraph:
    """``graph`` with ``recipe``'s formats applied to its ops (a new WorkloadGraph; what each
    field changes is described in ``accelsim.compress.recipes``). ``num_layers``: layers of the
    (pruned) model."""
    if recipe.is_identity:
        return graph
    new_ops = []
    dw = 0.0
    kv_scale = None
    for o in graph.ops():
        role = o.role.split(".", 1)[1] if train and "." in o.role else o.role
        if isinstance(o, MatMul):
            base, _, grad = role.partition("_dgrad") if role.endswith("_dgrad") else role.partition("_wgrad")
            kind = "dgrad" if role.endswith("_dgrad") else ("wgrad" if role.endswith("_wgrad") else "fwd")
            weight_gemm = base in WEIGHT_ROLES or base in HEAD_ROLES
            if weight_gemm:
                w, a, s = recipe.layer_formats(o.layer if base not in HEAD_ROLES else -1, num_layers)
                if train:
                    s = ""
                if w or a or s:
                    upd: dict[str, Any] = {"emulate": True}
                    if kind == "wgrad":
                        if a:
                            upd.update(dtype_a=a, dtype_b=a)
                    else:
                        if w:
                            upd["dtype_b"] = w
                        if a:
                            upd["dtype_a"] = a
                        if s:
                            upd["sparsity"] = s
                    n = dataclasses.replace(o, **upd)
                    if kind == "fwd" and o.b_shared:
                        dw += n.b_bytes() - o.b_bytes()
                    o = n
            elif recipe.kv_cache and not train and base in ("attn_score", "attn_context"):
                o = dataclasses.replace(o, dtype_b=recipe.kv_cache, emulate=True)
        elif recipe.kv_cache and isinstance(o, KVCache):
            n = dataclasses.replace(o, dtype=recipe.kv_cache)
            kv_scale = n.bytes() / o.bytes() if o.bytes() else 1.0
            o = n
        elif recipe.kv_cache and isinstance(o, FlashAttention):
            o = dataclasses.replace(o, kv_dtype=recipe.kv_cache)
        new_ops.append(o)
    meta = graph.meta
    upd_meta: dict[str, Any] = {"weight_bytes_per_chip": max(0.0, meta.weight_bytes_per_chip + dw)}
    if kv_scale is not None:
        upd_meta["kv_cache_bytes_per_chip"] = meta.kv_cache_bytes_per_chip * kv_scale
    meta = dataclasses.replace(meta, **upd_meta)
    return WorkloadGraph.from_ordered(meta, new_ops, graph.edges())
