"""``accelsim schema KIND``: the JSON Schema of each input language validates every shipped file
of that kind as written (unit strings, preset references, stack bases) and refuses what the
loaders refuse in the common cases (a misspelt field, a unit of the wrong kind, an unknown
format)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, Field

from accelsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"system": sorted((ROOT / "arch_configs").glob("*.yaml")),
           "model": sorted((ROOT / "workloads").glob("*.yaml")),
           "stack": sorted((ROOT / "stacks").glob("*.yaml")),
           "sweep": sorted((ROOT / "workloads" / "sweeps").glob("*.yaml")),
           "recipe": sorted((ROOT / "workloads" / "recipes").glob("*.yaml"))}


def schema_of(kind: str) -> dict:
    r = CliRunner().invoke(main, ["schema", kind])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_schema_validates_every_shipped_file_as_written(kind):
    schema = schema_of(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    assert SHIPPED[kind]
    for path in SHIPPED[kind]:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in v.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, f"{path.name}: {errors[:3]}"


def test_schema_descriptions_come_from_the_field_docstrings():
    s = schema_of("system")
    hbm = s["$defs"]["Hbm"]["properties"]["bandwidth_Bps"]
    assert "bandwidth" in hbm["description"].lower()
    assert any(alt.get("type") == "string" for alt in hbm["anyOf"])  # "2.9 TB/s" is allowed
    assert any(alt.get("type") == "string" for alt in s["properties"]["chip"]["anyOf"])  # chip: h100-sxm-80gb


class _Inner(BaseModel):
    depth: int = 1
    """How deep."""


class _Base(BaseModel):
    width: int = 1
    """The base's width."""
    height: int = 2
    """The base's height."""
    given: int = Field(3, description="said in Field")
    """not this"""


class _Child(_Base):
    height: int = 4
    """The child's height."""
    inner: list[_Inner] | None = None
    """Inner parts."""
    plain: int = 0


def test_field_docstrings_are_read_when_a_schema_is_asked_for():
    """``fielddocs.describe``: a field's description is the string under it in its own class
    (a subclass's for a field it declares again, the base's otherwise), a ``Field`` description
    stays, a model inside a field is described too, and validation is unchanged."""
    from accelsim.fielddocs import describe

    before = _Child(width=5, inner=[{"depth": 2}])
    assert _Child.model_fields["width"].description is None  # nothing read at import
    describe(_Child)
    props = _Child.model_json_schema()["properties"]
    assert props["width"]["description"] == "The base's width."
    assert props["height"]["description"] == "The child's height."
    assert props["given"]["description"] == "said in Field"
    assert "description" not in props["plain"]
    assert _Inner.model_json_schema()["properties"]["depth"]["description"] == "How deep."
    assert _Child(width=5, inner=[{"depth": 2}]) == before


def test_schema_refuses_what_the_loaders_refuse():
    system = jsonschema.Draft202012Validator(schema_of("system"))
    good = yaml.safe_load((ROOT / "arch_configs" / "trn2.yaml").read_text())
    assert not list(system.iter_errors(good))
    typo = {**good, "chip": {**good["chip"], "hbm": {**good["chip"]["hbm"], "bandwith_Bps": "2.9 TB/s"}}}
    assert list(system.iter_errors(typo))
    wrong_unit = {**good, "chip": {**good["chip"], "hbm": {**good["chip"]["hbm"], "bandwidth_Bps": "2.9 GHz"}}}
    assert list(system.iter_errors(wrong_unit))
    recipe = jsonschema.Draft202012Validator(schema_of("recipe"))
    assert not list(recipe.iter_errors({"weights": "int4-g64-bf16", "kv_cache": "fp8"}))
    assert list(recipe.iter_errors({"weights": "int5-gx"}))
    stack = jsonschema.Draft202012Validator(schema_of("stack"))
    assert list(stack.iter_errors({"name": "x"}))  # neither a base nor the required fields


def test_schema_to_a_file(tmp_path):
    out = tmp_path / "model.schema.json"
    r = CliRunner().invoke(main, ["schema", "model", "-o", str(out)])
    assert r.exit_code == 0 and json.loads(out.read_text())["$id"].endswith("model.schema.json")
    r = CliRunner().invoke(main, ["schema", "chip"])
    assert r.exit_code == 2 and "chip" in r.output
