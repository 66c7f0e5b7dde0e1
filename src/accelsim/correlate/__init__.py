"""Correlation with measured silicon: the measurement schema and loader (``schema``), row
predictions (``predict``), comparison (``compare``), calibration fitting (``calibrate``) and
figures (``plots``).

``accelsim.correlate`` is both this package and the public function: calling it,
``accelsim.correlate(files_or_dataframe, fidelity="analytical", calibration=None)``, runs
``compare.correlate`` and returns a ``CorrelationResult`` (so ``import
accelsim.correlate.calibrate`` keeps working next to the call).
"""

import sys as _sys
import types as _types

from .compare import CorrelationResult, correlate
from .schema import KINDS, MeasurementRow, load_measurements


class _CallablePackage(_types.ModuleType):
    def __call__(self, data, fidelity: str = "analytical", calibration=None, mode=None, stack=None) -> CorrelationResult:
        """Predict every measured row and compare (see ``accelsim.correlate.compare.correlate``)."""
        return correlate(data, fidelity=fidelity, calibration=calibration, mode=mode, stack=stack)


_sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["CorrelationResult", "correlate", "KINDS", "MeasurementRow", "load_measurements"]
