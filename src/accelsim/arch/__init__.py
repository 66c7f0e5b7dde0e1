"""Architecture specs and presets."""

from .spec import (DTYPES, Calibration, ChipSpec, Core, Dma, Energy, Hbm, Interconnect,
                   ScalarEngine, SramLevel, SystemSpec, TensorEngine, VectorEngine)
from .presets import list_presets, load_system, validate_file

__all__ = ["DTYPES", "Calibration", "ChipSpec", "Core", "Dma", "Energy", "Hbm",
           "Interconnect", "ScalarEngine", "SramLevel", "SystemSpec", "TensorEngine", "VectorEngine",
           "list_presets", "load_system", "validate_file"]
