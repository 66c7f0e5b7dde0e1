"""Training step: per pipeline stage, the forward and backward op graphs of ONE microbatch on ONE
chip, the optimizer step, the data-parallel gradient collectives and the pipeline traffic
(``build_train`` -> ``TrainStep``). Parallelism conventions are in ``parallel.py``.

How one stage's forward and backward graphs are built is described in ``train_graph.py``.

ZeRO: 2 and 3 reduce-scatter each layer's gradients (``dp.reducescatter``) at the end of its
backward, every microbatch (DeepSpeed's behaviour; the gradients stay sharded); 3 also
all-gathers each layer's weights (``dp.allgather``) before its forward and again before its
backward, and does the same for the embedding and the LM head. ``grad_sync[s]`` holds what is
left for after the last microbatch: ZeRO-0 an all-reduce of the gradients, ZeRO-1 a
reduce-scatter plus an all-gather of the updated weights, ZeRO-2 the all-gather, ZeRO-3
nothing; plus, with tied embeddings and ``pp > 1``, the all-reduce of the embedding gradient
between the first and last stages. Dense gradients use the ``dp * cp`` group, routed experts
(``ep > 1``) their expert data-parallel group.

Op naming: ``L{layer}.{pass}.{op}`` inside layers, ``{pass}.{op}`` outside (embedding, head),
``opt.adamw``. Roles are ``{pass}.{op}`` for compute, with pass one of ``fwd``, ``bwd``,
``recompute``, ``opt`` (e.g. ``fwd.qkv_proj``, ``bwd.mlp_up_dgrad``, ``bwd.mlp_up_wgrad``,
``recompute.attn``, ``opt.adamw``; the op names of ``build.LAYER_ROLES`` after the dot), and
``{group}.{collective}`` for communication, with group one of ``tp``, ``cp``, ``ep``, ``dp``
(also the expert data-parallel group), ``pp`` (e.g. ``tp.allreduce``, ``tp.reducescatter``,
``cp.allgather``, ``ep.alltoall``, ``dp.reducescatter``, ``dp.allgather``, ``dp.allreduce``,
``pp.allreduce``). The point-to-point activation send between stages is not an op: its size
is ``TrainStep.p2p_bytes`` (role ``pp.send`` by convention for whoever schedules it).
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import WorkloadGraph, WorkloadMeta
from .memory import MemoryBreakdown, activation_bytes_per_layer, in_flight, train_memory
from .loaders import load_model
from .model import ModelConfig, dtype_bytes
from .ops import (Collective)
from .parallel import ParallelPlan, stage_params
from .train_graph import StageGraphs
from ..configio import suggest
from ..errors import WorkloadError

ATTENTION = ("flash", "unfused")
PASSES = ("fwd", "bwd", "recompute", "opt")
"""Compute role prefixes."""
GROUPS = ("tp", "cp", "ep", "dp", "pp")
"""Collective role prefixes (the parallel group the collective runs over)."""


@dataclass
class TrainStep:
    """One training step of ``global_batch`` sequences of ``seq_len`` tokens under ``plan``.

    Graphs are ONE chip's share of ONE microbatch (``plan.microbatch`` sequences, the chip's
    ``seq_len / cp`` tokens of each); every chip of a stage (``plan.chips_per_stage`` of them)
    runs the same graphs, and each stage runs ``microbatches`` forwards and backwards per step.
    A graph's ``meta.tp`` is ``plan.tp_chips``."""

    model: ModelConfig
    plan: ParallelPlan
    global_batch: int
    seq_len: int
    dtype: str
    """The run's compute dtype (an fp8 run of scope "gemm" keeps activations and weights in bf16)."""
    attention: str
    stage_layers: tuple[range, ...]
    """Layer indices of each stage."""
    fwd: list[WorkloadGraph]
    """``fwd[s]``: forward of stage ``s`` for one microbatch (embedding on stage 0; LM head and
    loss on the last; ZeRO-3 weight all-gathers included)."""
    bwd: list[WorkloadGraph]
    """``bwd[s]``: backward of stage ``s`` for one microbatch (recomputation, TP/CP/EP
    collectives and ZeRO-2/3 per-layer gradient reduce-scatters included)."""
    optimizer: list[WorkloadGraph]
    """``optimizer[s]``: the AdamW step of one chip of stage ``s``, once per step."""
    grad_sync: list[list[Collective]]
    """``grad_sync[s]``: data-parallel collectives of stage ``s`` after its last backward and
    before the optimizer (the ZeRO-1 weight all-gather logically follows the optimizer)."""
    p2p_bytes: float
    """Bytes one chip sends to the next stage per microbatch (activations forward; the same
    for their gradients backward): ``microbatch * seq_len / cp / (tp if sp) * hidden * B``
    (each chip of a stage sends its own; 0 when ``pp == 1``)."""
    microbatches: int
    """Microbatches per stage per step: ``global_batch / (dp * microbatch)``."""
    tokens: int
    """Tokens per step: ``global_batch * seq_len``."""
    model_flops: float
    """Model FLOPs per step for MFU (whole job): ``6 * N * tokens + 6 * layers * q_width *
    seq_len * tokens``, where N counts active parameters (MoE: top-k routed experts) without
    the input embedding (plus the LM head when tied), and the attention term is PaLM's
    ``12 * layers * q_width * seq_len`` per token halved for causal masking."""
    params: int
    active_params: int
    """Parameters a token passes through (MoE: shared plus top-k routed experts)."""
    fp8_scope: str = "all"
    """What an fp8 step runs in fp8: every op ("all") or the linear layers' GEMMs ("gemm")."""

    @property
    def stages(self) -> int:
        return self.plan.pp

    @property
    def chips(self) -> int:
        return self.plan.chips

    def stage_flops(self, stage: int) -> float:
        """Forward + backward FLOPs of one microbatch on one chip of ``stage``."""
        return self.fwd[stage].flops() + self.bwd[stage].flops()

    def hardware_flops(self) -> float:
        """FLOPs all chips execute in the step, recomputation included."""
        return sum(self.plan.chips_per_stage * self.microbatches * self.stage_flops(s) for s in range(self.stages))

    def memory(self) -> MemoryBreakdown:
        """Memory per chip (the stage that needs the most); see ``memory.train_memory``."""
        dt = "bf16" if self.dtype == "fp8" and self.fp8_scope == "gemm" else self.dtype
        return train_memory(self.model, self.global_batch, self.seq_len, self.plan, dt, self.attention)


def active_params(m: ModelConfig) -> int:
    """Parameters used per token: all of them minus the routed experts a token skips."""
    if not m.is_moe:
        return m.params()
    g = 3 if m.gated_mlp else 2
    n_moe = m.num_hidden_layers - m.first_dense_layers
    skipped = n_moe * (m.num_experts - m.num_experts_per_tok) * g * m.hidden_size * m.moe_intermediate_size
    return m.params() - skipped


def model_flops(m: ModelConfig, tokens: int, seq_len: int) -> float:
    """See ``TrainStep.model_flops``."""
    b = m.param_breakdown(1)
    n = active_params(m) - b.get("embedding", 0) - b.get("position_embedding", 0)
    if m.tied_embeddings:
        n += b.get("embedding", 0)  # the LM head GEMM still runs
    attn = 12.0 * m.num_hidden_layers * m.q_width * seq_len / 2.0
    return (6.0 * n + attn) * tokens


def build_train(model: ModelConfig | str, global_batch: int, seq_len: int, plan: ParallelPlan | None = None,
                dtype: str = "bf16", attention: str = "flash", compression=None, fp8_scope: str = "all",
                fp8_transposes: bool = False) -> TrainStep:
    """The training step of ``model`` on ``global_batch`` sequences of ``seq_len`` tokens under
    ``plan`` (default: one chip). Raises WorkloadError for an invalid plan, batch or dtype.
    ``fp8_scope`` ("all" or "gemm") says what an fp8 step runs in fp8: every op, or only the
    linear layers' GEMMs (with a cast of each activation operand; activations, weights and the
    rest in bf16, as FP8 training recipes run); ``fp8_transposes``: each cast writes the operand in
    both layouts, as a chip whose FP8 GEMMs take one layout only needs
    (``TensorEngine.fp8_tn_only``).
    ``compression`` (see ``compress.recipes``) prunes the model and sets the GEMM formats of
    the forward and backward graphs (e.g. FP8 training: weights and activations fp8)."""
    from ..compress.recipes import as_compression
    from .compress_graph import apply_compression
    from .tp_overlap import overlap_tp

    comp = as_compression(compression)
    m = load_model(model)
    if comp is not None and not comp.is_identity:
        m = comp.apply_model(m)
    plan = plan or ParallelPlan()
    if attention not in ATTENTION:
        raise WorkloadError(f"unknown attention {attention!r}.{suggest(str(attention), ATTENTION)}"
                            f" Known: {', '.join(ATTENTION)}")
    dtype_bytes(dtype)
    if fp8_scope not in ("all", "gemm"):
        raise WorkloadError(f"fp8_scope must be 'all' or 'gemm', got {fp8_scope!r}")
    plan.check(m, global_batch, seq_len)
    c = StageGraphs(m, plan, seq_len, dtype, attention, fp8_scope, fp8_transposes)
    layers = plan.stage_layers(m.num_hidden_layers)
    mb = plan.grad_accumulation(global_batch)
    fwd, bwd, opt, sync = [], [], [], []
    for s in range(plan.pp):
        act = activation_bytes_per_layer(m, seq_len, plan, c.dt, attention) * len(layers[s]) \
            * in_flight(plan, s, mb)
        dense, expert = stage_params(m, plan, s)
        w = dtype_bytes(c.dt) * ((dense / plan.dp_group + expert / plan.expert_dp_group) if plan.zero == 3
                                  else dense + expert)
        meta = dict(model=m.name, batch=plan.microbatch, seq_len=seq_len, tp=plan.tp_chips, dtype=dtype,
                    tokens=c.T, params=m.params(), weight_bytes_per_chip=w, activation_bytes_per_chip=act,
                    attention=attention)
        f_g = c.stage_fwd(s, layers[s]).graph(WorkloadMeta(phase="train.fwd", **meta))
        b_g = c.stage_bwd(s, layers[s]).graph(WorkloadMeta(phase="train.bwd", **meta))
        if comp is not None and not comp.is_identity:
            f_g = apply_compression(comp, f_g, m.num_hidden_layers, train=True)
            b_g = apply_compression(comp, b_g, m.num_hidden_layers, train=True)
        if plan.tp_overlapped:
            f_g, b_g = overlap_tp(f_g), overlap_tp(b_g)
        fwd.append(f_g)
        bwd.append(b_g)
        opt.append(c.optimizer(dense, expert).graph(WorkloadMeta(phase="train.optimizer", **meta)))
        sync.append(c.grad_sync(s, dense, expert))
    tokens = global_batch * seq_len
    return TrainStep(model=m, plan=plan, global_batch=global_batch, seq_len=seq_len, dtype=dtype, fp8_scope=fp8_scope,
                     attention=attention, stage_layers=layers, fwd=fwd, bwd=bwd, optimizer=opt, grad_sync=sync,
                     p2p_bytes=c.Tsp * m.hidden_size * c.B if plan.pp > 1 else 0.0, microbatches=mb, tokens=tokens,
                     model_flops=model_flops(m, tokens, seq_len), params=m.params(), active_params=active_params(m))


__all__ = ["TrainStep", "build_train", "active_params", "model_flops", "PASSES", "GROUPS"]
