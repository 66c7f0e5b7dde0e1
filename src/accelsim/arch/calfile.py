"""Calibration files: what ``accelsim calibrate`` writes and ``--calibration`` reads.

Format 2 keeps the silicon and the software apart::

    format: 2
    chip: a100-sxm4-80gb          # a calibration is refused on another chip
    stack: cuda-eager             # the stack its rows were measured under
    hardware: {tensor_efficiency: 0.9, tensor_dtype_efficiency: {fp8: 0.8}, ...}
    stack_costs: {launch_overhead_s: 2.9e-05, ...}   # hold only under ``stack``
                                  # (``stack: null``: under every stack)

A bare mapping of ``Calibration`` fields (hand-written) applies as written. A file from before
format 2 (a ``calibration:`` block) loads with a ``MigrationWarning``: its hardware fields
apply, its overheads do not, because it does not name the stack they were measured under."""

from __future__ import annotations

import warnings
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, MigrationWarning
from .spec import HARDWARE_FIELDS, STACK_FIELDS, Calibration

FORMAT = 2


def parse(doc: Any, origin: str) -> tuple[dict[str, Any], str | None]:
    """(Calibration fields, chip it was fitted on or None) of a calibration document."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{origin}: a calibration must be a mapping, got {type(doc).__name__}")
    if "hardware" in doc or "format" in doc:
        if doc.get("format", FORMAT) != FORMAT:
            raise ConfigError(f"{origin}: format: {doc.get('format')!r} is not a calibration format this "
                              f"accelsim reads (it reads {FORMAT})")
        fields: dict[str, Any] = {}
        for block, allowed in (("hardware", HARDWARE_FIELDS), ("stack_costs", STACK_FIELDS)):
            part = doc.get(block) or {}
            if not isinstance(part, Mapping):
                raise ConfigError(f"{origin}: {block}: must be a mapping of {', '.join(allowed)}")
            bad = [k for k in part if k not in allowed]
            if bad:
                raise ConfigError(f"{origin}: {block}.{bad[0]}: not a {block} field; "
                                  f"{block} holds {', '.join(allowed)}")
            fields.update(part)
        fields["stack"] = doc.get("stack")
        return fields, _chip(doc, origin)
    if "calibration" in doc:  # format 1 (accelsim calibrate before stacks)
        block = doc["calibration"]
        if not isinstance(block, Mapping):
            raise ConfigError(f"{origin}: calibration: must be a mapping of Calibration fields")
        dropped = {k: v for k, v in block.items() if k in STACK_FIELDS and v}
        if dropped:
            warnings.warn(
                f"{origin} was written before calibrations named their software stack: its hardware fields "
                f"apply, its overheads ({', '.join(f'{k}={v:.3g}' for k, v in dropped.items())}) do not, because "
                f"they hold only under the stack its rows were measured on and the file does not say which. "
                f"Re-fit it with `accelsim calibrate FILES --system SYSTEM [--stack NAME] -o {Path(origin).name}` "
                f"to keep them.", MigrationWarning, stacklevel=3)
        return {k: v for k, v in block.items() if k not in STACK_FIELDS}, _chip(doc, origin)
    return dict(doc), None


def _chip(doc: Mapping, origin: str) -> str | None:
    chip = doc.get("chip")
    if chip is not None and not isinstance(chip, str):
        raise ConfigError(f"{origin}: chip: must be a chip name, got {chip!r}")
    return chip


def document(cal: Calibration, chip: str, stack: str | None) -> dict[str, Any]:
    """The format-2 mapping of a fitted calibration (without the fit's metadata)."""
    hw = {f: getattr(cal, f) for f in HARDWARE_FIELDS}
    hw["tensor_dtype_efficiency"] = dict(hw["tensor_dtype_efficiency"])
    costs = {f: getattr(cal, f) for f in STACK_FIELDS}
    return {"format": FORMAT, "chip": chip, "stack": stack, "hardware": hw, "stack_costs": costs}


__all__ = ["FORMAT", "document", "parse"]
