"""Resource limits: the largest run accelsim starts without being asked. A typo such as
``--dp 1000000`` or ``--ranks 10000000`` would otherwise build a million-chip system, or an
event schedule of billions of tasks, until memory runs out; past these limits the run is refused
at once with the number it would have needed. ``accelsim --max-chips N --max-tasks N ...`` (or
the ``ACCELSIM_MAX_CHIPS`` / ``ACCELSIM_MAX_TASKS`` environment variables) raise them."""

from __future__ import annotations

import os

from .errors import WorkloadError

TASK_BYTES = 200
"""Approximate peak memory of one event-tier task: its schedule columns and dependencies (~76 B),
the engine's results (~49 B) and working arrays (~26 B), and what lowering leaves behind; peak
RSS above the process measured 158 B a task for a 32k-token prefill and 229-243 B for a
1,024-chip all-reduce, whose tasks have ~8 dependencies each (``benchmarks/scaling.py``,
2026-12-04)."""

_limits = {"chips": int(os.environ.get("ACCELSIM_MAX_CHIPS", 65_536)),
           "tasks": int(os.environ.get("ACCELSIM_MAX_TASKS", 50_000_000))}


def set_limits(chips: int | None = None, tasks: int | None = None) -> None:
    """Raise (or lower) the limits for this process."""
    if chips is not None:
        _limits["chips"] = int(chips)
    if tasks is not None:
        _limits["tasks"] = int(tasks)


def max_chips() -> int:
    return _limits["chips"]


def max_tasks() -> int:
    return _limits["tasks"]


def check_chips(n: int, what: str) -> None:
    """Refuse ``n`` chips above the limit, naming ``what`` asked for them."""
    if n > _limits["chips"]:
        raise WorkloadError(f"{what}: {n:,} chips is more than the {_limits['chips']:,} accelsim simulates without "
                            f"being asked; raise the limit with `accelsim --max-chips {n} ...` (or ACCELSIM_MAX_CHIPS)")


PIPELINE_TASK_BYTES = 480
"""Peak memory of one task of a training step's pipeline schedule (``sim.pipeline``: its passes'
program orders and dependency maps are Python objects as well): 727 MB of peak RSS for the
1.0 M tasks of a Llama-3-8B step of 100,000 microbatches over pp=2, ~250 MB of it the process
(2026-12-04)."""


def check_tasks(n: int, task_bytes: float = TASK_BYTES, what: str = "the event-tier schedule",
                instead: str = "--fidelity analytical") -> None:
    """Refuse a schedule growing past the task limit (``task_bytes`` each: the limit counts
    tasks of ``TASK_BYTES``), and in any case past the 2^31 tasks its 32-bit task ids hold;
    the message suggests ``instead``."""
    if n >= 2**31:
        raise WorkloadError(f"{what} would need {n:,} tasks or more, past the 2^31 its 32-bit task ids hold; "
                            f"use {instead}")
    if n * task_bytes / TASK_BYTES > _limits["tasks"]:
        raise WorkloadError(f"{what} would need {n:,} tasks or more (about {n * task_bytes / 2**30:.1f} GiB), past "
                            f"the limit of "
                            f"{_limits['tasks']:,} event-tier tasks; use {instead}, or raise the limit with "
                            f"`accelsim --max-tasks N ...` (or ACCELSIM_MAX_TASKS)")


__all__ = ["check_chips", "check_tasks", "max_chips", "max_tasks", "set_limits"]
