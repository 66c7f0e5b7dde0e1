"""Per-op cost functions shared by the analytical and event tiers.

``OpCost`` holds each time term; the op's time is the largest term plus fixed overheads, and
its bound is the term that set it (see ``BOUND_RULES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from ..arch.spec import SystemSpec
from ..compress.formats import DTYPE_BYTES
from ..errors import LoweringError
from ..stack.spec import CollectiveLibrary
from .collectives import collective_terms
from .mapping import RESULT_FIELDS, dims_aligned, search_with
from ..workload.eager import COMPOSITES, eager_kernels
from ..workload.ops import Collective, Conv2D, FlashAttention, LayerNorm, MatMul, Op, RMSNorm, Softmax
from .systolic import pass_cycles
from .dtypes import (DEQUANT_OPS_PER_ELEMENT, RATE_BITS, UPCAST, compute_dtype, dequant_ops, dequant_per_element,  # noqa: F401
                     dequant_seconds, gemm_speed, n_over_m, rate_dtype, sparse_factor)

DATAFLOW_CODE = {"ws": 0, "os": 1, "is": 2}
VECTOR_CHUNK_PER_LANE = 16
"""Elements per vector lane in the smallest unit of elementwise work handed to one core (a GPU
thread block of 256 threads x 8 elements; a NeuronCore instruction over 128 partitions x 16):
an op with fewer elements than cores x lanes x 16 leaves cores idle."""

BOUND_RULES = (
    ("interconnect", "link_s"),
    ("compute", "compute_s"),
    ("memory", "memory_s"),
    ("vector", "vector_s"),
)
"""Ordered rules: an op is labelled by the largest time term (ties go to the earlier rule);
if the fixed overhead exceeds every term, it is labelled "overhead"."""


@dataclass(frozen=True, slots=True)
class OpCost:
    """Time terms of one op on one chip (seconds), its HBM traffic and its mapping."""

    compute_s: float = 0.0
    """Tensor-engine time from the mapping (waves x tile cycles)."""
    vector_s: float = 0.0
    """Vector and scalar engine time."""
    memory_s: float = 0.0
    """Memory time: HBM traffic over achievable bandwidth, or shared-SRAM traffic."""
    link_s: float = 0.0
    """Chip-to-chip time (collectives)."""
    overhead_s: float = 0.0
    """Fixed costs: launch, DMA issue, memory / link latency, and a GEMM's pipeline fill and
    drain (first operands in, last result out)."""
    hbm_bytes: float = 0.0
    """HBM traffic after on-chip reuse."""
    link_bytes: float = 0.0
    """Bytes each chip sends over links."""
    mapping: str = ""
    """Chosen tiling, for people."""
    memory_level: str = "hbm"
    """The memory level that sets ``memory_s``: "hbm", or "shared" when traffic through the
    chip-shared SRAM (L2, operand re-reads) takes longer than HBM's."""
    host_s: float = 0.0
    """Of ``overhead_s``, the host's dispatch time under a runtime that dispatches ahead of the
    device (``Calibration.host_async``, PyTorch eager): in a step it overlaps earlier ops' device
    work (``sim.analytical.pipeline``); 0 otherwise."""

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.vector_s, self.memory_s, self.link_s) + self.overhead_s

    @property
    def bound(self) -> str:
        return bound_label(self.compute_s, self.vector_s, self.memory_s, self.link_s, self.overhead_s)


def bound_label(compute_s: float, vector_s: float, memory_s: float, link_s: float, overhead_s: float) -> str:
    """The bound of an op with these time terms (``BOUND_RULES``: the largest term, ties to the
    earlier rule; "overhead" when the fixed cost exceeds every term)."""
    terms = (compute_s, vector_s, memory_s, link_s)
    top = max(terms)
    if overhead_s > top:
        return "overhead"
    for label, at in _RULE_AT:
        if terms[at] == top:
            return label
    return "overhead"


_RULE_AT = tuple((label, ("compute_s", "vector_s", "memory_s", "link_s").index(key)) for label, key in BOUND_RULES)
"""``BOUND_RULES`` with each rule's term as its place in ``bound_label``'s arguments."""


class ChipModel:
    """The numbers the cost functions need, read once from a SystemSpec."""

    def __init__(self, system: SystemSpec, library: CollectiveLibrary | None = None):
        chip = system.chip
        self.library = library
        """The stack's collective library (None: the ideal bound)."""
        t, cal = chip.core.tensor, chip.calibration
        self.system = system
        self.cores = chip.num_cores
        self.R, self.C, self.count = t.rows, t.cols, t.count
        self.df = DATAFLOW_CODE[t.dataflow]
        self.overlap = t.preload_overlap
        self.min_pass = float(t.min_pass_cycles)
        self.f_tensor = chip.engine_hz("tensor")
        self.teff = cal.tensor_efficiency
        self.teff_dtype = dict(cal.tensor_dtype_efficiency)
        self.sram = chip.core.sram.capacity_bytes
        self.acc = chip.core.accumulator.capacity_bytes if chip.core.accumulator else 0.0
        sh = chip.shared_sram
        self.shared_cap = sh.capacity_bytes if sh else 0.0
        bw = sh.bandwidth_Bps if sh and sh.bandwidth_Bps else math.inf
        self.shared_bw = bw * cal.sram_efficiency
        self.hbm_bw = chip.hbm.bandwidth_Bps * cal.hbm_efficiency
        self.reduction_eff = cal.reduction_efficiency
        loop = cal.unvectorized_elements_per_cycle
        self.unvec_rate = loop * chip.engine_hz("vector") if loop else 0.0
        """Elements per second one core's unvectorized elementwise loop processes (0: unbounded)."""
        self.attn_eff = cal.attention_efficiency
        self.attn_bwd_eff = cal.attention_backward_efficiency or cal.attention_efficiency
        self.attn_per_head = cal.attention_decode_per_query_head
        self.core_bw = chip.dma_bandwidth_Bps * cal.hbm_efficiency / self.cores
        peak = chip.dma.core_peak_Bps
        self.core_peak = max(self.core_bw, peak * cal.hbm_efficiency) if peak else self.core_bw
        """What one core's load path pulls while the others idle (``Dma.core_peak_Bps``), at
        least its even share ``core_bw``."""
        self.queues = max(1, chip.dma.engines // self.cores)
        self.multicast = chip.core.load_multicast if self.shared_cap > 0 else 1
        self.vec_rate = {d: r * chip.engine_hz("vector") * cal.vector_efficiency
                         for d, r in chip.core.vector.ops_per_cycle.items()}
        self.vec_rate_default = self.vec_rate.get("fp32") or min(self.vec_rate.values())
        self.trans_rate = (chip.core.scalar.transcendentals_per_cycle * chip.engine_hz("scalar")
                           * cal.vector_efficiency)
        self.lanes = chip.core.vector.lanes
        self.macs = dict(t.macs_per_cycle)
        self.sparse_speedup = t.sparsity_speedup
        self.sparse_patterns = tuple(t.sparsity_patterns)
        self.fused_dequant = t.fused_dequant
        self.align, self.unaligned_eff = t.alignment_bytes, t.unaligned_efficiency
        self.overhead = cal.launch_overhead_s + chip.hbm.latency_s + chip.dma.setup_latency_s
        # fixed cost of a tensor-engine op (GEMM, convolution, attention) and of a vector op
        self.tensor_overhead = self.overhead + cal.tensor_launch_overhead_s
        self.vector_overhead = self.overhead + cal.vector_launch_overhead_s
        # the stack's dispatch: kernels per op where a framework splits one (each paying the
        # launch and the device's fixed latency), and whether the launches are host time
        self.launches = dict(cal.launches)
        self.composite = {COMPOSITES[c][0]: c for c in cal.composite if c in COMPOSITES}
        """What a composite replaces (``workload.eager.replaced``) -> the composite the stack runs it as."""
        self.host_async = cal.host_async
        self.kv_concat = cal.kv_concat
        self.tensor_launch = cal.launch_overhead_s + cal.tensor_launch_overhead_s
        self.vector_launch = cal.launch_overhead_s + cal.vector_launch_overhead_s
        self.device_fixed = chip.hbm.latency_s + chip.dma.setup_latency_s
        self._mappings: dict[tuple, dict[str, float]] = {}
        self._collectives: dict[tuple, tuple[float, float, float, str]] = {}
        self._dtypes: dict[tuple, tuple] = {}
        self._search_terms: dict[tuple, np.ndarray] = {}
        self._compute: dict[tuple, str] = {}
        self.rows: dict = {}
        self.search_consts = ((self.R, self.C, self.count, self.df),
                              (float(self.cores), self.sram, self.acc, self.shared_cap, self.shared_bw, self.hbm_bw,
                               self.core_bw, float(self.queues), float(self.multicast)))
        """The mapping search's arguments that are the chip's alone (``search``)."""
        self.fast: dict = {}
        """The fast path's cost rows per (pricer, element type) and its GEMM terms per element type
        (``sim.fast``), kept across evaluations."""
        """Op costs on this chip model as the analytical tier tabulates them, kept across
        evaluations (``sim.analytical.evaluate_slots``)."""

    def load_path(self, active: float) -> float:
        """What the load paths of ``active`` cores move together (``mapping.load_path_bw``)."""
        return min(active * self.core_peak, self.cores * self.core_bw)

    def tensor_eff(self, dtype: str) -> float:
        """Achievable fraction of the tensor peak for GEMMs computed in ``dtype``."""
        return self.teff * self.teff_dtype.get(dtype, 1.0)

    def attention_eff(self, op: FlashAttention) -> float:
        """Fraction of the modelled rate the stack's attention kernels reach on ``op``: its
        backward kernels' where the stack gives one (both tiers)."""
        return self.attn_bwd_eff if op.backward else self.attn_eff

    def loop_s(self, op: Op) -> float:
        """Seconds one core's unvectorized elementwise loop takes over all of ``op``'s elements
        (``Elementwise.unvectorized`` under a library with such a loop; 0 otherwise)."""
        if self.unvec_rate and getattr(op, "unvectorized", False):
            return op.elements / self.unvec_rate
        return 0.0

    def collective(self, op: Collective) -> tuple[float, float, float, str]:
        """``collectives.collective_time`` of ``op`` on this chip model's system and library,
        worked out once per (kind, bytes, ranks): a step's all-reduces of one size (after the
        embedding, attention and MLP) cost one algorithm choice, not three."""
        return self.collective_terms(op.op, op.bytes_per_rank, op.group)

    def collective_terms(self, kind: str, bytes_per_rank: float, group: int) -> tuple[float, float, float, str]:
        """``collective`` of a ``kind`` collective of ``bytes_per_rank`` over ``group`` chips."""
        key = (kind, float(bytes_per_rank), int(group))
        hit = self._collectives.get(key)
        if hit is None:
            if len(self._collectives) > 20_000:
                self._collectives.clear()
            hit = self._collectives[key] = collective_terms(self.system, kind, bytes_per_rank, group, self.library)
        return hit

    def speedup(self, dtype: str) -> float:
        """Streaming-rate multiplier of ``dtype`` relative to one MAC per PE per cycle."""
        if dtype not in self.macs:
            raise LoweringError(f"{self.system.chip.name} has no tensor-engine rate for {dtype}; "
                                f"it supports {', '.join(self.macs)}")
        return self.macs[dtype] / (self.R * self.C * self.count)


def gemm_mapping(cm: ChipModel, mm: MatMul, a_bytes_per_el: float | None = None) -> dict[str, float]:
    """The mapping search's winner for ``mm`` (fields of ``RESULT_FIELDS``), cached per chip
    model by op shape and dtypes, so a 32-layer model searches each distinct GEMM once. B's
    bytes per element include scales and sparsity metadata (``MatMul.b_el_bytes``)."""
    ba = DTYPE_BYTES[mm.dtype_a] if a_bytes_per_el is None else a_bytes_per_el
    key = (mm, ba)
    hit = cm._mappings.get(key)
    if hit is not None:
        return hit
    r = search(cm, dtype_terms(cm, mm), mm.m, mm.n, mm.k, mm.batch, mm.b_shared, ba, aligned(cm, mm),
               mm.name or "matmul")
    if len(cm._mappings) > 20_000:
        cm._mappings.clear()
    f = cm._mappings[key] = dict(zip(RESULT_FIELDS, r))
    return f


def dtype_terms(cm: ChipModel, mm: MatMul) -> tuple[float, float, float, float, float, float]:
    """What a GEMM's search takes from its element types alone (speed, tensor efficiency,
    dequantization seconds of B and A, B's and the output's bytes per element), once per chip
    model and types."""
    dt = (mm.dtype_a, mm.dtype_b, mm.dtype_out, mm.sparsity, mm.emulate)
    per = cm._dtypes.get(dt)
    if per is None:
        comp = compute_dtype(cm, mm)
        per = cm._dtypes[dt] = (gemm_speed(cm, mm), cm.tensor_eff(comp), *dequant_seconds(cm, mm),
                                mm.b_el_bytes(), DTYPE_BYTES[mm.dtype_out])
    return per


def search(cm: ChipModel, per: tuple, m: int, n: int, k: int, batch: int, b_shared: bool, ba: float,
           is_aligned: bool, name: str):
    """The mapping search's winner (an array laid out as ``RESULT_FIELDS``) for an m x n x k
    GEMM (``batch`` copies) with the element-type terms ``per`` (``dtype_terms``); refused with
    a LoweringError naming ``name`` when no tile fits the core's SRAM."""
    key = (n, k, batch, b_shared)
    r = search_with(float(m), float(n), float(k), float(batch), b_shared, ba, search_terms(cm, per), is_aligned,
                    *_HINTS.get(key, (0.0, 0.0, 0.0)))
    if not math.isfinite(r[0]):
        raise no_tile(cm, name, m, n, k)
    if len(_HINTS) > 4096:
        _HINTS.clear()
    _HINTS[key] = (r[6], r[7], r[8])
    return r


def no_tile(cm: ChipModel, name: str, m: int, n: int, k: int) -> LoweringError:
    """The refusal of a GEMM no tile of which fits the core's SRAM."""
    return LoweringError(f"{name} ({m}x{n}x{k}): no tile fits the {cm.sram:.0f}-byte core SRAM of "
                         f"{cm.system.chip.name}")


def search_terms(cm: ChipModel, per: tuple) -> np.ndarray:
    """What the mapping search takes from the chip and from a GEMM's element-type terms ``per``
    (``dtype_terms``) besides its shape and hint, as numbers (``mapping.SEARCH``); once per chip
    model and terms."""
    s = cm._search_terms.get(per)
    if s is None:
        speed, teff, dq_b, dq_a, bb, bo = per
        s = cm._search_terms[per] = np.array(
            [*cm.search_consts[0], speed, float(cm.overlap), cm.min_pass, cm.f_tensor, teff, float(cm.align),
             cm.unaligned_eff, *cm.search_consts[1], dq_b, dq_a, cm.core_peak, bb, bo], dtype=float)
    return s


_HINTS: dict[tuple, tuple[float, float, float]] = {}
"""The last winning tiling (tile M, tile N, split) per GEMM of the same N, K, batch and sharing,
handed to the next search as where to start (``gemm_search``'s hint: the winner does not depend
on it, only how many groups the search costs)."""


def gemm_cost(cm: ChipModel, mm: MatMul, a_bytes_per_el: float | None = None) -> OpCost:
    """Cost of a (batched) GEMM from the mapping search, plus the vector engine's
    dequantization of operands stored narrower than the compute type (``dequant_ops``)."""
    f = gemm_mapping(cm, mm, a_bytes_per_el)
    mapping = gemm_mapping_text(f["tile_m"], f["tile_n"], f["split_k"], f["order"], f["waves"], f["active_cores"])
    vec = f["vector_s"]  # the search's dequantization time (``dequant_seconds`` per staged element)
    if vec > 0:
        mapping += f", dequant {dequant_ops(cm, mm, f['tile_m'], f['tile_n']):.3g} vector ops"
    return OpCost(compute_s=f["compute_s"], vector_s=vec, memory_s=max(f["hbm_s"], f["shared_s"]),
                  overhead_s=cm.tensor_overhead + f["fill_s"], hbm_bytes=f["hbm_bytes"], mapping=mapping,
                  memory_level="shared" if f["shared_s"] > f["hbm_s"] else "hbm")


def gemm_mapping_text(tile_m: float, tile_n: float, split_k: float, order: float, waves: float,
                      active_cores: float) -> str:
    """A GEMM mapping for people: tile, split-K, loop order, waves on cores."""
    return (f"tile {int(tile_m)}x{int(tile_n)}, split-K {int(split_k)}, "
            f"order {('reload', 'A-resident', 'B-resident')[int(order)]}, "
            f"{int(waves)} wave(s) on {int(active_cores)} cores")


def aligned(cm: ChipModel, mm: MatMul) -> bool:
    """Whether ``mm``'s stored rows (K of A, N of the output) are multiples of the tensor
    engine's ``alignment_bytes``, which its fast kernels need."""
    return aligned_dims(cm, mm.k, mm.n, DTYPE_BYTES[mm.dtype_a], DTYPE_BYTES[mm.dtype_out])


def aligned_dims(cm: ChipModel, k: int, n: int, a_el: float, out_el: float) -> bool:
    """``aligned`` for a GEMM of inner dimension ``k`` and ``n`` output columns."""
    return dims_aligned(k, n, a_el, out_el, cm.align)


def reduction_op(op: Op) -> bool:
    """A row-wise reduction (softmax, a norm, a row sum), which streams memory at the kernel
    library's ``reduction_efficiency``."""
    return isinstance(op, (Softmax, LayerNorm, RMSNorm)) or getattr(op, "fn", "") == "sum"


def vector_cost(cm: ChipModel, op: Op, units: float, dtype: str, hbm_bytes: float) -> OpCost:
    """Cost of vector/scalar work spread over ``min(cores, units)`` cores."""
    vec, mem, active = vector_terms(cm, units, dtype, op.vector_ops(), op.transcendentals(), hbm_bytes,
                                    reduction_op(op), cm.loop_s(op))
    return OpCost(vector_s=vec, memory_s=mem, overhead_s=cm.vector_overhead,
                  hbm_bytes=hbm_bytes, mapping=f"{int(active)} cores")


def vector_terms(cm: ChipModel, units: float, dtype: str, vector_ops: float, transcendentals: float,
                 hbm_bytes: float, reduction: bool, loop_s: float) -> tuple[float, float, float]:
    """(vector seconds, memory seconds, active cores) of vector / scalar work spread over
    ``min(cores, units)`` cores: ``reduction`` streams memory at the library's reduction
    fraction, ``loop_s`` is its unvectorized loop's time on one core (``ChipModel.loop_s``)."""
    active = max(1.0, min(cm.cores, units))
    vrate = cm.vec_rate.get(dtype, cm.vec_rate_default)
    vec = vector_ops / (active * vrate)
    trans = transcendentals / (active * cm.trans_rate)
    mem = hbm_bytes / min(cm.hbm_bw, cm.load_path(active))
    if reduction:
        mem /= cm.reduction_eff  # row-wise reductions (a row mean too) stream at their own fraction
    vec = max(vec, loop_s / active)  # the library's offset-computing loop, if it runs one
    return max(vec, trans), mem, active


def flash_kv_reads(cm: ChipModel, op: FlashAttention, q_tiles: int, kv_eff: float) -> tuple[float, float]:
    """(bytes of the op's K/V, times HBM reads them) for a fused attention of ``q_tiles`` query
    tiles per K/V head that see ``kv_eff`` keys on average (both tiers). A core without a shared
    cache streams each unit's K/V itself (once per query tile, the keys it sees: about half of
    them when causal); with one, K/V that fit half of it are read from HBM once, and longer K/V
    once per wave a head's query tiles span: the kernels order their grid query tile first, so
    a wave's tiles of one head stream the same K/V blocks together and share them in the cache."""
    kv_bytes = float(op.batch * op.kv_heads * op.kv_read() * op.kv_width()) * op.kv_el_bytes()  # a window reads less
    if cm.shared_cap == 0:
        return kv_bytes, q_tiles * kv_eff / op.kv_read()
    if kv_bytes / (op.batch * op.kv_heads) > cm.shared_cap / 2:
        return kv_bytes, float(math.ceil(q_tiles / cm.cores))
    return kv_bytes, 1.0


def flash_cost(cm: ChipModel, op: FlashAttention) -> OpCost:
    """Fused attention: one unit = one (sequence, KV head, query tile); query heads that share a
    KV head are packed into the tile's rows (GQA). K/V stream through the core once per unit;
    when units cannot fill the cores, the KV length is split (flash-decoding). A stack whose
    decode kernel works query head by query head (``Calibration.attention_decode_per_query_head``)
    decodes as ``decode_per_head_cost`` does (both tiers)."""
    if cm.attn_per_head and op.q_len == 1:
        return decode_per_head_cost(cm, op)
    group = max(1, op.heads // op.kv_heads)
    rows = group * op.q_len
    mt = min(rows, 128)
    q_tiles = math.ceil(rows / mt)
    units = op.batch * op.kv_heads * q_tiles
    split = 1
    if units < cm.cores:
        split = max(1, min(math.ceil(cm.cores / units), math.ceil(op.kv_read() / 128)))
    kv_eff = op.score_elements() / (op.batch * op.heads * op.q_len)  # visible keys per query
    kv_chunk = math.ceil(kv_eff / split)
    dt = cm.speedup(op.dtype)
    cyc = (pass_cycles(mt, kv_chunk, op.head_dim, cm.R, cm.C, cm.count, cm.df, dt, cm.overlap, cm.min_pass)
           + pass_cycles(mt, op.vd, kv_chunk, cm.R, cm.C, cm.count, cm.df, dt, cm.overlap, cm.min_pass))
    work = units * split
    waves = math.ceil(work / cm.cores)
    compute = waves * cyc / cm.f_tensor / (cm.tensor_eff(op.dtype) * cm.attention_eff(op))
    active = min(cm.cores, work)
    b = DTYPE_BYTES[op.dtype]
    kv_bytes, rereads = flash_kv_reads(cm, op, q_tiles, kv_eff)
    q_o = op.batch * op.heads * op.q_len * (op.head_dim + op.vd) * b
    hbm = q_o + kv_bytes * rereads + (op.batch * op.heads * op.q_len * split * (op.vd + 2) * 4.0 * 2 if split > 1 else 0.0)
    vops = op.vector_ops()
    if op.kv_dtype and op.kv_dtype != op.dtype and not cm.fused_dequant:  # dequantize K/V as they stream
        vops += DEQUANT_OPS_PER_ELEMENT * kv_bytes / op.kv_el_bytes() * rereads
    vec = vops / (active * cm.vec_rate.get(op.dtype, cm.vec_rate_default))
    trans = op.transcendentals() / (active * cm.trans_rate)
    mem = hbm / min(cm.hbm_bw, cm.load_path(active))
    return OpCost(compute_s=compute, vector_s=max(vec, trans), memory_s=mem, overhead_s=cm.tensor_overhead,
                  hbm_bytes=hbm, mapping=f"{units} units x split {split}, {waves} wave(s)")


class PerHeadDecode(NamedTuple):
    """The traffic and work of a one-query attention kernel that runs one thread block per
    (sequence, query head) (``decode_per_head_cost``), shared by both tiers."""

    group: int
    """Query heads per K/V head: how often each K/V head is loaded."""
    blocks: int
    active: int
    in_hbm_bytes: float
    """Input bytes from HBM: Q, and K/V once when a K/V head fits half the chip-shared cache."""
    in_load_bytes: float
    """Input bytes through the cores' load paths: Q, and K/V once per query head."""
    out_bytes: float
    vector_ops: float
    transcendentals: float


def per_head_decode(cm: ChipModel, op: FlashAttention) -> PerHeadDecode:
    group = max(1, op.heads // op.kv_heads)
    blocks = op.batch * op.heads
    b = DTYPE_BYTES[op.dtype]
    kv_bytes = float(op.batch * op.kv_heads * op.kv_read() * op.kv_width()) * op.kv_el_bytes()
    q = blocks * op.head_dim * b
    fits = cm.shared_cap > 0 and kv_bytes / (op.batch * op.kv_heads) <= cm.shared_cap / 2
    kv_keys = op.score_elements() / blocks
    vops = blocks * kv_keys * (op.head_dim + op.vd) + op.vector_ops()  # a multiply-add per key and dimension
    if op.kv_dtype and op.kv_dtype != op.dtype and not cm.fused_dequant:  # dequantized as each head loads it
        vops += DEQUANT_OPS_PER_ELEMENT * kv_bytes / op.kv_el_bytes() * group
    return PerHeadDecode(group, blocks, min(cm.cores, blocks), q + kv_bytes * (1 if fits else group),
                         q + kv_bytes * group, blocks * op.vd * b, vops, op.transcendentals())


def decode_per_head_cost(cm: ChipModel, op: FlashAttention) -> OpCost:
    """One-query attention as a kernel with one thread block per (sequence, query head) on the
    vector units (TensorRT-LLM's masked multi-head attention before XQA): each block streams
    its K/V head through its core's load path, so a GQA group's K/V crosses the load paths once
    per query head (the chip-shared cache serves the repeats: HBM still reads it once when it
    fits half of that cache, once per query head otherwise); q.k and p.v are two multiply-adds
    per key and head dimension on the vector engine (``per_head_decode``)."""
    d = per_head_decode(cm, op)
    a = d.active
    hbm = d.in_hbm_bytes + d.out_bytes
    mem = max(hbm / min(cm.hbm_bw, cm.load_path(a)),
              (d.in_load_bytes + d.out_bytes) / min(cm.shared_bw, cm.load_path(a)))
    vec = d.vector_ops / (a * cm.vec_rate.get("fp32", cm.vec_rate_default))
    trans = d.transcendentals / (a * cm.trans_rate)
    return OpCost(vector_s=max(vec, trans), memory_s=mem, overhead_s=cm.tensor_overhead, hbm_bytes=hbm,
                  mapping=f"{d.blocks} blocks (one per query head), K/V loaded {d.group}x")


def op_cost(cm: ChipModel, op: Op) -> OpCost:
    """Cost of any op on one chip of ``cm``'s system, as the stack dispatches it: an op the
    framework issues as several kernels (``ChipModel.launches``) pays each kernel's launch and
    fixed device latency, and under a host-async runtime the launches are marked host time."""
    parts = kernels(cm, op)
    if len(parts) > 1:  # run as its kernels, one after another
        costs = [op_cost(cm, k) for k in parts]
        return OpCost(memory_s=sum(max(c.compute_s, c.vector_s, c.memory_s) for c in costs),
                      overhead_s=sum(c.overhead_s for c in costs), hbm_bytes=sum(c.hbm_bytes for c in costs),
                      host_s=sum(c.host_s for c in costs), mapping=f"{len(costs)} eager kernels")
    c = _kernel_cost(cm, op)
    if (cm.launches or cm.host_async) and not isinstance(op, Collective):
        launch, one, extra = dispatch(cm, op)
        c = replace(c, overhead_s=c.overhead_s + launch - one + extra, host_s=launch if cm.host_async else 0.0)
    return c


def kernels(cm: ChipModel, op: Op) -> list[Op]:
    """The ops ``op`` runs as under the chip model's stack: its composite parts where the stack
    computes it unfused (``Calibration.composite``), an append to a concatenating cache as its
    copies (``Calibration.kv_concat``), else itself (``workload.eager.eager_kernels``)."""
    return eager_kernels(op, cm.composite, cm.kv_concat)


def _launch_count(cm: ChipModel, op: Op) -> int:
    """Launches of one op (``Calibration.launches``: by elementwise function, else by role)."""
    return cm.launches.get(getattr(op, "fn", "")) or cm.launches.get(op.role) or 1


def kernel_count(cm: ChipModel, op: Op) -> int:
    """Kernels ``op`` is issued as under the chip model's stack (composite parts, launches)."""
    return sum(_launch_count(cm, k) for k in kernels(cm, op))


def one_call_saving(cm: ChipModel, ops: list[Op], further_kernel_s: float) -> float:
    """What the kernels after the first of one timed call do not pay: the call synchronizes
    once, so each further kernel costs the runtime's bare ``further_kernel_s``, not the whole
    per-call launch every op's cost includes."""
    return (sum(kernel_count(cm, op) for op in ops) - 1) * max(0.0, cm.vector_launch - further_kernel_s)


def dispatch(cm: ChipModel, op: Op) -> tuple[float, float, float]:
    """(launch overheads of all the kernels ``op`` is issued as, of one of them, the fixed
    device latency of its kernels beyond the first)."""
    n = _launch_count(cm, op)
    one = cm.tensor_launch if isinstance(op, (MatMul, Conv2D, FlashAttention)) else cm.vector_launch
    return n * one, one, (n - 1) * cm.device_fixed


def _kernel_cost(cm: ChipModel, op: Op) -> OpCost:
    """Cost of ``op`` as one kernel on one chip."""
    if isinstance(op, MatMul):
        return gemm_cost(cm, op)
    if isinstance(op, Conv2D):
        mm = op.as_matmul()
        in_elems = op.batch * op.in_h * op.in_w * op.in_channels
        return gemm_cost(cm, mm, a_bytes_per_el=DTYPE_BYTES[op.dtype] * min(1.0, in_elems / (mm.m * mm.k)))
    if isinstance(op, FlashAttention):
        return flash_cost(cm, op)
    if isinstance(op, Collective):
        link_s, overhead_s, link_bytes, algo = cm.collective(op)
        local = op.bytes() / cm.hbm_bw
        return OpCost(link_s=link_s, memory_s=local, overhead_s=overhead_s, hbm_bytes=op.bytes(),
                      link_bytes=link_bytes, mapping=algo)
    rows = getattr(op, "rows", None)
    if rows is None and hasattr(op, "tokens"):
        rows = getattr(op, "batch", 1) * op.tokens
    if rows is None:
        rows = math.ceil(getattr(op, "elements", 1) / (cm.lanes * VECTOR_CHUNK_PER_LANE))
    dtype = getattr(op, "dtype", "bf16")
    return vector_cost(cm, op, float(rows), dtype, op.bytes())
