"""MkDocs hook: before every build, (re)generate the input reference pages from the pydantic
models (``accelsim schema KIND --markdown``), so they can never go stale, and the JSON Schemas
next to them for editors."""

from __future__ import annotations

import json
from pathlib import Path


def on_pre_build(config, **kwargs) -> None:
    from accelsim.cli.schema import KINDS, input_schema, reference_markdown

    out = Path(config["docs_dir"]) / "reference"
    out.mkdir(exist_ok=True)
    for kind in KINDS:
        page = reference_markdown(kind) + (
            f"\n\nThe JSON Schema of this language: `accelsim schema {kind} -o {kind}.schema.json`; "
            f"put `# yaml-language-server: $schema={kind}.schema.json` at the top of a file for completion "
            "and checks in editors.\n")
        path = out / f"{kind}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != page:
            path.write_text(page, encoding="utf-8")
        schema = json.dumps(input_schema(kind), indent=1) + "\n"
        spath = out / f"{kind}.schema.json"
        if not spath.exists() or spath.read_text(encoding="utf-8") != schema:
            spath.write_text(schema, encoding="utf-8")
