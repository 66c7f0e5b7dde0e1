"""The package layering of DESIGN.md as a contract: import-linter's layers contract and its
no-circles contract (both in pyproject.toml) pass on the package, and fail on a copy of it
with one upward import or one import circle added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "accelsim"

pytest.importorskip("importlinter")


def lint(src_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """import-linter with the project's contracts on the package found in ``src_dir``."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[2], no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code, str(src_dir), str(ROOT / "pyproject.toml")],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_layers_and_no_circles_hold():
    r = lint(ROOT / "src", ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Layers of DESIGN.md KEPT" in r.stdout
    assert "No import circle among the modules of any package KEPT" in r.stdout


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "src" / "accelsim", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_an_upward_import_breaks_the_layers(package_copy: Path):
    units = package_copy / "src" / "accelsim" / "units.py"
    units.write_text(units.read_text() + "\n\ndef _upward():\n    from .api import evaluate  # noqa: F401\n")
    r = lint(package_copy / "src", package_copy)
    assert r.returncode != 0
    assert "Layers of DESIGN.md BROKEN" in r.stdout
    assert "accelsim.units -> accelsim.api" in r.stdout


def test_a_circle_inside_a_layer_is_refused(package_copy: Path):
    graph = package_copy / "src" / "accelsim" / "workload" / "graph.py"
    graph.write_text(graph.read_text() + "\n\ndef _circle():\n    from .build import build  # noqa: F401\n")
    r = lint(package_copy / "src", package_copy)
    assert r.returncode != 0
    assert "No import circle among the modules of any package BROKEN" in r.stdout
