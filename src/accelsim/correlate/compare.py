"""Compare predictions with measurements: per-row error, error per kind, overall figures.

Error measures (``m`` measured, ``p`` predicted, over the predicted rows):

- ``ape`` = |p - m| / m, the absolute percentage error of a row (as a fraction);
- ``error`` = p / m - 1 (negative: the prediction is faster than silicon);
- ``mape`` = mean APE, ``median_ape``, ``max_ape`` (the worst case);
- ``bias`` = the geometric mean of p / m (1 = unbiased; 0.8 = predictions 20% fast).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import MeasurementError
from .calvalues import read_calibration
from .predict import FIDELITIES, Predictor
from .schema import KINDS, load_measurements, rows_of, validate_frame

PER_ROW_COLUMNS = ("id", "kind", "system", "model", "phase", "op", "predicted_time_s", "measured_time_s", "ape",
                   "error", "bound", "skipped", "reason", "fidelity", "mfu", "measured_mfu", "memory_fraction",
                   "note")
"""``mfu`` / ``measured_mfu``: a training row's model FLOPs utilisation (6 x parameters x tokens
plus attention, against the dense peak of its compute dtype) at the predicted / measured step
time; NaN for other rows. ``memory_fraction``: a training row's predicted peak memory per chip
over the chip's HBM (above 1: the configuration would not fit). ``note``: how the prediction read
what the row leaves open (an offline throughput row's batch, set by its engine)."""
BY_KIND_COLUMNS = ("kind", "n", "mape", "median_ape", "max_ape", "bias")


@dataclass
class CorrelationResult:
    """Predictions against measurements."""

    per_row: pd.DataFrame
    """One row per measurement (``PER_ROW_COLUMNS``): skipped rows have NaN predictions and a
    reason."""
    by_kind: pd.DataFrame
    """Per kind (schema order): n predicted, mape, median_ape, max_ape, bias."""
    overall: dict[str, Any]
    """rows, predicted, skipped, mape, median_ape, max_ape, bias, fidelity, calibrated."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """{id, reason} of every row that could not be predicted."""
    groups: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Column -> ``breakdown`` of the rows by it, for those asked for (``accelsim correlate --by``)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures: the overall numbers, ``skipped`` (a count) with
        ``skipped_rows`` ({id, reason}), ``by_kind`` (kind -> {n, mape, median_ape, max_ape,
        bias}), ``by`` (column -> the ``breakdown`` records, when asked for) and ``per_row`` (list of
        {id, kind, system, predicted_time_s, measured_time_s, ape, error, bound, skipped, reason, note})."""
        per_row = []
        for r in self.per_row.itertuples(index=False):
            per_row.append({"id": r.id, "kind": r.kind, "system": r.system,
                            "predicted_time_s": _num(r.predicted_time_s), "measured_time_s": _num(r.measured_time_s),
                            "ape": _num(r.ape), "error": _num(r.error), "bound": r.bound,
                            "skipped": bool(r.skipped), "reason": r.reason, "note": r.note})
        by_kind = {r.kind: {"n": int(r.n), "mape": _num(r.mape), "median_ape": _num(r.median_ape),
                            "max_ape": _num(r.max_ape), "bias": _num(r.bias)}
                   for r in self.by_kind.itertuples(index=False)}
        out = {k: (_num(v) if isinstance(v, float) else v) for k, v in self.overall.items()}
        out.update(skipped_rows=list(self.skipped), by_kind=by_kind, per_row=per_row)
        if self.groups:
            out["by"] = {col: [{k: (_num(v) if isinstance(v, float) else v) for k, v in rec.items()}
                               for rec in table.to_dict("records")] for col, table in self.groups.items()}
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict`` as JSON (NaN as null)."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """The per-kind table and the overall line, as text."""
        # a space before every column, so that an error of millions of per cent stays readable
        lines = [f"{'kind':<14}{'n':>4} {'MAPE':>8} {'median':>8} {'worst':>8} {'bias':>7}"]
        for r in self.by_kind.itertuples(index=False):
            lines.append(f"{r.kind:<14}{int(r.n):>4} {_pct(r.mape):>8} {_pct(r.median_ape):>8} {_pct(r.max_ape):>8}"
                         f" {r.bias:>7.3f}")
        o = self.overall
        lines.append(f"{'all':<14}{o['predicted']:>4} {_pct(o['mape']):>8} {_pct(o['median_ape']):>8}"
                     f" {_pct(o['max_ape']):>8} {o['bias']:>7.3f}")
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write per_row.csv (id, kind, system, predicted_time_s, measured_time_s, ape, bound, ...),
        predicted_vs_measured.png and error_by_kind.png into ``out_dir``."""
        from .plots import error_by_kind_figure, predicted_vs_measured_figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cols = ["id", "kind", "system", "predicted_time_s", "measured_time_s", "ape", "bound", "error", "skipped",
                "reason"]
        paths = [out / "per_row.csv", out / "predicted_vs_measured.png", out / "error_by_kind.png"]
        from ..configio import spreadsheet_safe

        spreadsheet_safe(self.per_row[cols]).to_csv(paths[0], index=False)
        for fig_fn, path in ((predicted_vs_measured_figure, paths[1]), (error_by_kind_figure, paths[2])):
            fig_fn(self).savefig(path, dpi=110, bbox_inches="tight")
        return paths


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.1f}%"


def measurements(data: Any) -> pd.DataFrame:
    """A validated measurement frame from a path, a list of paths or a DataFrame (a frame that
    ``load_measurements`` returned is used as is)."""
    if isinstance(data, pd.DataFrame):
        if "origin" in data.columns and data.attrs.get("accelsim_validated"):
            return data
        return validate_frame(data)
    if isinstance(data, (str, Path)):
        data = [data]
    try:
        paths = list(data)
    except TypeError:
        raise MeasurementError(f"expected measurement file paths or a DataFrame, got {type(data).__name__}") from None
    df = load_measurements(paths)
    df.attrs["accelsim_validated"] = True
    return df


def summarize(per_row: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(by_kind, overall) error figures of a per-row table."""
    ok = per_row[~per_row["skipped"]]
    recs = []
    present = [k for k in KINDS if k in set(per_row["kind"])]
    for kind in present:
        g = ok[ok["kind"] == kind]
        recs.append({"kind": kind, **_stats(g)})
    by_kind = pd.DataFrame.from_records(recs, columns=list(BY_KIND_COLUMNS))
    overall = {"rows": int(len(per_row)), "predicted": int(len(ok)), "skipped": int(per_row["skipped"].sum()),
               **{k: v for k, v in _stats(ok).items() if k != "n"}}
    return by_kind, overall


def _stats(g: pd.DataFrame) -> dict[str, Any]:
    n = len(g)
    if n == 0:
        return {"n": 0, "mape": math.nan, "median_ape": math.nan, "max_ape": math.nan, "bias": math.nan}
    ape = g["ape"].to_numpy(float)
    ratio = (g["predicted_time_s"] / g["measured_time_s"]).to_numpy(float)
    return {"n": n, "mape": float(ape.mean()), "median_ape": float(np.median(ape)), "max_ape": float(ape.max()),
            "bias": float(np.exp(np.log(ratio).mean()))}


GROUPS = ("kind", "system", "model", "phase", "stack", "metric", "dtype", "file")
"""What ``breakdown`` groups rows by: a measurement column, or ``file`` (the file a row came from)."""
BREAKDOWN_COLUMNS = ("group", "n", "mape", "median_ape", "max_ape", "bias", "within_15")


def breakdown(per_row: pd.DataFrame, frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Error figures of the predicted rows grouped by ``by`` (one of ``GROUPS``), the groups with
    the most rows beyond 15 % first: n, mape, median_ape, max_ape, bias and ``within_15``, the
    share of the group's rows within 15 % of the measurement. ``frame``: the measurement rows
    (``load_measurements``) the per-row table came from; rows that leave the column empty (a
    row without a stack runs its system's default) form the group "-"."""
    if by not in GROUPS:
        raise MeasurementError(f"cannot group by {by!r}; use one of {', '.join(GROUPS)}")
    ok = per_row[~per_row["skipped"]]
    info = frame.set_index("id")
    column = "origin" if by == "file" else by
    if column not in info.columns:  # e.g. rows made from a profiler trace: no file
        labels = pd.Series("", index=info.index)
    elif by == "file":
        labels = info["origin"].astype(str).str.rsplit(":", n=1).str[0].map(lambda f: Path(f).name)
    else:
        labels = info[by]
    keys = [("-" if pd.isna(v) or v == "" else str(v)) for v in labels.reindex(ok["id"]).tolist()]
    recs = []
    for group, g in ok.groupby(pd.Series(keys, index=ok.index), sort=True):
        recs.append({"group": group, **_stats(g), "within_15": float((g["ape"] <= 0.15).mean())})
    out = pd.DataFrame.from_records(recs, columns=list(BREAKDOWN_COLUMNS))
    misses = out["n"] * (1 - out["within_15"])
    return out.assign(_m=misses).sort_values(["_m", "group"], ascending=[False, True], kind="stable").drop(
        columns="_m").reset_index(drop=True)


def breakdown_table(table: pd.DataFrame, by: str) -> str:
    """``breakdown``'s figures as text, one line a group."""
    width = max([len(by)] + [len(str(g)) for g in table["group"]]) + 2
    lines = [f"{by:<{width}}{'n':>4} {'MAPE':>8} {'median':>8} {'worst':>8} {'bias':>7} {'within 15 %':>12}"]
    for r in table.itertuples(index=False):
        lines.append(f"{r.group:<{width}}{int(r.n):>4} {_pct(r.mape):>8} {_pct(r.median_ape):>8} {_pct(r.max_ape):>8}"
                     f" {r.bias:>7.3f} {_pct(r.within_15):>12}")
    return "\n".join(lines)


def predict_frame(df: pd.DataFrame, fidelity: str = "analytical", calibration: Mapping[str, float] | None = None,
                  calibration_chip: str | None = None, predictor: Predictor | None = None,
                  mode: str = "realistic", stack: str | None = None) -> pd.DataFrame:
    """The per-row table of a validated measurement frame. ``calibration`` (field values) is
    applied to the rows whose system's chip is ``calibration_chip`` (to every row when None)."""
    if fidelity not in FIDELITIES:
        raise MeasurementError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}")
    pr = predictor or Predictor(mode, stack)
    recs = []
    rows = rows_of(df)
    from tqdm.auto import tqdm

    # a progress bar where someone watches (a terminal or a notebook) and the run is long enough
    # to wait for: event-tier rows, or many rows
    slow = fidelity == "event" or len(df) > 500
    for row in tqdm(rows, total=len(df), desc=f"correlate ({fidelity})", unit="row", leave=False,
                    disable=None if slow else True):
        cal = calibration
        if calibration and calibration_chip is not None:
            try:
                chip = pr.base_system(row.system).chip.name
            except Exception:  # noqa: BLE001 - an unloadable system is the row's own skip reason
                chip = None
            cal = calibration if chip == calibration_chip else None
        p = pr.predict(row, fidelity, cal)
        m = row.measured_time_s
        t = p.time_s
        recs.append({"id": row.id, "kind": row.kind, "system": row.system, "model": row.model, "phase": row.phase,
                     "op": row.op, "predicted_time_s": t, "measured_time_s": m,
                     "ape": abs(t - m) / m if not p.skipped else math.nan,
                     "error": t / m - 1 if not p.skipped else math.nan, "bound": p.bound, "skipped": p.skipped,
                     "reason": p.reason, "fidelity": p.fidelity, "mfu": p.mfu,
                     "measured_mfu": p.mfu * t / m if not p.skipped else math.nan,
                     "memory_fraction": p.memory_fraction, "note": p.note})
    return pd.DataFrame.from_records(recs, columns=list(PER_ROW_COLUMNS))


def correlate(data: str | Path | Iterable[str | Path] | pd.DataFrame, fidelity: str = "analytical",
              calibration: Any = None, mode: str | None = None, stack: str | None = None) -> CorrelationResult:
    """Predict every measured row and compare.

    ``data``: one or more measurement files (CSV in the schema of SCHEMA.md; parquet with
    pyarrow) or a DataFrame in that schema. ``fidelity``: "analytical" (default) or "event"
    (kernel, layer and collective rows run in the event tier; training steps stay analytical).
    ``calibration``: a calibration YAML (as ``accelsim calibrate`` writes it), a mapping of
    Calibration fields or a ``Calibration``; when it names a ``chip`` it applies to the rows on
    that chip only. Rows that cannot be predicted are kept, marked ``skipped`` with a reason.
    Raises MeasurementError for an invalid file (naming file, line, row id and column).
    ``mode``: "realistic" (collectives under the row's stack, else the system's default stack)
    or "ideal" (peak rates, no software costs); default realistic. A calibration's hardware
    fields apply in both; its overheads only to rows measured under the stack it was fitted
    on (``Calibration.stack``). ``stack``: the stack of rows that name none (default: each
    system's own).
    """
    df = measurements(data)
    values, chip = read_calibration(calibration)
    if mode is None:
        mode = "realistic"
    if stack is not None:
        from ..stack.presets import load_stack

        load_stack(stack)  # an unknown name is refused here, not row by row
    per_row = predict_frame(df, fidelity, values or None, chip, mode=mode, stack=stack)
    by_kind, overall = summarize(per_row)
    overall.update(fidelity=fidelity, calibrated=bool(values), mode=mode)
    skipped = [{"id": r.id, "reason": r.reason} for r in per_row[per_row["skipped"]].itertuples(index=False)]
    return CorrelationResult(per_row=per_row, by_kind=by_kind, overall=overall, skipped=skipped)


def rows_markdown(per_row: pd.DataFrame, frame: pd.DataFrame) -> str:
    """A markdown table of every row (what was measured, measured and predicted time, error,
    and for training rows the MFU at both times), and a summary line per phase: rows, MAPE and
    the share within 15 %."""
    from ..units import fmt

    info = frame.set_index("id")
    lines = ["| id | system | chips | model | dtype | stack | what | measured | predicted | error | MFU pred / meas "
             "| memory / HBM |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in per_row.itertuples(index=False):
        f = info.loc[r.id]
        what = f["metric"] if isinstance(f["metric"], str) else {"train": "step", "prefill": "ttft",
                                                                  "decode": "tpot"}.get(f["phase"], r.kind)
        if isinstance(f["batch"], (int, np.integer)) or not pd.isna(f["batch"]):
            what += f", batch {int(f['batch'])}"
        elif not pd.isna(f["concurrency"]):
            what += f", concurrency {int(f['concurrency'])}"
        elif r.note:
            what += ", " + r.note
        chips = "" if pd.isna(f["chips"]) else str(int(f["chips"]))
        pred = "skipped: " + r.reason if r.skipped else fmt(r.predicted_time_s, "s")
        err = "" if r.skipped else f"{100 * r.error:+.0f} %"
        mfu = "" if pd.isna(r.mfu) else f"{100 * r.mfu:.0f} / {100 * r.measured_mfu:.0f} %"
        mem = "" if pd.isna(r.memory_fraction) else f"{100 * r.memory_fraction:.0f} %"
        lines.append(f"| {r.id} | {r.system} | {chips} | {r.model} | {f['dtype']} | {f['stack'] or ''} | {what} | "
                     f"{fmt(r.measured_time_s, 's')} | {pred} | {err} | {mfu} | {mem} |")
    lines.append("")
    for phase, g in per_row[~per_row["skipped"]].groupby("phase"):
        within = float((g["ape"] <= 0.15).mean())
        lines.append(f"- {phase}: {len(g)} rows predicted, MAPE {100 * g['ape'].mean():.1f} %, "
                     f"{100 * within:.0f} % within 15 %, bias {float(np.exp(np.log(1 + g['error']).mean())):.2f}")
    mem = per_row["memory_fraction"].dropna()
    if len(mem):
        lines.append(f"- memory: {int((mem <= 1).sum())} of {len(mem)} training configurations fit the chip's HBM "
                     f"(predicted peak per chip)")
    return "\n".join(lines) + "\n"
