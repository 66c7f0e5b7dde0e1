"""Correlation figures: predicted vs measured on log-log axes with +-10% and +-25% bands, and
the error of each kind as a strip plot over a box plot. Built with matplotlib's object API
(``Figure`` with an Agg canvas): no pyplot state and no backend switch, so a notebook keeps its
inline figures and a returned Figure displays itself."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .schema import KINDS


def _figure(figsize) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _colours(kinds: list[str]) -> dict[str, tuple]:
    cmap = colormaps["tab20"]
    return {k: cmap(i % 20) for i, k in enumerate(kinds)}


def _kinds(per_row) -> list[str]:
    present = set(per_row["kind"])
    return [k for k in KINDS if k in present]


def predicted_vs_measured_figure(result, title: str | None = None):
    """Predicted against measured time, log-log, one colour per kind, with the y = x line and
    the +-10% and +-25% bands. Skipped rows are not drawn (they are counted in the title)."""
    df = result.per_row
    ok = df[~df["skipped"]]
    fig, ax = _figure((6.4, 5.6))
    if len(ok):
        lo = float(min(ok["measured_time_s"].min(), ok["predicted_time_s"].min())) / 1.5
        hi = float(max(ok["measured_time_s"].max(), ok["predicted_time_s"].max())) * 1.5
    else:
        lo, hi = 1e-6, 1.0
    x = np.geomspace(lo, hi, 50)
    ax.fill_between(x, x * 0.75, x * 1.25, color="0.9", label="±25%", zorder=0)
    ax.fill_between(x, x * 0.9, x * 1.1, color="0.78", label="±10%", zorder=1)
    ax.plot(x, x, color="0.3", lw=0.8, zorder=2)
    colours = _colours(_kinds(df))
    for kind in _kinds(df):
        g = ok[ok["kind"] == kind]
        if len(g):
            ax.scatter(g["measured_time_s"], g["predicted_time_s"], s=22, color=colours[kind], label=kind,
                       edgecolor="k", linewidth=0.3, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("predicted time (s)")
    o = result.overall
    mape = o.get("mape", math.nan)
    head = title or "predicted vs measured"
    sub = f"{o['predicted']} rows, MAPE {100 * mape:.1f}%" if math.isfinite(mape) else f"{o['predicted']} rows"
    if o.get("skipped"):
        sub += f", {o['skipped']} skipped"
    ax.set_title(f"{head}\n{sub}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(True, which="major", alpha=0.3)
    return fig


def error_by_kind_figure(result, title: str | None = None):
    """Signed error (predicted / measured - 1, %) of each kind: a box per kind with every row
    drawn over it; the +-10% and +-25% bands shaded."""
    df = result.per_row
    ok = df[~df["skipped"]]
    kinds = [k for k in _kinds(df) if (ok["kind"] == k).any()]
    fig, ax = _figure((max(5.0, 0.9 * len(kinds) + 2), 4.2))
    ax.axhspan(-25, 25, color="0.9", zorder=0)
    ax.axhspan(-10, 10, color="0.78", zorder=0)
    ax.axhline(0, color="0.3", lw=0.8)
    colours = _colours(_kinds(df))
    data = [100 * ok[ok["kind"] == k]["error"].to_numpy(float) for k in kinds]
    if kinds:
        ax.boxplot(data, positions=range(len(kinds)), widths=0.5, showfliers=False,
                   medianprops={"color": "k"}, zorder=2)
        rng = np.random.default_rng(0)
        for i, (k, d) in enumerate(zip(kinds, data)):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=16, color=colours[k], edgecolor="k",
                       linewidth=0.3, zorder=3)
        ax.set_xticks(range(len(kinds)))
        ax.set_xticklabels(kinds, rotation=30, ha="right")
    ax.set_ylabel("error: predicted / measured - 1 (%)")
    ax.set_title(title or "error by kind", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return fig
