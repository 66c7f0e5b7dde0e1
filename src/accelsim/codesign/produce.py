"""What producing a compressed model costs: quantization-aware training (QAT) and knowledge
distillation as training runs, in chip-hours and energy for a token budget.

QAT: each training step of the student, as ``accelsim.evaluate_train`` predicts it (BF16
GEMMs: fake quantization emulates the formats), plus the fake quantization itself on every
chip, on the critical path:
- every weight element a chip holds is fake-quantized in every microbatch's forward pass; with
  a quantized activation format, so is every input element of the weight GEMMs (the four GEMMs
  of a layer: attention in, attention out, MLP in, MLP out, per token);
- one element costs ``FAKE_QUANT_OPS`` vector ops forward (scale, round, clamp, rescale) plus
  ``STE_OPS`` backward (the straight-through estimator's clamp mask), and its tensor moves
  ``FAKE_QUANT_PASSES`` times through HBM (read and write, forward and backward);
- time per element class: the larger of its vector time (at the chip's achievable vector rate)
  and its HBM time (at the achievable bandwidth).
Distillation: the student's training step plus the teacher's forward pass over the same global
batch (full logits: an LM-head GEMM over every token, not only the last) and the KL loss on the
student's chips (two softmaxes over the vocabulary per token). On the student's own system the
teacher runs between student steps (times add); on a ``teacher_system`` of its own the two run
side by side (the step takes the longer; chip-hours count both systems' chips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import WorkloadError

FAKE_QUANT_OPS = 4.0
"""Vector ops per element of a forward fake quantization: divide by the scale, round, clamp,
multiply back."""
STE_OPS = 1.0
"""Vector ops per element of the straight-through backward (the clamp mask on the gradient)."""
FAKE_QUANT_PASSES = 4.0
"""Times an element crosses HBM per step of fake quantization: read and written forward, the
gradient read and written backward."""


@dataclass
class ProductionCost:
    """One way of producing a model, over a token budget."""

    what: str
    system: str
    tokens: float
    tokens_per_step: int
    step_s: float
    chips: int
    chip_hours: float
    energy_J: float
    parts_s: dict[str, float] = field(default_factory=dict)
    """Seconds of one step by part (student step, fake quantization, teacher forward, KL loss)."""
    once_s: dict[str, float] = field(default_factory=dict)
    """Seconds of one-off work before the steps (a pruning's importance estimate), included in
    ``chip_hours`` and ``energy_J``."""

    @property
    def steps(self) -> float:
        return self.tokens / self.tokens_per_step

    def to_dict(self) -> dict:
        return {"what": self.what, "system": self.system, "tokens": self.tokens, "steps": self.steps,
                "tokens_per_step": self.tokens_per_step, "step_s": self.step_s, "chips": self.chips,
                "chip_hours": self.chip_hours, "energy_J": self.energy_J, "energy_MWh": self.energy_J / 3.6e9,
                "parts_s": self.parts_s, "once_s": self.once_s}


def _student(system, model, global_batch, seq_len, plan_fields, stack):
    from ..api import evaluate_train
    from ..arch.presets import load_system
    from ..arch.spec import SystemSpec

    spec = system if isinstance(system, SystemSpec) else load_system(system)
    fields = dict(plan_fields)
    if spec.chip.tp_ranks > 1:
        fields.setdefault("cores_per_chip", spec.chip.tp_ranks)  # Neuron: tp counts NeuronCores
    return evaluate_train(spec, model, global_batch, seq_len, stack=stack, **fields)


def fake_quant_elements(model, tp: int, pp: int, microbatch_tokens: int, quantize_activations: bool) -> tuple[float, float]:
    """(weight elements, activation elements) one chip fake-quantizes per microbatch forward."""
    from ..workload import load_model

    m = load_model(model)
    weights = sum(v for k, v in m.param_breakdown(tp).items() if k in ("attention", "mlp", "experts", "shared_experts"))
    weights /= pp
    acts = 0.0
    if quantize_activations:
        per_token = (m.hidden_size + m.q_width // tp + m.hidden_size + m.intermediate_size // tp)
        acts = microbatch_tokens * per_token * m.num_hidden_layers / pp
    return float(weights), float(acts)


def qat_cost(system, model, recipe, tokens: float, global_batch: int = 1024, seq_len: int = 4096,
             stack=None, **plan_fields) -> ProductionCost:
    """Chip-hours and energy of QAT of ``model`` into ``recipe`` (a tag such as "w4a8" or a
    Compression) over ``tokens`` on ``system``."""
    from ..analysis.energy import energy_table
    from ..compress.recipes import as_compression
    from ..sim.analytical import chip_model

    comp = as_compression(recipe)
    if comp is None or not (comp.weights or comp.activations):
        raise WorkloadError(f"QAT needs a recipe with a weight or activation format, got {recipe!r}")
    res = _student(system, model, global_batch, seq_len, plan_fields, stack)
    s = res.summary
    w, a = fake_quant_elements(model, s["tp"], s["pp"], s["microbatch"] * seq_len, bool(comp.activations))
    w = w if comp.weights else 0.0
    per_step = (w + a) * s["microbatches"]
    cm = chip_model(res.system)
    ops = per_step * (FAKE_QUANT_OPS + STE_OPS)
    nbytes = per_step * FAKE_QUANT_PASSES * 2.0  # bf16 tensors
    fq_s = max(ops / cm.vec_rate.get("bf16", cm.vec_rate_default), nbytes / cm.hbm_bw)
    step = s["step_time_s"] + fq_s
    e = energy_table(res.system)
    fq_J = (ops * e.vector_op_pJ + nbytes * e.hbm_pJ_per_byte) * 1e-12 * s["chips"]
    tps = global_batch * seq_len
    steps = tokens / tps
    static = e.static_W * fq_s * s["chips"]
    return ProductionCost(what=f"QAT to {comp.describe()}", system=s["system"], tokens=tokens, tokens_per_step=tps,
                          step_s=step, chips=s["chips"], chip_hours=steps * step * s["chips"] / 3600.0,
                          energy_J=steps * (s["energy_J"] + fq_J + static),
                          parts_s={"student_step": s["step_time_s"], "fake_quantization": fq_s})


def teacher_forward_s(system, teacher, global_batch: int, seq_len: int, stack=None) -> tuple[float, float, int]:
    """(seconds, joules, chips) of the teacher's forward pass over ``global_batch`` sequences
    on ``system``: tensor parallel within a node, data parallel over the nodes, logits for
    every token."""
    from ..api import evaluate
    from ..arch.presets import load_system
    from ..arch.spec import SystemSpec
    from ..cost.op_cost import op_cost
    from ..sim.analytical import chip_model
    from ..workload import load_model
    from ..workload.ops import MatMul

    spec = system if isinstance(system, SystemSpec) else load_system(system)
    m = load_model(teacher)
    node = spec.chips_per_node
    tp_chips = min(node, spec.num_chips)
    dp = max(1, spec.num_chips // tp_chips)
    batch = math.ceil(global_batch / dp)
    tp = tp_chips * spec.chip.tp_ranks  # Neuron: tp counts NeuronCores
    r = evaluate(spec, m, phase="prefill", batch=batch, seq_len=seq_len, tp=tp, stack=stack)
    # the built prefill computes logits of the last position only; distillation needs all
    vocab = -(-m.vocab_size // tp_chips)
    head = MatMul(m=batch * (seq_len - 1), n=vocab, k=m.hidden_size, b_shared=True)
    extra = op_cost(chip_model(r.system), head).time_s  # r.system: the spec as realized under the stack
    t = r.summary["latency_s"] + extra
    per_token = r.summary["energy_J"] / max(1, batch * seq_len)
    return float(t), float(per_token * global_batch * seq_len), spec.num_chips


def hidden_loss_s(cm, student, teacher, tokens_per_chip: int) -> float:
    """Seconds per step, on one student chip, of hidden-state targets: for each student layer, a
    learned projection of its hidden state to the teacher's width (a GEMM forward and its two
    backward GEMMs; none when the widths agree) and a mean-squared error against the matching
    teacher layer (read both states and write the gradient forward, read it back backward)."""
    from ..cost.op_cost import op_cost
    from ..workload import load_model
    from ..workload.ops import Elementwise, MatMul

    sm, tm = load_model(student), load_model(teacher)
    per_layer = 0.0
    if sm.hidden_size != tm.hidden_size:
        fwd = MatMul(m=tokens_per_chip, n=tm.hidden_size, k=sm.hidden_size, b_shared=True)
        dgrad = MatMul(m=tokens_per_chip, n=sm.hidden_size, k=tm.hidden_size, b_shared=True)
        wgrad = MatMul(m=sm.hidden_size, n=tm.hidden_size, k=tokens_per_chip, b_shared=True)
        per_layer += sum(op_cost(cm, o).time_s for o in (fwd, dgrad, wgrad))
    mse = Elementwise(fn="add", elements=tokens_per_chip * tm.hidden_size)  # a difference: two reads, one write
    per_layer += 2.0 * op_cost(cm, mse).time_s
    return per_layer * sm.num_hidden_layers


def distill_cost(system, student, teacher, tokens: float, global_batch: int = 1024, seq_len: int = 4096,
                 teacher_system=None, stack=None, targets: str = "logits", **plan_fields) -> ProductionCost:
    """Chip-hours and energy of distilling ``teacher`` into ``student`` over ``tokens`` on
    ``system`` (and the teacher on ``teacher_system``, else on the same chips). ``targets``:
    "logits" (a KL loss over the vocabulary) or "hidden" (the logits' loss plus each student
    layer's hidden state against a teacher layer: ``hidden_loss_s``)."""
    from ..analysis.energy import energy_table
    from ..cost.op_cost import op_cost
    from ..sim.analytical import chip_model
    from ..workload import load_model
    from ..workload.ops import Softmax

    if targets not in ("logits", "hidden"):
        raise WorkloadError(f"distillation targets must be 'logits' or 'hidden', got {targets!r}")
    res = _student(system, student, global_batch, seq_len, plan_fields, stack)
    s = res.summary
    sm = load_model(student)
    # KL loss on the student's chips: softmax of student and teacher logits over the vocabulary
    rows = math.ceil(global_batch * seq_len / s["chips"])
    cm = chip_model(res.system)
    kl = 2.0 * float(op_cost(cm, Softmax(rows=rows, cols=sm.vocab_size)).time_s)
    hid = float(hidden_loss_s(cm, student, teacher, rows)) if targets == "hidden" else 0.0
    loss = kl + hid  # the losses run on the student's chips after its step
    t_s, t_J, t_chips = teacher_forward_s(teacher_system or res.system, teacher, global_batch, seq_len, stack)
    e = energy_table(res.system)
    if teacher_system is None:
        step = s["step_time_s"] + loss + t_s
        chips = s["chips"]
    else:
        step = max(s["step_time_s"] + loss, t_s)
        chips = s["chips"] + t_chips
    tps = global_batch * seq_len
    steps = tokens / tps
    loss_J = e.static_W * loss * s["chips"]
    parts = {"student_step": s["step_time_s"], "kl_loss": kl, "teacher_forward": t_s}
    if targets == "hidden":
        parts["hidden_state_loss"] = hid
    what = f"distillation from {load_model(teacher).name}" + (" (logits and hidden states)" if targets == "hidden" else "")
    return ProductionCost(what=what, system=s["system"], tokens=tokens,
                          tokens_per_step=tps, step_s=step, chips=chips, chip_hours=steps * step * chips / 3600.0,
                          energy_J=steps * (s["energy_J"] + t_J + loss_J), parts_s=parts)


def importance_s(system, model, samples: int, seq_len: int, stack=None, tp: int = 1) -> tuple[float, float, int]:
    """(seconds, joules, chips) of the forward passes a pruning's importance estimate runs: the
    unpruned ``model`` over ``samples`` sequences, data parallel over replicas of tensor-parallel
    degree ``tp`` (as the training plan counts it), activation statistics only (no logits beyond
    the last position)."""
    from ..api import evaluate
    from ..arch.presets import load_system
    from ..arch.spec import SystemSpec

    spec = system if isinstance(system, SystemSpec) else load_system(system)
    tp = max(tp, spec.chip.tp_ranks)  # as the training plan counts it (Neuron: NeuronCores), a chip at least
    replicas = max(1, spec.num_chips // -(-tp // spec.chip.tp_ranks))
    batch = math.ceil(samples / replicas)
    r = evaluate(spec, model, phase="prefill", batch=batch, seq_len=seq_len, tp=tp, stack=stack)
    return float(r.summary["latency_s"]), float(r.summary["energy_J"]) * replicas, spec.num_chips


CALIBRATION_SAMPLES = 1024
"""Sequences the importance estimate of structured pruning runs forward: Minitron ranks heads,
neurons, embedding channels and layers from activations on 1,024 calibration samples
(Muralidharan et al. 2024, "Compact Language Models via Pruning and Knowledge Distillation",
arXiv:2407.14679, section 2)."""


def prune_heal_cost(system, model, recipe, tokens: float, global_batch: int = 1024, seq_len: int = 4096,
                    teacher=None, teacher_system=None, stack=None, targets: str = "logits",
                    calibration_samples: int = CALIBRATION_SAMPLES, **plan_fields) -> ProductionCost:
    """Chip-hours and energy of structured pruning of ``model`` by ``recipe`` (its ``prune``
    block) followed by a healing fine-tune of the pruned model over ``tokens``: the importance
    estimate (forward passes of the unpruned model over ``calibration_samples`` sequences, once)
    plus the healing run, plain training or, with ``teacher`` (usually the unpruned model),
    distillation from it."""
    from ..compress.recipes import Pruning, as_compression
    from ..workload import load_model

    comp = as_compression(recipe)
    if comp is None or comp.prune == Pruning():
        raise WorkloadError(f"--prune needs a recipe with a prune block (heads, MLP or layers), got {recipe!r}")
    full = load_model(model)
    pruned = comp.apply_model(full).model_copy(update={"name": f"{full.name} pruned"})
    if teacher is not None:
        heal = distill_cost(system, pruned, teacher, tokens, global_batch, seq_len, teacher_system=teacher_system,
                            stack=stack, targets=targets, **plan_fields)
    else:
        res = _student(system, pruned, global_batch, seq_len, plan_fields, stack)
        s = res.summary
        tps = global_batch * seq_len
        heal = ProductionCost(what="fine-tuning", system=s["system"], tokens=tokens, tokens_per_step=tps,
                              step_s=s["step_time_s"], chips=s["chips"],
                              chip_hours=tokens / tps * s["step_time_s"] * s["chips"] / 3600.0,
                              energy_J=tokens / tps * s["energy_J"], parts_s={"student_step": s["step_time_s"]})
    imp_s, imp_J, imp_chips = importance_s(system, full, calibration_samples, seq_len, stack,
                                           plan_fields.get("tp") or 1)
    return ProductionCost(what=f"pruning ({comp.name or comp.describe()}) and healing by {heal.what}", system=heal.system,
                          tokens=tokens, tokens_per_step=heal.tokens_per_step, step_s=heal.step_s, chips=heal.chips,
                          chip_hours=heal.chip_hours + imp_s * imp_chips / 3600.0, energy_J=heal.energy_J + imp_J,
                          parts_s=heal.parts_s, once_s={"importance_estimate": imp_s})
