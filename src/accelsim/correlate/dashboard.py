"""A static HTML dashboard of a tracking database: one self-contained page (inline CSS, plots as
base64 PNG data URIs, no scripts, no network), so it can be archived as a CI artefact or mailed.
Rendered from ``templates/dashboard.html.j2`` by jinja2 with autoescaping on.

Runs are compared only within a configuration (the same measurement files, fidelity, mode,
calibration and stacks: ``track.configuration``): a calibrated run is never the baseline of an
uncalibrated one. Sections: the latest run's summary, the regressions (a kind's MAPE up by more
than the threshold over the previous run of its configuration), the MAPE history per kind of
each configuration, the latest predicted-vs-measured scatter, the run history table and the
latest run's per-row table (worst error first).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from . import track

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#1b1f24;max-width:1300px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.l,th.l{text-align:left}
tr.flag td,td.flag{background:#ffebe9;color:#82071e;font-weight:600}
tr.skip td{color:#8c959f}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}
.card .v{font-size:20px;font-weight:600}.card .k{font-size:12px;color:#57606a}
.ok{color:#1a7f37}.bad{color:#cf222e}
img{max-width:100%;border:1px solid #eaeef2}
.plots{display:flex;gap:16px;flex-wrap:wrap}
"""


def _pct(x: Any, digits: int = 2) -> str:
    """A fraction printed as a percentage ("" for missing)."""
    if x is None or pd.isna(x):
        return ""
    return f"{track.PERCENT * float(x):.{digits}f}%"


def _txt(x: Any) -> str:
    """Text of a cell, unescaped ("" for missing): the template escapes it."""
    return "" if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)


def _ratio(x: Any) -> str:
    """A bias (geometric mean of predicted / measured) as "x0.850" ("" for missing)."""
    return "" if x is None or pd.isna(x) else f"\u00d7{float(x):.3f}"


def _time(x: Any) -> str:
    if x is None or pd.isna(x):
        return ""
    from ..units import fmt

    return fmt(float(x), "s")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _history_png(hist: pd.DataFrame, runs: pd.DataFrame, flagged: pd.DataFrame) -> str:
    """MAPE per kind over the runs of one configuration (regressions circled)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.8))
    ax = fig.subplots()
    for kind, g in hist.groupby("kind", sort=True):
        ax.plot(g["run_id"], track.PERCENT * g["mape"], "o-", ms=4, label=str(kind))
    ax.plot(runs["id"], track.PERCENT * runs["mape"], "k--", lw=1.5, label="overall")
    if len(flagged):
        f = flagged.merge(hist, on=["run_id", "kind"], suffixes=("", "_h"))
        ax.scatter(f["run_id"], track.PERCENT * f["mape"], s=160, facecolors="none", edgecolors="red", linewidths=2,
                   label="regression", zorder=5)
    ax.set_xlabel("run id")
    ax.set_ylabel("MAPE (%)")
    ax.set_title(f"MAPE per kind, {len(runs)} run(s) of one configuration (named below)", fontsize=9)
    ax.set_ylim(bottom=0)
    if len(runs) <= 20:
        ax.set_xticks(sorted(int(i) for i in runs["id"]))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def _scatter_png(rows: pd.DataFrame, run_id: int) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.subplots()
    ok = rows[~rows["skipped"] & rows["predicted_time_s"].gt(0) & rows["measured_time_s"].gt(0)]
    for kind, g in ok.groupby("kind", sort=True):
        ax.scatter(g["measured_time_s"], g["predicted_time_s"], s=18, label=str(kind))
    if len(ok):
        lo = min(ok["measured_time_s"].min(), ok["predicted_time_s"].min()) / 1.5
        hi = max(ok["measured_time_s"].max(), ok["predicted_time_s"].max()) * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="predicted = measured")
        ax.fill_between([lo, hi], [lo * 0.75, hi * 0.75], [lo * 1.25, hi * 1.25], color="0.5", alpha=0.12,
                        label="±25%")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("predicted time (s)")
    ax.set_title(f"run {run_id}: predicted vs measured")
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


_TEMPLATE = "dashboard.html.j2"


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("accelsim.correlate", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def _profile(report: dict) -> dict[str, Any]:
    """A profile report (``accelsim profile report --json``) as the template shows it."""
    from markupsafe import Markup
    from matplotlib.figure import Figure

    from ..units import fmt

    step = float(report.get("step_s") or 0.0)
    br = report.get("breakdown_s") or {}
    fig = Figure(figsize=(8, 1.8))
    ax = fig.add_subplot()
    left = 0.0
    for k, t in br.items():
        if t > 0:
            ax.barh([0], [t * 1e3], left=left, label=k.replace("_", " "))
            left += t * 1e3
    ax.set_yticks([])
    ax.set_xlabel("step time (ms)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6), ncol=3, fontsize=7, frameon=False)
    return {"trace": str(report.get("trace", "")), "kind": str(report.get("kind", "")), "step": fmt(step, "s"),
            "system": report.get("system") or "", "unmatched": _pct(report.get("unmatched_share"), 1),
            "png": Markup(_png(fig)),
            "rows": [{"rule": k, "time": fmt(float(t), "s"), "share": _pct(float(t) / step if step else None, 1)}
                     for k, t in br.items()],
            "ops": [{"op": str(o.get("key", "")), "kind": str(o.get("kind", "")), "count": int(o.get("count", 0)),
                     "measured": fmt(float(o.get("measured_s", 0.0)), "s"), "share": _pct(o.get("share"), 1),
                     "predicted": _time(o.get("predicted_s"))} for o in (report.get("ops") or [])[:15]]}


def render(db_path: str | Path, threshold: float = track.DEFAULT_THRESHOLD_PP, profiles: Iterable[dict] = ()) -> str:
    """The dashboard page of the tracking database ``db_path`` as an HTML string (a jinja2
    template with autoescaping: every recorded text is escaped). ``profiles``: profile reports
    (``accelsim profile report --json``) shown in a section of their own."""
    from markupsafe import Markup

    runs = track.runs(db_path)
    ctx: dict[str, Any] = {"css": Markup(_CSS), "db": str(db_path), "threshold": threshold, "runs": [],
                           "configs": [], "profiles": [_profile(p) for p in profiles]}
    if runs.empty:
        return _environment().get_template(_TEMPLATE).render(**ctx)
    hist = track.history(db_path, runs)
    flagged = track.regressions(db_path, threshold, hist)
    last = runs.iloc[-1]
    run_id = int(last["id"])
    rows = track.latest_rows(db_path, run_id)
    last_flags = flagged[flagged["run_id"] == run_id]
    flagged_kinds = set(last_flags["kind"])
    commit = _txt(last["git_commit"]) or "(not a git checkout)"
    if _txt(last["git_commit"]) and last["git_dirty"] == 1:
        commit += " (dirty)"
    same = runs[runs["config"] == last["config"]]
    lk = hist[hist["run_id"] == run_id]
    ctx["last"] = {
        "id": run_id, "mape": _pct(last["mape"]), "rows": len(rows),
        "predicted": int((~rows["skipped"] & rows["predicted_time_s"].notna()).sum()),
        "regressions": len(last_flags), "baseline": len(same) > 1, "timestamp": str(last["timestamp"]),
        "label": last["label"] if isinstance(last["label"], str) else "", "version": str(last["accelsim_version"]),
        "commit": commit, "config": last["config"],
        "kinds": [{"kind": r.kind, "n": int(r.n), "mape": _pct(r.mape), "median": _pct(r.median_ape),
                   "max": _pct(r.max_ape), "bias": _ratio(r.bias), "flag": r.kind in flagged_kinds}
                  for r in lk.itertuples()]}
    ctx["regressions"] = [{"run_id": r.run_id, "label": r.label if isinstance(r.label, str) else "",
                           "config": r.config, "kind": r.kind, "prev_run_id": r.prev_run_id,
                           "prev_mape": _pct(r.prev_mape), "mape": _pct(r.mape), "delta": f"{r.delta_pp:.2f}"}
                          for r in flagged.itertuples()]
    ctx["runs"] = runs.to_dict("records")
    for config, g in runs.groupby("config", sort=False):
        ids = set(g["id"])
        ctx["configs"].append({"key": config, "runs": len(g), "png": Markup(_history_png(
            hist[hist["run_id"].isin(ids)], g, flagged[flagged["run_id"].isin(ids)]))})
    ctx["scatter"] = Markup(_scatter_png(rows, run_id))
    kinds = sorted(hist["kind"].unique())
    piv = hist.pivot(index="run_id", columns="kind", values="mape") if len(hist) else pd.DataFrame()
    flag_cells = {(int(r.run_id), r.kind) for r in flagged.itertuples()}
    ctx["kinds"] = kinds
    ctx["run_rows"] = [
        {"id": r.id, "timestamp": str(r.timestamp), "label": r.label if isinstance(r.label, str) else "",
         "config": r.config, "commit": (r.git_commit or "")[:10] if isinstance(r.git_commit, str) else "",
         "mape": _pct(r.mape),
         "cells": [{"text": _pct(piv.at[r.id, k] if r.id in piv.index and k in piv.columns else None),
                    "flag": (r.id, k) in flag_cells} for k in kinds]}
        for r in runs.iloc[::-1].itertuples()]
    rows = rows.assign(_o=rows["ape"].fillna(-1.0)).sort_values(["skipped", "_o"], ascending=[True, False])
    ctx["left_cols"] = {0, 1, 2, 3, 4, 5, 10, 11}
    ctx["rows"] = [{"skipped": bool(r.skipped), "cells": [
        _txt(r.id), _txt(r.kind), _txt(r.system), _txt(r.model), _txt(r.phase), _txt(r.op),
        _time(r.predicted_time_s), _time(r.measured_time_s),
        "" if pd.isna(r.error) else f"{track.PERCENT * r.error:+.1f}%", _pct(r.ape, 1), _txt(r.bound),
        _txt(r.reason) if r.skipped else ""]} for r in rows.itertuples()]
    ctx["inputs"] = ([(str(f["path"]), str(f["sha256"])) for f in (last["files"] or [])]
                     + [(f"system {k}", str(v or "unknown")) for k, v in sorted((last["spec_hashes"] or {}).items())])
    return _environment().get_template(_TEMPLATE).render(**ctx)


def write(db_path: str | Path, out_path: str | Path, threshold: float = track.DEFAULT_THRESHOLD_PP,
          profiles: Iterable[dict] = ()) -> Path:
    """Write the dashboard of ``db_path`` (with the ``profiles`` section) to ``out_path``."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(db_path, threshold, profiles), encoding="utf-8")
    return out
