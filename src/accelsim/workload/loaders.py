"""Model loaders: shipped presets by name, YAML files and Hugging Face ``config.json`` files (or
folders holding one), all as validated ``ModelConfig`` objects."""

from __future__ import annotations

from pathlib import Path

from ..configio import data_dir, file_stamp, load_yaml, suggest, validate, yaml_names
from ..errors import WorkloadError
from .hf import load_hf_config
from .model import ModelConfig


def preset_dir() -> Path:
    """Folder holding the shipped workload presets."""
    return data_dir("workloads")


def list_models() -> list[str]:
    """Names of the shipped model presets, sorted."""
    return yaml_names(preset_dir())


def load_model(name_or_path: str | Path | ModelConfig) -> ModelConfig:
    """A model from a preset name (``accelsim presets``), a YAML file, a Hugging Face
    ``config.json`` (or a folder holding one). Errors name the file and the field or key. A preset
    named again is the same frozen object until its file changes (``_MODELS``)."""
    if isinstance(name_or_path, ModelConfig):
        return name_or_path
    p = Path(name_or_path)
    if p.is_dir() and (p / "config.json").exists():
        return load_hf_config(p / "config.json")
    if p.suffix == ".json":
        return load_hf_config(p)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise WorkloadError(f"{p}: no such file")
        return _load_yaml_model(p)
    candidate = preset_dir() / f"{name_or_path}.yaml"
    stamp = file_stamp(candidate)
    if stamp[0] >= 0:
        key = (str(preset_dir()), str(name_or_path))
        hit = _MODELS.get(key)
        if hit is not None and hit[1] == stamp:
            return hit[0]
        model = _load_yaml_model(candidate)
        if len(_MODELS) > 64:
            _MODELS.clear()
        _MODELS[key] = (model, stamp)
        return model
    raise WorkloadError(f"unknown model {str(name_or_path)!r}.{suggest(str(name_or_path), list_models())}"
                        f" Run `accelsim presets` for the list, or pass a YAML file or a Hugging Face"
                        f" config.json.")


_MODELS: dict[tuple[str, str], tuple[ModelConfig, tuple[int, int]]] = {}
"""Shipped model presets by (preset folder, name), with the file's modification time and size:
a preset named in every call gets the same frozen object back until its file changes."""


def _load_yaml_model(path: Path) -> ModelConfig:
    data = load_yaml(path, error=WorkloadError)
    data.setdefault("name", path.stem)
    return validate(ModelConfig, data, str(path), error=WorkloadError)


__all__ = ["load_model", "list_models", "preset_dir"]
