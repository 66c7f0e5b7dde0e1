"""accelsim: a cycle-approximate ML accelerator simulator and cost model.

Public API: ``load_system``, ``load_model``, ``evaluate`` and ``roofline_figure``.
"""

from .analysis.roofline import roofline_figure
from .api import evaluate
from .arch.presets import list_presets, load_system
from .workload.model import list_models, load_model

__version__ = "0.1.0"
__all__ = ["evaluate", "list_models", "list_presets", "load_model", "load_system", "roofline_figure",
           "__version__"]
