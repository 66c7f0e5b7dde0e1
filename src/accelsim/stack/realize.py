"""Modes: what a system predicts under a stack. ``ideal`` is the preset as written (peak rates,
its explicit calibration, no software costs); ``realistic`` replaces a neutral calibration by
the chip's achievable priors (``ChipSpec.achievable``) and adds the stack runtime's
per-kernel cost, and its collectives run under the stack's collective library."""

from __future__ import annotations

from ..arch.spec import Calibration, SystemSpec
from .spec import Stack

MODES = ("realistic", "ideal")


def calibration_kind(system: SystemSpec, stack: Stack | None) -> str:
    """What sets the chip's rates: "explicit" (a calibration in the spec, kept in every mode),
    "priors" (realistic mode: the achievable priors and the runtime's costs), "stack" (realistic
    mode on a chip without priors: the runtime's costs only), or "none" (ideal)."""
    if system.chip.calibration != Calibration():
        return "explicit"
    if stack is None:
        return "none"
    return "priors" if system.chip.achievable is not None else "stack"


def realize(system: SystemSpec, stack: Stack | None) -> SystemSpec:
    """``system`` as it runs under ``stack`` (None: ideal mode, the system unchanged). A chip
    with an explicit (non-neutral) calibration keeps it: calibrations are fitted on the ideal
    model and already hold what the priors would add."""
    if calibration_kind(system, stack) in ("explicit", "none"):
        return system
    chip = system.chip
    base = chip.achievable or Calibration()
    per_op = stack.runtime.kernel_launch_s if stack.runtime.dispatch == "kernel" else 0.0
    cal = base.model_copy(update={"launch_overhead_s": base.launch_overhead_s + per_op})
    if cal == chip.calibration:
        return system
    return system.model_copy(update={"chip": chip.model_copy(update={"calibration": cal})})


__all__ = ["MODES", "calibration_kind", "realize"]
