"""The docs site builds with MkDocs in strict mode (any warning fails: a broken link, a missing
page, an API object mkdocstrings cannot find), with the input reference generated from the
models; the README links to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(site)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    system = (site / "reference" / "system" / "index.html").read_text(encoding="utf-8")
    assert "bandwidth_Bps" in system and "B/s" in system  # a generated reference table
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "evaluate_train" in api  # mkdocstrings rendered the API
    howto = (site / "howto-add-chip" / "index.html").read_text(encoding="utf-8")
    assert "accelsim validate" in howto
    for img in (ROOT / "docs" / "img").glob("*.png"):
        assert img.name in (site / "figures" / "index.html").read_text(encoding="utf-8"), img.name
    assert "mkdocs build" in (ROOT / "README.md").read_text(encoding="utf-8")
