"""accelsim: a cycle-approximate ML accelerator simulator and cost model.

Public API: ``load_system``, ``load_model``, ``evaluate`` (analytical or event tier),
``simulate`` (the event tier), ``evaluate_train`` (a training step), ``sweep`` (design-space
sweeps), ``correlate`` (predictions against measured silicon; ``accelsim.correlate.calibrate``
fits calibrations) and ``roofline_figure``.

Names are imported on first use, so ``import accelsim`` (and the command line) starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

_API = {
    "correlate": ("accelsim.correlate", None),  # the package is callable: accelsim.correlate(files)
    "sweep": ("accelsim.sweep", None),  # the package is callable: accelsim.sweep(space, ...)
    "evaluate": ("accelsim.api", "evaluate"),
    "evaluate_train": ("accelsim.api", "evaluate_train"),
    "simulate": ("accelsim.api", "simulate"),
    "list_presets": ("accelsim.arch.presets", "list_presets"),
    "load_system": ("accelsim.arch.presets", "load_system"),
    "list_models": ("accelsim.workload.loaders", "list_models"),
    "load_model": ("accelsim.workload.loaders", "load_model"),
    "roofline_figure": ("accelsim.report.plots", "roofline_figure"),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'accelsim' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
