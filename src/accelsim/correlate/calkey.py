"""The keys of a Predictor's calibration: a row's calibration as a hashable tuple of (field, value),
with entries that stand for how the row ran rather than for fitted values."""

from __future__ import annotations

from collections.abc import Mapping

STACK_KEY = "@stack"
"""Calibration-key entry that stands for "realistic mode under this stack" (no fitted values)."""
KERNELS_KEY = "@kernels"
"""Calibration-key entry: the row's own kernel library (``MeasurementRow.kernels``) in place of its stack's."""
LOAD_KEY = "@load"
"""Calibration-key entry: the row ran under sustained load (``MeasurementRow.load``), so its system
runs the tensor engines at the chip's ``sustained_clock_fraction`` (``stack.realize.under_load``)."""
ALONE_KEY = "@alone_kernel_s"
"""Calibration-key entry: a fit's trial ``runtime.alone_kernel_s`` for rows timed alone."""


def _cal_key(cal: Mapping[str, float] | tuple | None) -> tuple:
    """A calibration as a hashable, sorted tuple of (field, value) (a tuple passes through)."""
    if isinstance(cal, tuple):
        return cal
    return tuple(sorted(cal.items())) if cal else ()


__all__ = ["ALONE_KEY", "KERNELS_KEY", "LOAD_KEY", "STACK_KEY", "_cal_key"]
