"""``accelsim correlate``, ``calibrate``, ``track`` and ``dashboard``: predictions against measured silicon."""

from __future__ import annotations

import json

import click

from ..units import fmt
from .util import friendly, write_or_print_json


BY = ("kind", "system", "model", "phase", "stack", "metric", "dtype", "file")
"""``--by`` choices: ``correlate.compare.GROUPS`` (spelled out here, so that ``--help`` imports no
pandas; a test keeps the two equal)."""


def _rows(files, system_name, stack_name):
    """(measurement files, or the rows of profiler traces as a DataFrame; whether they were traces)."""
    traces = [f for f in files if f.endswith((".json", ".json.gz"))]
    if not traces:
        return list(files), False
    import pandas as pd

    from ..profile import load_trace
    from ..profile.rows import measurement_rows

    if system_name is None:
        raise click.UsageError("profiler traces need --system (the system they ran on)")
    if len(traces) != len(files):
        raise click.UsageError("give either measurement files or profiler traces, not both")
    data = pd.concat([measurement_rows(load_trace(t), system_name, stack_name) for t in traces], ignore_index=True)
    if data.empty:
        raise click.UsageError("no op of the trace(s) matches a row kind of the measurement schema")
    return data, True


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True,
              help="event: kernel, layer and collective rows run in the event tier (training steps stay analytical).")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration YAML (from `accelsim calibrate`) applied to the rows on its chip.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write per_row.csv, predicted_vs_measured.png and error_by_kind.png here.")
@click.option("--ideal", is_flag=True, help="Predict the ideal bound (no software stack) instead of the realistic default.")
@click.option("--stack", "stack_name", default=None,
              help="Stack of the rows that name none in their stack column (default: each system's stack).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None,
              help="Also write every row (measured, predicted, error, training MFU) as a markdown table here.")
@click.option("--system", "system_name", default=None,
              help="For profiler traces (.json / .json.gz): the system they ran on (a trace names no preset).")
@click.option("--by", "group_by", type=click.Choice(list(BY)), default=None,
              help="Also break the error down by this column (file: the file a row came from), the groups with the "
                   "most rows beyond 15 % first, with each group's share within 15 %.")
@friendly
def correlate(files, fidelity, calibration, as_json, out, ideal, stack_name, markdown_path, system_name, group_by):
    """Predict every measured row of FILES (CSV in the measurement schema, or PyTorch profiler
    traces with --system: each matched op instance is a row) and report the error: MAPE, median
    and worst APE and bias (geometric mean of predicted / measured) per kind."""
    from ..correlate.compare import correlate as run_correlation

    mode = "ideal" if ideal else "realistic"
    if ideal and stack_name:
        raise click.UsageError("--ideal and --stack exclude each other")
    if system_name is not None and not any(f.endswith((".json", ".json.gz")) for f in files):
        # measurement rows name their own system: it was dropped silently
        raise click.UsageError("--system names the system of profiler traces (.json / .json.gz); measurement rows "
                               "name their own in the system column")
    data, traces = _rows(files, system_name, stack_name)
    res = run_correlation(data, fidelity=fidelity, calibration=calibration, mode=mode, stack=stack_name)
    frame = None
    if markdown_path or group_by:
        from ..correlate import load_measurements

        frame = data if traces else load_measurements(list(files))
    if markdown_path:
        from pathlib import Path

        from ..correlate.compare import rows_markdown

        Path(markdown_path).write_text(rows_markdown(res.per_row, frame))
    if group_by:
        from ..correlate.compare import breakdown

        res.groups[group_by] = breakdown(res.per_row, frame, group_by)
    if write_or_print_json(res, out, as_json):
        return
    o = res.overall
    cal = f"calibrated by {calibration}" if calibration else "uncalibrated"
    click.echo(f"{o['rows']} rows: {o['predicted']} predicted, {o['skipped']} skipped ({fidelity}, {mode}, {cal})")
    click.echo(res.table())
    if group_by:
        from ..correlate.compare import breakdown_table

        click.echo("")
        click.echo(breakdown_table(res.groups[group_by], group_by))
    for s in res.skipped:
        click.echo(f"skipped {s['id']}: {s['reason']}")
    if out:
        click.echo(f"wrote {out}/per_row.csv, predicted_vs_measured.png, error_by_kind.png")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--system", "system_name", required=True,
              help="Preset (or YAML) whose chip is calibrated; rows on other chips are ignored.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Calibration YAML to write (for --calibration and load_system(..., calibration=)).")
@click.option("--fields", default=None, metavar="A,B,C",
              help="Calibration fields to fit (default: every efficiency, the tensor and vector launch "
                   "overheads and the collective overhead).")
@click.option("--k", "k_folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Folds of the cross-validation.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold assignment.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration file's content as JSON.")
@click.option("--cv", type=click.Choice(["kfold", "source", "chip", "kind"]), default="kfold", show_default=True,
              help="Held-out error: k folds stratified by kind, or leave one source / system / kind out.")
@click.option("--stack", "stack_name", default=None,
              help="Fit the rows measured under this stack (rows naming none count as the system's "
                   "default); needed when the chip's rows span several stacks.")
@friendly
def calibrate(files, system_name, out_path, fields, k_folds, seed, as_json, cv, stack_name):
    """Fit the calibration fields of a chip to measured FILES (measurement CSVs, or PyTorch
    profiler traces run on --system: their matched ops are the rows) (robust least squares on
    log(predicted / measured), efficiencies in (0, 1], overheads >= 0) and report the error
    before (the realistic default: achievable priors and the stack's costs), after (in-sample)
    and cross-validated. The file keeps the hardware fields (any stack) apart from the stack
    costs (only under the stack the rows were measured on)."""
    from ..correlate.calibrate import MEANING
    from ..correlate.calibrate import calibrate as fit

    data, _ = _rows(files, system_name, stack_name)  # profiler traces: their ops as rows on --system
    res = fit(data, system_name, fields=fields, k=k_folds, seed=seed, cv=cv, stack=stack_name)
    res.write(out_path)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
        return
    click.echo(f"calibrated {res.chip} (preset {res.system}) on {len(res.per_row)} rows measured under "
               f"stack {res.stack or 'none'}"
               + (f"; {len(res.ignored)} rows ignored (other chips, other stacks or not predictable)"
                  if res.ignored else ""))
    for f in res.fitted:
        v = res.values[f]
        shown = fmt(v, "s") if f.endswith("_s") else f"{100 * v:.1f}%"
        lo, hi = res.folds[f].min(), res.folds[f].max()
        spread = f"{fmt(lo, 's')} .. {fmt(hi, 's')}" if f.endswith("_s") else f"{100 * lo:.1f}% .. {100 * hi:.1f}%"
        click.echo(f"  {f:<26}{shown:>10}   {MEANING.get(f, '')} (folds {spread})")
    for f in res.unconstrained:
        click.echo(f"  {f:<26}{'-':>10}   not determined by these rows: kept at {res.values[f]:g}")
    click.echo(res.table())
    click.echo(f"wrote {out_path}")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite tracking database (created if missing).")
@click.option("--label", default=None, help="A note stored with the run (branch, change, ...).")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True)
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), default=None,
              help="calibration.yaml applied to the systems before predicting.")
@click.option("--threshold", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Report kinds whose MAPE grew by more than this many percentage points since the previous run.")
@friendly
def track(files, db_path, label, fidelity, calibration, threshold):
    """Correlate measurement FILES and record the run in a tracking database."""
    from ..correlate import track as tracking

    run_id, res = tracking.track(files, db_path, label=label, fidelity=fidelity, calibration=calibration)
    o = res.overall
    mape = o.get("mape")
    mape_s = "n/a" if mape is None or mape != mape else f"{tracking.PERCENT * mape:.2f}%"
    counts = f" ({o['predicted']} of {o['rows']} rows predicted)" if "predicted" in o and "rows" in o else ""
    click.echo(f"run {run_id} recorded in {db_path}: MAPE {mape_s}{counts}")
    reg = tracking.regressions(db_path, threshold)
    for r in reg[reg["run_id"] == run_id].itertuples():
        click.echo(f"regression: {r.kind} MAPE {tracking.PERCENT * r.prev_mape:.2f}% (run {r.prev_run_id}) -> "
                   f"{tracking.PERCENT * r.mape:.2f}% (+{r.delta_pp:.2f} pp)", err=True)


@click.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite tracking database.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--threshold", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Flag runs where a kind's MAPE grew by more than this many percentage points.")
@click.option("--profile", "profiles", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A profile report (accelsim profile report TRACE --json > FILE) to show in a section of its own; repeatable.")
@friendly
def dashboard(db_path, out_path, threshold, profiles):
    """Write a self-contained static HTML dashboard of a tracking database (and of profile
    reports of traced runs)."""
    from pathlib import Path as _Path

    from ..correlate import dashboard as dash
    from ..correlate import track as tracking
    from ..errors import MeasurementError

    if not _Path(db_path).is_file():
        raise MeasurementError(f"{db_path}: tracking database does not exist")
    reports = []
    for p in profiles:
        try:
            reports.append(json.loads(_Path(p).read_text()))
        except json.JSONDecodeError as e:
            raise MeasurementError(f"{p}: not a profile report (JSON): {e}") from None
    dash.write(db_path, out_path, threshold, reports)
    n_runs = len(tracking.runs(db_path))
    n_reg = len(tracking.regressions(db_path, threshold))
    click.echo(f"wrote {out_path} ({n_runs} run(s), {n_reg} regression(s) beyond {threshold:g} pp)")
