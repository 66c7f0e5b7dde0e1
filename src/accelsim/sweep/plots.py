"""Sweep figures: Pareto scatter, two-axis heatmap, parallel coordinates, sensitivity bars.

Each function draws on ``ax`` when given, else on a new ``matplotlib.figure.Figure`` (no
pyplot, so nothing depends on the backend: it works headless, and Jupyter shows a returned
Figure), and returns the Figure.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..units import fmt as _fmt_si, split_unit
from .analysis import _objectives, eligible, pareto_front


def _axes(ax, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def pareto_plot(df: pd.DataFrame, x: str, y: str, senses: tuple[str, str] = ("min", "max"), color: str | None = None,
                ax=None, logx: bool = False, logy: bool = False, title: str | None = None):
    """Scatter of ``y`` against ``x``: dominated (and infeasible) points faded, the Pareto front
    under (``x`` ``senses[0]``, ``y`` ``senses[1]``) drawn solid and joined as a staircase.
    ``color`` names a column to colour the front points by (categorical or numeric)."""
    fig, ax = _axes(ax, (6.5, 4.5))
    items = _objectives({x: senses[0], y: senses[1]})
    ok = eligible(df)
    front = pareto_front(df, items).to_numpy()
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    faded = ok & ~front
    ax.scatter(xs[faded], ys[faded], s=12, color="0.55", alpha=0.25, lw=0, label="dominated")
    bad = ~ok & np.isfinite(xs) & np.isfinite(ys)
    if bad.any():
        ax.scatter(xs[bad], ys[bad], s=12, marker="x", color="tab:red", alpha=0.25, lw=0.8, label="infeasible")
    if color is not None and color in df.columns:
        c = df[color].to_numpy()[front]
        num = pd.to_numeric(pd.Series(c), errors="coerce")
        if num.notna().all() and len(set(c)) > 8:
            sc = ax.scatter(xs[front], ys[front], c=num, s=36, cmap="viridis", zorder=3, edgecolor="k", lw=0.4)
            fig.colorbar(sc, ax=ax, label=color)
        else:
            for v in sorted(set(map(str, c))):
                m = np.array([str(t) == v for t in c])
                ax.scatter(xs[front][m], ys[front][m], s=36, zorder=3, edgecolor="k", lw=0.4, label=f"{color}={v}")
    else:
        ax.scatter(xs[front], ys[front], s=36, color="tab:blue", zorder=3, edgecolor="k", lw=0.4, label="Pareto front")
    order = np.argsort(xs[front], kind="stable")
    ax.step(xs[front][order], ys[front][order], where="post", color="tab:blue", lw=1.2, alpha=0.8, zorder=2)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(f"{_axis_name(x)}, {'lower' if senses[0] == 'min' else 'higher'} is better")
    ax.set_ylabel(f"{_axis_name(y)}, {'lower' if senses[1] == 'min' else 'higher'} is better")
    ax.set_title(title or f"Pareto front: {front.sum()} of {ok.sum()} feasible points")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def heatmap(df: pd.DataFrame, x: str, y: str, metric: str, agg: str = "median", ax=None, log: bool = False,
            annotate: bool = True, cmap: str = "viridis", fmt: str = "{:.3g}"):
    """``metric`` over two axes (aggregated with ``agg`` over the other axes)."""
    fig, ax = _axes(ax, (6.5, 4.8))
    d = df[eligible(df)]
    table = d.pivot_table(index=y, columns=x, values=metric, aggfunc=agg)
    table = table.reindex(index=sorted(table.index, key=_key), columns=sorted(table.columns, key=_key))
    vals = table.to_numpy(dtype=float)
    shown = np.log10(vals) if log else vals
    im = ax.imshow(shown, origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(table.columns)), [_label(v, x) for v in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(len(table.index)), [_label(v, y) for v in table.index])
    ax.set_xlabel(_axis_name(x))
    ax.set_ylabel(_axis_name(y))
    fig.colorbar(im, ax=ax, label=f"log10 {_axis_name(metric)}" if log else _axis_name(metric))
    if annotate and vals.size <= 150:
        mid = np.nanmean(shown) if np.isfinite(shown).any() else 0.0
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                if np.isfinite(vals[i, j]):
                    text = _label(vals[i, j], metric) if _unit(metric) else fmt.format(vals[i, j])
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] < mid else "black")
    phases = sorted(set(d["phase"].dropna().astype(str))) if "phase" in d.columns else []
    ax.set_title(f"{agg} {_axis_name(metric)}" + (f", {'/'.join(phases)}" if phases else ""))
    return fig


def parallel_coordinates(df: pd.DataFrame, columns: Iterable[str], color: str | None = None, highlight=None,
                         ax=None, log: Iterable[str] = (), max_lines: int = 2000):
    """One polyline per point across ``columns`` (each scaled to [0, 1]; categorical columns by
    their sorted values; columns in ``log`` on a log scale), coloured by ``color``. ``highlight``
    (a boolean mask, e.g. a Pareto front) draws those points bold on top of the rest."""
    fig, ax = _axes(ax, (8.5, 4.5))
    cols = list(columns)
    d = df[eligible(df)]
    hl = None
    if highlight is not None:
        hl = np.asarray(highlight, dtype=bool)[eligible(df)]
    if len(d) > max_lines:
        keep = np.linspace(0, len(d) - 1, max_lines).astype(int)
        if hl is not None:
            keep = np.union1d(keep, np.flatnonzero(hl))
        d = d.iloc[keep]
        hl = hl[keep] if hl is not None else None
    logs = set(log)
    scaled, ticks = [], []
    for c in cols:
        v = pd.to_numeric(d[c], errors="coerce")
        if v.notna().all():
            v = v.to_numpy(dtype=float)
            t = np.log10(v) if c in logs and (v > 0).all() else v
            lo, hi = float(np.min(t)), float(np.max(t))
            scaled.append((t - lo) / (hi - lo) if hi > lo else np.full(len(t), 0.5))
            ticks.append((_label(float(np.min(v))), _label(float(np.max(v)))))
        else:
            cats = sorted(d[c].astype(str).unique())
            pos = {k: i for i, k in enumerate(cats)}
            n = max(len(cats) - 1, 1)
            scaled.append(np.array([pos[k] / n for k in d[c].astype(str)]))
            ticks.append((cats[0], cats[-1]))
    ys = np.column_stack(scaled) if scaled else np.empty((len(d), 0))
    xs = np.arange(len(cols))
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    if color is not None:
        cv = pd.to_numeric(d[color], errors="coerce").to_numpy(dtype=float)
        lo, hi = np.nanmin(cv), np.nanmax(cv)
        norm = (cv - lo) / (hi - lo) if hi > lo else np.full(len(cv), 0.5)
    else:
        norm = np.full(len(d), 0.5)
    for i in range(len(d)):
        bold = hl is not None and hl[i]
        if not bold:
            ax.plot(xs, ys[i], color=cmap(norm[i]), alpha=0.25 if hl is not None else 0.5, lw=0.7)
    if hl is not None:
        for i in np.flatnonzero(hl):
            ax.plot(xs, ys[i], color=cmap(norm[i]), alpha=1.0, lw=2.0, zorder=3)
    for j, (lo_t, hi_t) in enumerate(ticks):
        ax.axvline(j, color="k", lw=0.8)
        ax.text(j, -0.04, lo_t, ha="center", va="top", fontsize=7)
        ax.text(j, 1.04, hi_t, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, cols, rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    if color is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        cv = pd.to_numeric(d[color], errors="coerce")
        fig.colorbar(ScalarMappable(Normalize(cv.min(), cv.max()), cmap), ax=ax, label=color)
    ax.set_title("parallel coordinates" + (" (bold: highlighted)" if hl is not None else ""))
    return fig


def sensitivity_plot(sens: pd.DataFrame, ax=None, title: str | None = None):
    """Horizontal bars of ``variance_share`` per axis (``analysis.sensitivity`` output)."""
    fig, ax = _axes(ax, (6.0, 0.45 * max(len(sens), 2) + 1.2))
    s = sens.sort_values("variance_share")
    ax.barh([str(i) for i in s.index], s["variance_share"], color="tab:blue")
    for i, (v, r) in enumerate(zip(s["variance_share"], s["ratio"])):
        ax.text(v, i, f" {100 * v:.0f}%  (x{r:.2g})", va="center", fontsize=8)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("share of variance explained (first-order)")
    ax.set_title(title or "sensitivity")
    return fig


def _key(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float, np.integer, np.floating)) else (1, 0.0, str(v))


_NAMES = {"latency_s": "latency", "tokens_per_s": "tokens/s", "energy_per_token_J": "energy per token",
          "area_mm2": "area", "power_W": "power", "sqnr_db": "SQNR proxy (dB)",
          "sqnr_plot_db": "SQNR proxy (dB; unquantized placed 10 dB right of the best)"}


def _unit(name: str) -> str:
    return split_unit(name)[1]


def _axis_name(name: str) -> str:
    """A column name with its unit spelt out: ``chip.hbm.bandwidth_Bps`` -> ``chip.hbm.bandwidth (B/s)``."""
    stem, unit = split_unit(name)
    stem = _NAMES.get(str(name), stem)
    return f"{stem} ({unit})" if unit else stem


def _label(v: Any, name: str = "") -> str:
    """A value in engineering units when its column carries one ("1.5 TB/s", "24 MiB")."""
    unit = _unit(name)
    if unit and isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v):
        if unit in ("mm²", "pJ"):  # already scaled in the name: no SI prefix on top
            return f"{float(v):.3g} {unit}"
        return _fmt_si(float(v), unit, binary=unit == "B")
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    return str(v)


__all__ = ["pareto_plot", "heatmap", "parallel_coordinates", "sensitivity_plot"]
