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

    @property
    def steps(self) -> float:
        return self.tokens / self.tokens_per_step

    def to_dict(self) -> dict:
        return {"what": self.what, "system": self.system, "tokens": self.tokens, "steps": self.steps,
                "tokens_per_step": self.tokens_per_step, "step_s": self.step_s, "chips": self.chips,
                "chip_hours": self.chip_hours, "energy_J": self.energy_J, "energy_MWh": self.energy_J / 3.6e9,
                "parts_s": self.parts_s}


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
        raise ValueError(f"QAT needs a recipe with a weight or activation format, got {recipe!r}")
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


def distill_cost(system, student, teacher, tokens: float, global_batch: int = 1024, seq_len: int = 4096,
                 teacher_system=None, stack=None, **plan_fields) -> ProductionCost:
    """Chip-hours and energy of distilling ``teacher`` into ``student`` (logit targets) over
    ``tokens`` on ``system`` (and the teacher on ``teacher_system``, else on the same chips)."""
    from ..analysis.energy import energy_table
    from ..cost.op_cost import op_cost
    from ..sim.analytical import chip_model
    from ..workload import load_model
    from ..workload.ops import Softmax

    res = _student(system, student, global_batch, seq_len, plan_fields, stack)
    s = res.summary
    sm = load_model(student)
    # KL loss on the student's chips: softmax of student and teacher logits over the vocabulary
    rows = math.ceil(global_batch * seq_len / s["chips"])
    kl = 2.0 * op_cost(chip_model(res.system), Softmax(rows=rows, cols=sm.vocab_size)).time_s
    t_s, t_J, t_chips = teacher_forward_s(teacher_system or res.system, teacher, global_batch, seq_len, stack)
    e = energy_table(res.system)
    if teacher_system is None:
        step = s["step_time_s"] + kl + t_s
        chips = s["chips"]
    else:
        step = max(s["step_time_s"] + kl, t_s)
        chips = s["chips"] + t_chips
    tps = global_batch * seq_len
    steps = tokens / tps
    kl_J = e.static_W * kl * s["chips"]
    return ProductionCost(what=f"distillation from {load_model(teacher).name}", system=s["system"], tokens=tokens,
                          tokens_per_step=tps, step_s=step, chips=chips, chip_hours=steps * step * chips / 3600.0,
                          energy_J=steps * (s["energy_J"] + t_J + kl_J),
                          parts_s={"student_step": s["step_time_s"], "kl_loss": kl, "teacher_forward": t_s})
