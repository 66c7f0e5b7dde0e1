"""Calibration values as flat mappings: the fields ``calibrate`` fits, a ``Calibration`` as
``{field: value}`` (the per-dtype tensor table as ``tensor_dtype_efficiency.DTYPE``) and back,
and a calibration file read into that form. ``Predictor`` keys its calibrated systems by
these mappings; ``calibrate`` and the prior fit move through them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ..arch.spec import STACK_SET_FIELDS, Calibration
from ..errors import ConfigError


def calibration_fields() -> tuple[str, ...]:
    """Names of the scalar calibration fields (``arch.spec.Calibration``) that ``calibrate``
    fits (the per-dtype tensor table is set by ``accelsim priors`` or by hand; the fields the
    stack's kernels set, ``STACK_SET_FIELDS``, by realistic mode)."""
    return tuple(f for f in Calibration.model_fields
                 if f not in ("tensor_dtype_efficiency", "stack") + STACK_SET_FIELDS)


def flat_calibration(cal: Calibration, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """``cal`` as flat values (of ``fields``, default all): scalars by name, the per-dtype
    tensor table as ``tensor_dtype_efficiency.DTYPE``, and ``stack`` when it names one."""
    out: dict[str, Any] = {}
    for k in Calibration.model_fields if fields is None else fields:
        if k == "tensor_dtype_efficiency":
            out.update({f"{k}.{d}": float(v) for d, v in cal.tensor_dtype_efficiency.items()})
        elif k == "stack":
            if cal.stack is not None:
                out[k] = cal.stack
        else:
            out[k] = float(getattr(cal, k))
    return out


def calibration_update(values: Mapping[str, Any], dtype_table: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Flat values (``flat_calibration``) as a ``Calibration`` update; per-dtype entries are
    merged into ``dtype_table`` (default empty)."""
    upd: dict[str, Any] = {}
    for f, v in values.items():
        if f.startswith("tensor_dtype_efficiency."):
            upd.setdefault("tensor_dtype_efficiency", dict(dtype_table or {}))[f.split(".", 1)[1]] = float(v)
        else:
            upd[f] = v
    return upd


def read_calibration(calibration: Any) -> tuple[dict[str, Any], str | None]:
    """(field values, chip name or None) of a calibration: a YAML path or a mapping in a format
    ``arch.calfile`` reads (as ``accelsim calibrate`` writes it, or bare Calibration fields), or
    a ``Calibration``. Per-dtype tensor fractions come as ``tensor_dtype_efficiency.DTYPE``; the
    stack the overheads were fitted under as ``stack``. Values are checked against
    ``Calibration`` (units, bounds, unknown fields); errors name the file and the field."""
    from ..arch.calfile import parse
    from ..configio import load_yaml, validate

    if calibration is None:
        return {}, None
    origin = "calibration"
    if isinstance(calibration, Calibration):
        block, chip = calibration.model_dump(), None
    elif isinstance(calibration, (str, Path)):
        origin = str(calibration)
        block, chip = parse(load_yaml(Path(calibration)), origin)
    elif isinstance(calibration, Mapping):
        block, chip = parse(dict(calibration), origin)
    else:
        raise ConfigError(f"calibration must be a YAML path, a mapping or a Calibration, "
                          f"got {type(calibration).__name__}")
    return flat_calibration(validate(Calibration, dict(block), origin), block), chip


__all__ = ["calibration_fields", "calibration_update", "flat_calibration", "read_calibration"]
