"""accelsim: a cycle-approximate ML accelerator simulator and cost model.

Public API: ``load_system``, ``load_model``, ``evaluate`` (analytical or event tier),
``simulate`` (the event tier), ``evaluate_train`` (a training step), ``sweep`` (design-space
sweeps), ``correlate`` (predictions against measured silicon; ``accelsim.correlate.calibrate``
fits calibrations) and ``roofline_figure``.
"""

from . import correlate  # the package is callable: accelsim.correlate(files) -> CorrelationResult
from . import sweep  # the package is callable: accelsim.sweep(space, ...) -> DataFrame
from .report.plots import roofline_figure
from .api import evaluate, evaluate_train, simulate
from .arch.presets import list_presets, load_system
from .workload.model import list_models, load_model

__version__ = "0.1.0"
__all__ = ["correlate", "evaluate", "evaluate_train", "list_models", "list_presets", "load_model", "load_system",
           "roofline_figure", "simulate", "sweep", "__version__"]
