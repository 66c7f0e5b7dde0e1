"""Memory per chip: training (weights, gradients, optimizer states, activations under ZeRO,
pipelining and recomputation) and inference (from WorkloadMeta), and a message that says what
does not fit and the smallest single change to the plan that would.

Training bytes per chip of one pipeline stage (``B`` = bytes of the training dtype, ``G`` of
the gradient dtype, ``N`` = parameters the chip holds before ZeRO, see
``parallel.stage_params``; dense parameters shard over the ``dp * cp`` ranks, routed experts
over their expert data-parallel group):

- weights: ``B * N``, divided by the data-parallel group under ZeRO-3;
- gradients: ``G * N``, divided under ZeRO-2 and 3 (a loop that casts them to fp32 master
  gradients, ``plan.master_casts == "separate"``: up to ``4 * N`` once the activations are
  freed);
- optimizer states: AdamW with mixed precision keeps an fp32 master copy and fp32 moments m
  and v, 12 bytes per parameter (8 when training in fp32: no master copy), divided under
  ZeRO-1, 2 and 3 (the ZeRO paper's K = 12);
- activations: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
  Transformer Models" (arXiv:2205.05198), per layer and microbatch, with ``s`` the tokens of a
  sequence on the chip (``seq_len / cp``), ``b`` the microbatch, ``h`` the hidden size, ``a``
  the heads, ``t`` the TP degree (chips), and 2-byte activations (scaled by ``B / 2``):

  ===========================  ===========================================
  no recompute, no sp          ``s*b*h*(10 + 24/t + 5*a*s/(h*t))``
  no recompute, sp             ``s*b*h/t*(34 + 5*a*s/h)``
  flash or selective           the ``5*a*s/h`` attention term dropped
  full recompute               ``2*s*b*h`` (``/t`` with sp): the layer input only
  MaxText ``qkv_proj``         the layer input and ``2*s*b*q`` (``q``: q / k / v width per chip)
  MaxText ``context_offload``  the layer input (the attention output in host memory)
  ===========================  ===========================================

  (with context parallelism the attention term is ``5*a*s_local*seq_len*b/t``: local queries
  times all keys). Op-level selective recompute (``plan.selective == "op"``, torchtitan) keeps
  ``s*b*h*(8 + 2r + 2i)`` on one chip (r = kv heads / heads, i = MLP width / h: the layer
  input, q, v, the attention output, the MLP gate and down outputs), with TP and sp
  ``s*b*h*((10 + 2r + 2i)/t + 2)`` (the two reduce-scatter outputs kept too, the down
  projection's output before its reduction whole). Full recompute (and MaxText's policies, which
  recompute a layer from its input too) also needs one layer's activations while that layer is
  recomputed (the working set, added once). The constants are the paper's GPT layer (4h MLP,
  dropout masks included), used as they are for SwiGLU, GQA and MoE layers: an approximation,
  conservative for models without dropout. A ring (``cp_attention="ring_sdpa"`` / ``"te_p2p"``)
  adds its backward's buffers to that working set (``cp_ring.backward_bytes``). A stage keeps the
  activations of every microbatch it has started and not finished: under 1F1B
  ``min(pp - stage, microbatches)`` (so ``pp`` on stage 0), under GPipe all ``microbatches``.
  The last stage also keeps the fp32 logits of the cross-entropy, ``4*s*b*vocab/t`` bytes per
  microbatch in flight, and while the loss runs backward ``plan.loss_grad_bytes_per_logit`` more
  per logit of one microbatch (a transient: the larger of it and the full-recompute working set is
  added); with ``plan.vocab_tiles`` (MaxText's vocabulary tiling) no logits are kept and the
  transient is one tile's, ``(4 + loss_grad_bytes_per_logit)`` per logit of ``1 / vocab_tiles``.
- buffers: under ZeRO-3 the gathered (unsharded) weights of two layers, the one computing and
  the one prefetched; under pipelining with ``plan.zero3_pipeline == "step"`` none, the stage's
  weights being gathered for the whole step (``B * N``) and its gradients accumulated unsharded
  in the reduction's dtype (``R * N``, ``plan.reduce_dtype``) until the last backward;
- KV cache: none in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from . import cp_ring
from ..errors import WorkloadError
from ..units import fmt
from .graph import WorkloadGraph, WorkloadMeta
from .loaders import load_model
from .model import ModelConfig, dtype_bytes
from .parallel import ParallelPlan, layer_params, stage_params

COMPONENTS = ("weights", "gradients", "optimizer", "activations", "kv_cache", "buffers")
"""The fields of MemoryBreakdown, in report order (each ``<name>_bytes``)."""


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes one chip needs, by component. Training breakdowns describe the pipeline stage that
    needs the most (``stage``) and keep their inputs so ``fit_message`` can try other plans."""

    weights_bytes: float = 0.0
    gradients_bytes: float = 0.0
    optimizer_bytes: float = 0.0
    """AdamW master weights and moments (fp32)."""
    activations_bytes: float = 0.0
    """Activations kept for the backward pass (training) or the live activations of one layer
    (inference)."""
    kv_cache_bytes: float = 0.0
    buffers_bytes: float = 0.0
    """Communication buffers: ZeRO-3's gathered weights of two layers."""
    host_bytes: float = 0.0
    """Activations offloaded to host memory (``ParallelPlan.selective == "context_offload"``);
    not part of the chip's total."""
    phase: str = "train"
    stage: int = 0
    """Pipeline stage described (training: the one with the largest total)."""
    model: ModelConfig | None = field(default=None, repr=False, compare=False)
    global_batch: int = 0
    seq_len: int = 0
    dtype: str = "bf16"
    attention: str = "flash"
    plan: ParallelPlan | None = None

    @property
    def total_bytes(self) -> float:
        return sum(self.components().values())

    def components(self) -> dict[str, float]:
        """Bytes by component name (``COMPONENTS``)."""
        return {c: getattr(self, c + "_bytes") for c in COMPONENTS}


# --- training ------------------------------------------------------------------------------

def activation_bytes_per_layer(model: ModelConfig, seq_len: int, plan: ParallelPlan, dtype: str = "bf16",
                               attention: str = "flash", recompute: str | None = None) -> float:
    """Activation bytes one layer keeps for one microbatch on one chip (Korthikanti et al.
    2022; see the module docstring). ``recompute`` overrides the plan's."""
    rc = plan.recompute if recompute is None else recompute
    t = plan.tp_chips
    sp = plan.sp and t > 1
    sl = seq_len // plan.cp
    b, h, a = plan.microbatch, model.hidden_size, model.num_attention_heads
    base = float(sl) * b * h
    scale = dtype_bytes(dtype) / 2.0
    if rc == "full" or (rc == "selective" and plan.selective == "context_offload"):
        return 2.0 * base / (t if sp else 1) * scale
    if rc == "selective" and plan.selective == "qkv_proj":
        # the layer input and the q / k / v projections (split over t), 2 bytes per element
        return (2.0 / (t if sp else 1) + 2.0 * model.qkv_width(t) / h) * base * scale
    if rc == "selective" and plan.selective == "op":
        # kept, 2 bytes per element: the layer input, q, v, the attention output, the MLP gate
        # and down outputs (every other matmul output) and, with sp, the two reduce-scatter
        # outputs; under TP the down output is the pre-reduction partial sum of all tokens
        r = model.num_key_value_heads / a
        i = (model.moe_intermediate_size if model.num_experts else model.intermediate_size) / h
        heads = 2.0 + 2.0 * r + 2.0 + 2.0 * i  # q, v, attention output, gate: split over t
        if t == 1:
            kept = 2.0 + heads + 2.0
        elif sp:
            kept = (2.0 + heads + 4.0) / t + 2.0
        else:
            kept = 2.0 + heads / t + 2.0
        return kept * base * scale
    linear = 34.0 * base / t if sp else base * (10.0 + 24.0 / t)
    attn = 5.0 * a * sl * seq_len * b / t if (attention == "unfused" and rc == "none") else 0.0
    return (linear + attn) * scale


def in_flight(plan: ParallelPlan, stage: int, microbatches: int) -> int:
    """Microbatches whose activations ``stage`` holds at its peak: 1F1B ``min(pp - stage, m)``,
    GPipe ``m``; interleaved 1F1B holds its warm-up chunks, ``2 (pp - stage - 1) + (vpp - 1) pp``
    plus one, each ``1 / vpp`` of the stage's layers (rounded up to whole microbatches)."""
    if plan.schedule == "gpipe":
        return microbatches
    if plan.vpp > 1 and plan.pp > 1:
        chunks = 2 * (plan.pp - stage - 1) + (plan.vpp - 1) * plan.pp + 1
        return max(1, min(microbatches, -(-chunks // plan.vpp)))
    return max(1, min(plan.pp - stage, microbatches))


def stage_memory(model: ModelConfig | str, global_batch: int, seq_len: int, plan: ParallelPlan, stage: int,
                 dtype: str = "bf16", attention: str = "flash") -> MemoryBreakdown:
    """Memory of one chip of pipeline ``stage`` (see the module docstring)."""
    m = load_model(model)
    plan.check(m, global_batch, seq_len)
    B = dtype_bytes(dtype)
    G = dtype_bytes(plan.grad_dtype or dtype)
    opt = 12.0 if dtype != "fp32" else 8.0
    dense, expert = stage_params(m, plan, stage)
    dpg, edp = plan.dp_group, plan.expert_dp_group

    def shard(level: int) -> float:  # parameters per chip after sharding at ZeRO >= level
        return dense / dpg + expert / edp if plan.zero >= level else float(dense + expert)

    layers = plan.stage_layers(m.num_hidden_layers)[stage]
    mb = plan.grad_accumulation(global_batch)
    live = in_flight(plan, stage, mb)
    act = len(layers) * live * activation_bytes_per_layer(m, seq_len, plan, dtype, attention)
    # transients, never at the same time: one layer's activations while it is recomputed (full
    # recompute), the loss's backward beside the kept softmax (last stage)
    transient = 0.0
    if plan.recomputes_layers:
        transient = activation_bytes_per_layer(m, seq_len, plan, dtype, attention, recompute="none")
    if cp_ring.applies(m, plan, attention):
        transient += cp_ring.backward_bytes(m, seq_len, plan, dtype_bytes(dtype))  # beside the layer's
    if stage == plan.pp - 1:
        logits = (seq_len // plan.cp) * plan.microbatch * -(-m.vocab_size // plan.tp_chips)
        if plan.vocab_tiles > 1:  # one tile's fp32 logits and their gradient, never kept
            transient = max(transient, (4.0 + plan.loss_grad_bytes_per_logit) * logits / plan.vocab_tiles)
        else:
            act += live * 4.0 * logits
            transient = max(transient, plan.loss_grad_bytes_per_logit * logits)
    act += transient
    grads = G * shard(2)
    if plan.master_casts == "separate" and G < 4:
        # fp32 master gradients replace these after the backward, once the activations are
        # freed: the peak is the larger of the two moments
        grads += max(0.0, (4 - G) * shard(2) - act)
    buffers = 0.0
    weights = B * shard(3)
    if plan.zero == 3 and plan.pp > 1 and plan.zero3_pipeline == "step":
        # the stage's weights stay gathered through the step and its gradients accumulate
        # unsharded, in the reduction's dtype, until the last backward reduce-scatters them
        weights = B * (dense + expert)
        grads = max(grads, dtype_bytes(plan.reduce_dtype or plan.grad_dtype or dtype) * (dense + expert))
    elif plan.zero == 3 and len(layers):
        biggest = max(sum(layer_params(m, li, plan)) for li in layers)
        buffers = 2.0 * biggest * B
    host = 0.0
    if plan.recompute == "selective" and plan.selective == "context_offload":  # each layer's attention output
        host = len(layers) * live * (seq_len // plan.cp) * plan.microbatch * m.hidden_size / plan.tp_chips * B
    return MemoryBreakdown(
        weights_bytes=weights, gradients_bytes=grads, optimizer_bytes=opt * shard(1),
        activations_bytes=act, buffers_bytes=buffers, host_bytes=host, phase="train", stage=stage, model=m,
        global_batch=global_batch, seq_len=seq_len, dtype=dtype, attention=attention, plan=plan)


def train_memory(model: ModelConfig | str, global_batch: int, seq_len: int, plan: ParallelPlan,
                 dtype: str = "bf16", attention: str = "flash", stage: int | None = None) -> MemoryBreakdown:
    """Bytes per chip of a training step: the pipeline stage that needs the most (or ``stage``).
    Raises WorkloadError when the plan does not fit the model or the batch."""
    if stage is not None:
        return stage_memory(model, global_batch, seq_len, plan, stage, dtype, attention)
    per = [stage_memory(model, global_batch, seq_len, plan, s, dtype, attention) for s in range(plan.pp)]
    return max(per, key=lambda b: (b.total_bytes, -b.stage))


# --- inference -----------------------------------------------------------------------------

def inference_memory(graph: WorkloadGraph | WorkloadMeta) -> MemoryBreakdown:
    """Memory per chip of a prefill or decode graph, from its WorkloadMeta (weights, KV cache and
    the live activations of one layer), so it agrees with what ``build`` reports."""
    meta = graph.meta if isinstance(graph, WorkloadGraph) else graph
    return MemoryBreakdown(weights_bytes=meta.weight_bytes_per_chip, kv_cache_bytes=meta.kv_cache_bytes_per_chip,
                           activations_bytes=meta.activation_bytes_per_chip, phase=meta.phase,
                           seq_len=meta.seq_len, dtype=meta.dtype, attention=meta.attention)


# --- does it fit? ----------------------------------------------------------------------------

def _gib(x: float) -> str:
    return fmt(x, "B", binary=True)


NEAREST = 16
"""How many neighbouring values of a knob ``fit_message`` tries one by one before it doubles."""
MAX_TP = 65_536
"""The largest tensor-parallel degree ``fit_message`` proposes."""


def _thin(values: Iterable[int], start: int) -> list[int]:
    """The first ``NEAREST`` of ``values`` (ordered nearest ``start`` first), then each value
    at least twice as far from ``start`` as the last kept, and the last: a knob of 100,000
    layers costs a few dozen tries, not 100,000."""
    values = list(values)
    if len(values) <= NEAREST:
        return values
    out = values[:NEAREST]
    for v in values[NEAREST:-1]:
        if abs(v - start) >= 2 * abs(out[-1] - start):
            out.append(v)
    return out + [values[-1]]


def _candidates(plan: ParallelPlan, model: ModelConfig) -> list[tuple[str, dict[str, Any]]]:
    """Single changes to try, in order: ZeRO level up, full recompute, tp up (divisors of the
    heads), pp up, smaller microbatch; each knob from the nearest value outward (``_thin``)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for z in range(plan.zero + 1, 4):
        out.append((f"zero={z}", {"zero": z}))
    if plan.recompute != "full":
        out.append(("recompute=full", {"recompute": "full"}))
    heads = model.num_attention_heads
    for tp in _thin([t for t in range(plan.tp + 1, min(heads, MAX_TP) + 1) if heads % t == 0], plan.tp):
        out.append((f"tp={tp}", {"tp": tp}))
    for pp in _thin(range(plan.pp + 1, model.num_hidden_layers + 1), plan.pp):
        out.append((f"pp={pp}", {"pp": pp, "layers_per_stage": ()}))
    for mb in _thin(range(plan.microbatch - 1, 0, -1), plan.microbatch):
        out.append((f"microbatch={mb}", {"microbatch": mb}))
    return out


def fit_message(breakdown: MemoryBreakdown, capacity_bytes: float, plan: ParallelPlan | None = None) -> str:
    """``"fits: ..."`` when ``breakdown`` fits ``capacity_bytes`` per chip; otherwise
    ``"does not fit: ..."`` naming the components and the largest, and, for training, the first
    single change to the plan that fits, trying in order: ZeRO level up, full recomputation,
    a larger tp, a larger pp, a smaller microbatch (each candidate is evaluated with
    ``train_memory``; chips grow with tp and pp, dp is kept)."""
    plan = plan or breakdown.plan
    total = breakdown.total_bytes
    where = f" on stage {breakdown.stage}" if plan is not None and plan.pp > 1 else ""
    if total <= capacity_bytes:
        return f"fits: {_gib(total)} of {_gib(capacity_bytes)} per chip{where}"
    parts = {k: v for k, v in breakdown.components().items() if v > 0}
    largest = max(parts, key=parts.get) if parts else "nothing"
    listing = ", ".join(f"{k.replace('_', ' ')} {_gib(v)}" for k, v in parts.items())
    msg = (f"does not fit: needs {_gib(total)} per chip{where} but a chip has {_gib(capacity_bytes)} "
           f"({listing}; largest: {largest.replace('_', ' ')})")
    m = breakdown.model
    if plan is None or m is None or breakdown.phase != "train":
        return msg + "; use more tensor parallelism or a chip with more memory"
    best: tuple[float, str] | None = None
    for label, change in _candidates(plan, m):
        try:
            cand = ParallelPlan(**{**plan.model_dump(), **change})
            got = train_memory(m, breakdown.global_batch, breakdown.seq_len, cand, breakdown.dtype,
                               breakdown.attention)
        except WorkloadError:  # an invalid candidate is skipped
            continue
        if got.total_bytes <= capacity_bytes:
            extra = f", {cand.chips} chips" if cand.chips != plan.chips else ""
            return msg + f". Smallest change that fits: {label} ({_gib(got.total_bytes)} per chip{extra})"
        if best is None or got.total_bytes < best[0]:
            best = (got.total_bytes, label)
    if best is None:
        return msg + ". No single change to the plan is valid here"
    return msg + f". No single change fits; the closest is {best[1]} ({_gib(best[0])} per chip)"


__all__ = ["MemoryBreakdown", "train_memory", "stage_memory", "inference_memory", "fit_message",
           "activation_bytes_per_layer", "in_flight", "COMPONENTS"]
