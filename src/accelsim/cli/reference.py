"""Reference pages of the input languages, generated from the same JSON Schema as ``accelsim
schema`` (so from the pydantic models and their field docstrings): one table per object, each
field with its type, unit, default and description. The docs site builds them (docs/hooks.py);
``accelsim schema KIND --markdown`` prints one."""

from __future__ import annotations

import json
from typing import Any

from .schema import input_schema

UNITS = (("_Bps", "B/s"), ("_bytes", "B"), ("_Hz", "Hz"), ("_pJ", "pJ"), ("_mm2", "mm²"), ("_W", "W"),
         ("_J", "J"), ("_s", "s"))
"""Field-name suffix -> SI unit (units live in field names; strings such as "2.4 GHz" parse)."""

TITLES = {"system": "System and chip YAML", "model": "Model YAML", "stack": "Software stack YAML",
          "sweep": "Sweep (design space) YAML", "recipe": "Compression recipe YAML"}


def _unit(name: str) -> str:
    return next((u for suffix, u in UNITS if name.endswith(suffix)), "")


def _type(node: dict[str, Any]) -> str:
    """A short readable type of a schema node."""
    if "$ref" in node:
        return f"[{node['$ref'].rsplit('/', 1)[-1]}](#{node['$ref'].rsplit('/', 1)[-1].lower()})"
    if "enum" in node:
        vals = node["enum"]
        shown = ", ".join(f"`{v}`" for v in vals[:8])
        return f"one of {shown}{', ...' if len(vals) > 8 else ''}"
    if "const" in node:
        return f"`{node['const']}`"
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts = []
            for alt in node[key]:
                if alt.get("type") == "string" and "pattern" in alt and parts and parts[-1] == "number":
                    parts[-1] = "number or unit string"
                    continue
                parts.append(_type(alt))
            return " or ".join(dict.fromkeys(parts))
    t = node.get("type")
    if t == "array":
        return f"list of {_type(node.get('items', {}))}" if node.get("items") else "list"
    if t == "object":
        extra = node.get("additionalProperties")
        return f"map of {_type(extra)}" if isinstance(extra, dict) and extra else "mapping"
    if t == "string" and "pattern" in node:
        return "string (pattern)"
    return {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean",
            "null": "null"}.get(t, t or "any")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return "required"
    return f"`{json.dumps(node['default'])}`"


def _table(obj: dict[str, Any]) -> list[str]:
    required = set(obj.get("required", []))
    lines = ["| field | type | unit | default | description |", "|---|---|---|---|---|"]
    for name, node in obj.get("properties", {}).items():
        default = "required" if name in required else _default(node)
        lines.append(f"| `{name}` | {_cell(_type(node))} | {_unit(name)} | {_cell(default)} | "
                     f"{_cell(node.get('description', ''))} |")
    return lines


def reference_markdown(kind: str) -> str:
    """The reference page of a ``kind`` file: the top-level object, then every nested object."""
    s = input_schema(kind)
    out = [f"# {TITLES.get(kind, kind)}", "",
           f"Generated from `accelsim schema {kind}` (the pydantic models and their field docstrings). "
           "Numbers are SI; a field whose name carries a unit also takes a string such as "
           "\"2.4 GHz\", \"24 MiB\" or \"2.9 TB/s\".", ""]
    if s.get("description"):
        out += [_cell(s["description"]), ""]
    out += _table(s) + [""]
    for name, obj in sorted(s.get("$defs", {}).items()):
        out += [f"## {name}", ""]
        if obj.get("description"):
            out += [_cell(obj["description"]), ""]
        if obj.get("properties"):
            out += _table(obj) + [""]
        else:
            out += [f"Type: {_cell(_type(obj))}", ""]
    return "\n".join(out)
