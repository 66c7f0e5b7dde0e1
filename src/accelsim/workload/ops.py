"""Op types of a workload graph, with FLOP, byte and vector-work formulas.

Every op is a frozen dataclass. ``name``, ``layer`` and ``role`` are labels (excluded from
equality and hashing), so two ops with the same shape and dtypes compare equal: the cost model
caches by op, and a 80-layer model costs 80x fewer evaluations.

Conventions (per chip: a builder that shards a model emits each chip's share):
- ``flops()``: useful arithmetic, 2 per multiply-accumulate; vector ops are not FLOPs here.
- ``bytes()``: compulsory HBM traffic (each input read once, each output written once).
- ``vector_ops()``: elementwise operations on the vector engine.
- ``transcendentals()``: exp / tanh / rsqrt evaluations on the scalar (activation) engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..compress.formats import DTYPE_BYTES
from ..jit import kernel


def nbytes(dtype: str) -> float:
    """Bytes per element of ``dtype``."""
    return DTYPE_BYTES[dtype]


def _label() -> object:
    return field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Op:
    """Base op. ``engine`` is where the work runs: tensor, vector, scalar or link."""

    name: str = field(default="", compare=False)
    """Unique node name in the graph, e.g. "L3.mlp_up"."""
    layer: int = field(default=-1, compare=False)
    """Transformer layer index, -1 for ops outside the layer stack."""
    role: str = field(default="", compare=False)
    """What the op is in the model: qkv_proj, attn_score, mlp_down, lm_head, ..."""

    kind: ClassVar[str] = "op"
    engine: ClassVar[str] = "vector"

    def flops(self) -> float:
        return 0.0

    def bytes(self) -> float:
        return 0.0

    def vector_ops(self) -> float:
        return 0.0

    def transcendentals(self) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class MatMul(Op):
    """C[batch, m, n] = A[batch, m, k] @ B[batch, k, n]. With ``b_shared`` (a weight matrix)
    B is one [k, n] matrix used by every batch entry."""

    m: int = 1
    n: int = 1
    k: int = 1
    batch: int = 1
    dtype_a: str = "bf16"
    dtype_b: str = "bf16"
    dtype_out: str = "bf16"
    b_shared: bool = False
    """B is a weight shared across the batch (read once), not a per-batch activation."""
    sparsity: str = ""
    """N:M structured sparsity of B (the weight), e.g. "2:4": N of every M consecutive K
    elements are kept and stored with a ceil(log2 M)-bit index each ("" = dense)."""
    emulate: bool = False
    """Set by compression recipes: an operand format the tensor engine cannot run is
    dequantized (upcast) to the nearest wider type it runs (else a LoweringError)."""
    kind: ClassVar[str] = "matmul"
    engine: ClassVar[str] = "tensor"

    def flops(self) -> float:
        """Dense (model) FLOPs; structured sparsity changes the time, not the FLOPs."""
        return matmul_flops(self.m, self.n, self.k, self.batch)

    def a_bytes(self) -> float:
        return self.batch * self.m * self.k * nbytes(self.dtype_a)

    def b_el_bytes(self) -> float:
        """Stored bytes of B per dense element: the format's bytes (scales included), times
        N/M with N:M sparsity plus the index metadata (2:4: 2 bits per kept value = 1 bit per
        dense element, so bf16 2:4 stores 2*2/4 + 1/8 = 1.125 bytes per dense element)."""
        b = nbytes(self.dtype_b)
        if not self.sparsity:
            return b
        from ..compress.recipes import nm_pattern

        n, m = nm_pattern(self.sparsity)
        return (b + math.ceil(math.log2(m)) / 8.0) * n / m

    def b_bytes(self) -> float:
        return (1 if self.b_shared else self.batch) * self.k * self.n * self.b_el_bytes()

    def out_bytes(self) -> float:
        return self.batch * self.m * self.n * nbytes(self.dtype_out)

    def bytes(self) -> float:
        return matmul_bytes(self.m, self.n, self.k, self.batch, self.b_shared, nbytes(self.dtype_a), self.b_el_bytes(),
                            nbytes(self.dtype_out))


def matmul_flops(m: int, n: int, k: int, batch: int) -> float:
    """FLOPs of ``batch`` m x n x k GEMMs (``MatMul.flops``)."""
    return 2.0 * batch * m * n * k


def matmul_bytes(m: int, n: int, k: int, batch: int, b_shared: bool, a_el: float, b_el: float, out_el: float) -> float:
    """Compulsory bytes of ``batch`` m x n x k GEMMs: A, B (once when shared) and the output,
    at the given bytes per element (``MatMul.bytes``)."""
    return batch * m * k * a_el + (1 if b_shared else batch) * k * n * b_el + batch * m * n * out_el


@dataclass(frozen=True, slots=True)
class Conv2D(Op):
    """2-D convolution, NHWC, computed as its im2col GEMM: M = batch*out_h*out_w output
    pixels, N = out_channels, K = kernel_h*kernel_w*in_channels."""

    batch: int = 1
    in_h: int = 1
    in_w: int = 1
    in_channels: int = 1
    out_channels: int = 1
    kernel_h: int = 1
    kernel_w: int = 1
    stride: int = 1
    padding: int = 0
    dtype: str = "bf16"
    kind: ClassVar[str] = "conv2d"
    engine: ClassVar[str] = "tensor"

    @property
    def out_h(self) -> int:
        return (self.in_h + 2 * self.padding - self.kernel_h) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + 2 * self.padding - self.kernel_w) // self.stride + 1

    def as_matmul(self) -> MatMul:
        """The im2col GEMM (same name/layer/role)."""
        return MatMul(name=self.name, layer=self.layer, role=self.role,
                      m=self.batch * self.out_h * self.out_w, n=self.out_channels,
                      k=self.kernel_h * self.kernel_w * self.in_channels,
                      dtype_a=self.dtype, dtype_b=self.dtype, dtype_out=self.dtype, b_shared=True)

    def flops(self) -> float:
        return self.as_matmul().flops()

    def bytes(self) -> float:
        b = nbytes(self.dtype)
        return b * (self.batch * self.in_h * self.in_w * self.in_channels
                    + self.kernel_h * self.kernel_w * self.in_channels * self.out_channels
                    + self.batch * self.out_h * self.out_w * self.out_channels)


@dataclass(frozen=True, slots=True)
class Softmax(Op):
    """Row-wise softmax of a [rows, cols] matrix: max, subtract, exp, sum, scale."""

    rows: int = 1
    cols: int = 1
    dtype: str = "bf16"
    kind: ClassVar[str] = "softmax"

    def bytes(self) -> float:
        return row_op_terms("softmax", self.rows, self.cols, nbytes(self.dtype))[0]

    def vector_ops(self) -> float:
        return row_op_terms("softmax", self.rows, self.cols, 1.0)[1]

    def transcendentals(self) -> float:
        return row_op_terms("softmax", self.rows, self.cols, 1.0)[2]


def row_op_terms(kind: str, rows: int, cols: int, el_bytes: float) -> tuple[float, float, float]:
    """(bytes, vector ops, transcendentals) of a row-wise op over [rows, cols] at ``el_bytes``
    per element: softmax (max, subtract, sum, scale; an exp each), layernorm (sum, subtract,
    square, sum, multiply, scale, shift; an rsqrt a row, its scale and shift read) or rmsnorm
    (square, sum, multiply, scale; an rsqrt a row, its scale read)."""
    if kind == "softmax":
        return 2.0 * rows * cols * el_bytes, 4.0 * rows * cols, float(rows * cols)
    if kind == "layernorm":
        return 2.0 * rows * cols * el_bytes + 2.0 * cols * el_bytes, 7.0 * rows * cols, float(rows)
    return 2.0 * rows * cols * el_bytes + cols * el_bytes, 4.0 * rows * cols, float(rows)


@dataclass(frozen=True, slots=True)
class LayerNorm(Op):
    """Row-wise LayerNorm of [rows, cols]: mean, variance, normalise, scale and shift."""

    rows: int = 1
    cols: int = 1
    dtype: str = "bf16"
    kind: ClassVar[str] = "layernorm"

    def bytes(self) -> float:
        return row_op_terms("layernorm", self.rows, self.cols, nbytes(self.dtype))[0]

    def vector_ops(self) -> float:
        return row_op_terms("layernorm", self.rows, self.cols, 1.0)[1]

    def transcendentals(self) -> float:
        return row_op_terms("layernorm", self.rows, self.cols, 1.0)[2]


@dataclass(frozen=True, slots=True)
class RMSNorm(Op):
    """Row-wise RMSNorm of [rows, cols]: mean of squares, normalise, scale."""

    rows: int = 1
    cols: int = 1
    dtype: str = "bf16"
    kind: ClassVar[str] = "rmsnorm"

    def bytes(self) -> float:
        return row_op_terms("rmsnorm", self.rows, self.cols, nbytes(self.dtype))[0]

    def vector_ops(self) -> float:
        return row_op_terms("rmsnorm", self.rows, self.cols, 1.0)[1]

    def transcendentals(self) -> float:
        return row_op_terms("rmsnorm", self.rows, self.cols, 1.0)[2]


# fn -> (inputs read per output element, vector ops per element, transcendentals per element)
ELEMENTWISE = {
    "gelu": (1, 8.0, 1.0),      # tanh approximation: x*0.5*(1+tanh(c*(x+0.044715x^3)))
    "silu": (1, 3.0, 1.0),      # x * 1/(1+exp(-x))
    "silu_mul": (2, 4.0, 1.0),  # silu(gate) * up; elements = output elements
    "gelu_mul": (2, 9.0, 1.0),  # gelu(gate) * up (GeGLU)
    "relu": (1, 1.0, 0.0),
    "relu_mul": (2, 2.0, 0.0),
    "add": (2, 1.0, 0.0),
    "sum": (1, 1.0, 0.0),       # a reduction: out_elements partial sums (e.g. a row mean)
    "rsqrt": (1, 1.0, 1.0),
    "square": (1, 1.0, 0.0),
    "mul": (2, 1.0, 0.0),
    "copy": (1, 0.0, 0.0),
    "fill": (0, 0.0, 0.0),      # writes a constant (zeros_like): no input
    "rope": (1, 3.0, 0.0),      # x*cos + rotate(x)*sin with cached tables (tables stream too)
}


@dataclass(frozen=True, slots=True)
class Elementwise(Op):
    """Elementwise function over ``elements`` output elements (see ``ELEMENTWISE``)."""

    fn: str = "add"
    elements: int = 1
    dtype: str = "bf16"
    dtype_out: str | None = None
    """Element type written (a cast: fp32 -> bf16); None: ``dtype``."""
    out_elements: int | None = None
    """Elements written when fewer than read (a reduction: one per row); None: ``elements``."""
    unvectorized: bool = False
    """The kernel leaves a library's vectorized loop: an operand is broadcast (a per-row or
    per-column vector), or not contiguous (a transposed view, a slice of a fused projection),
    or the op widens its element type (bf16 -> fp32). ATen then runs its offset-computing loop,
    bound by an element rate rather than by bandwidth
    (``KernelLibrary.unvectorized_elements_per_cycle``)."""
    kind: ClassVar[str] = "elementwise"

    def __post_init__(self) -> None:
        if self.fn not in ELEMENTWISE:
            raise ValueError(f"unknown elementwise fn {self.fn!r}; known: {sorted(ELEMENTWISE)}")

    def bytes(self) -> float:
        out = self.elements if self.out_elements is None else self.out_elements
        return elementwise_bytes(self.fn, self.elements, out, nbytes(self.dtype), nbytes(self.dtype_out or self.dtype))

    def vector_ops(self) -> float:
        return ELEMENTWISE[self.fn][1] * self.elements

    def transcendentals(self) -> float:
        return ELEMENTWISE[self.fn][2] * self.elements


def elementwise_bytes(fn: str, elements: int, out_elements: int, in_el: float, out_el: float) -> float:
    """Bytes an elementwise ``fn`` moves: its inputs (RoPE streams its tables too) and its
    output (``Elementwise.bytes``)."""
    inputs = ELEMENTWISE[fn][0] + (1 if fn == "rope" else 0)
    return inputs * elements * in_el + out_elements * out_el


@dataclass(frozen=True, slots=True)
class Embedding(Op):
    """Gather ``tokens`` rows of a [vocab, hidden] table."""

    tokens: int = 1
    hidden: int = 1
    vocab: int = 1
    dtype: str = "bf16"
    kind: ClassVar[str] = "embedding"

    def bytes(self) -> float:
        return embedding_bytes(self.tokens, self.hidden, nbytes(self.dtype))


def embedding_bytes(tokens: int, hidden: int, el_bytes: float) -> float:
    """An embedding gather's bytes: the rows read and written, and the int32 token ids."""
    return 2.0 * tokens * hidden * el_bytes + 4.0 * tokens


@dataclass(frozen=True, slots=True)
class KVCache(Op):
    """Write (``append``) or read (``read``) K and V for ``tokens`` new or cached tokens of
    ``batch`` sequences in one layer."""

    mode: str = "append"
    batch: int = 1
    tokens: int = 1
    kv_heads: int = 1
    head_dim: int = 1
    dtype: str = "bf16"
    kv_shared: bool = False
    """One vector per token and head instead of K and V (MLA's latent)."""
    cached: int = 0
    """Tokens already in the cache when ``append`` writes these (what a cache that grows by
    concatenation copies again: ``workload.eager.kv_concat``); a fixed cache writes only the new ones."""
    kind: ClassVar[str] = "kv_cache"

    def bytes(self) -> float:
        return kv_cache_bytes(self.mode, self.batch, self.tokens, self.kv_heads, self.head_dim, nbytes(self.dtype),
                              self.kv_shared)


def kv_cache_bytes(mode: str, batch: int, tokens: int, kv_heads: int, head_dim: int, el_bytes: float,
                   kv_shared: bool = False) -> float:
    """Bytes a K/V cache ``mode`` ("append": the new K/V read and written; "read") moves."""
    moved = (1.0 if kv_shared else 2.0) * batch * tokens * kv_heads * head_dim * el_bytes
    return 2.0 * moved if mode == "append" else moved


FLASH_BWD_FACTOR = 2.5
"""Flash attention backward FLOPs over forward: 5 score-sized GEMMs (recompute ``QK^T``,
``dP = dO V^T``, ``dV = P^T dO``, ``dQ = dS K``, ``dK = dS^T Q``) against 2 (FlashAttention-2);
on 128-wide systolic arrays the 320-wide pass of a 128-wide head costs about 3x a forward."""


@kernel(None)
def score_elements(batch, heads, q, kv, w, causal):
    """Query-key pairs a fused attention of ``batch`` x ``heads`` query heads computes for ``q``
    queries over ``kv`` positions (about half for a causal square block; with a window ``w``, the
    query at position n sees min(n, w) keys); also compiled into the fast path's kernel."""
    full = float(batch * heads * q * kv)
    if w and (causal or q == 1):
        # sum over the queries' positions n = kv - q + 1 .. kv of min(n, w)
        lo = max(1, kv - q + 1)
        below = max(0, min(kv, w) - lo + 1)  # positions n <= w see n keys, the rest w
        visible = below * (2 * lo + below - 1) / 2 + (q - below) * w
        return full * visible / (q * kv)
    if w:
        return full * min(kv, w) / kv
    if causal and q > 1:
        visible = q * (kv - q) + q * (q + 1) / 2 if kv >= q else q * (q + 1) / 2
        return full * visible / (q * kv)
    return full


@dataclass(frozen=True, slots=True)
class FlashAttention(Op):
    """Fused attention (flash-style): Q tile resident, K/V streamed, online softmax; the
    score matrix never reaches HBM. ``heads`` query heads share ``kv_heads`` K/V heads."""

    batch: int = 1
    heads: int = 1
    kv_heads: int = 1
    q_len: int = 1
    kv_len: int = 1
    head_dim: int = 1
    causal: bool = False
    dtype: str = "bf16"
    kv_dtype: str = ""
    """Storage format of the K/V cache read by the op ("" = ``dtype``); the math runs in
    ``dtype`` (K/V are dequantized on the fly)."""
    window: int = 0
    """Sliding-window attention: each query sees at most this many keys (itself and the ones
    before it; Mistral's 4096); 0 = the whole context. The queries are the last ``q_len`` of
    the ``kv_len`` positions."""
    v_head_dim: int = 0
    """Width of a value head when it differs from the query / key head's ``head_dim`` (MLA:
    192-wide queries and keys, 128-wide values; 0 = ``head_dim``)."""
    kv_shared: bool = False
    """Keys and values are one stored vector per position (MLA's absorbed decode: attention runs
    over the cached latent, read once for both)."""
    backward: bool = False
    """The backward pass's kernels (dQ, dK, dV), costed as the forward at 2.5x the head dim:
    they run at the stack's backward efficiency (``Calibration.attention_backward_efficiency``)."""
    kind: ClassVar[str] = "flash_attention"
    engine: ClassVar[str] = "tensor"

    def key(self) -> tuple:
        """The fields that make two attentions equal (all but the labels), as a tuple."""
        return (self.batch, self.heads, self.kv_heads, self.q_len, self.kv_len, self.head_dim, self.causal, self.dtype,
                self.kv_dtype, self.window, self.v_head_dim, self.kv_shared, self.backward)

    def kv_el_bytes(self) -> float:
        return nbytes(self.kv_dtype or self.dtype)

    def score_elements(self) -> float:
        """Query-key pairs actually computed (``score_elements``)."""
        return score_elements(self.batch, self.heads, self.q_len, self.kv_len, self.window, self.causal)

    def kv_read(self) -> int:
        """K/V positions read: the whole context, or the window of the last query back to
        the first query's window start."""
        return min(self.kv_len, self.window + self.q_len - 1) if self.window else self.kv_len

    @property
    def vd(self) -> int:
        """Width of a value head."""
        return self.v_head_dim or self.head_dim

    def kv_width(self) -> int:
        """Elements one K/V head stores per position: K and V, or one shared vector."""
        return self.head_dim if self.kv_shared else self.head_dim + self.vd

    def flops(self) -> float:
        return 2.0 * self.score_elements() * (self.head_dim + self.vd)  # QK^T and PV

    def bytes(self) -> float:
        q_and_o = self.batch * self.heads * self.q_len * (self.head_dim + self.vd)
        kv = float(self.batch * self.kv_heads * self.kv_read() * self.kv_width())
        return nbytes(self.dtype) * q_and_o + self.kv_el_bytes() * kv

    def vector_ops(self) -> float:
        return 5.0 * self.score_elements()  # scale, running max, subtract, sum, rescale

    def transcendentals(self) -> float:
        return self.score_elements()


@dataclass(frozen=True, slots=True)
class Collective(Op):
    """A collective over ``group`` chips. ``bytes_per_rank`` is the buffer each rank
    contributes (all-reduce, reduce-scatter input, all-gather output / group, all-to-all; a
    send / receive between two ring neighbours, each sending it)."""

    op: str = "allreduce"
    bytes_per_rank: float = 0.0
    group: int = 1
    dtype: str = "bf16"
    hidden_by: str = ""
    """Name of the op of the same pass it runs beside (issued before it, waited for after it):
    the analytical training tier charges only what exceeds that op's time; "": on the path."""
    kind: ClassVar[str] = "collective"
    engine: ClassVar[str] = "link"

    OPS: ClassVar[tuple[str, ...]] = ("allreduce", "allgather", "reducescatter", "alltoall", "sendrecv")

    def __post_init__(self) -> None:
        if self.op not in self.OPS:
            raise ValueError(f"unknown collective {self.op!r}; known: {self.OPS}")

    def bytes(self) -> float:
        # local HBM traffic: read the buffer, write the result
        return 2.0 * self.bytes_per_rank

    def vector_ops(self) -> float:
        if self.op in ("allreduce", "reducescatter") and self.group > 1:
            return self.bytes_per_rank / nbytes(self.dtype) * (self.group - 1) / self.group
        return 0.0


@dataclass(frozen=True, slots=True)
class AdamW(Op):
    """One AdamW step over ``elements`` parameters (one chip's shard, after ZeRO), with the
    global-norm gradient clipping pass that precedes it. Mixed precision (``master_weights``):
    fp32 master weights and Adam moments m and v in ``dtype``; the update writes the
    ``param_dtype`` model copy too. Per parameter it reads the gradient twice (norm, update),
    reads and writes m, v and the master weight, and writes the model copy: with bf16 gradients
    and weights 2*2 + 3*(4+4) + 2 = 30 bytes. Without master weights (fp32 training) the
    parameter itself is read and written."""

    elements: int = 1
    dtype: str = "fp32"
    """Dtype of the optimizer math, the moments and the master weights."""
    grad_dtype: str = "bf16"
    param_dtype: str = "bf16"
    master_weights: bool = True
    kind: ClassVar[str] = "adamw"

    def bytes(self) -> float:
        s, g, p = nbytes(self.dtype), nbytes(self.grad_dtype), nbytes(self.param_dtype)
        per = 2 * g + 2 * 2 * s  # gradient read twice; m and v read and written
        per += (2 * s + p) if self.master_weights else 2 * p
        return per * self.elements

    def vector_ops(self) -> float:
        # norm pass: square, accumulate (2); clip scale (1); m = b1*m + (1-b1)*g (3);
        # v = b2*v + (1-b2)*g*g (4); bias corrections (2); + eps (1); divide (1);
        # weight decay and update (4); cast to the model dtype (1)
        return 19.0 * self.elements

    def transcendentals(self) -> float:
        return float(self.elements)  # sqrt(v_hat)
