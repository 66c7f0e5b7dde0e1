"""accelsim: a cycle-approximate ML accelerator simulator and cost model.

Public API: ``load_system``, ``load_model``, ``evaluate``, ``roofline_figure`` and ``correlate``
(predictions against measured silicon; ``accelsim.correlate.calibrate`` fits calibrations).
"""

from .analysis.roofline import roofline_figure
from .api import evaluate
from .arch.presets import list_presets, load_system
from . import correlate  # the package is callable: accelsim.correlate(files) -> CorrelationResult
from .workload.model import list_models, load_model

__version__ = "0.1.0"
__all__ = ["correlate", "evaluate", "list_models", "list_presets", "load_model", "load_system",
           "roofline_figure", "__version__"]
