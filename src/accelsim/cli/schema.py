"""``accelsim schema KIND``: the JSON Schema of an input file as people write it (unit strings
such as "2.4 GHz" next to plain SI numbers, a system's chip given as a preset name), generated
from the pydantic models, whose field docstrings become the descriptions. YAML language servers
(e.g. a ``# yaml-language-server: $schema=system.schema.json`` line) then complete and check
fields while a file is edited. ``--markdown`` prints the reference page built from the same
schema (one table per object: type, unit, default, description), which the docs site builds."""

from __future__ import annotations

import json
from typing import Any

import click

DRAFT = "https://json-schema.org/draft/2020-12/schema"


_MODELS = {"system": ("..arch.spec", "SystemSpec"), "model": ("..workload.model", "ModelConfig"),
           "stack": ("..stack.spec", "Stack"), "sweep": ("..sweep.space", "DesignSpace"),
           "recipe": ("..compress.recipes", "Compression"), "kernels": ("..stack.spec", "KernelLibrary")}
"""Kind -> (module, pydantic model) of each input language (imported when asked for)."""
KINDS = tuple(_MODELS)


def _model(kind: str):
    import importlib

    if kind not in _MODELS:
        raise click.BadParameter(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    module, name = _MODELS[kind]
    return getattr(importlib.import_module(module, __package__), name)


def input_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``kind`` file (one of ``KINDS``)."""
    from ..fielddocs import describe

    model = _model(kind)
    describe(model)
    schema = model.model_json_schema(mode="validation")
    if kind == "system":
        chip = schema["properties"]["chip"]
        schema["properties"]["chip"] = {
            "description": chip.get("description", "The chip."),
            "anyOf": [{"type": "string", "description": "a single-chip preset (accelsim presets) or its YAML "
                                                        "path, whose chip and chip sources the system reuses"},
                      {"$ref": chip["$ref"]}]}
    if kind == "stack":  # a stack may extend another (base: NAME), deep-merged: then nothing is required
        schema["properties"] = {"base": {"type": "string", "description": "a stack this one extends: its "
                                         "fields are deep-merged under this file's"}, **schema["properties"]}
        required = schema.pop("required", [])
        schema["anyOf"] = [{"required": ["base"]}, {"required": required}]
    if kind == "recipe":  # number formats: the named ones, or the group-wise integer family
        from ..compress import formats

        fmt = {"anyOf": [{"enum": sorted(set(formats.FORMATS) | set(formats._ALIASES))},
                         {"type": "string", "pattern": formats._GROUP.pattern}, {"type": "null"}]}
        for props in (schema["properties"], schema["$defs"]["LayerOverride"]["properties"]):
            for name in ("weights", "activations", "kv_cache"):
                if name in props:
                    props[name] = {**{k: v for k, v in props[name].items() if k != "anyOf"}, **fmt}
    return {"$schema": DRAFT, "$id": f"https://accelsim.dev/schema/{kind}.schema.json", **schema}


TITLES = {"system": "System and chip YAML", "model": "Model YAML", "stack": "Software stack YAML",
          "sweep": "Sweep (design space) YAML", "recipe": "Compression recipe YAML"}


def _unit(name: str) -> str:
    from ..units import split_unit

    return split_unit(name)[1]


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


@click.command("schema")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the schema here (default: print).")
@click.option("--markdown", is_flag=True, help="The reference page instead: a table per object (type, unit, default).")
def schema(kind: str, out: str | None, markdown: bool) -> None:
    """Print the JSON Schema of a KIND file (system, model, stack, sweep, recipe) as written by
    people: unit strings and preset references included, field docstrings as descriptions."""
    if markdown:
        text = reference_markdown(kind) + "\n"
    else:
        text = json.dumps(input_schema(kind), indent=1, sort_keys=False) + "\n"
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)
