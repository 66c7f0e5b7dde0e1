"""Architecture specs: a chip (cores with tensor / vector / scalar engines and SRAM, a chip-level
shared SRAM, HBM, DMA, calibration, energy) and a system of chips joined by an interconnect.

All models are frozen pydantic models with ``extra="forbid"``; every field has a docstring that
becomes its description (and the reference docs). Units are SI and named in the field
(``_Hz``, ``_bytes``, ``_Bps``, ``_s``, ``_W``, ``_pJ``); unit strings such as "24 MiB" or
"2.9 TB/s" are accepted at load time (see ``accelsim.units``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, ConfigDict, Field, field_validator, model_validator

from ..configio import StrictModel
from ..units import Bytes, BytesPerSecond, Hertz, Seconds, SquareMeters, Watts

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp6", "fp4")
"""Number formats a rate table may name (the element types of ``accelsim.compress.formats``)."""


Dtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp6", "fp4"]


class Spec(StrictModel):
    """Base of all spec models: frozen, strict about unknown fields; field docstrings become the
    descriptions of the schema (``fielddocs.describe``)."""

    model_config = ConfigDict(frozen=True, extra="forbid",
                              validate_default=True)


def _positive_rates(table: dict[str, float], what: str) -> dict[str, float]:
    for dtype, rate in table.items():
        if rate <= 0:
            raise ValueError(f"{what}[{dtype}] must be > 0, got {rate}")
    return table


class TensorEngine(Spec):
    """The matrix engine of one core: ``count`` systolic arrays of ``rows`` x ``cols`` PEs."""

    rows: int = Field(gt=0)
    """Systolic array rows (PEs along the reduction/stationary dimension)."""
    cols: int = Field(gt=0)
    """Systolic array columns."""
    count: int = Field(1, gt=0)
    """Arrays per core working in parallel on different output columns (4 MXUs per TPU
    TensorCore, 4 Tensor Cores per GPU SM)."""
    dataflow: Literal["ws", "os", "is"] = "ws"
    """Dataflow: weight-, output- or input-stationary."""
    macs_per_cycle: dict[Dtype, float]
    """Dense multiply-accumulates per cycle for the whole core, per input dtype. A dtype that
    is missing is not supported natively. ``rows*cols*count`` is the one-pass rate; a larger
    value (fp8 on Trainium2/H100) means the array processes that dtype faster."""
    frequency_Hz: Hertz | None = Field(None, gt=0)
    """Clock of the tensor engine, if different from the chip clock."""
    preload_overlap: bool = True
    """Whether the next fold's stationary operand loads while the current fold streams, so
    fill/drain is paid once per tile rather than once per fold. False reproduces SCALE-Sim's
    strictly sequential folds."""
    min_pass_cycles: int = Field(0, ge=0)
    """Minimum cycles one pass (one fold's streaming) occupies the array, e.g. the ~64-cycle
    matmul initiation interval of a NeuronCore TensorE."""
    sparsity_speedup: float = Field(1.0, ge=1.0)
    """Throughput multiplier for structured-sparse weights (2.0 for 2:4 on A100/H100)."""
    sparsity_patterns: tuple[str, ...] = ()
    """N:M patterns the engine accelerates, e.g. ("2:4",). An N:M pattern runs at
    ``min(sparsity_speedup, M/N)`` times the dense rate; others run dense."""
    alignment_bytes: int = Field(0, ge=0)
    """Byte multiple a GEMM's stored rows need for the engine's fast kernels (the K of the A
    operand and the N of the output, their leading dimensions): a GEMM whose K or N misses it
    runs on the library's fallback kernels, at ``unaligned_efficiency`` of the tensor rate
    (a vocabulary of 50,257 in a language-model head, unpadded). 0: no requirement."""
    unaligned_efficiency: float = Field(1.0, gt=0, le=1)
    """Fraction of the tensor rate a GEMM misaligned for ``alignment_bytes`` reaches."""
    fused_dequant: bool = False
    """Whether a weight stored narrower than the GEMM's compute type (W4A16, W8A16) is
    dequantized inside the tensor-engine datapath for free; False: the vector engine dequantizes
    every weight element it stages (see ``accelsim.cost.op_cost.dequant_ops``)."""
    fp8_tn_only: bool = False
    """Whether FP8 GEMMs take their operands in one layout only (cuBLASLt on Hopper: A
    transposed, B not, the "TN" format), so that a training step casts each FP8 activation
    operand (the input of a forward GEMM, the gradient of a data-gradient GEMM, both read again
    transposed by the weight gradient) to both layouts in one pass: bf16 read once, FP8 written
    twice (Transformer Engine's cast-transpose). False: one FP8 copy serves every GEMM."""

    @field_validator("macs_per_cycle")
    @classmethod
    def _rates_positive(cls, v: dict[str, float]) -> dict[str, float]:
        return _positive_rates(v, "macs_per_cycle")

    @model_validator(mode="after")
    def _needs_a_dtype(self) -> "TensorEngine":
        if not self.macs_per_cycle:
            raise ValueError("macs_per_cycle must list at least one dtype")
        return self


class VectorEngine(Spec):
    """SIMD engine of one core (elementwise, reductions, softmax, norms)."""

    lanes: int = Field(gt=0)
    """SIMD lanes."""
    ops_per_cycle: dict[Dtype, float]
    """Elementwise operations per cycle for the whole engine, per dtype."""
    frequency_Hz: Hertz | None = Field(None, gt=0)
    """Clock of the vector engine, if different from the chip clock."""

    @field_validator("ops_per_cycle")
    @classmethod
    def _rates_positive(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("ops_per_cycle must list at least one dtype")
        return _positive_rates(v, "ops_per_cycle")


class ScalarEngine(Spec):
    """Activation / transcendental engine of one core (exp, tanh, rsqrt, ...)."""

    transcendentals_per_cycle: float = Field(gt=0)
    """Transcendental function evaluations per cycle (exp, tanh, sigmoid, rsqrt)."""
    frequency_Hz: Hertz | None = Field(None, gt=0)
    """Clock of the scalar engine, if different from the chip clock."""


class SramLevel(Spec):
    """An on-chip SRAM: capacity and bandwidth."""

    capacity_bytes: Bytes = Field(gt=0)
    """Capacity in bytes."""
    bandwidth_Bps: BytesPerSecond | None = Field(None, gt=0)
    """Bandwidth to the engines in bytes/s (whole level); None = never the bottleneck."""


class Core(Spec):
    """One compute tile: a NeuronCore, a TPU TensorCore, a GPU SM or an AMD CU."""

    tensor: TensorEngine
    """Matrix engine."""
    vector: VectorEngine
    """Vector engine."""
    scalar: ScalarEngine
    """Scalar / activation engine."""
    sram: SramLevel
    """Software-managed scratchpad (SBUF, VMEM, shared memory, LDS) per core."""
    accumulator: SramLevel | None = None
    """Dedicated accumulator buffer per core (Neuron PSUM); None when accumulators live in
    registers or in the scratchpad."""
    load_multicast: int = Field(1, ge=1)
    """Cores that receive one operand load from the chip-shared SRAM together (Hopper thread
    block clusters with TMA multicast: one L2 read feeds the SMs of a cluster); 1 = none. It
    divides a GEMM's operand traffic through the shared level and the cores' load paths."""


class Hbm(Spec):
    """Off-chip DRAM (HBM) of one chip."""

    capacity_bytes: Bytes = Field(gt=0)
    """Capacity in bytes."""
    bandwidth_Bps: BytesPerSecond = Field(gt=0)
    """Peak bandwidth in bytes/s."""
    latency_s: Seconds = Field(0.0, ge=0)
    """Load-to-use latency of one access, seconds."""


class Dma(Spec):
    """DMA engines moving data between HBM and on-chip SRAM."""

    engines: int = Field(gt=0)
    """Number of DMA engines (queues) per chip."""
    bandwidth_per_engine_Bps: BytesPerSecond = Field(gt=0)
    """Bandwidth of one engine in bytes/s."""
    setup_latency_s: Seconds = Field(0.0, ge=0)
    """Fixed cost to issue one DMA (descriptor generation, doorbell), seconds."""
    core_peak_Bps: BytesPerSecond | None = Field(None, gt=0)
    """The most one core's queues move together while other cores leave the chip's load paths
    idle (a GPU SM whose peers have finished, in a GEMM's partial last wave). None: a core's
    even share, ``engines x bandwidth_per_engine_Bps / num_cores``, always. Every core loading
    at once still shares the engines' aggregate bandwidth evenly."""


class Calibration(Spec):
    """Explicit calibration: achievable fractions of peak and fixed overheads. Defaults are
    neutral (peak rates, no overhead); ``accelsim calibrate`` fits them."""

    tensor_efficiency: float = Field(1.0, gt=0, le=1)
    """Achievable fraction of the tensor engine's peak rate."""
    tensor_dtype_efficiency: dict[Dtype, float] = {}
    """Further fraction per compute dtype, multiplying ``tensor_efficiency`` for GEMMs of that
    type (e.g. Hopper FP8 GEMMs reach a smaller share of their doubled peak than BF16 ones)."""
    vector_efficiency: float = Field(1.0, gt=0, le=1)
    """Achievable fraction of the vector and scalar engines' peak rate."""
    hbm_efficiency: float = Field(1.0, gt=0, le=1)
    """Achievable fraction of peak HBM bandwidth."""
    reduction_efficiency: float = Field(1.0, gt=0, le=1)
    """Further fraction of the HBM rate that row-wise reductions (softmax, LayerNorm, RMSNorm, a
    row mean) reach: one pass per row with a cross-lane reduction streams less evenly than an elementwise
    kernel, so GPUs reach ~30-40 % of peak on them where a plain add reaches ~90 %."""
    sram_efficiency: float = Field(1.0, gt=0, le=1)
    """Achievable fraction of SRAM bandwidth."""
    link_efficiency: float = Field(1.0, gt=0, le=1)
    """Achievable fraction of interconnect link bandwidth."""
    launch_overhead_s: Seconds = Field(0.0, ge=0)
    """Fixed cost per kernel / op launch, seconds (every op except collectives, which pay
    ``collective_overhead_s``)."""
    tensor_launch_overhead_s: Seconds = Field(0.0, ge=0)
    """Extra fixed cost of each tensor-engine op (GEMM, convolution, attention) on top of
    ``launch_overhead_s``: what the software path adds per matrix-multiply call before the
    kernel runs (in PyTorch eager on a GPU: the cuBLAS / cuBLASLt algorithm selection,
    descriptor and workspace setup and the launch of the chosen kernels), seconds."""
    vector_launch_overhead_s: Seconds = Field(0.0, ge=0)
    """Extra fixed cost of each vector / scalar-engine op (softmax, norms, elementwise) on top of
    ``launch_overhead_s``: what the software path adds per such call (in PyTorch eager: operator
    dispatch, TensorIterator / reduction setup and the kernel launch), seconds."""
    collective_overhead_s: Seconds = Field(0.0, ge=0)
    """Fixed software cost per collective call, seconds."""
    attention_efficiency: float = Field(1.0, gt=0, le=1)
    """Further fraction of the modelled fused-attention compute rate (tile passes at the GEMM
    efficiency) that the software stack's attention kernels reach: on an H100, FlashAttention-2
    (Ampere-style MMA instructions, softmax between the matmuls) about half of it, cuDNN and
    FlashAttention-3 (warpgroup MMA, softmax overlapped) about four fifths. Set by the stack's
    ``attention`` block in realistic mode (neither a hardware field nor a fitted overhead: 1
    otherwise)."""
    attention_backward_efficiency: float | None = Field(None, gt=0, le=1)
    """The same fraction for the backward pass's kernels (``FlashAttention.backward``), where the
    stack's attention block gives it apart (published figures put backward kernels further from
    the modelled rate than forward ones). None: ``attention_efficiency``. Set from the stack."""
    attention_decode_per_query_head: bool = False
    """The stack's decode attention kernel loads K/V once per query head on the vector units
    (``AttentionKernel.decode_per_query_head``). Set from the stack in realistic mode."""
    unvectorized_elements_per_cycle: float | None = Field(None, gt=0)
    """Elements per core per vector-engine cycle of the kernel library's unvectorized
    elementwise loop (``Elementwise.unvectorized``): such a kernel takes at least
    ``elements / (cores x vector clock x this)``. Set from the stack's kernel library in
    realistic mode (None otherwise: no bound)."""
    sustained_load: bool = False
    """``tensor_efficiency`` already holds the chip's ``sustained_clock_fraction`` (set once by
    ``stack.realize.under_load`` for a prediction under sustained load; never fitted or written)."""
    host_async: bool = False
    """The launch overheads are host dispatch that overlaps the device's work on earlier ops
    (the stack runtime's ``host_async``): a step pipelines them (``sim.analytical.pipeline``).
    Set from the stack in realistic mode."""
    launches: dict[str, PositiveInt] = Field(default_factory=dict)
    """Kernels an op is issued as (the stack runtime's ``launches``), each paying the launch
    overheads and the device's fixed per-kernel latency. Set from the stack in realistic mode."""
    composite: list[str] = Field(default_factory=list)
    """Elementwise functions run as several kernels (the stack runtime's ``composite``). Set
    from the stack in realistic mode."""
    kv_concat: bool = False
    """The serving engine's K/V cache grows by concatenation, so each append copies the cached
    tokens again (``ServingEngine.kv_cache``: ``concat``). Set from the stack in realistic mode."""
    stack: str | None = None
    """The software stack the overhead fields (``STACK_FIELDS``) were fitted under, as
    ``accelsim calibrate`` records it. In realistic mode under another stack they are dropped
    and that stack's own costs apply (the hardware fields, ``HARDWARE_FIELDS``, still apply);
    in ideal mode they are dropped too. None: the fields apply as written in every mode (a
    hand-written calibration, or one fitted with ``calibrate --ideal``)."""

    @field_validator("tensor_dtype_efficiency")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not 0 < x <= 1}
        if bad:
            raise ValueError(f"must be in (0, 1], got {bad}")
        return v


HARDWARE_FIELDS = ("tensor_efficiency", "tensor_dtype_efficiency", "vector_efficiency", "hbm_efficiency",
                   "reduction_efficiency", "sram_efficiency", "link_efficiency")
"""Calibration fields that describe the silicon: they hold under any software stack."""
STACK_FIELDS = ("launch_overhead_s", "tensor_launch_overhead_s", "vector_launch_overhead_s", "collective_overhead_s")
"""Calibration fields that describe the software path: they hold only under the stack they
were fitted under (``Calibration.stack``)."""
STACK_SET_FIELDS = ("attention_efficiency", "attention_backward_efficiency", "attention_decode_per_query_head",
                    "unvectorized_elements_per_cycle", "host_async", "launches", "composite", "kv_concat",
                    "sustained_load")
"""Calibration fields that realistic mode sets from the stack's kernels (its attention kernels,
its kernel library) or from the load: neither fitted by ``accelsim calibrate`` nor written to a
calibration file."""


class Energy(Spec):
    """Energy table. Defaults are zero (no energy reported) unless a preset cites figures."""

    mac_pJ: dict[Dtype, float] = {}
    """Energy per multiply-accumulate, picojoules, per dtype."""
    vector_op_pJ: float = Field(0.0, ge=0)
    """Energy per vector-engine elementwise op, picojoules."""
    sram_pJ_per_byte: float = Field(0.0, ge=0)
    """Energy per byte read or written in per-core SRAM, picojoules."""
    shared_sram_pJ_per_byte: float = Field(0.0, ge=0)
    """Energy per byte of the chip-shared SRAM level, picojoules."""
    hbm_pJ_per_byte: float = Field(0.0, ge=0)
    """Energy per byte moved to or from HBM, picojoules."""
    link_pJ_per_byte: float = Field(0.0, ge=0)
    """Energy per byte sent over a chip-to-chip link, picojoules."""
    static_W: Watts = Field(0.0, ge=0)
    """Static (leakage + idle) power of one chip, watts."""


class ChipSpec(Spec):
    """One accelerator chip. A GPU is a chip whose cores are SMs (or CUs) and whose L2 is the
    shared SRAM level."""

    name: str
    """Chip name, e.g. "trainium2"."""
    vendor: str = ""
    """Vendor, for display."""
    kind: Literal["npu", "tpu", "gpu"] = "npu"
    """Broad family, for display and for op-fusion defaults."""
    frequency_Hz: Hertz = Field(gt=0)
    """Chip (tensor engine) clock."""
    num_cores: int = Field(gt=0)
    """Compute tiles per chip (NeuronCores, TensorCores, SMs, CUs)."""
    core: Core
    """The compute tile, identical for every core."""
    shared_sram: SramLevel | None = None
    """Chip-level SRAM shared by all cores (GPU L2, TPU CMEM, MI300 Infinity Cache)."""
    hbm: Hbm
    """Off-chip memory."""
    dma: Dma
    """DMA engines."""
    calibration: Calibration = Calibration()
    """Explicit calibration (``accelsim calibrate``), applied in every mode."""
    achievable: Calibration | None = None
    """Realistic priors: the fractions of peak this chip reaches in published microbenchmarks
    (``accelsim priors`` derives them from workloads/measurements/parts). Realistic mode runs
    with these in place of a neutral calibration; ideal mode ignores them."""
    """Achievable fractions and overheads (neutral by default)."""
    energy: Energy = Energy()
    """Energy table."""
    tdp_W: Watts | None = Field(None, gt=0)
    """Thermal design power (or the power limit the part runs at), watts, if published."""
    sustained_clock_fraction: float | None = Field(None, gt=0, le=1)
    """Tensor throughput the chip holds under sustained load, as a fraction of what it reaches
    in a short run: held at its power limit for minutes and thermally soaked (a production
    training or serving run), its clock settles below the one a benchmark harness's seconds of
    timed calls see, which the kernel microbenchmarks, and so the achievable priors, were
    measured at. Realistic predictions under sustained load (``load="sustained"``, the default
    for whole steps) run the tensor engines at this fraction of their achievable rate. None: no
    drop measured (fixed-clock parts, or no published figure)."""
    die: str | None = None
    """Name of the chip whose compute die this one is, where the two differ only in memory,
    power limit or clocks (H200, the Grand Teton H100: the H100 SXM5's GH100): per-chip kernel
    data keyed by chip name (a stack's attention efficiency, the process node) fall back to the
    die's entry."""
    die_area_m2: SquareMeters | None = Field(None, gt=0)
    """Die area, square metres, if published."""

    def engine_hz(self, engine: Literal["tensor", "vector", "scalar"]) -> float:
        """Clock of one engine (its own, else the chip's)."""
        hz = getattr(self.core, engine).frequency_Hz
        return hz if hz is not None else self.frequency_Hz

    @property
    def tp_ranks(self) -> int:
        """Tensor-parallel ranks one chip counts as: a NeuronCore is a rank on AWS Neuron chips
        (Trainium1 / Inferentia2: 2 per chip; Trainium2: 4 logical cores of 2 physical each, the
        default LNC=2, AWS Neuron documentation "Logical NeuronCore configuration"); 1 elsewhere."""
        if self.name.startswith(("trainium1", "inferentia2")):
            return self.num_cores
        if self.name.startswith("trainium2"):
            return max(1, self.num_cores // 2)
        return 1

    def chips_for_tp(self, ranks: int) -> int:
        """Chips that ``ranks`` tensor-parallel ranks occupy (``ranks / tp_ranks``, rounded up)."""
        return max(1, -(-ranks // self.tp_ranks))

    def peak_flops(self, dtype: str, sparse: bool = False) -> float:
        """Peak dense (or sparse) tensor FLOP/s of the chip for ``dtype`` (0 if unsupported)."""
        macs = self.core.tensor.macs_per_cycle.get(dtype, 0.0)
        speed = self.core.tensor.sparsity_speedup if sparse else 1.0
        return 2.0 * macs * self.num_cores * self.engine_hz("tensor") * speed

    def vector_ops_per_s(self, dtype: str) -> float:
        """Peak vector elementwise ops/s of the chip (falls back to the fp32 rate, then the
        lowest listed rate, for a dtype the table does not list)."""
        table = self.core.vector.ops_per_cycle
        rate = table.get(dtype) or table.get("fp32") or min(table.values())
        return rate * self.num_cores * self.engine_hz("vector")

    def ridge_point(self, dtype: str = "bf16") -> float:
        """Arithmetic intensity (FLOP/byte) where the compute and HBM roofs meet."""
        return self.peak_flops(dtype) / self.hbm.bandwidth_Bps

    @property
    def dma_bandwidth_Bps(self) -> float:
        """Aggregate DMA bandwidth of the chip."""
        return self.dma.engines * self.dma.bandwidth_per_engine_Bps


class Interconnect(Spec):
    """How the chips of one scale-up domain (a node: a server, an instance, a pod slice) are
    joined. ``kind`` selects the topology; ``arch.topology`` builds its graph."""

    kind: Literal["ring", "torus2d", "torus3d", "mesh2d", "mesh3d", "fully_connected", "switch"]
    """Topology: ring, 2D / 3D torus (wrap-around links), 2D / 3D mesh (no wrap-around), fully
    connected (direct links to every peer) or a switch (NVSwitch-like, every chip one hop from
    the switch)."""
    dims: tuple[int, ...] = ()
    """Torus / mesh dimensions, e.g. (4, 4) or (4, 4, 4); for a ring, (n,); empty for the others.
    They hold the chips of one node (``SystemSpec.node_chips``)."""
    link_bandwidth_Bps: BytesPerSecond = Field(gt=0)
    """Bandwidth of one link in one direction, bytes/s."""
    links_per_neighbour: int = Field(1, gt=0)
    """Parallel links between two adjacent chips (or between a chip and the switch)."""
    link_latency_s: Seconds = Field(0.0, ge=0)
    """One-hop latency of a link (or chip-switch-chip), seconds."""
    in_switch_reduction: bool = False
    """Whether the switch reduces in the network (NVLink SHARP), halving all-reduce traffic."""
    bidirectional: bool = True
    """Whether each ring / torus link carries data both ways (full duplex). False: a
    unidirectional ring (torus), where data only flows towards the next chip of each
    dimension, so a ring collective has half the usable bandwidth. Only for ring and torus."""

    def chips_in_topology(self) -> int | None:
        """Chip count implied by ``dims`` (None when the topology has no dims)."""
        if not self.dims:
            return None
        n = 1
        for d in self.dims:
            n *= d
        return n

    @model_validator(mode="after")
    def _dims_match_kind(self) -> "Interconnect":
        need = {"ring": 1, "torus2d": 2, "torus3d": 3, "mesh2d": 2, "mesh3d": 3}.get(self.kind)
        if need is not None and len(self.dims) != need:
            raise ValueError(f"a {self.kind} needs dims with {need} entr{'y' if need == 1 else 'ies'}, got {list(self.dims)}")
        if need is None and self.dims:
            raise ValueError(f"a {self.kind} has no dims, got {list(self.dims)}")
        if any(d < 1 for d in self.dims):
            raise ValueError(f"dims must be positive, got {list(self.dims)}")
        if self.in_switch_reduction and self.kind != "switch":
            raise ValueError("in_switch_reduction needs kind: switch")
        if not self.bidirectional and self.kind not in ("ring", "torus2d", "torus3d"):
            raise ValueError(f"bidirectional: false is only meaningful for a ring or torus, not a {self.kind}")
        return self

    @property
    def wraps(self) -> bool:
        """Whether the dims close into rings (ring, torus) rather than lines (mesh)."""
        return self.kind in ("ring", "torus2d", "torus3d")

    def neighbours(self, num_chips: int) -> int:
        """Links a chip drives in one direction (its directly linked neighbours; 1 for a switch:
        the switch itself; an interior chip of a mesh). ``num_chips`` is the node's chip count."""
        neighbours = 1
        if self.kind == "fully_connected":
            neighbours = max(num_chips - 1, 1)
        elif self.dims:
            per_dim = (lambda d: 0 if d == 1 else 1) if not self.bidirectional else \
                (lambda d: 0 if d == 1 else (1 if d == 2 else 2))
            neighbours = sum(per_dim(d) for d in self.dims)
        return neighbours

    def chip_bandwidth_Bps(self, num_chips: int) -> float:
        """Injection bandwidth of one chip in one direction over all its links."""
        return self.link_bandwidth_Bps * self.links_per_neighbour * self.neighbours(num_chips)


class ScaleOut(Spec):
    """The network joining nodes (scale-up domains) to each other: NICs on every chip and a
    switched fabric (InfiniBand, RoCE, EFA, a TPU data-centre network)."""

    nic_bandwidth_Bps: BytesPerSecond = Field(gt=0)
    """Scale-out bandwidth of one chip in one direction (all its NICs, or its share of the
    node's NICs), bytes/s."""
    nic_latency_s: Seconds = Field(0.0, ge=0)
    """Latency of one chip-to-chip message across the fabric (NIC to NIC), seconds."""
    kind: Literal["fat_tree", "rail"] = "fat_tree"
    """Fabric: ``fat_tree`` (full bisection: every NIC reaches every other NIC at full rate) or
    ``rail`` (rail-optimized: the NIC of local chip i reaches only chip i of the other nodes;
    traffic to another local index first crosses the scale-up network)."""


class SystemSpec(Spec):
    """A system: ``num_chips`` identical chips in nodes of ``node_chips`` chips; the chips of a
    node are joined by ``interconnect`` (scale-up), the nodes by ``scale_out``."""

    name: str
    """System name (the preset name)."""
    description: str = ""
    """What this system is, in one line."""
    chip: ChipSpec
    """The chip."""
    num_chips: int = Field(1, gt=0)
    """Number of chips (all nodes together)."""
    interconnect: Interconnect | None = None
    """Scale-up network inside a node; required when a node has more than one chip."""
    node_chips: int | None = Field(None, gt=0)
    """Chips per node (scale-up domain); None = all ``num_chips`` chips form one node."""
    scale_out: ScaleOut | None = None
    """Network between nodes; required when there is more than one node."""
    stack: str = ""
    """Default software stack (a ``stacks/`` name) that realistic predictions assume for this
    system; empty: none (realistic mode then prices collectives as the ideal bound)."""
    sources: dict[str, str] = {}
    """Where each number came from: dotted field path (or a prefix of it) -> source."""

    @model_validator(mode="after")
    def _network_fits(self) -> "SystemSpec":
        node = self.chips_per_node
        if self.num_chips % node:
            raise ValueError(f"num_chips {self.num_chips} is not a multiple of node_chips {node}")
        if node > 1 and self.interconnect is None:
            raise ValueError(f"a node has {node} chips but no interconnect is given")
        if self.num_chips > node and self.scale_out is None:
            raise ValueError(f"{self.num_chips} chips in nodes of {node} need a scale_out network")
        if self.interconnect is not None:
            n = self.interconnect.chips_in_topology()
            if n is not None and n != node:
                raise ValueError(f"interconnect.dims {list(self.interconnect.dims)} hold {n} chips "
                                 f"but a node has {node} (num_chips {self.num_chips}"
                                 + (f", node_chips {self.node_chips})" if self.node_chips else ")"))
        return self

    @property
    def chips_per_node(self) -> int:
        """Chips in one scale-up domain (``node_chips``, else ``num_chips``)."""
        return self.node_chips if self.node_chips is not None else self.num_chips

    @property
    def num_nodes(self) -> int:
        """Number of nodes joined by the scale-out network."""
        return self.num_chips // self.chips_per_node

    def peak_flops(self, dtype: str = "bf16", sparse: bool = False) -> float:
        """Peak tensor FLOP/s of the whole system."""
        return self.chip.peak_flops(dtype, sparse) * self.num_chips

    def ridge_point(self, dtype: str = "bf16") -> float:
        """FLOP/byte where one chip's compute and HBM roofs meet."""
        return self.chip.ridge_point(dtype)

    @property
    def total_hbm_bytes(self) -> float:
        """HBM capacity of all chips together."""
        return self.chip.hbm.capacity_bytes * self.num_chips

    @property
    def total_hbm_bandwidth_Bps(self) -> float:
        """HBM bandwidth of all chips together."""
        return self.chip.hbm.bandwidth_Bps * self.num_chips
