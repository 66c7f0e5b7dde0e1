"""Modes: what a system predicts under a stack. ``ideal`` is the preset as written (peak rates,
its explicit calibration, no software costs); ``realistic`` replaces a neutral calibration by
the chip's achievable priors (``ChipSpec.achievable``) and adds the stack runtime's
per-kernel cost, and its collectives run under the stack's collective library.

An explicit calibration that names the stack it was fitted under (``Calibration.stack``) keeps
its hardware fields everywhere, and its stack fields (launch and collective overheads) only
under that stack: under another stack that stack's costs apply, in ideal mode none."""

from __future__ import annotations

from ..arch.spec import HARDWARE_FIELDS, Calibration, SystemSpec
from ..errors import ConfigError
from .spec import Stack

MODES = ("realistic", "ideal")
LOADS = ("sustained", "burst")
"""How long the chip runs flat out: ``sustained`` (a production run's steady state, minutes at
the power limit) or ``burst`` (a benchmark harness's seconds of timed calls, the regime the
kernel microbenchmarks behind the achievable priors were measured in)."""


_NO_CALIBRATION = Calibration()
"""The default calibration, built once (compared against, and the base of a chip without priors,
at every design point of a sweep)."""


def calibration_kind(system: SystemSpec, stack: Stack | None) -> str:
    """What sets the chip's rates: "explicit" (a calibration in the spec, kept in every mode),
    "priors" (realistic mode: the achievable priors and the runtime's costs), "stack" (realistic
    mode on a chip without priors: the runtime's costs only), or "none" (ideal)."""
    if system.chip.calibration != _NO_CALIBRATION:
        return "explicit"
    if stack is None:
        return "none"
    return "priors" if system.chip.achievable is not None else "stack"


def dropped_stack_costs(system: SystemSpec, stack: Stack | None) -> str | None:
    """The stack whose fitted overheads ``realize`` drops for ``stack`` (None when none are
    dropped): an explicit calibration fitted under another stack, or any stack in ideal mode."""
    cal = system.chip.calibration
    if cal.stack is None or (stack is not None and stack.name == cal.stack):
        return None
    return cal.stack


def _runtime(base: Calibration, stack: Stack, chip: str = "", die: str | None = None) -> Calibration:
    """``base`` plus the stack runtime's per-kernel and per-collective host costs (a
    program-dispatch runtime pays per call instead), its attention kernels' efficiency (forward,
    and backward where given) on ``chip`` (else on its ``die``) and its kernel library's reduction
    efficiency and unvectorized element rate."""
    if stack.attention is not None:
        for field, per_chip in (("attention_efficiency", stack.attention.efficiency),
                                ("attention_backward_efficiency", stack.attention.backward_efficiency)):
            value = per_chip.get(chip, per_chip.get(die or ""))
            if value is not None:
                base = base.model_copy(update={field: value})
    if stack.attention is not None and stack.attention.decode_per_query_head:
        base = base.model_copy(update={"attention_decode_per_query_head": True})
    if stack.serving is not None and stack.serving.kv_cache == "concat":
        base = base.model_copy(update={"kv_concat": True})
    if stack.kernels is not None:
        from .presets import load_kernels

        lib = load_kernels(stack.kernels)
        base = base.model_copy(update={"reduction_efficiency": base.reduction_efficiency * lib.reduction_efficiency,
                                       "unvectorized_elements_per_cycle": lib.unvectorized_elements_per_cycle})
    if stack.runtime.dispatch != "kernel":
        return base
    rt = stack.runtime
    return base.model_copy(update={"launch_overhead_s": base.launch_overhead_s + rt.kernel_launch_s,
                                   "tensor_launch_overhead_s": base.tensor_launch_overhead_s + rt.tensor_launch_s,
                                   "collective_overhead_s": base.collective_overhead_s + rt.collective_launch_s,
                                   "host_async": rt.host_async, "launches": dict(rt.launches),
                                   "composite": list(rt.composite)})


def step_cost_s(stack: Stack | None, requests: int = 0) -> float:
    """Cost of one model step (one prefill or decode forward of ``requests`` sequences) under
    ``stack``, outside its ops: a program-dispatch runtime's cost of executing the step's
    compiled program (``runtime.kernel_launch_s``) plus a serving engine's per-step cost and its
    per-request cost for each of the step's requests."""
    if stack is None:
        return 0.0
    program = stack.runtime.kernel_launch_s if stack.runtime.dispatch == "program" else 0.0
    sv = stack.serving
    return program + (sv.step_overhead_s + sv.request_overhead_s * requests if sv is not None else 0.0)


def attention_of(stack: Stack | None, asked: str | None = None) -> str:
    """The attention an inference graph runs under ``stack``: ``asked`` when given, else where
    the stack's attention is not fused (``AttentionKernel.fused``) ``"unfused_grouped"`` or, with
    its heads repeated (``unfused_layout: repeated``), ``"unfused"``, else ``"flash"``."""
    if asked is not None:
        return asked
    kernel = stack.attention if stack is not None else None
    if kernel is None or kernel.fused:
        return "flash"
    return "unfused" if kernel.unfused_layout == "repeated" else "unfused_grouped"


def train_attention(stack: Stack | None, asked: str | None = None) -> str:
    """The attention a training step runs under ``stack``: ``asked`` when given, else "flash",
    or "unfused" where the stack's attention is not fused (a training graph's unfused attention
    repeats K / V to the query heads, as Megatron's core attention does)."""
    if asked is not None:
        return asked
    return "flash" if attention_of(stack) == "flash" else "unfused"


def bucket_tokens(tokens: int, smallest: int, largest: int | None = None) -> int:
    """The length of the program an engine that compiles one per bucket runs for ``tokens``
    positions: ``smallest`` doubled until it holds them, or ``largest`` (the engine's longest
    program, its maximum sequence length) where that comes first (transformers-neuronx
    ``utils.power_of_two_bucket_sizes`` and ``bucket.find``). ``smallest`` 0: ``tokens``."""
    if smallest <= 0 or tokens <= 0:
        return tokens
    b = smallest
    while b < tokens:
        b *= 2
    return largest if largest is not None and tokens <= largest < b else b


def decode_buckets(stack: Stack | None) -> int:
    """The smallest decode bucket of ``stack``'s serving engine (0: it reads each sequence's own
    context)."""
    sv = stack.serving if stack is not None else None
    return sv.decode_bucket_tokens if sv is not None else 0


def read_context(stack: Stack | None, context_len: int, largest: int | None = None) -> int:
    """The cached tokens one decode step's attention reads after ``context_len`` cached tokens
    under ``stack``: its bucket less the new token's position where the engine compiles decode
    buckets, else ``context_len``. ``largest``: the engine's longest bucket (the model's context
    window: no program is longer)."""
    smallest = decode_buckets(stack)
    return bucket_tokens(context_len + 1, smallest, largest) - 1 if smallest else context_len


def decode_context(stack: Stack | None, context_len: int, steps: int = 1, largest: int | None = None) -> float:
    """The cached tokens a decode step's attention reads under ``stack``, averaged over ``steps``
    steps starting from ``context_len`` cached tokens: the mean context, or where the engine
    compiles decode buckets the mean of each step's bucket less the new token (a decode cost is
    affine in the context its attention reads, so the step at this context is the mean step).
    ``largest``: the engine's longest bucket (its maximum sequence length)."""
    smallest = decode_buckets(stack)
    if not smallest:
        return context_len + (steps - 1) / 2.0
    total, n = 0.0, context_len + 1  # the positions of the steps' new tokens: n .. n + steps - 1
    last = context_len + steps
    while n <= last:
        b = bucket_tokens(n, smallest, largest)
        upto = min(last, max(b, n))  # the steps this bucket's program runs
        total += (upto - n + 1) * b
        n = upto + 1
    return total / steps - 1.0


def plan_defaults(stack: Stack | None) -> dict:
    """The training-plan fields a framework sets when the plan leaves them open (sequence
    parallelism and its communication overlap, recomputation, what selective recomputation keeps
    and what a recomputed layer reruns, ZeRO stage, the loss's kernels and backward memory, its RMSNorm, vocabulary padding,
    master-weight casts, gradient-reduction dtype, FSDP2 copy-out and context-parallel
    attention): its ``training`` block, else all off."""
    fw = stack.training if stack is not None else None
    if fw is None:
        return {"sp": False, "recompute": "none", "zero": 0}
    return {"sp": fw.sequence_parallel, "tp_comm_overlap": fw.tp_comm_overlap, "recompute": fw.recompute,
            "zero": fw.zero, "selective": fw.selective,
            "recompute_scope": fw.recompute_scope, "loss_grad_bytes_per_logit": fw.loss_grad_bytes_per_logit,
            "rmsnorm": fw.rmsnorm, "loss": fw.loss, "vocab_multiple": fw.vocab_multiple,
            "master_casts": fw.master_casts, "reduce_dtype": fw.reduce_dtype,
            "zero3_copies": fw.zero3_copies, "cp_attention": fw.context_parallel}


def fp8_scope(stack: Stack | None) -> str:
    """What an fp8 training step runs in fp8 under ``stack``: its framework's recipe, "gemm" (the
    linear layers, as production recipes run) without one, "all" in ideal mode (no stack)."""
    if stack is None:
        return "all"
    return stack.training.fp8_scope if stack.training is not None else "gemm"


def load_of(load: str) -> str:
    """``load`` as the ``LOADS`` entry itself (callers' caches key on identity); a ConfigError for
    any other value."""
    if load not in LOADS:
        raise ConfigError(f"unknown load {load!r}; use one of {', '.join(LOADS)}")
    return LOADS[LOADS.index(load)]


def under_load(system: SystemSpec, stack: Stack | None, load: str = "sustained") -> SystemSpec:
    """``system`` (as ``realize`` left it) under ``load``: sustained, a realistic prediction runs
    the tensor engines at the chip's ``sustained_clock_fraction`` of their achievable rate (the
    clock a power-limited, thermally soaked chip settles at), once (``Calibration.sustained_load``
    marks it, so a system passed on again is not slowed twice); burst, ideal mode (``stack``
    None) and a chip without the figure are left as they are."""
    load = load_of(load)
    chip = system.chip
    f = chip.sustained_clock_fraction
    if load == "burst" or stack is None or f is None or f == 1.0 or chip.calibration.sustained_load:
        return system
    cal = chip.calibration.model_copy(update={"tensor_efficiency": chip.calibration.tensor_efficiency * f,
                                              "sustained_load": True})
    return system.model_copy(update={"chip": chip.model_copy(update={"calibration": cal})})


def realize(system: SystemSpec, stack: Stack | None) -> SystemSpec:
    """``system`` as it runs under ``stack`` (None: ideal mode). A chip with an explicit
    calibration keeps it, except the overheads of one fitted under another stack: those are
    replaced by ``stack``'s own costs (ideal mode: by none)."""
    chip = system.chip
    kind = calibration_kind(system, stack)
    if kind == "none":
        return system
    if kind == "explicit":
        if dropped_stack_costs(system, stack) is None:
            return system
        hw = {f: getattr(chip.calibration, f) for f in HARDWARE_FIELDS}
        cal = Calibration(**hw) if stack is None else _runtime(
            (chip.achievable or _NO_CALIBRATION).model_copy(update=hw), stack, chip.name, chip.die)
    else:
        cal = _runtime(chip.achievable or _NO_CALIBRATION, stack, chip.name, chip.die)
    if cal == chip.calibration:
        return system
    return system.model_copy(update={"chip": chip.model_copy(update={"calibration": cal})})


__all__ = ["LOADS", "MODES", "attention_of", "calibration_kind", "dropped_stack_costs", "fp8_scope", "load_of",
           "plan_defaults", "realize", "step_cost_s", "train_attention", "under_load"]
