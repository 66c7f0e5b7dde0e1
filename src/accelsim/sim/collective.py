"""Event tier for one collective: its link-transfer schedule (``lower.collective_schedule``) run
on the event engine."""

from __future__ import annotations

from ..arch.spec import SystemSpec
from ..lower.collective_schedule import collective_schedule
from .engine import simulate_schedule
from .result import SimResult


def simulate_collective(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int,
                        algorithm: str | None = None, chips=None, library=None) -> tuple[float, SimResult]:
    """(time in seconds, SimResult) of one collective in the event tier (under ``library``, the
    stack's collective library; None: the ideal bound)."""
    res = simulate_schedule(collective_schedule(system, kind, bytes_per_rank, ranks, algorithm, chips,
                                                library=library))
    return res.makespan_s, res
