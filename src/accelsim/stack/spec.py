"""Software stacks as data: what the software between a program and the silicon costs.

A ``Stack`` names a runtime (how kernels are issued: PyTorch eager, CUDA graphs, the Neuron
runtime, XLA) and a collective library (NCCL, RCCL, Neuron collectives, TPU ICI collectives).
The collective library's costs follow how such libraries move data: every call pays a fixed
``call_latency_s`` (launch, setup, the final synchronisation); every algorithm step pays the
chosen protocol's ``step_latency_s`` (a ring all-reduce over p ranks has 2(p-1) steps); data
moves at the link bandwidth times ``bandwidth_fraction`` (what the library's copy kernels
reach over the link) times the protocol's own ``bandwidth_fraction`` (e.g. NCCL's LL protocol
sends a 4-byte flag with every 4 bytes of data, so it moves data at half the rate). For each
call the library runs the (algorithm, protocol) pair of least predicted time, as NCCL's tuner
does, which gives the latency plateau for small messages, the bandwidth plateau for large ones
and a smooth knee between them.

Frozen pydantic models, ``extra="forbid"``, SI units in field names, unit strings ("6 us",
"64 KiB") accepted at load time; every field's docstring is its reference documentation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import PositiveInt, ConfigDict, Field, model_validator

from ..configio import StrictModel
from ..units import Bytes, Seconds


class _Spec(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class Protocol(_Spec):
    """One transport protocol of a collective library."""

    name: str = Field(min_length=1)
    """Protocol name (NCCL: LL, LL128, Simple)."""
    bandwidth_fraction: float = Field(gt=0, le=1)
    """Fraction of the library's link rate this protocol moves data at (LL: 0.5, one 4-byte
    flag per 4 bytes of data; LL128: 120/128, one 8-byte flag per 128-byte line; Simple: 1)."""
    step_latency_s: Seconds = Field(ge=0)
    """Latency of one algorithm step over scale-up links (send, flag / fence, receive), seconds."""
    base_latency_s: Seconds = Field(0.0, ge=0)
    """Fixed cost of a call run under this protocol, beyond the library's ``call_latency_s``,
    seconds: NCCL's own tuning model gives each (algorithm, protocol) a base latency besides its
    per-hop one (ring: LL 6.6, LL128 14, Simple 8.4 us; NVIDIA/nccl src/graph/tuning.cc,
    ``baseLat``), so LL128 costs more than LL on a small message and less per step."""
    max_bytes: Bytes | None = Field(None, gt=0)
    """Largest per-rank buffer the library runs this protocol for (None: any size)."""


class CollectiveLibrary(_Spec):
    """A collective communication library: fixed and per-step latencies, protocols, bandwidth."""

    name: str = Field(min_length=1)
    """Library and version range, e.g. "NCCL 2.18-2.21"."""
    call_latency_s: Seconds = Field(ge=0)
    """Fixed cost of every call (kernel launch, channel setup, final synchronisation), seconds."""
    bandwidth_fraction: float = Field(gt=0, le=1)
    """Fraction of the scale-up link bandwidth the library's bulk protocol reaches (link packet
    overhead and copy-kernel efficiency)."""
    scale_out_bandwidth_fraction: float = Field(1.0, gt=0, le=1)
    """Fraction of the scale-out NIC bandwidth reached between nodes."""
    scale_out_step_latency_s: Seconds = Field(0.0, ge=0)
    """Latency of one algorithm step that crosses the scale-out network, seconds."""
    in_switch_bandwidth_fraction: float = Field(1.0, gt=0, le=1)
    """Fraction of the link bandwidth an in-switch (SHARP / NVLS) reduction reaches."""
    in_switch_step_latency_s: Seconds | None = Field(None, ge=0)
    """Latency of an in-switch (SHARP / NVLS) reduction's step, seconds: the switch's multicast
    and reduction round trips, which a ring step over the same links does not pay (NCCL's own
    tuning model puts NVLS at 23-25 us of hardware latency where a Simple ring hop over NVLink
    is 3.4 us). None: the bulk protocol's ``step_latency_s``."""
    protocols: tuple[Protocol, ...] = Field(min_length=1)
    """Protocols the library chooses from; the fastest applicable one runs."""
    algorithms: tuple[str, ...] = ()
    """Algorithms the library implements (names of ``cost.collectives.ALGORITHMS``; empty: all).
    NCCL, for example, runs all-reduce as a ring, a tree or an in-switch (NVLS) reduction, never as
    a one-shot exchange. All-to-all and send/recv are point-to-point in every library."""
    p2p_protocols: tuple[str, ...] = ()
    """Protocols the library's point-to-point kernels run (all-to-all and send/recv are grouped
    sends and receives; empty: every protocol). NCCL's and RCCL's send/recv kernels implement LL
    and Simple, not LL128 (NVIDIA/nccl#1590; ROCm/rocm-systems#7881: "The send/recv kernels
    currently only support the LL and SIMPLE protocols")."""
    p2p_ll_max_bytes: Bytes | None = Field(None, gt=0)
    """Largest message to one peer a point-to-point transfer runs LL for (None: the protocol's own
    ``max_bytes``). NCCL: ``NCCL_P2P_LL_THRESHOLD``, 16384 bytes (per peer and channel)."""
    p2p_op_host_s: Seconds = Field(0.0, ge=0)
    """Host cost of enqueueing one point-to-point operation of a grouped call, per device: an
    all-to-all over p ranks is p - 1 sends and p - 1 receives issued between a group start and
    end (nccl-tests ``alltoall_perf``, PyTorch ``all_to_all_single``), each a host-side
    operation beyond the call's own enqueue (``runtime.collective_launch_s``). Fitted."""
    p2p_channels: int = Field(0, ge=0)
    """Channels the library's point-to-point kernels spread over (NCCL: the "p2p channels" of its
    init log, ``comm->p2pnChannels``). 0: a point-to-point transfer pays its protocol's
    ``base_latency_s`` in full, whatever its size."""
    p2p_channels_per_peer: int = Field(0, ge=0)
    """Channels one peer's transfer may use (NCCL: ``comm->p2pnChannelsPerPeer``). An all-to-all
    over p ranks splits each peer's message over the largest power of two of them, halved from
    this, whose p-fold fits ``p2p_channels``, into parts of at least an eighth of a step
    (NVIDIA/nccl ``scheduleP2pTasksToPlan`` / ``addP2pToPlan``)."""
    p2p_step_bytes: Bytes | None = Field(None, gt=0)
    """Bytes of one pipeline step of a point-to-point transfer between chips of one node (NCCL:
    ``NCCL_P2P_NVL_CHUNKSIZE``). A part smaller than a step fills the bulk protocol's pipeline
    for that fraction of its ``base_latency_s`` (None: the whole base latency)."""
    compute_cores: int = Field(0, ge=0)
    """Compute cores (SMs, CUs) a collective's kernel holds while it runs, one thread block per
    channel: compute that overlaps the collective runs on the others. 0: the library moves data
    with engines of its own (Neuron collective cores, TPU ICI DMA) or its figure is not known."""

    @property
    def bulk(self) -> Protocol:
        """The protocol of the largest bandwidth fraction (NCCL's Simple): what an in-switch
        reduction runs, and whose fixed cost per call (``base_latency_s``) is fitted."""
        return max(self.protocols, key=lambda p: p.bandwidth_fraction)

    @property
    def in_switch_step_s(self) -> float:
        """The in-switch step latency in force: ``in_switch_step_latency_s``, else the bulk
        protocol's step latency."""
        s = self.in_switch_step_latency_s
        return self.bulk.step_latency_s if s is None else s

    @model_validator(mode="after")
    def _unbounded_protocol(self) -> "CollectiveLibrary":
        if all(p.max_bytes is not None for p in self.protocols):
            raise ValueError("protocols: at least one protocol must have no max_bytes (large messages need one)")
        names = [p.name for p in self.protocols]
        unknown = [n for n in self.p2p_protocols if n not in names]
        if unknown:
            raise ValueError(f"p2p_protocols: {unknown[0]!r} is not one of the protocols ({', '.join(names)})")
        if self.p2p_protocols and all(p.max_bytes is not None for p in self.protocols if p.name in self.p2p_protocols):
            raise ValueError("p2p_protocols: at least one of them must have no max_bytes (large messages need one)")
        if len(set(names)) != len(names):
            raise ValueError(f"protocols: duplicate protocol names in {names}")
        p2p = {"p2p_channels": self.p2p_channels, "p2p_channels_per_peer": self.p2p_channels_per_peer,
               "p2p_step_bytes": self.p2p_step_bytes or 0}
        if any(p2p.values()) and not all(p2p.values()):
            missing = next(k for k, v in p2p.items() if not v)
            raise ValueError(f"{missing}: p2p_channels, p2p_channels_per_peer and p2p_step_bytes go together "
                             f"(set all three, or none)")
        if self.p2p_channels_per_peer > self.p2p_channels:
            raise ValueError(f"p2p_channels_per_peer: {self.p2p_channels_per_peer} is more than p2p_channels "
                             f"({self.p2p_channels})")
        return self


class Runtime(_Spec):
    """How kernels are issued."""

    name: str = Field(min_length=1)
    """Runtime, e.g. "PyTorch eager", "CUDA graphs", "Neuron runtime"."""
    kernel_launch_s: Seconds = Field(0.0, ge=0)
    """Fixed cost of one kernel call issued back to back (launch and device-side gap), seconds."""
    tensor_launch_s: Seconds = Field(0.0, ge=0)
    """Extra host cost of a tensor-engine op's library call beyond ``kernel_launch_s``: an eager
    GEMM goes through cuBLAS / hipBLASLt (handle, workspace and algorithm lookup) where a native
    elementwise or reduction kernel is launched directly (PyTorch measures ~8 us of host time
    per 512x512 matmul against ~2 us per elementwise op: pytorch/pytorch#161822, #41383)."""
    collective_launch_s: Seconds = Field(0.0, ge=0)
    """Host cost of one collective call per device the calling process drives: enqueueing the
    library's kernel on that device. It shows in the time (added to the library's device-side
    ``call_latency_s``); a process driving several devices (nccl-tests ``-g 8``) pays it once
    per device, one process per device (PyTorch, ``mpirun -np 8 ... -g 1``) once. 0 under graph
    replay, which re-launches captured kernels without the host."""
    further_kernel_s: Seconds | None = Field(None, ge=0)
    """Host cost of each further kernel inside one timed call (the second kernel of an eager
    ``F.silu(g) * u`` row): the bare dispatch, without the call's synchronization and timer that
    a one-kernel row's ``kernel_launch_s`` includes. Used for kernel rows timed call by call;
    None: every kernel pays ``kernel_launch_s``."""
    alone_kernel_s: Seconds | None = Field(None, ge=0)
    """Fixed cost of one kernel timed alone on the device (CUDA events around one call queued
    behind other device work, as ``triton.testing.do_bench`` times it; a kernel row with
    ``timing: alone``), in place of ``kernel_launch_s``: the host's launch is hidden, but the
    kernel's start and the closing event have no earlier kernel to overlap. None: as
    ``kernel_launch_s``. Never part of a model step, whose kernels run back to back."""
    host_async: bool = False
    """The per-kernel costs are host time that overlaps the device: the host (PyTorch eager's
    Python thread) enqueues kernels and runs ahead while the device works through earlier ones,
    so a step takes the longer of the two op by op (``sim.analytical.pipeline``), not their sum.
    Measured on one H200: eager Llama-3-8B decode at batch 64 took 13.8 ms with 13.5 ms of host
    dispatch and 10.5 ms of device work (``workloads/measurements/notes/h200_host_overlap.md``).
    An op timed alone still costs launch plus kernel."""
    launches: dict[str, PositiveInt] = Field(default_factory=dict)
    """Kernels (each its own dispatch and launch) one op is issued as, where the framework runs
    it as several: keyed by an elementwise op's function (``rope``, ``silu_mul``) or another
    op's role (``kv_append``); 1 for any other op."""
    composite: list[Literal["rope", "rope_complex", "silu_mul", "rmsnorm", "softmax"]] = Field(default_factory=list)
    """Ops the framework computes as several kernels with temporaries in
    between (``workload.eager.COMPOSITES``: ``rope``, Hugging Face's eager RoPE, five kernels a
    tensor; ``rope_complex``, Meta's reference RoPE through complex numbers, three;
    ``silu_mul``, eager ``act(gate) * up``, two; ``rmsnorm``, a reference RMSNorm module written
    op by op, as Hugging Face's ``LlamaRMSNorm``, eight: ``workload.eager.composite_rmsnorm``;
    ``softmax``, an unfused attention's softmax as eager code writes it, scaled, masked, taken
    in fp32 and cast back, four: ``workload.eager.composite_attn_softmax``), each kernel a launch
    and a pass over memory."""
    dispatch: Literal["kernel", "program"] = "kernel"
    """``kernel``: every op is its own call and pays ``kernel_launch_s`` (eager frameworks, C++
    libraries, CUDA graphs' per-node gaps); ``program``: a compiled program (XLA) runs a whole
    step per call, so ``kernel_launch_s`` is a cost per call, not per op (fitted on one-kernel
    calls, it is not added to each op of a model step)."""


class TrainingFramework(_Spec):
    """What a training framework does by default (a row's or a plan's own values override it)."""

    name: str = Field(min_length=1)
    """Framework, e.g. "Megatron-LM / NeMo", "torchtitan", "NxD Training", "MaxText"."""
    fp8_scope: Literal["gemm", "all"] = "gemm"
    """Which ops of an FP8 run compute in FP8: ``gemm``, the linear layers' GEMMs (FP8 operands,
    BF16 output; attention, norms, activations, the loss and the optimizer stay BF16 / FP32, as
    Transformer Engine's FP8 recipe runs), or ``all``."""
    sequence_parallel: bool = False
    """Sequence parallelism with tensor parallelism by default."""
    tp_comm_overlap: bool = False
    """Tensor-parallel communication overlapped with the GEMMs by default
    (``ParallelPlan.tp_comm_overlap``)."""
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation by default."""
    zero: Literal[0, 1, 2, 3] = 0
    """ZeRO stage by default (1: distributed optimizer; 3: FSDP full shard)."""
    selective: Literal["attention", "op", "qkv_proj", "context_offload"] = "attention"
    """What selective recomputation keeps (``ParallelPlan.selective``): ``attention`` (Megatron-LM:
    all but the attention core), ``op`` (torchtitan's op-level selective checkpointing),
    ``qkv_proj`` or ``context_offload`` (MaxText remat policies)."""
    recompute_scope: Literal["layer", "needed"] = "layer"
    """What a recomputed layer reruns (``ParallelPlan.recompute_scope``): ``layer`` (PyTorch
    activation checkpointing) or ``needed`` (JAX rematerialization)."""
    loss_grad_bytes_per_logit: float = Field(0.0, ge=0)
    """Bytes per logit the loss's backward holds beside the kept softmax
    (``ParallelPlan.loss_grad_bytes_per_logit``)."""
    rmsnorm: Literal["fused", "eager"] = "fused"
    """How its RMSNorm runs (``ParallelPlan.rmsnorm``)."""
    loss: Literal["fused", "eager_fp32"] = "fused"
    """How its cross-entropy loss runs (``ParallelPlan.loss``)."""
    master_casts: Literal["fused", "separate"] = "fused"
    """How its optimizer step reaches the fp32 master weights (``ParallelPlan.master_casts``)."""
    reduce_dtype: Literal["bf16", "fp16", "fp32"] | None = None
    """Dtype of its data-parallel gradient reduction (``ParallelPlan.reduce_dtype``); None: the
    gradients' own."""
    context_parallel: Literal["fused", "ring_sdpa", "te_p2p"] = "fused"
    """How its context parallelism runs attention (``ParallelPlan.cp_attention``)."""
    zero3_copies: bool = False
    """Its ZeRO-3 copies each weight gather into the parameters on the compute stream (FSDP2,
    ``ParallelPlan.zero3_copies``)."""
    vocab_multiple: int = Field(1, ge=1)
    """The framework pads the vocabulary to a multiple of this times the TP degree
    (``ParallelPlan.vocab_multiple``)."""


class ServingEngine(_Spec):
    """What a serving engine adds to every forward step."""

    name: str = Field(min_length=1)
    """Engine, e.g. "TensorRT-LLM", "vLLM", "NxD Inference", "JetStream"."""
    step_overhead_s: Seconds = Field(0.0, ge=0)
    """Host time per forward step (prefill or decode) that the device waits for: scheduling,
    sampling, input preparation."""
    request_overhead_s: Seconds = Field(0.0, ge=0)
    """Further host time per step for each request (sequence) in the step that the device waits
    for: an engine that schedules, prepares inputs and processes outputs request by request in
    Python between steps pays it once per running request."""
    decode_bucket_tokens: int = Field(0, ge=0, le=1 << 30)
    """Smallest context length the engine compiles a decode program for; each further bucket
    doubles it. An engine that compiles fixed shapes runs each decode step with the program of
    the smallest bucket that holds the cached tokens and the new one, and that program's
    attention reads and scores the bucket's whole length, the positions past the sequence masked
    out (transformers-neuronx: one token-generation program per power-of-two bucket from 128).
    0: the attention reads each sequence's own context."""
    kv_cache: Literal["fixed", "concat"] = "fixed"
    """How the engine's K/V cache takes a step's new tokens: ``fixed``, written in place into
    memory sized ahead (paged or preallocated: vLLM, TensorRT-LLM, a static cache); ``concat``,
    concatenated onto the cached tensors into new ones, so every step reads and writes the whole
    cache again (Hugging Face transformers' default ``DynamicCache``, ``torch.cat``)."""
    offline_batch: Literal["given", "kv_capacity"] = "given"
    """How the running batch of an offline maximum-throughput run (every request queued at the
    start) is set: ``given``, by the measurement (a throughput row without ``batch`` or
    ``concurrency`` is skipped); ``kv_capacity``, the engine admits a queued request only when
    its KV cache holds the request's whole prompt and output (``stack.admission``), up to
    ``max_batch``."""
    kv_cache_fraction: float = Field(0.9, gt=0, le=1)
    """Fraction of the HBM left by the weights and the runtime's working set (one step of
    ``max_tokens`` tokens) that the engine makes its KV cache."""
    kv_block_tokens: int = Field(0, ge=0, le=1 << 20)
    """Tokens a KV-cache block holds; a request holds whole blocks (0: no blocks)."""
    max_batch: Literal["trtllm_bench"] | Annotated[int, Field(ge=0)] = 0
    """The engine's maximum batch size (0: none), or ``trtllm_bench``: the one the TensorRT-LLM
    benchmark sets from the memory and the run's lengths (``admission.trtllm_bench_limits``),
    which also sets ``max_tokens``."""
    max_tokens: int = Field(8192, ge=1, le=1 << 24)
    """Tokens the engine runs in one step at most (its working set is held apart from the KV
    cache); ``max_batch: trtllm_bench`` sets its own."""


class AttentionKernel(_Spec):
    """The fused attention kernels a stack runs (FlashAttention-2 / -3, cuDNN)."""

    name: str = Field(min_length=1)
    """Kernel family, e.g. "FlashAttention-2", "cuDNN fused attention"."""
    efficiency: dict[str, Annotated[float, Field(gt=0, le=1)]] = {}
    """Chip name -> fraction of the modelled fused-attention rate these kernels reach on it
    (fitted on published kernel measurements, ``correlate.attention_fit``); chips not named
    keep 1. With ``backward_efficiency``, the forward kernels' fraction."""
    backward_efficiency: dict[str, Annotated[float, Field(gt=0, le=1)]] = {}
    """Chip name -> the fraction the backward kernels (dQ, dK, dV) reach, fitted apart on the
    backward rows; chips not named use ``efficiency``."""
    fused: bool = True
    """False: the engine runs attention as a score product, a softmax and a context product
    with the score matrix in HBM (no fused kernel), each KV head's keys and values read once for
    its group of query heads, as a graph compiler runs a grouped-query einsum (transformers-neuronx
    before 0.11, whose release notes add a "compiler optimized flash attention kernel"). Inference
    graphs built under the stack then use ``attention="unfused_grouped"``."""
    unfused_layout: Literal["grouped", "repeated"] = "grouped"
    """How an unfused attention (``fused: false``) lays out a grouped-query model's heads:
    ``grouped``, each KV head read once for its group (a graph compiler's einsum,
    ``attention="unfused_grouped"``); ``repeated``, K and V repeated to every query head before
    two batched products, as PyTorch eager code does (Hugging Face's ``eager_attention_forward``
    with ``repeat_kv``: ``attention="unfused"``)."""
    decode_per_query_head: bool = False
    """The decode (one-query) kernel runs one thread block per query head on the vector units,
    as TensorRT-LLM's masked multi-head attention did before its XQA kernel (v0.8): the query
    heads of a GQA / MQA group each load their shared K/V head through the core's load path,
    instead of one tile packing the group's queries against one load on the tensor engine."""


REDUCTION_KINDS = ("softmax", "layernorm", "rmsnorm")
"""Kernel kinds (measurement-schema names) that run at their kernel library's reduction rate."""


class KernelLibrary(_Spec):
    """The library whose vector kernels (softmax, norms, elementwise) a stack runs: how close its
    row-wise reductions come to the streaming rate a copy reaches on the same chip. One row per
    thread block with a cross-lane reduction streams less evenly than an elementwise kernel, and
    libraries differ in how well they hide it: PyTorch's native LayerNorm streams at about half
    of an A100's peak at every row length, Triton's fused kernels (torch.compile, Liger) at about
    four fifths (Liger-Kernel's A100 benchmark data). Files: ``stacks/kernels/NAME.yaml``."""

    name: str = Field(min_length=1)
    """Library name (the file name in ``stacks/kernels/``)."""
    description: str = ""
    """What the library is, in a sentence."""
    reduction_efficiency: float = Field(1.0, gt=0, le=1)
    """Fraction of the chip's achievable HBM rate (``hbm_efficiency``: what a copy reaches) that
    this library's row-wise reduction kernels (softmax, LayerNorm, RMSNorm, a row mean) reach."""
    unvectorized_elements_per_cycle: float | None = Field(None, gt=0)
    """Elements per core (SM) per vector-engine cycle that this library's unvectorized
    elementwise loop processes (``Elementwise.unvectorized``: a broadcast or non-contiguous
    operand, or a widening cast). ATen runs such a kernel through an offset-computing loop
    (``elementwise_kernel`` / ``unrolled_elementwise_kernel``) whose index arithmetic and
    scalar loads, not the memory, bound it: a fixed element rate whatever the element size or
    the operand count. None: the library has no such loop (generated kernels vectorize
    strided loads), so those kernels stream at the copy rate."""
    sources: dict[str, str] = {}
    """Citation of every numeric field, keyed by its name."""


class Stack(_Spec):
    """A software stack: runtime plus collective library, and optionally the training framework
    or serving engine that runs on them."""

    name: str = Field(min_length=1)
    """Stack name (the file name in ``stacks/``)."""
    description: str = ""
    """What the stack is, in a sentence."""
    runtime: Runtime
    """Kernel issue costs."""
    collectives: CollectiveLibrary
    """Collective library costs."""
    training: TrainingFramework | None = None
    """The training framework's defaults (None: a plain runtime)."""
    serving: ServingEngine | None = None
    """The serving engine's per-step costs (None: a plain runtime)."""
    attention: AttentionKernel | None = None
    """The fused attention kernels it runs (None: the modelled rate as it is)."""
    kernels: str | None = Field(None, min_length=1)
    """The kernel library its vector kernels come from (a ``stacks/kernels/`` name: ``aten`` for
    PyTorch eager, ``triton`` for torch.compile); None: reductions stream at the copy rate."""
    sources: dict[str, str] = {}
    """Citation of every numeric field, keyed by its dotted path."""


__all__ = ["AttentionKernel", "KernelLibrary", "REDUCTION_KINDS", "Protocol", "CollectiveLibrary", "Runtime", "ServingEngine", "Stack", "TrainingFramework"]
