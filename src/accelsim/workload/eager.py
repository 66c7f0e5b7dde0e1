"""How an eager framework runs one op of a workload graph as several kernels, each its own
launch and pass over memory: the forms a stack runtime names in its ``composite`` list (an
elementwise function, an RMSNorm or an unfused attention's softmax written op by op), and an
append to a K/V cache that grows by concatenation (``ServingEngine.kv_cache: concat``).
``eager_kernels`` is what the cost model and the event tier's lowering ask
(``cost.op_cost.kernels``)."""

from __future__ import annotations

from typing import Callable

from .ops import Elementwise, KVCache, Op, RMSNorm, Softmax


def composite_rmsnorm(rows: int, cols: int, dtype: str, name: str = "rmsnorm") -> list[Op]:
    """RMSNorm as PyTorch eager runs a reference module written op by op (Hugging Face's
    ``LlamaRMSNorm``): upcast to fp32, square, row mean, add eps, rsqrt, scale, downcast,
    multiply by the weight; eight kernels, each reading and writing HBM (36 bytes per bf16
    element where a fused kernel moves 4). The upcast widens bf16 to fp32 and the scale (by the
    per-row rsqrt) and the weight product have a broadcast operand: those three leave ATen's
    vectorized loop (its downcast to bf16 has a vectorized kernel of its own)."""
    n = rows * cols
    f32 = "fp32"
    return [Elementwise(name=f"{name}.upcast", role=name, fn="copy", elements=n, dtype=dtype, dtype_out=f32,
                        unvectorized=True),
            Elementwise(name=f"{name}.square", role=name, fn="square", elements=n, dtype=f32),
            Elementwise(name=f"{name}.mean", role=name, fn="sum", elements=n, dtype=f32, out_elements=rows),
            Elementwise(name=f"{name}.eps", role=name, fn="add", elements=rows, dtype=f32),
            Elementwise(name=f"{name}.rsqrt", role=name, fn="rsqrt", elements=rows, dtype=f32),
            Elementwise(name=f"{name}.scale", role=name, fn="copy", elements=n, dtype=f32,
                        unvectorized=True),
            Elementwise(name=f"{name}.downcast", role=name, fn="copy", elements=n, dtype=f32, dtype_out=dtype),
            Elementwise(name=f"{name}.weight", role=name, fn="copy", elements=n, dtype=dtype, unvectorized=True)]


def composite_attn_softmax(rows: int, cols: int, dtype: str, name: str = "attn_softmax") -> list[Op]:
    """An unfused attention's softmax as PyTorch eager code writes it (Hugging Face's
    ``eager_attention_forward``): the scores scaled (``* scaling``), the causal mask added, the
    softmax taken in fp32 (``softmax(..., dtype=torch.float32)``) and cast back to the scores'
    type; four kernels, each a pass over the scores, where a fused softmax reads and writes them
    once. The mask is broadcast over heads (its reads are counted as the scores' own type's
    copy), and the fp32 softmax's write is counted at the scores' width (the cast reads fp32)."""
    n, role = rows * cols, f"{name}.eager"  # not the op's own role: its softmax part is not expanded again
    return [Elementwise(name=f"{name}.scale", role=role, fn="copy", elements=n, dtype=dtype),
            Elementwise(name=f"{name}.mask", role=role, fn="copy", elements=n, dtype=dtype),
            Softmax(name=f"{name}.softmax", role=role, rows=rows, cols=cols, dtype=dtype),
            Elementwise(name=f"{name}.downcast", role=role, fn="copy", elements=n, dtype="fp32", dtype_out=dtype)]


def composite_rope(elements: int, dtype: str, name: str = "rope") -> list[Op]:
    """RoPE as PyTorch eager runs Hugging Face's ``apply_rotary_pos_emb`` on ``elements`` (q and k
    together): ``x * cos + rotate_half(x) * sin``, ``rotate_half`` a negation of the second half
    and a concatenation: five kernels for q and five for k (split evenly here: the op carries
    only their total), 10 element passes where a fused kernel makes 2 (plus its tables). None
    of the ten is vectorized: q and k are transposed views of the projection's output, the
    products with cos and sin broadcast the tables over heads and batch, and the sum adds
    tensors of two layouts (the product of a view keeps its strides, the concatenation is
    contiguous); an H200 trace shows all ten in ATen's offset-computing loops."""
    out: list[Op] = []
    for t, n in (("q", elements - elements // 2), ("k", elements // 2)):  # q and k apart (an even split)
        out += [Elementwise(name=f"{name}.{t}.{part}", role=name, fn=fn, elements=m, dtype=dtype, unvectorized=True)
                for part, fn, m in (("cos", "copy", n), ("neg", "copy", n // 2), ("cat", "copy", n),
                                    ("sin", "copy", n), ("add", "add", n))]
    return out


def composite_silu_mul(elements: int, dtype: str, name: str = "silu_mul") -> list[Op]:
    """``act_fn(gate) * up`` as PyTorch eager runs it: SiLU into a temporary, then the product;
    two kernels, 5 element passes where a fused kernel makes 3."""
    return [Elementwise(name=f"{name}.silu", role=name, fn="silu", elements=elements, dtype=dtype),
            Elementwise(name=f"{name}.mul", role=name, fn="mul", elements=elements, dtype=dtype)]


def composite_rope_complex(elements: int, dtype: str, name: str = "rope") -> list[Op]:
    """RoPE as eager PyTorch runs Meta's reference ``apply_rotary_emb`` (torchtitan, llama
    reference code): q and k each widened to fp32 (``.float()``: ATen's unvectorized loop),
    viewed as complex and multiplied by the broadcast frequency table (unvectorized), viewed
    back and cast to the activation type (``type_as``: a vectorized copy). Three kernels for q
    and three for k, 20 bytes a bf16 element where a fused kernel moves 4."""
    out: list[Op] = []
    for t, n in (("q", elements - elements // 2), ("k", elements // 2)):
        out += [Elementwise(name=f"{name}.{t}.upcast", role=name, fn="copy", elements=n, dtype=dtype,
                            dtype_out="fp32", unvectorized=True),
                Elementwise(name=f"{name}.{t}.cmul", role=name, fn="copy", elements=n, dtype="fp32",
                            unvectorized=True),
                Elementwise(name=f"{name}.{t}.downcast", role=name, fn="copy", elements=n, dtype="fp32",
                            dtype_out=dtype)]
    return out


def kv_concat(op: KVCache) -> list[Op]:
    """A K/V append as a cache that grows by concatenation runs it (Hugging Face transformers'
    ``DynamicCache.update``: ``torch.cat([cache, new], dim=-2)``, a new tensor each step): one copy
    kernel for K and one for V, each reading the cached tokens and the new ones and writing them
    all, where a preallocated cache writes only the new tokens in place."""
    n = op.batch * (op.cached + op.tokens) * op.kv_heads * op.head_dim
    parts = ("kv",) if op.kv_shared else ("k", "v")
    return [Elementwise(name=f"{op.name or 'kv_append'}.cat_{t}", layer=op.layer, role="kv_concat", fn="copy",
                        elements=n, dtype=op.dtype) for t in parts]


COMPOSITES: dict[str, tuple[str, Callable[[Op], list[Op]]]] = {
    "rope": ("rope", lambda op: composite_rope(op.elements, op.dtype, op.name or op.fn)),
    "rope_complex": ("rope", lambda op: composite_rope_complex(op.elements, op.dtype, op.name or op.fn)),
    "silu_mul": ("silu_mul", lambda op: composite_silu_mul(op.elements, op.dtype, op.name or op.fn)),
    "rmsnorm": ("rmsnorm", lambda op: composite_rmsnorm(op.rows, op.cols, op.dtype, op.name or "rmsnorm")),
    "softmax": ("attn_softmax", lambda op: composite_attn_softmax(op.rows, op.cols, op.dtype,
                                                                  op.name or "attn_softmax")),
}
"""A stack runtime's composites: name -> (what it replaces, ``replaced``'s key: an elementwise
function, ``rmsnorm`` or ``attn_softmax``; the kernels one such op runs as)."""


def replaced(op: Op) -> str:
    """What of ``op`` a composite may replace: an elementwise op's function, an RMSNorm, an
    unfused attention's softmax (role ``attn_softmax``); "" for anything else (a composite's own
    parts included, whose roles are the op's name)."""
    if isinstance(op, Elementwise):
        return op.fn
    if isinstance(op, RMSNorm):
        return "rmsnorm"
    if isinstance(op, Softmax) and op.role == "attn_softmax":
        return "attn_softmax"
    return ""


def eager_kernels(op: Op, composites: dict[str, str], kv_concat_cache: bool) -> list[Op]:
    """The kernels ``op`` runs as: its composite's (``composites``: what is replaced -> the
    composite, from the stack's list), two copies for an append to a concatenating cache,
    else ``op`` itself."""
    if kv_concat_cache and isinstance(op, KVCache) and op.mode == "append":
        return kv_concat(op)
    name = composites.get(replaced(op)) if composites else None
    return COMPOSITES[name][1](op) if name else [op]
