"""``accelsim schema KIND``: the JSON Schema of an input file as people write it (unit strings
such as "2.4 GHz" next to plain SI numbers, a system's chip given as a preset name), generated
from the pydantic models, whose field docstrings become the descriptions. YAML language servers
(e.g. a ``# yaml-language-server: $schema=system.schema.json`` line) then complete and check
fields while a file is edited."""

from __future__ import annotations

import json
from typing import Any

import click

KINDS = ("system", "model", "stack", "sweep", "recipe")
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _model(kind: str):
    if kind == "system":
        from ..arch.spec import SystemSpec

        return SystemSpec
    if kind == "model":
        from ..workload.model import ModelConfig

        return ModelConfig
    if kind == "stack":
        from ..stack.spec import Stack

        return Stack
    if kind == "sweep":
        from ..sweep.space import DesignSpace

        return DesignSpace
    if kind == "recipe":
        from ..compress.recipes import Compression

        return Compression
    raise click.BadParameter(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")


def input_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``kind`` file (one of ``KINDS``)."""
    schema = _model(kind).model_json_schema(mode="validation")
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


@click.command("schema")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Write the schema here (default: print).")
@click.option("--markdown", is_flag=True, help="The reference page instead: a table per object (type, unit, default).")
def schema(kind: str, out: str | None, markdown: bool) -> None:
    """Print the JSON Schema of a KIND file (system, model, stack, sweep, recipe) as written by
    people: unit strings and preset references included, field docstrings as descriptions."""
    if markdown:
        from .reference import reference_markdown

        text = reference_markdown(kind) + "\n"
    else:
        text = json.dumps(input_schema(kind), indent=1, sort_keys=False) + "\n"
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)
