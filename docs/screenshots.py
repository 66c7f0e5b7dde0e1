"""Regenerate the screenshots of docs/img/ (headless Chromium from the Debian packages:
``apt-get install chromium``): the figures of the executed quickstart, sweep and compression
notebooks, the regression dashboard of a small tracking database, and the docs site.

Run from the repository root: ``.venv/bin/python docs/screenshots.py``. Not part of the tests
(it needs Chromium); the docs build checks that every image here is used."""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
NOTEBOOKS = {"quickstart": "01_quickstart", "sweep": "02_design_sweep", "compression": "compression_codesign"}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: apt-get install chromium")


def shoot(url: str, out: Path, width: int = 1280, height: int = 1600) -> None:
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)
    print("wrote", out.relative_to(ROOT))


def notebook_page(name: str, tmp: Path) -> Path:
    """The executed notebook's figure cells (source, then images) as one HTML page."""
    path = ROOT / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    parts = [f"<html><body style='font-family:sans-serif;margin:16px'><h2>notebooks/{name}.ipynb (executed)</h2>"]
    for cell in nb.cells:
        if "figure" not in cell.get("metadata", {}).get("tags", []):
            continue
        parts.append(f"<pre style='background:#f6f8fa;padding:6px;font-size:11px'>{html.escape(cell.source)}</pre>")
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                parts.append(f"<img style='max-width:1200px' src='data:image/png;base64,{png}'>")
    page = tmp / f"{name}.html"
    page.write_text("".join(parts) + "</body></html>", encoding="utf-8")
    return page


def dashboard_page(tmp: Path) -> Path:
    from accelsim.correlate import dashboard, track

    parts = ROOT / "workloads" / "measurements" / "parts"
    db = tmp / "track.db"
    files = [parts / "a100_llmcompass.csv", parts / "nvidia_mlengineering_mamf.csv"]
    track.track(files, db, label="nightly")
    track.track(files, db, label="event tier", fidelity="event")
    track.track(files, db, label="nightly")
    return dashboard.write(db, tmp / "dashboard.html")


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for short, name in NOTEBOOKS.items():
            shoot(notebook_page(name, tmp).as_uri(), IMG / f"notebook-{short}.png", height=1800)
        shoot(dashboard_page(tmp).as_uri(), IMG / "dashboard.png", height=2000)
        site = tmp / "site"
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
                       check=True)
        shoot((site / "reference" / "system" / "index.html").as_uri(), IMG / "docs-reference.png", height=1200)
        shoot((site / "howto-add-chip" / "index.html").as_uri(), IMG / "docs-howto.png", height=1200)


if __name__ == "__main__":
    main()
