"""Loading YAML configs with errors people can act on: the file, the field path, the problem."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from .errors import AccelsimError, ConfigError


def load_yaml(path: Path, error: type[AccelsimError] = ConfigError) -> dict[str, Any]:
    """Read a YAML mapping; a syntax error names the file, line and column."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise error(f"{path}{where}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validation_problems(err: ValidationError) -> list[str]:
    """One line per problem: ``dotted.path: message``."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (misspelt?)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {msg}")
    return lines


def validate(model: type[BaseModel], data: dict[str, Any], origin: str,
             error: type[AccelsimError] = ConfigError) -> Any:
    """Validate ``data`` as ``model``; every problem is reported with its path and ``origin``."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = validation_problems(e)
        head = f"{origin}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise error(head + "\n" + "\n".join(f"  {origin}: {p}" for p in problems)) from None


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], origin: str = "--set") -> dict[str, Any]:
    """Apply ``path=value`` overrides (value parsed as YAML: numbers, strings, lists) to a copy.

    The path must name an existing mapping key chain except for the last key, which may be new
    (validation then rejects it if the schema does not know it)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{origin} {item!r}: expected path=value, e.g. chip.hbm.bandwidth_Bps='3 TB/s'")
        path, raw = item.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"{origin} {item!r}: empty path")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k) if isinstance(node, dict) else None
            if not isinstance(nxt, dict):
                if isinstance(node, dict) and nxt is None:
                    nxt = node[k] = {}
                else:
                    raise ConfigError(f"{origin} {path}: {'.'.join(keys[: i + 1])} is not a mapping")
            node = nxt
        node[keys[-1]] = value
    return out


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix for an unknown name, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


def data_dir(folder: str) -> Path:
    """A folder of shipped preset data (``arch_configs``, ``workloads``, ``stacks``)."""
    from importlib import resources

    return Path(str(resources.files("accelsim") / "data" / folder))


def find_preset(name_or_path: str | Path, folder: Path, what: str, hint: str) -> Path:
    """A YAML path as given, or the preset ``name`` in ``folder``; an unknown name is a
    ConfigError suggesting close matches (``what``: "system preset", ...; ``hint``: where to
    find the list)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such file")
        return p
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate.resolve()
    names = sorted(q.stem for q in folder.glob("*.yaml"))
    raise ConfigError(f"unknown {what} {str(name_or_path)!r}.{suggest(str(name_or_path), names)} {hint}")
