"""Design-space sweeps: a DesignSpace (dotted-path axes over a base system and workload,
grid / zip / random / Latin-hypercube sampling, declarative constraints), a runner over any
``concurrent.futures.Executor`` that returns a pandas DataFrame (and writes resumable parquet),
Pareto fronts, sensitivity analysis and plots. Format: ``workloads/sweeps/README.md``.

``accelsim.sweep`` is both this package and the public function: calling it,
``accelsim.sweep(space, fidelity="analytical", executor=None, ...)``, runs ``runner.sweep``
(so ``from accelsim.sweep import DesignSpace`` keeps working next to the call).
"""

import sys as _sys
import types as _types

from .analysis import one_at_a_time, pareto, pareto_front, sensitivity
from .derived import CostModel
from .plots import heatmap, parallel_coordinates, pareto_plot, sensitivity_plot
from .runner import METRICS, sweep
from .space import Constraints, DesignSpace, Point, Range, WorkloadSpec, point_hash


class _CallablePackage(_types.ModuleType):
    def __call__(self, space, fidelity: str = "analytical", executor=None, batch_size=None, out=None,
                 resume: bool = False, progress: bool = True, workers=None, mode: str = "realistic", stack=None):
        """Evaluate every point of ``space`` (see ``accelsim.sweep.runner.sweep``)."""
        return sweep(space, fidelity=fidelity, executor=executor, batch_size=batch_size, out=out, resume=resume,
                     progress=progress, workers=workers, mode=mode, stack=stack)


_sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["DesignSpace", "WorkloadSpec", "Range", "Constraints", "Point", "CostModel", "point_hash", "sweep",
           "METRICS", "pareto_front", "pareto", "sensitivity", "one_at_a_time", "pareto_plot", "heatmap",
           "parallel_coordinates", "sensitivity_plot"]
