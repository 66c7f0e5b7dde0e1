"""Timing one kernel call: warm-up, then ``repeats`` samples of one call each, timed with
``torch.utils.benchmark.Timer`` (which synchronizes CUDA around the call, so a sample is the
device time of that call, launch gaps inside it included); the median and the interquartile
range are kept, and a spread above ``NOISY`` of the median is flagged (a busy or throttling
machine: the median alone would hide it).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NOISY = 0.10
"""IQR / median above which a timing is reported as noisy."""


@dataclass(frozen=True)
class Timing:
    median_s: float
    iqr_s: float
    samples: int

    @property
    def spread(self) -> float:
        """IQR / median."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY

    def note(self) -> str:
        return (f"torch.utils.benchmark: median of {self.samples} calls, IQR {100 * self.spread:.1f} % of it"
                + (" (NOISY: more than 10 %)" if self.noisy else ""))


def time_call(fn: Callable[[], Any], device: str, warmup: int, repeats: int) -> Timing:
    """Median and IQR of one ``fn()`` call over ``repeats`` samples after ``warmup`` calls."""
    from torch.utils import benchmark

    for _ in range(warmup):
        fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    samples = [timer.timeit(1).times[0] for _ in range(max(1, repeats))]
    q = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [samples[0]] * 3
    return Timing(median_s=statistics.median(samples), iqr_s=q[2] - q[0], samples=len(samples))
