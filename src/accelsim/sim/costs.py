"""Per-op cost functions shared by the analytical and event tiers.

``OpCost`` holds each time term; the op's time is the largest term plus fixed overheads, and
its bound is the term that set it (see ``BOUND_RULES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..arch.spec import DTYPE_BYTES, SystemSpec
from ..errors import LoweringError
from ..lower.collectives import collective_time
from ..lower.mapping import RESULT_FIELDS, gemm_search
from ..workload.ops import (Collective, Conv2D, FlashAttention, MatMul, Op)
from .systolic import pass_cycles

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

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.vector_s, self.memory_s, self.link_s) + self.overhead_s

    @property
    def bound(self) -> str:
        terms = {"compute_s": self.compute_s, "vector_s": self.vector_s,
                 "memory_s": self.memory_s, "link_s": self.link_s}
        top = max(terms.values())
        if self.overhead_s > top:
            return "overhead"
        for label, key in BOUND_RULES:
            if terms[key] == top:
                return label
        return "overhead"


class ChipModel:
    """The numbers the cost functions need, read once from a SystemSpec."""

    def __init__(self, system: SystemSpec):
        chip = system.chip
        t, cal = chip.core.tensor, chip.calibration
        self.system = system
        self.cores = chip.num_cores
        self.R, self.C, self.count = t.rows, t.cols, t.count
        self.df = DATAFLOW_CODE[t.dataflow]
        self.overlap = t.preload_overlap
        self.min_pass = float(t.min_pass_cycles)
        self.f_tensor = chip.engine_hz("tensor")
        self.teff = cal.tensor_efficiency
        self.sram = chip.core.sram.capacity_bytes
        self.acc = chip.core.accumulator.capacity_bytes if chip.core.accumulator else 0.0
        sh = chip.shared_sram
        self.shared_cap = sh.capacity_bytes if sh else 0.0
        bw = sh.bandwidth_Bps if sh and sh.bandwidth_Bps else math.inf
        self.shared_bw = bw * cal.sram_efficiency
        self.hbm_bw = chip.hbm.bandwidth_Bps * cal.hbm_efficiency
        self.core_bw = chip.dma_bandwidth_Bps * cal.hbm_efficiency / self.cores
        self.queues = max(1, chip.dma.engines // self.cores)
        self.vec_rate = {d: r * chip.engine_hz("vector") * cal.vector_efficiency
                         for d, r in chip.core.vector.ops_per_cycle.items()}
        self.vec_rate_default = self.vec_rate.get("fp32") or min(self.vec_rate.values())
        self.trans_rate = (chip.core.scalar.transcendentals_per_cycle * chip.engine_hz("scalar")
                           * cal.vector_efficiency)
        self.lanes = chip.core.vector.lanes
        self.macs = dict(t.macs_per_cycle)
        self.overhead = cal.launch_overhead_s + chip.hbm.latency_s + chip.dma.setup_latency_s
        # fixed cost of a tensor-engine op (GEMM, convolution, attention) and of a vector op
        self.tensor_overhead = self.overhead + cal.tensor_launch_overhead_s
        self.vector_overhead = self.overhead + cal.vector_launch_overhead_s
        self._mappings: dict[tuple, dict[str, float]] = {}

    def speedup(self, dtype: str) -> float:
        """Streaming-rate multiplier of ``dtype`` relative to one MAC per PE per cycle."""
        if dtype not in self.macs:
            raise LoweringError(f"{self.system.chip.name} has no tensor-engine rate for {dtype}; "
                                f"it supports {', '.join(self.macs)}")
        return self.macs[dtype] / (self.R * self.C * self.count)


def _tensor_dtype(*dtypes: str) -> str:
    """The dtype a mixed-operand GEMM computes in: the wider operand."""
    return max(dtypes, key=lambda d: DTYPE_BYTES[d])


def gemm_mapping(cm: ChipModel, mm: MatMul, a_bytes_per_el: float | None = None) -> dict[str, float]:
    """The mapping search's winner for ``mm`` (fields of ``RESULT_FIELDS``), cached per chip
    model by op shape and dtypes, so a 32-layer model searches each distinct GEMM once."""
    ba = DTYPE_BYTES[mm.dtype_a] if a_bytes_per_el is None else a_bytes_per_el
    key = (mm, ba)
    hit = cm._mappings.get(key)
    if hit is not None:
        return hit
    r = gemm_search(float(mm.m), float(mm.n), float(mm.k), float(mm.batch), mm.b_shared, ba,
                    DTYPE_BYTES[mm.dtype_b], DTYPE_BYTES[mm.dtype_out],
                    cm.R, cm.C, cm.count, cm.df, cm.speedup(_tensor_dtype(mm.dtype_a, mm.dtype_b)),
                    cm.overlap, cm.min_pass, cm.f_tensor, cm.teff, float(cm.cores), cm.sram, cm.acc,
                    cm.shared_cap, cm.shared_bw, cm.hbm_bw, cm.core_bw, float(cm.queues))
    if not math.isfinite(r[0]):
        raise LoweringError(f"{mm.name or 'matmul'} ({mm.m}x{mm.n}x{mm.k}): no tile fits the "
                            f"{cm.sram:.0f}-byte core SRAM of {cm.system.chip.name}")
    f = cm._mappings[key] = dict(zip(RESULT_FIELDS, r))
    return f


def gemm_cost(cm: ChipModel, mm: MatMul, a_bytes_per_el: float | None = None) -> OpCost:
    """Cost of a (batched) GEMM from the mapping search."""
    f = gemm_mapping(cm, mm, a_bytes_per_el)
    mapping = (f"tile {int(f['tile_m'])}x{int(f['tile_n'])}, split-K {int(f['split_k'])}, "
               f"order {('reload', 'A-resident', 'B-resident')[int(f['order'])]}, "
               f"{int(f['waves'])} wave(s) on {int(f['active_cores'])} cores")
    return OpCost(compute_s=f["compute_s"], memory_s=max(f["hbm_s"], f["shared_s"]),
                  overhead_s=cm.tensor_overhead + f["fill_s"], hbm_bytes=f["hbm_bytes"], mapping=mapping)


def vector_cost(cm: ChipModel, op: Op, units: float, dtype: str, hbm_bytes: float) -> OpCost:
    """Cost of vector/scalar work spread over ``min(cores, units)`` cores."""
    active = max(1.0, min(cm.cores, units))
    vrate = cm.vec_rate.get(dtype, cm.vec_rate_default)
    vec = op.vector_ops() / (active * vrate)
    trans = op.transcendentals() / (active * cm.trans_rate)
    mem = hbm_bytes / min(cm.hbm_bw, active * cm.core_bw)
    return OpCost(vector_s=max(vec, trans), memory_s=mem, overhead_s=cm.vector_overhead,
                  hbm_bytes=hbm_bytes, mapping=f"{int(active)} cores")


def flash_cost(cm: ChipModel, op: FlashAttention) -> OpCost:
    """Fused attention: one unit = one (sequence, KV head, query tile); query heads that share a
    KV head are packed into the tile's rows (GQA). K/V stream through the core once per unit;
    when units cannot fill the cores, the KV length is split (flash-decoding)."""
    group = max(1, op.heads // op.kv_heads)
    rows = group * op.q_len
    mt = min(rows, 128)
    q_tiles = math.ceil(rows / mt)
    units = op.batch * op.kv_heads * q_tiles
    split = 1
    if units < cm.cores:
        split = max(1, min(math.ceil(cm.cores / units), math.ceil(op.kv_len / 128)))
    kv_eff = op.score_elements() / (op.batch * op.heads * op.q_len)  # visible keys per query
    kv_chunk = math.ceil(kv_eff / split)
    dt = cm.speedup(op.dtype)
    cyc = (pass_cycles(mt, kv_chunk, op.head_dim, cm.R, cm.C, cm.count, cm.df, dt, cm.overlap, cm.min_pass)
           + pass_cycles(mt, op.head_dim, kv_chunk, cm.R, cm.C, cm.count, cm.df, dt, cm.overlap, cm.min_pass))
    work = units * split
    waves = math.ceil(work / cm.cores)
    compute = waves * cyc / cm.f_tensor / cm.teff
    active = min(cm.cores, work)
    b = DTYPE_BYTES[op.dtype]
    kv_bytes = 2.0 * op.batch * op.kv_heads * op.kv_len * op.head_dim * b
    q_o = 2.0 * op.batch * op.heads * op.q_len * op.head_dim * b
    rereads = q_tiles if (cm.shared_cap == 0 or kv_bytes / (op.batch * op.kv_heads) > cm.shared_cap / 2) else 1
    hbm = q_o + kv_bytes * rereads + (op.batch * op.heads * op.q_len * split * (op.head_dim + 2) * 4.0 * 2 if split > 1 else 0.0)
    vec = op.vector_ops() / (active * cm.vec_rate.get(op.dtype, cm.vec_rate_default))
    trans = op.transcendentals() / (active * cm.trans_rate)
    mem = hbm / min(cm.hbm_bw, active * cm.core_bw)
    return OpCost(compute_s=compute, vector_s=max(vec, trans), memory_s=mem, overhead_s=cm.tensor_overhead,
                  hbm_bytes=hbm, mapping=f"{units} units x split {split}, {waves} wave(s)")


def op_cost(cm: ChipModel, op: Op) -> OpCost:
    """Cost of any op on one chip of ``cm``'s system."""
    if isinstance(op, MatMul):
        return gemm_cost(cm, op)
    if isinstance(op, Conv2D):
        mm = op.as_matmul()
        in_elems = op.batch * op.in_h * op.in_w * op.in_channels
        return gemm_cost(cm, mm, a_bytes_per_el=DTYPE_BYTES[op.dtype] * min(1.0, in_elems / (mm.m * mm.k)))
    if isinstance(op, FlashAttention):
        return flash_cost(cm, op)
    if isinstance(op, Collective):
        link_s, overhead_s, link_bytes, algo = collective_time(cm.system, op)
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
