"""Warm re-runs: a kernel run back to back on the same buffers (a bandwidth sweep, a ping-pong
copy) finds them in the chip's shared last-level memory (GPU L2, TPU CMEM) when they fit, and
streams them at that level's rate instead of HBM's.

Residency of a footprint F (the op's compulsory bytes in and out) in a shared level of
capacity C: the level serves all of it up to ``FULL_FRACTION`` x C, none of it from C on (set
conflicts and replacement evict a cyclic stream before it fills the level), linearly in between.
``FULL_FRACTION`` is a modelling assumption read off the shape of the A100 and H200 copy sweeps
in workloads/measurements/parts/multi_gpu_benches.csv (L2 rate at 0.4 C, a mix at 0.6-0.8 C,
HBM rate at 1.3 C and beyond), not a fitted value. The hit part moves at the shared level's
achievable bandwidth (``sram_efficiency``), the rest at HBM's."""

from __future__ import annotations

import dataclasses
import math

from ..workload.ops import Op
from .op_cost import ChipModel, OpCost

FULL_FRACTION = 0.5
"""Share of the shared level a warm re-run's footprint fills before it starts to miss."""


def residency(footprint_bytes: float, capacity_bytes: float) -> float:
    """Fraction of a warm re-run's traffic the shared level serves (0 without one)."""
    if capacity_bytes <= 0 or footprint_bytes <= 0:
        return 0.0
    full = FULL_FRACTION * capacity_bytes
    if footprint_bytes <= full:
        return 1.0
    return max(0.0, (capacity_bytes - footprint_bytes) / (capacity_bytes - full))


def warm_rerun(cm: ChipModel, op: Op, cost: OpCost) -> OpCost:
    """``cost`` of ``op`` re-run on buffers the previous run left in the shared level."""
    h = residency(op.bytes(), cm.shared_cap)
    if h == 0.0 or cost.memory_s == 0.0:
        return cost
    ratio = 0.0 if math.isinf(cm.shared_bw) else cm.hbm_bw / cm.shared_bw
    return dataclasses.replace(cost, memory_s=cost.memory_s * ((1.0 - h) + h * ratio))


__all__ = ["FULL_FRACTION", "residency", "warm_rerun"]
