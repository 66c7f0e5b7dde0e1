"""ParallelPlan: how a training step is spread over chips (Megatron-LM style 4-D/5-D
parallelism plus ZeRO), its validation against a model and a batch, the pipeline-stage layer
split, and the parameters each chip holds.

Conventions (the ones Megatron-LM / Megatron-Core use unless said otherwise):

- **Chips** = ``tp_chips * pp * dp * cp``. Ranks are laid out tp fastest, then cp, dp and pp
  (Megatron's default ``tp-cp-ep-dp-pp`` order), so a TP group sits on neighbouring chips.
- **tp counted in cores** (AWS Neuron's ``tp_degree`` counts NeuronCores): with
  ``cores_per_chip = c`` a TP group of ``tp`` cores spans ``tp_chips = ceil(tp / c)`` chips and
  every graph is one *chip's* share, sharded ``tp_chips`` ways (the ``c`` cores of a chip work
  on the chip's shard together, and TP traffic between cores of one chip is free). A group
  smaller than a chip (``tp < c``) is modelled on a whole chip: packing several data-parallel
  replicas into one chip is not modelled. ``cores_per_chip = 1`` (the default) counts chips.
- **Sequence parallelism** (``sp``, Korthikanti et al. 2022): the TP all-reduce after each
  row-parallel GEMM becomes a reduce-scatter along the sequence, the one before each
  column-parallel GEMM an all-gather, and norms and residual adds run on ``tokens / tp``
  tokens. (Dropout is not modelled: the shipped models train without it.)
- **Context parallelism** (``cp``): each CP rank holds ``seq_len / cp`` tokens of every sequence
  (load-balanced: ``2 * cp`` chunks, rank ``i`` takes chunks ``i`` and ``2cp - 1 - i``, so
  every rank does ``1/cp`` of the causal attention work) and all-gathers K/V (ring attention
  moves the same bytes); ``seq_len`` must be a multiple of ``2 * cp``. Weights are replicated
  over CP ranks, and gradients are reduced (and ZeRO-sharded) over the ``dp * cp`` ranks.
- **Expert parallelism** (``ep``, Megatron-Core's "MoE parallel folding"): the ``ep`` ranks of
  an expert group are drawn from the ``tp_chips * dp`` ranks of a stage, so ``ep`` must divide
  ``tp_chips * dp`` and ``num_experts``. With ``ep > 1`` each rank holds ``num_experts / ep``
  *whole* routed experts (expert tensor parallelism 1, the DeepSeek-V3 / Mixtral recipe),
  tokens reach them by an all-to-all (dispatch) and come back by another (combine), and expert
  gradients are reduced (and ZeRO-sharded) over the ``tp_chips * dp * cp / ep`` ranks holding
  the same experts. With ``ep = 1`` the experts are split by ``tp`` like a dense MLP (no
  all-to-all). ``ep > 1`` with ``tp_chips > 1`` needs ``sp`` (as Megatron-Core requires):
  each TP rank dispatches its own ``tokens / tp`` tokens. Shared experts, the router and the
  attention are never expert-parallel.
- **MoE load**: with ``moe_capacity_factor = c`` every expert's buffer is padded to
  ``c * tokens * top_k / num_experts`` slots (GShard / Switch style; tokens beyond it are
  dropped), so expert GEMMs and all-to-all buffers are ``c`` times the mean load. Without a
  capacity (dropless, Megatron-Core's default) the step waits for the most loaded expert-parallel
  rank, which receives ``moe_load_imbalance`` times the mean load; the per-chip graphs describe
  that rank. Imbalance does not matter with ``ep = 1`` (every chip holds all experts).
- **Pipeline stages**: ``pp`` need not divide the layers. The ``num_hidden_layers % pp`` extra
  layers go one each to the *first* stages, keeping the last stage (which also runs the LM head
  and the loss) light; ``layers_per_stage`` sets the split explicitly.
- **ZeRO** (Rajbhandari et al. 2020): 1 shards the optimizer states, 2 also the gradients,
  3 (FSDP) also the weights, over the data-parallel ranks (``dp * cp``, or the expert
  data-parallel group for routed experts).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from pydantic_core import PydanticCustomError

from ..configio import StrictModel, validation_problems, whole_number
from ..errors import WorkloadError
from .model import ModelConfig


Selective = Literal["attention", "op", "qkv_proj", "context_offload"]
"""What selective recomputation keeps (``ParallelPlan.selective``)."""
RecomputeScope = Literal["layer", "needed"]
"""What a recomputed layer reruns (``ParallelPlan.recompute_scope``)."""
WHOLE_LAYER_POLICIES = ("qkv_proj", "context_offload")
"""Selective flavours that recompute each layer from its input (MaxText's named policies)."""


class ParallelPlan(StrictModel):
    """How one training step is parallelised. Immutable; invalid values raise WorkloadError.

    Model-independent checks run when the plan is made; ``check(model, global_batch,
    seq_len)`` checks it against a model and a batch (``build_train`` and ``train_memory``
    call it)."""

    model_config = ConfigDict(frozen=True, extra="forbid",
                              validate_default=True)

    tp: int = Field(1, ge=1)
    """Tensor-parallel degree (Megatron column/row-parallel GEMMs), counted in chips, or in
    cores when ``cores_per_chip > 1``."""
    pp: int = Field(1, ge=1)
    """Pipeline-parallel stages."""
    dp: int = Field(1, ge=1)
    """Data-parallel replicas."""
    ep: int = Field(1, ge=1)
    """Expert-parallel degree for MoE layers, carved out of the ``tp_chips * dp`` ranks of a
    stage (it adds no chips)."""
    cp: int = Field(1, ge=1)
    """Context-parallel degree: each rank holds ``seq_len / cp`` tokens of every sequence."""
    cp_attention: Literal["fused", "ring_sdpa", "te_p2p"] = "fused"
    """How context-parallel attention runs (``cp > 1``): ``fused``, one attention kernel over the
    gathered keys and values of the KV heads, the gradients of K / V reduce-scattered back;
    ``ring_sdpa``, PyTorch's ring attention (``torch.distributed.tensor.experimental.
    context_parallel``, which torchtitan applies): the K / V of the query heads gathered, one SDPA
    call per ring step merged in fp32, the backward's K / V gradients passed around the ring in
    fp32 (``workload/cp_ring.py``); ``te_p2p``, Transformer Engine's ring
    (``AttnFuncWithCPAndKVP2P``, which Megatron-LM / NeMo run): the KV heads' K / V passed from
    rank to rank beside each step's attention call, the partial outputs merged by a fused
    correction and the gradients accumulated in the activation dtype."""
    sp: bool = False
    """Megatron sequence parallelism: TP all-reduces become reduce-scatter + all-gather and
    norms / residual adds are split over the TP ranks (no effect with ``tp_chips == 1``)."""
    tp_comm_overlap: bool = False
    """Tensor-parallel communication overlapped with the GEMMs beside it (Transformer Engine's
    userbuffers, NeMo's ``ub_tp_comm_overlap``): with ``sp``, each all-gather runs beside the
    GEMM that consumes it and each reduce-scatter beside the GEMM that produces it, chunk by
    chunk, so only what outlasts that GEMM is on the path (``workload.tp_overlap``)."""
    microbatch: int = Field(1, ge=1)
    """Sequences per microbatch (per data-parallel replica)."""
    zero: Literal[0, 1, 2, 3] = 0
    """ZeRO stage: 0 none, 1 optimizer states sharded, 2 + gradients, 3 (FSDP) + weights."""
    zero3_copies: bool = False
    """ZeRO-3 as FSDP2 runs it (per-parameter sharding): each weight gather lands in one flat
    buffer that is then copied into the layer's parameter tensors on the compute stream, before
    the layer can run (``foreach_all_gather_copy_out``: the unsharded weights read and written
    once more). False: the gathered buffer is the parameters (FSDP1's flat parameters, DeepSpeed
    ZeRO-3). (FSDP2's copy of the gradients into the reduce-scatter's input runs on the
    reduce-scatter's own stream, beside the compute, and is not modelled.)"""
    zero3_pipeline: Literal["step", "microbatch"] = "step"
    """How ZeRO-3 / FSDP runs under pipeline parallelism (``pp > 1``): ``step``, a stage gathers
    its weights once and keeps them through every microbatch, accumulates its gradients unsharded
    and reduce-scatters them once, during the last backward (PyTorch's pipeline schedules turn the
    gradient sync off for all but a stage's last backward, ``PipelineStage.backward_maybe_with_nosync``,
    and torchtitan keeps the gathered weights under pipelining, ``reshard_after_forward`` False by
    its default policy): the collectives of ZeRO-1 / 2's step, the memory of unsharded weights and
    gradients; ``microbatch``, gathered and reduce-scattered in every microbatch's passes, as
    without pipelining."""
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation: selective recomputes the attention core in the backward pass
    (Korthikanti et al. 2022); full recomputes each layer's forward from its input."""
    selective: Selective = "attention"
    """What ``recompute="selective"`` keeps: ``attention``, everything but the attention core
    (Megatron-LM); ``op``, PyTorch's op-level selective checkpointing as torchtitan runs it: of
    each layer, only its input, the attention output and every other matmul output (q, v, the
    MLP gate and down projections) are kept, the rest is recomputed before the backward;
    ``qkv_proj``, MaxText's ``remat_policy=save_qkv_proj``: the layer input and the q / k / v
    projections are kept, the rest is recomputed; ``context_offload``, MaxText's
    ``remat_policy=custom`` with ``context=offload``: the layer input is kept on the chip and the
    attention output (the context) in host memory, the rest is recomputed. Recomputation then
    covers what the backward consumes (``recompute_scope``)."""
    recompute_scope: RecomputeScope = "layer"
    """What a recomputed layer reruns: ``layer``, its whole checkpointed forward (PyTorch
    activation checkpointing reruns the checkpointed function: Megatron-LM, torchtitan, NxD);
    ``needed``, only the ops whose outputs the backward consumes (JAX rematerialization: the MLP
    down projection, whose output only feeds the residual add, is not rerun)."""
    loss_grad_bytes_per_logit: float = Field(0.0, ge=0)
    """Bytes per logit (of one microbatch, per chip) that the loss's backward holds beside the
    kept fp32 softmax: 8 when the cross-entropy runs on an fp32 copy of the logits in eager
    PyTorch (the gradient of the log-softmax output and of its input), 0 when the gradient is
    computed in place (Megatron-LM's vocab-parallel cross-entropy)."""
    loss: Literal["fused", "eager_fp32"] = "fused"
    """How the cross-entropy loss runs: ``fused``, one softmax pass forward and one gradient
    pass backward in the training dtype (Megatron-LM's vocab-parallel cross-entropy, fused
    kernels); ``eager_fp32``, PyTorch eager ``cross_entropy(logits.float())``: the widening copy,
    log-softmax in fp32, the zero-filled gradient of nll_loss, the log-softmax backward in fp32
    and the narrowing copy of the gradient, each a kernel over every logit (14 bytes a logit
    forward, 22 backward, against 4 and 6)."""
    rmsnorm: Literal["fused", "eager"] = "fused"
    """How RMSNorm runs: ``fused``, one kernel per pass (Transformer Engine, Apex, torch.compile,
    XLA); ``eager``, the separate PyTorch ops of a module written op by op (upcast, square, mean,
    add eps, rsqrt, scale, downcast, weight: ``eager.composite_rmsnorm``), forward, recompute and
    once more in the backward (torchtitan without torch.compile)."""
    master_casts: Literal["fused", "separate"] = "fused"
    """How a mixed-precision step reaches its fp32 master weights: ``fused``, the optimizer
    kernel reads the low-precision gradients and writes the model's copy of each weight itself
    (Megatron-LM's distributed optimizer, Apex's fused Adam); ``separate``, the training loop
    casts every gradient to an fp32 master gradient before the optimizer step (a widening copy,
    ATen's unvectorized loop) and copies the updated master weights back into the model after
    it, as a hand-written loop around ``torch.optim.AdamW`` on fp32 copies does
    (``accelsim.bench.model.train_step``). The fp32 gradients then replace the low-precision
    ones after the backward."""
    vocab_multiple: int = Field(1, ge=1)
    """The vocabulary is padded to a multiple of this times ``tp`` (Megatron-LM's
    ``--make-vocab-size-divisible-by``, 128 by default), so every rank's share of the embedding
    and the LM head is a multiple of it (and its GEMMs aligned); 1: as the model states it."""
    vocab_tiles: int = Field(1, ge=1)
    """The loss runs over this many tiles of the last stage's tokens (MaxText's
    ``num_vocab_tiling``): each tile's logits, loss and gradients are computed in turn and its
    logits computed again in the backward, so no logits are kept between the passes and the peak
    holds one tile's (fp32, with its gradient). 1: the whole microbatch's logits at once."""
    schedule: Literal["1f1b", "gpipe"] = "1f1b"
    """Pipeline schedule: 1F1B (PipeDream-Flush) or GPipe (all forwards, then all backwards)."""
    vpp: int = Field(1, ge=1)
    """Model chunks per pipeline stage (virtual pipeline stages): > 1 runs the interleaved 1F1B
    schedule (Megatron-LM), whose bubble is (pp - 1) / vpp passes instead of pp - 1; it needs
    the microbatches to be a multiple of ``pp``."""
    cores_per_chip: int = Field(1, ge=1)
    """Cores per chip when ``tp`` counts cores (AWS Neuron): the TP group spans
    ``ceil(tp / cores_per_chip)`` chips. 1: ``tp`` counts chips."""
    layers_per_stage: tuple[int, ...] = ()
    """Explicit layers of each pipeline stage (``pp`` entries, each >= 1, summing to the model's
    layers); empty: as even as possible, the remainder on the first stages."""
    moe_capacity_factor: float | None = Field(None, gt=0)
    """Expert capacity factor: expert buffers padded to this multiple of the mean load (tokens
    beyond it dropped). None: dropless routing, loads set by ``moe_load_imbalance``."""
    moe_load_imbalance: float = Field(1.0, ge=1.0)
    """Dropless routing: load of the busiest expert-parallel rank over the mean (1: uniform)."""
    grad_dtype: Literal["bf16", "fp16", "fp32"] | None = None
    """Dtype of gradients (weight-gradient GEMM outputs, accumulation buffers and the
    data-parallel reduction). None: the training dtype (the ZeRO paper's 2 bytes per parameter
    under mixed precision); fp32 is Megatron's ``accumulate_allreduce_grads_in_fp32``."""
    reduce_dtype: Literal["bf16", "fp16", "fp32"] | None = None
    """Dtype the data-parallel gradient reduction runs in (the all-reduce, or the ZeRO / FSDP
    reduce-scatter): gradients are cast to it in the collective's copy into its send buffer, as
    FSDP2's ``MixedPrecisionPolicy(reduce_dtype=...)`` does (torchtitan reduces in fp32 with bf16
    parameters). None: the gradient dtype (``grad_dtype``)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            problems = [p.removeprefix("(top level): ") for p in validation_problems(e)]
            raise WorkloadError("invalid parallel plan: " + "; ".join(problems)) from None

    @model_validator(mode="after")
    def _cross_checks(self) -> "ParallelPlan":
        if self.cores_per_chip > 1 and self.tp > self.cores_per_chip and self.tp % self.cores_per_chip:
            raise PydanticCustomError(
                "plan", "tp={tp} cores does not fill whole chips of {c} cores; use a multiple of {c}",
                {"tp": self.tp, "c": self.cores_per_chip})
        from ..limits import max_chips

        if self.chips > max_chips():
            raise PydanticCustomError(
                "plan", "{n} chips (tp x pp x dp x cp) is more than the {m} accelsim simulates without being asked; "
                "raise the limit with `accelsim --max-chips {n} ...` (or ACCELSIM_MAX_CHIPS)",
                {"n": self.chips, "m": max_chips()})
        group = self.tp_chips * self.dp
        if group % self.ep:
            raise PydanticCustomError(
                "plan", "ep={ep} must divide tp_chips*dp = {t}*{dp} = {g}: the expert-parallel ranks are "
                "drawn from the tensor- and data-parallel ranks of a stage",
                {"ep": self.ep, "t": self.tp_chips, "dp": self.dp, "g": group})
        if self.ep > 1 and self.tp_chips > 1 and not self.sp:
            raise PydanticCustomError(
                "plan", "ep={ep} with tp={tp} needs sequence parallelism (sp=True), as in Megatron-Core",
                {"ep": self.ep, "tp": self.tp})
        if self.vpp > 1 and self.pp == 1:
            raise PydanticCustomError("plan", "vpp={vpp} needs pp > 1: model chunks interleave across pipeline "
                                      "stages", {"vpp": self.vpp})
        if self.layers_per_stage:
            if len(self.layers_per_stage) != self.pp:
                raise PydanticCustomError(
                    "plan", "layers_per_stage has {n} entries but pp={pp}",
                    {"n": len(self.layers_per_stage), "pp": self.pp})
            if min(self.layers_per_stage) < 1:
                raise PydanticCustomError("plan", "every pipeline stage needs at least one layer", {})
        return self

    # --- derived sizes ---------------------------------------------------------------------
    @property
    def tp_chips(self) -> int:
        """Chips of one tensor-parallel group: ``ceil(tp / cores_per_chip)``; the degree the
        per-chip graphs are sharded by and the size of their TP collectives."""
        return -(-self.tp // self.cores_per_chip)

    @property
    def tp_overlapped(self) -> bool:
        """The TP collectives run beside their GEMMs: ``tp_comm_overlap`` with sequence
        parallelism over more than one chip (otherwise there is nothing to overlap)."""
        return self.tp_comm_overlap and self.sp and self.tp_chips > 1

    @property
    def chips(self) -> int:
        """Chips of the whole job: ``tp_chips * pp * dp * cp``."""
        return self.tp_chips * self.pp * self.dp * self.cp

    @property
    def chips_per_stage(self) -> int:
        """Chips running one pipeline stage: ``tp_chips * dp * cp``."""
        return self.tp_chips * self.dp * self.cp

    @property
    def dp_group(self) -> int:
        """Ranks that hold the same dense weights and reduce their gradients: ``dp * cp``."""
        return self.dp * self.cp

    @property
    def expert_dp_group(self) -> int:
        """Ranks that hold the same routed experts: ``tp_chips * dp * cp / ep`` with ``ep > 1``,
        ``dp * cp`` with ``ep == 1`` (experts split by tp like a dense MLP)."""
        if self.ep == 1:
            return self.dp_group
        return self.tp_chips * self.dp * self.cp // self.ep

    def grad_accumulation(self, global_batch: int) -> int:
        """Microbatches per replica per step (gradient accumulation steps):
        ``global_batch / (dp * microbatch)``."""
        return global_batch // (self.dp * self.microbatch)

    def stage_layers(self, num_layers: int) -> tuple[range, ...]:
        """Layer indices of each pipeline stage (see the module docstring for the split)."""
        if self.layers_per_stage:
            sizes = list(self.layers_per_stage)
        else:
            base, extra = divmod(num_layers, self.pp)
            sizes = [base + (1 if s < extra else 0) for s in range(self.pp)]
        out, start = [], 0
        for n in sizes:
            out.append(range(start, start + n))
            start += n
        return tuple(out)

    @property
    def recomputes_layers(self) -> bool:
        """Each layer is recomputed from its input before its backward: full recompute, or one of
        MaxText's policies (``WHOLE_LAYER_POLICIES``), which leave out only what they keep."""
        return self.recompute == "full" or (self.recompute == "selective" and
                                            self.selective in WHOLE_LAYER_POLICIES)

    def describe(self) -> str:
        """A short label, e.g. ``tp=8 pp=2 dp=4 sp zero=1 (64 chips)``."""
        parts = [f"tp={self.tp}" + (f" ({self.tp_chips} chips)" if self.cores_per_chip > 1 else ""),
                 f"pp={self.pp}", f"dp={self.dp}"]
        parts += [f"{k}={getattr(self, k)}" for k in ("cp", "ep") if getattr(self, k) > 1]
        parts += ["sp"] if self.sp else []
        parts += [f"zero={self.zero}", f"mb={self.microbatch}"]
        parts += [f"recompute={self.recompute}"] if self.recompute != "none" else []
        return " ".join(parts) + f" ({self.chips} chips)"

    # --- validation against a model and a batch ---------------------------------------------
    def check(self, model: ModelConfig, global_batch: int, seq_len: int) -> None:
        """Raise WorkloadError when the plan cannot run ``model`` on ``global_batch`` sequences
        of ``seq_len`` tokens; the message says what to change."""
        m = model
        name = m.name
        global_batch = whole_number("global_batch", global_batch)
        seq_len = whole_number("seq_len", seq_len)
        if m.family != "decoder":
            raise WorkloadError(f"training is modelled for decoder LMs; {name!r} is a {m.family} model")
        from .build import check_heads

        t = self.tp_chips
        for deg, what in ((self.tp, "tp"), (t, "tp_chips")):
            check_heads(m, deg, what)
        widths = [("intermediate_size", m.intermediate_size)]
        if m.is_moe:
            if self.ep == 1:
                widths.append(("moe_intermediate_size", m.moe_intermediate_size))
            elif m.num_shared_experts:
                widths.append(("moe_intermediate_size (shared experts)", m.moe_intermediate_size))
        for field, w in widths:
            if w % t:
                raise WorkloadError(f"tp={t} does not divide {field}={w} of {name!r}")
        L = m.num_hidden_layers
        if self.layers_per_stage:
            if sum(self.layers_per_stage) != L:
                raise WorkloadError(f"layers_per_stage {list(self.layers_per_stage)} sums to "
                                    f"{sum(self.layers_per_stage)}, but {name!r} has {L} layers")
        elif self.pp > L:
            raise WorkloadError(f"pp={self.pp} exceeds the {L} layers of {name!r}; every stage needs a layer")
        fewest = min(len(r) for r in self.stage_layers(L))
        if self.vpp > fewest:
            raise WorkloadError(f"vpp={self.vpp} model chunks per stage, but a stage of {name!r} has {fewest} layers; "
                                f"every chunk needs a layer (vpp <= {fewest})")
        per = self.dp * self.microbatch
        if global_batch % per:
            lo, hi = (global_batch // per) * per, (global_batch // per + 1) * per
            near = " or ".join(str(x) for x in (lo, hi) if x > 0)
            raise WorkloadError(f"global batch {global_batch} is not divisible by dp*microbatch = "
                                f"{self.dp}*{self.microbatch} = {per}; use a multiple of {per} (e.g. {near})")
        if self.ep > 1:
            if not m.is_moe:
                raise WorkloadError(f"ep={self.ep} needs a mixture-of-experts model; {name!r} is dense")
            if m.num_experts % self.ep:
                ok = [x for x in range(1, m.num_experts + 1) if m.num_experts % x == 0]
                raise WorkloadError(f"ep={self.ep} does not divide num_experts={m.num_experts} of {name!r}; "
                                    f"valid ep: {ok}")
        if self.cp > 1 and seq_len % (2 * self.cp):
            raise WorkloadError(f"cp={self.cp} needs seq_len divisible by 2*cp = {2 * self.cp} (load-balanced "
                                f"causal chunks); seq_len={seq_len}")
        if self.sp and t > 1 and (self.microbatch * seq_len // self.cp) % t:
            raise WorkloadError(f"sequence parallelism splits the {self.microbatch * seq_len // self.cp} tokens "
                                f"of a microbatch over tp={t} chips; they do not divide evenly")
        if m.position_embedding == "learned" and seq_len > m.max_position_embeddings:
            raise WorkloadError(f"seq_len={seq_len} exceeds max_position_embeddings="
                                f"{m.max_position_embeddings} of {name!r} (learned positions)")


# --- parameters each chip holds ------------------------------------------------------------

def layer_params(m: ModelConfig, layer: int, plan: ParallelPlan) -> tuple[int, int]:
    """(dense, routed-expert) parameters of one transformer layer held by ONE chip, before
    ZeRO sharding. Dense: attention (split by tp; KV heads replicated when fewer than tp),
    norms (replicated), the dense MLP or shared experts (split by tp), the router (replicated).
    Routed experts: ``E * width / tp`` with ``ep == 1``, ``E / ep`` whole experts otherwise.
    Agrees with ``ModelConfig.param_breakdown(tp)`` when ``pp == ep == 1``."""
    t = plan.tp_chips
    d = m.hidden_size
    g = 3 if m.gated_mlp else 2
    dense = m.attention_params(t) + 2 * m._norm_params()
    expert = 0
    if m.is_moe_layer(layer):
        fm = m.moe_intermediate_size
        dense += d * m.num_experts + m.num_shared_experts * g * d * (fm // t)
        if plan.ep == 1:
            expert = m.num_experts * g * d * (fm // t)
        else:
            expert = (m.num_experts // plan.ep) * g * d * fm
    else:
        f = m.intermediate_size // t
        dense += g * d * f + (((g - 1) * f + d) if m.mlp_bias else 0)
    return dense, expert


def embedding_params(m: ModelConfig, plan: ParallelPlan) -> int:
    """Parameters of the input embedding held by one chip of the first stage: the
    vocabulary-parallel token table (``ceil(vocab / tp)`` rows) and a learned position table."""
    d = m.hidden_size
    return -(-m.vocab_size // plan.tp_chips) * d + (m.max_position_embeddings * d
                                                     if m.position_embedding == "learned" else 0)


def head_params(m: ModelConfig, plan: ParallelPlan) -> int:
    """Parameters of the head held by one chip of the last stage: the final norm and the
    vocabulary-parallel LM head (with tied embeddings and ``pp > 1`` the last stage keeps its
    own copy of the token table, as Megatron does; with ``pp == 1`` it is the embedding's)."""
    n = m._norm_params()
    if not m.tied_embeddings or plan.pp > 1:
        n += -(-m.vocab_size // plan.tp_chips) * m.hidden_size
    return n


def global_params(m: ModelConfig, plan: ParallelPlan, stage: int) -> int:
    """Parameters outside the layer stack held by one chip of ``stage``: the embedding on the
    first stage, the head on the last."""
    return ((embedding_params(m, plan) if stage == 0 else 0)
            + (head_params(m, plan) if stage == plan.pp - 1 else 0))


def stage_params(m: ModelConfig, plan: ParallelPlan, stage: int) -> tuple[int, int]:
    """(dense, routed-expert) parameters held by one chip of pipeline ``stage`` (before ZeRO)."""
    dense = global_params(m, plan, stage)
    expert = 0
    for li in plan.stage_layers(m.num_hidden_layers)[stage]:
        a, b = layer_params(m, li, plan)
        dense += a
        expert += b
    return dense, expert


__all__ = ["ParallelPlan", "layer_params", "embedding_params", "head_params", "global_params", "stage_params"]
