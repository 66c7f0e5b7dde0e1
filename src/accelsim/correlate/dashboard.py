"""A static HTML dashboard of a tracking database: one self-contained page (inline CSS, plots as
base64 PNG data URIs, no scripts, no network), so it can be archived as a CI artefact or mailed.

Sections: the latest run's summary, the runs flagged where a kind's MAPE grew by more than the
threshold, the MAPE history per kind, the latest predicted-vs-measured scatter, the run history
table and the latest run's per-row table (worst error first).
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import Any

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


def _s(x: Any) -> str:
    """Escaped text of a cell ("" for missing)."""
    return "" if x is None or (not isinstance(x, str) and pd.isna(x)) else escape(str(x))


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
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2))
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
    ax.set_title("error history per kind")
    ax.set_ylim(bottom=0)
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


def _table(header: list[str], body: list[tuple[str, list[tuple[str, str]]]], left: set[int] = frozenset()) -> str:
    """``body``: (row class, [(cell class, already-escaped text)])."""
    th = "".join(f'<th class="l">{escape(h)}</th>' if i in left else f"<th>{escape(h)}</th>"
                 for i, h in enumerate(header))
    trs = []
    for cls, cells in body:
        tds = "".join(f'<td class="{c}">{t}</td>' if c else f"<td>{t}</td>" for c, t in cells)
        trs.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


def render(db_path: str | Path, threshold: float = track.DEFAULT_THRESHOLD_PP) -> str:
    """The dashboard page of the tracking database ``db_path`` as an HTML string."""
    runs = track.runs(db_path)
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>accelsim correlation dashboard</title><style>{_CSS}</style></head><body>",
             "<h1>accelsim correlation dashboard</h1>",
             f'<p class="sub">database {escape(str(db_path))} &middot; {len(runs)} run(s) &middot; regression '
             f'threshold <span id="threshold">{threshold:g}</span> percentage points of MAPE over the previous '
             f'run &middot; error = predicted / measured &minus; 1 (negative: predicted faster than silicon), '
             f'bias = geometric mean of predicted / measured</p>']
    if runs.empty:
        parts.append("<p>No runs recorded yet: <code>accelsim track FILE --db DB</code> records one.</p>"
                     "</body></html>\n")
        return "".join(parts)
    hist = track.history(db_path)
    flagged = track.regressions(db_path, threshold)
    last = runs.iloc[-1]
    run_id = int(last["id"])
    rows = track.latest_rows(db_path, run_id)
    last_flags = flagged[flagged["run_id"] == run_id]

    # summary cards
    commit = _s(last["git_commit"]) or "(not a git checkout)"
    if _s(last["git_commit"]) and last["git_dirty"] == 1:
        commit += " (dirty)"
    status = (f'<span class="bad">{len(last_flags)} regression(s)</span>' if len(last_flags)
              else '<span class="ok">no regression</span>')
    n_pred = int((~rows["skipped"] & rows["predicted_time_s"].notna()).sum())
    cards = [("latest run", f'<span id="latest-run">{run_id}</span>'),
             ("overall MAPE", f'<span id="latest-mape">{escape(_pct(last["mape"]))}</span>'),
             ("rows predicted", f'<span id="latest-predicted">{n_pred}</span> / {len(rows)}'),
             ("vs previous run", status)]
    parts.append("<h2>Latest run</h2><div class=\"cards\">" + "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{v}</div></div>' for k, v in cards)
        + "</div>")
    parts.append(f'<p class="sub">{escape(str(last["timestamp"]))} &middot; label '
                 f'{_s(last["label"]) or "-"} &middot; accelsim {_s(last["accelsim_version"])} '
                 f'&middot; commit <code>{commit}</code></p>')
    lk = hist[hist["run_id"] == run_id]
    flagged_kinds = set(last_flags["kind"])
    parts.append(_table(["kind", "n", "MAPE", "median APE", "max APE", "bias (p/m)"],
                        [("flag" if r.kind in flagged_kinds else "",
                          [("l", escape(str(r.kind))), ("", str(int(r.n))), ("", escape(_pct(r.mape))),
                           ("", escape(_pct(r.median_ape))), ("", escape(_pct(r.max_ape))),
                           ("", escape(_ratio(r.bias)))]) for r in lk.itertuples()], left={0}))

    # regressions
    parts.append(f"<h2>Regressions (MAPE up by more than {threshold:g} pp)</h2>")
    if flagged.empty:
        parts.append('<p class="ok">None: no kind\'s MAPE grew beyond the threshold between consecutive runs.</p>')
    else:
        parts.append(_table(["run", "label", "kind", "previous run", "previous MAPE", "MAPE", "change"],
                            [("flag", [("", str(r.run_id)), ("l", _s(r.label)),
                                       ("l", _s(r.kind)), ("", str(r.prev_run_id)),
                                       ("", escape(_pct(r.prev_mape))), ("", escape(_pct(r.mape))),
                                       ("", f"+{r.delta_pp:.2f} pp")]) for r in flagged.itertuples()],
                            left={1, 2}))

    # plots
    parts.append("<h2>Error history and latest predictions</h2><div class=\"plots\">"
                 f'<img alt="MAPE per kind over runs" src="{_history_png(hist, runs, flagged)}">'
                 f'<img alt="predicted vs measured, latest run" src="{_scatter_png(rows, run_id)}"></div>')

    # run history
    kinds = sorted(hist["kind"].unique())
    piv = hist.pivot(index="run_id", columns="kind", values="mape") if len(hist) else pd.DataFrame()
    flag_cells = {(int(r.run_id), r.kind) for r in flagged.itertuples()}
    body = []
    for r in runs.iloc[::-1].itertuples():
        cells = [("", str(r.id)), ("l", escape(str(r.timestamp))), ("l", _s(r.label)),
                 ("l", _s(r.git_commit)[:10]), ("", escape(_pct(r.mape)))]
        for k in kinds:
            v = piv.at[r.id, k] if r.id in piv.index and k in piv.columns else None
            cells.append(("flag" if (r.id, k) in flag_cells else "", escape(_pct(v))))
        body.append(("", cells))
    parts.append("<h2>Runs</h2>" + _table(["run", "time (UTC)", "label", "commit", "overall MAPE"] + kinds, body,
                                          left={1, 2, 3}))

    # per-row table of the latest run, worst first
    rows = rows.assign(_o=rows["ape"].fillna(-1.0)).sort_values(["skipped", "_o"], ascending=[True, False])
    body = []
    for r in rows.itertuples():
        err = "" if pd.isna(r.error) else f"{track.PERCENT * r.error:+.1f}%"
        body.append(("skip" if r.skipped else "",
                     [("l", _s(r.id)), ("l", _s(r.kind)), ("l", _s(r.system)), ("l", _s(r.model)),
                      ("l", _s(r.phase)), ("l", _s(r.op)), ("", escape(_time(r.predicted_time_s))),
                      ("", escape(_time(r.measured_time_s))), ("", escape(err)), ("", escape(_pct(r.ape, 1))),
                      ("l", _s(r.bound)), ("l", _s(r.reason) if r.skipped else "")]))
    parts.append(f"<h2>Run {run_id}: rows (worst error first)</h2>" + _table(
        ["id", "kind", "system", "model", "phase", "op", "predicted", "measured", "error", "APE", "bound",
         "skipped: reason"], body, left={0, 1, 2, 3, 4, 5, 10, 11}))

    files = last["files"] or []
    specs = last["spec_hashes"] or {}
    parts.append("<h2>Inputs of run %d</h2>" % run_id + _table(
        ["file / system", "sha256"],
        [("", [("l", escape(str(f["path"]))), ("l", f"<code>{escape(str(f['sha256']))}</code>")]) for f in files]
        + [("", [("l", escape(f"system {k}")), ("l", f"<code>{escape(str(v or 'unknown'))}</code>")])
           for k, v in sorted(specs.items())], left={0, 1}))
    parts.append("</body></html>\n")
    return "".join(parts)


def write(db_path: str | Path, out_path: str | Path, threshold: float = track.DEFAULT_THRESHOLD_PP) -> Path:
    """Write the dashboard of ``db_path`` to ``out_path``; returns the path."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(db_path, threshold), encoding="utf-8")
    return out
