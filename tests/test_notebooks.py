"""Every notebook runs once, top to bottom, in a fresh kernel (nbclient), and every cell tagged
``figure`` shows at least one image: a library call that switched matplotlib's backend, or a
figure built but never displayed, fails here (running cells alone would pass)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_figures(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "figure" in c.get("metadata", {}).get("tags", [])]
    assert tagged, f"{path.name}: no cell tagged 'figure'"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    blank = [i for i in tagged if images(nb.cells[i]) == 0]
    assert not blank, f"{path.name}: cells {blank} are tagged 'figure' but show no image"


def test_library_never_switches_the_backend():
    """Importing accelsim's plotting modules and drawing leaves matplotlib's backend alone."""
    import importlib

    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a backend none of accelsim's code would pick
    try:
        import accelsim
        from accelsim.correlate import correlate, plots
        from accelsim.report import plots as report_plots

        importlib.reload(plots)
        importlib.reload(report_plots)
        res = accelsim.evaluate("trn2", "tiny", phase="decode", batch=1, context_len=64)
        report_plots.roofline_figure(res)
        root = Path(__file__).resolve().parents[1] / "workloads" / "measurements" / "parts"
        plots.predicted_vs_measured_figure(correlate([root / "a100_llmcompass.csv"]))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_results_show_a_card_in_notebooks_and_a_short_repr():
    import accelsim

    res = accelsim.evaluate("trn2", "tiny", phase="decode", batch=1, context_len=64)
    text = repr(res)
    assert len(text) < 300 and "tiny decode on trn2" in text and "stack neuron" in text and "calibration" in text
    html = res._repr_html_()
    assert "tokens/s" in html and "MFU" in html and "<table" in html and "mlp_up" in html
    res.warnings.append("<script>alert(1)</script>")
    assert "<script>" not in res._repr_html_()
