"""Analysis of sweep results: constraints, Pareto fronts, sensitivity.

All functions take the DataFrame ``sweep`` returns (or any DataFrame with the named columns).
Only rows with ``status == "ok"`` (and ``feasible`` where that column exists) take part.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..configio import suggest, whole_number
from ..errors import ConfigError

if TYPE_CHECKING:
    from .space import DesignSpace

SENSES = ("min", "max")


def apply_constraints(df: pd.DataFrame, space: "DesignSpace") -> pd.DataFrame:
    """Add ``feasible`` (evaluated and within every constraint) and ``violations`` (why not).

    Constraint keys name a column (a metric, an axis or a spec path the workers recorded); a
    ``workload.*`` key that is not an axis takes the base workload's value. A bound on a
    missing or NaN value counts as broken. Python ``space.filters`` get each row as a dict."""
    ok = (df["status"] == "ok").to_numpy()
    why: list[list[str]] = [[] for _ in range(len(df))]
    for key, sense, bound in space.constraints.bounds():
        if key in df.columns:
            vals = pd.to_numeric(df[key], errors="coerce").to_numpy(dtype=float)
        elif key.startswith("workload."):
            base = getattr(space.workload, key.split(".", 1)[1], None)
            vals = np.full(len(df), float(base) if isinstance(base, (int, float)) else math.nan)
        else:
            vals = np.full(len(df), math.nan)
        with np.errstate(invalid="ignore"):
            bad = ~(vals <= bound) if sense == "max" else ~(vals >= bound)
        for i in np.flatnonzero(bad & ok):
            why[i].append(f"{key}={vals[i]:.6g} {'>' if sense == 'max' else '<'} {bound:.6g}")
    if space.constraints.fits and "fits" in df.columns:
        for i in np.flatnonzero(ok & ~df["fits"].fillna(False).astype(bool).to_numpy()):
            why[i].append("does not fit in HBM")
    if space.filters:
        records = df.to_dict("records")
        for i in np.flatnonzero(ok):
            for fn in space.filters:
                name = getattr(fn, "__name__", "filter")
                try:
                    keep = bool(fn(records[i]))
                except Exception as e:  # a broken filter marks the row, it does not stop the sweep
                    why[i].append(f"{name} raised {type(e).__name__}: {e}")
                    continue
                if not keep:
                    why[i].append(f"rejected by {name}")
    df = df.copy()
    df["feasible"] = ok & np.array([not w for w in why], dtype=bool)
    df["violations"] = ["; ".join(w) if w else None for w in why]
    df.attrs["axes"] = list(space.axes)
    return df


def eligible(df: pd.DataFrame) -> np.ndarray:
    """Rows that count: evaluated without error and feasible (when known)."""
    mask = np.ones(len(df), dtype=bool)
    if "status" in df.columns:
        mask &= (df["status"] == "ok").to_numpy()
    if "feasible" in df.columns:
        mask &= df["feasible"].fillna(False).astype(bool).to_numpy()
    return mask


def _columns(df: pd.DataFrame, names: Iterable[str], what: str) -> None:
    """Refuse a name that is not a column of ``df`` (a bare KeyError before), with the close matches."""
    for n in names:
        if n not in df.columns:
            raise ConfigError(f"{what} {n!r} is not a column of the sweep result.{suggest(str(n), map(str, df.columns))}")


def _objectives(objectives: Mapping[str, str] | Iterable[str]) -> list[tuple[str, str]]:
    if isinstance(objectives, Mapping):
        items = list(objectives.items())
    else:
        items = [tuple(o) if isinstance(o, (tuple, list)) else (o[1:], "max") if o.startswith("-") else (o, "min")
                 for o in objectives]
    for col, sense in items:
        if sense not in SENSES:
            raise ValueError(f"objective {col!r}: sense must be 'min' or 'max', got {sense!r}")
    if not 1 <= len(items) <= 8:
        raise ValueError("give between 1 and 8 objectives")
    return items


def pareto_mask_array(values: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``values`` (n x d), every column minimized. A row is dominated when
    another is <= in every column and < in one; identical rows do not dominate each other."""
    n, d = values.shape
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    order = np.lexsort(values.T[::-1])  # by column 0, then 1, ...: a row can only be dominated by earlier rows
    front = np.empty((n, d))
    m = 0
    for i in order:
        v = values[i]
        if m:
            f = front[:m]
            if np.any(np.all(f <= v, axis=1) & np.any(f < v, axis=1)):
                continue
        front[m] = v
        m += 1
        keep[i] = True
    return keep


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str] | Iterable[str]) -> pd.Series:
    """Boolean Series: True for the Pareto-optimal rows under ``objectives`` ({column: "min" |
    "max"}, or column names, "-name" meaning maximize). Rows that are not ``eligible`` or have
    a NaN objective are never on the front."""
    items = _objectives(objectives)
    _columns(df, [c for c, _ in items], "objective")
    vals = np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) * (1.0 if s == "min" else -1.0)
                            for c, s in items]) if len(df) else np.empty((0, len(items)))
    mask = eligible(df) & np.all(np.isfinite(vals), axis=1)
    out = np.zeros(len(df), dtype=bool)
    out[np.flatnonzero(mask)] = pareto_mask_array(vals[mask])
    return pd.Series(out, index=df.index, name="pareto")


def pareto(df: pd.DataFrame, objectives: Mapping[str, str] | Iterable[str]) -> pd.DataFrame:
    """The Pareto-optimal rows, sorted by the first objective."""
    items = _objectives(objectives)
    front = df[pareto_front(df, items).to_numpy()]
    return front.sort_values(items[0][0], ascending=items[0][1] == "min")


def axis_columns(df: pd.DataFrame) -> list[str]:
    """The axis columns of a sweep result (``df.attrs["axes"]``, else the columns between
    ``point`` and ``latency_s``)."""
    axes = df.attrs.get("axes")
    if axes:
        return [a for a in axes if a in df.columns]
    cols = list(df.columns)
    if "point" in cols and "latency_s" in cols:
        return cols[cols.index("point") + 1:cols.index("latency_s")]
    raise ValueError("cannot tell the axis columns; pass axes=[...]")


def _levels(x: pd.Series, bins: int) -> pd.Series:
    """Group labels for an axis: its values, or quantile bins when numeric with many values."""
    num = pd.to_numeric(x, errors="coerce")
    if num.notna().all() and x.nunique() > bins:
        return pd.qcut(num, bins, duplicates="drop").astype(str)
    return x.map(lambda v: v if isinstance(v, (int, float, str, bool, np.integer, np.floating)) else str(v))


def sensitivity(df: pd.DataFrame, metric: str, axes: Iterable[str] | None = None, bins: int = 8,
                log: bool = False) -> pd.DataFrame:
    """Main-effect sensitivity of ``metric`` to each axis: ``variance_share`` is the first-order
    index Var(E[metric | axis]) / Var(metric) (a variance decomposition that is exact for a full
    grid and estimated for random / LHS samples, continuous axes binned into ``bins`` quantile
    bins); ``low`` / ``high`` are the smallest and largest mean of the metric over the axis's
    values, ``ratio`` their quotient, ``best_for_max`` / ``best_for_min`` the values giving
    them. ``log=True`` decomposes log10(metric) (for metrics spanning decades). Axes that are
    constant over the eligible rows are left out."""
    axes = list(axes) if axes is not None else axis_columns(df)
    _columns(df, [metric], "metric")
    _columns(df, axes, "axis")
    bins = whole_number("bins", bins, 1, ConfigError)
    d = df[eligible(df)]
    y = pd.to_numeric(d[metric], errors="coerce")
    keep = np.isfinite(y.to_numpy(dtype=float)) & ((y > 0).to_numpy() if log else True)
    d, y = d[keep], y[keep]
    z = np.log10(y) if log else y
    var = float(z.var(ddof=0)) if len(z) > 1 else 0.0
    rows = []
    for a in axes:
        lv = _levels(d[a], bins)
        if lv.nunique() < 2:
            continue  # constant in these rows: nothing to attribute
        g = z.groupby(lv.to_numpy(), sort=False)
        means, sizes = g.mean(), g.size()
        share = float((sizes * (means - z.mean()) ** 2).sum() / sizes.sum() / var) if var > 0 else 0.0
        raw = y.groupby(lv.to_numpy(), sort=False).mean()
        rows.append({"axis": a, "variance_share": share, "levels": len(means), "low": float(raw.min()),
                     "high": float(raw.max()), "ratio": float(raw.max() / raw.min()) if raw.min() > 0 else math.nan,
                     "best_for_max": raw.idxmax(), "best_for_min": raw.idxmin()})
    out = pd.DataFrame(rows, columns=["axis", "variance_share", "levels", "low", "high", "ratio", "best_for_max",
                                      "best_for_min"])
    return out.sort_values("variance_share", ascending=False).set_index("axis")


def one_at_a_time(df: pd.DataFrame, metric: str, baseline: Mapping[str, Any] | None = None,
                  axes: Iterable[str] | None = None) -> pd.DataFrame:
    """One-at-a-time deltas on a grid: for each axis, the rows where every other axis sits at
    its ``baseline`` value (default: the middle of its sorted values), with ``delta`` =
    metric / metric at the baseline - 1. Long format: axis, value, metric, delta. Axes without
    such a line (random / LHS samples) are left out: use ``sensitivity`` for those."""
    axes = list(axes) if axes is not None else axis_columns(df)
    _columns(df, [metric], "metric")
    _columns(df, axes, "axis")
    d = df[eligible(df)]
    base = dict(baseline or {})
    for a, v in base.items():  # a baseline off the grid selected no line and gave an empty table
        if a not in axes:
            raise ConfigError(f"baseline names {a!r}, which is not one of the axes: {', '.join(axes)}")
        if not (d[a] == v).any():
            values = ", ".join(map(str, sorted(d[a].dropna().unique(), key=_sort_key)))
            raise ConfigError(f"baseline {a}={v!r} is not a value of that axis in the eligible rows: {values}")
    for a in axes:
        if a not in base:
            vals = sorted(d[a].dropna().unique(), key=_sort_key)
            if vals:
                base[a] = vals[(len(vals) - 1) // 2]
    at_base = np.ones(len(d), dtype=bool)
    for a in axes:
        at_base &= (d[a] == base.get(a)).to_numpy()
    ref = d[at_base][metric]
    ref_val = float(ref.iloc[0]) if len(ref) else math.nan
    rows = []
    for a in axes:
        sel = np.ones(len(d), dtype=bool)
        for b in axes:
            if b != a:
                sel &= (d[b] == base.get(b)).to_numpy()
        line = d[sel]
        for v, m in sorted(zip(line[a], line[metric]), key=lambda t: _sort_key(t[0])):
            rows.append({"axis": a, "value": v, metric: float(m),
                         "delta": float(m) / ref_val - 1.0 if ref_val and math.isfinite(ref_val) else math.nan,
                         "baseline": v == base.get(a)})
    return pd.DataFrame(rows, columns=["axis", "value", metric, "delta", "baseline"])


def _sort_key(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float, np.integer, np.floating)) else (1, 0.0, str(v))


__all__ = ["apply_constraints", "pareto_front", "pareto", "pareto_mask_array", "sensitivity", "one_at_a_time",
           "axis_columns", "eligible"]
