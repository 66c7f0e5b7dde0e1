"""Analytical tier: each op costed in closed form (``costs.op_cost``); ops run one after another
in dependency order on every chip of the tensor-parallel group, so the step time is their sum.

Identical ops (same shape and dtypes, e.g. the same projection in each of 80 layers) are costed
once per evaluation.
"""

from __future__ import annotations

import numpy as np

from ..arch.spec import SystemSpec
from ..errors import WorkloadError
from ..workload.graph import WorkloadGraph
from ..workload.ops import Op
from ..cost.op_cost import ChipModel, OpCost, op_cost

COST_FIELDS = ("compute_s", "vector_s", "memory_s", "link_s", "overhead_s", "time_s",
               "hbm_bytes", "link_bytes")


def cost_ops(ops: list[Op], system: SystemSpec | ChipModel, cache: dict[Op, OpCost] | None = None,
             library=None) -> list[OpCost]:
    """Cost each op on one chip of ``system`` (cached by op identity of shape and dtype;
    pass ``cache`` to keep the costs across calls on the same chip model). ``library``: the
    stack's collective library for a SystemSpec (a ChipModel carries its own)."""
    cm = system if isinstance(system, ChipModel) else ChipModel(system, library)
    cache = {} if cache is None else cache
    out = []
    for op in ops:
        c = cache.get(op)
        if c is None:
            c = cache[op] = op_cost(cm, op)
        out.append(c)
    return out


def check_fits(graph: WorkloadGraph, system: SystemSpec) -> None:
    """Refuse a graph whose parallel group needs more chips than the system has."""
    if graph.meta.tp > system.num_chips:
        ranks = system.chip.tp_ranks
        tp = (f"--tp {graph.meta.tp * ranks} ({ranks} NeuronCores per {system.chip.name} chip)" if ranks > 1
              else f"--tp {graph.meta.tp}")
        raise WorkloadError(f"{tp} needs {graph.meta.tp} chips but {system.name} "
                            f"has {system.num_chips}; pick a system with more chips or a smaller --tp")


def evaluate_arrays(graph: WorkloadGraph, system: SystemSpec, library=None) -> dict[str, np.ndarray]:
    """Per-op time terms as numpy arrays (keys: ``COST_FIELDS`` plus ``bound``), in the
    graph's topological order. The cheap core of ``accelsim.evaluate`` for sweeps. ``library``:
    the stack's collective library (None: the ideal bound)."""
    check_fits(graph, system)
    costs = cost_ops(graph.ops(), system, library=library)
    arrays = {f: np.array([getattr(c, f) for c in costs], dtype=float) for f in COST_FIELDS}
    arrays["bound"] = np.array([c.bound for c in costs], dtype=object)
    arrays["mapping"] = np.array([c.mapping for c in costs], dtype=object)
    return arrays
