"""Timing one kernel call: warm-up, repeats, median.

CUDA: each sample brackets one call with CUDA events and synchronizes, so it is the GPU time of
that call (kernel launch gaps inside the call included). CPU: ``time.perf_counter`` around one
call (PyTorch CPU ops are synchronous).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def time_call(fn: Callable[[], Any], device: str, warmup: int, repeats: int) -> float:
    """Median seconds of one ``fn()`` call over ``repeats`` samples after ``warmup`` calls."""
    import torch

    for _ in range(warmup):
        fn()
    samples = []
    if device == "cuda":
        torch.cuda.synchronize()
        start = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        end = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        for s, e in zip(start, end):
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        samples = [s.elapsed_time(e) * 1e-3 for s, e in zip(start, end)]
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
