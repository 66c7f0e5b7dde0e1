"""System presets: YAML files in ``arch_configs/`` (shipped as package data).

A preset file describes a ``SystemSpec``. Its ``chip`` is either an inline mapping or the name
of a single-chip preset whose chip (and sources) it reuses, so a system file only adds the chip
count and the interconnect.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ..configio import apply_overrides, load_yaml, suggest, validate
from ..errors import ConfigError
from .spec import SystemSpec


def preset_dir() -> Path:
    """Folder holding the shipped system presets."""
    return Path(str(resources.files("accelsim") / "data" / "arch_configs"))


def list_presets() -> list[str]:
    """Names of the shipped system presets, sorted."""
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """Resolve a preset name or a YAML path; an unknown name suggests close matches."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such file")
        return p
    candidate = preset_dir() / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate.resolve()
    raise ConfigError(f"unknown system preset {str(name_or_path)!r}.{suggest(str(name_or_path), list_presets())}"
                      f" Run `accelsim presets` for the list.")


def load_raw(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The preset as a plain mapping with its chip reference resolved, and its origin (file)."""
    path = preset_path(name_or_path)
    origin = str(path)
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    chip = data.get("chip")
    if isinstance(chip, str):
        if chip in _seen or chip == path.stem:
            raise ConfigError(f"{origin}: chip: circular reference to preset {chip!r}")
        base, _ = load_raw(chip, _seen + (path.stem,))
        if "chip" not in base or not isinstance(base["chip"], dict):
            raise ConfigError(f"{origin}: chip: preset {chip!r} has no inline chip")
        data["chip"] = base["chip"]
        sources = {k: v for k, v in base.get("sources", {}).items() if k.startswith("chip")}
        sources.update(data.get("sources") or {})
        data["sources"] = sources
    return data, origin


def load_system(name_or_path: str | Path, overrides: Iterable[str] = (),
                calibration: str | Path | None = None) -> SystemSpec:
    """Load a system preset (name or YAML path), apply ``path=value`` overrides and an optional
    calibration file (a YAML mapping of ``chip.calibration`` fields, or of a full
    ``calibration:`` block), and validate. Errors name the field path and the file."""
    data, origin = load_raw(name_or_path)
    overrides = list(overrides)
    if calibration is not None:
        cal = load_yaml(Path(calibration))
        cal = cal.get("calibration", cal)
        if not isinstance(cal, dict):
            raise ConfigError(f"{calibration}: calibration must be a mapping")
        data = apply_overrides(data, [f"chip.calibration.{k}={v!r}" if isinstance(v, str) else f"chip.calibration.{k}={v}"
                                      for k, v in cal.items()], origin=str(calibration))
        origin += f" + {calibration}"
    if overrides:
        data = apply_overrides(data, overrides)
        origin += " (with --set " + ", ".join(overrides) + ")"
    return validate(SystemSpec, data, origin)


def validate_file(path: str | Path) -> SystemSpec:
    """Validate any system YAML; raises ConfigError listing every problem with its path."""
    return load_system(path)
