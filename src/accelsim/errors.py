"""Exceptions raised for bad input. Each carries a message meant for the user, naming the
field path and the file (or other origin) the bad value came from."""


class AccelsimError(Exception):
    """Base class: an error the CLI prints without a traceback."""


class ConfigError(AccelsimError, ValueError):
    """An architecture config (YAML, --set override, preset name) is invalid."""


class WorkloadError(AccelsimError, ValueError):
    """A model config, phase, shape or parallelism plan is invalid."""


class LoweringError(AccelsimError, ValueError):
    """An op cannot be mapped onto the chip (e.g. a tile that fits no SRAM)."""


class MeasurementError(AccelsimError, ValueError):
    """A measurement file or row is invalid."""


class MigrationWarning(UserWarning):
    """An old file format was read: what was kept, what was not, and how to update the file."""
