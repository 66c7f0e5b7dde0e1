"""Event tier: lower a graph to tile tasks, run the event engine, attribute the critical path."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .critical_path import Attribution, critical_path
from ..arch.spec import SystemSpec
from ..lower.lowering import lower
from ..lower.schedule import Schedule
from ..workload.graph import WorkloadGraph
from .engine import simulate_schedule
from .result import SimResult, group_min_max

CATEGORY_TO_BOUND = {"compute": "compute", "hbm": "memory", "dma": "memory", "sram": "memory",
                     "vector": "vector", "interconnect": "interconnect", "overhead": "overhead"}
"""How critical-path categories roll up into the analytical tier's bound labels."""


@dataclass
class EventRun:
    """Everything one event-tier run produced."""

    schedule: Schedule
    result: SimResult
    attribution: Attribution

    @property
    def makespan_s(self) -> float:
        return self.result.makespan_s

    def op_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(first start, last end) of each op's tasks, indexed like schedule.op_names."""
        s, r = self.schedule, self.result
        first, last = group_min_max(s.op, len(s.op_names), r.start_s, r.end_s)
        return first, np.maximum(last, 0.0)


def simulate(graph: WorkloadGraph, system: SystemSpec, library=None, warm: bool = False) -> EventRun:
    """Lower ``graph`` to one chip of ``system`` and simulate it event by event (collectives
    under ``library``, the stack's collective library; None: the ideal bound; ``warm``: each op
    a re-run on buffers the chip-shared level still holds, ``cost.cache``)."""
    schedule = lower(graph, system, library, warm=warm)
    result = simulate_schedule(schedule)
    return EventRun(schedule=schedule, result=result, attribution=critical_path(result))
