"""Fit a chip's explicit calibration fields (``arch.spec.Calibration``) to measurements.

Method: the rows whose system uses the chip of the given preset are predicted with trial
calibration values, and the fields are fitted by robust nonlinear least squares
(``scipy.optimize.least_squares``, loss ``LOSS`` with scale ``F_SCALE``: errors up to ~10%
count quadratically, larger ones only linearly, so a few cases the model cannot represent do
not drag the whole fit) on the residuals ``log(predicted / measured)``, one per row. Bounds keep
every efficiency in ``[EFFICIENCY_MIN, 1]`` and every overhead in ``[0, OVERHEAD_MAX_S]``: a
calibrated chip can only be slower than its peak rates and never gains time from an overhead,
so no calibrated prediction can beat the physical roofline (a property test checks it).

Honesty: besides the in-sample error (the rows the fit saw), every row also gets an
out-of-fold prediction from a ``k``-fold cross-validation (folds stratified by kind, seeded),
so the reported cross-validated error is that of rows the fit did not see. Fields that no row
responds to (e.g. ``link_efficiency`` without collective rows) are not fitted and keep their
value. ``launch_overhead_s`` (shared by every op) is not fitted by default: every non-collective
op is a tensor- or a vector-engine op, so it is redundant with ``tensor_launch_overhead_s`` and
``vector_launch_overhead_s``, which are fitted instead.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, MeasurementError
from .compare import measurements, summarize
from .calvalues import calibration_fields, calibration_update, flat_calibration
from .predict import Predictor, _cal_key
from .schema import rows_of

CV_MODES = ("kfold", "source", "chip", "kind")
"""Cross-validation: k folds stratified by kind, or leave one source / measured system / kind out
(``chip`` leaves out each system the chip was measured in, e.g. a 1-GPU and a 4-GPU node)."""
VALIDATION_KINDS = ("layer_op", "layer", "model")
"""Row kinds that are validation only: calibration refuses them."""
DEFAULT_FIELDS = ("tensor_efficiency", "vector_efficiency", "hbm_efficiency", "sram_efficiency", "link_efficiency",
                  "tensor_launch_overhead_s", "vector_launch_overhead_s", "collective_overhead_s")
"""Fields fitted when none are named (``launch_overhead_s`` is their redundant common part)."""
EFFICIENCY_MIN = 0.05
"""Lowest efficiency the fit may choose (a chip at 5% of a peak rate signals a modelling gap,
not a calibration)."""
OVERHEAD_MAX_S = 0.01
"""Largest fixed overhead the fit may choose, seconds."""
LOSS = "soft_l1"
F_SCALE = 0.1
"""Residual (log ratio) scale where the robust loss turns from quadratic to linear (~10%)."""
MEANING = {
    "tensor_efficiency": "sustained fraction of the tensor engines' peak FLOP/s",
    "vector_efficiency": "sustained fraction of the vector / scalar engines' peak rate",
    "hbm_efficiency": "achieved fraction of peak HBM bandwidth",
    "sram_efficiency": "achieved fraction of the SRAM / shared-cache (L2) bandwidth",
    "link_efficiency": "achieved fraction of the chip-to-chip link bandwidth",
    "launch_overhead_s": "fixed cost of every op launch",
    "tensor_launch_overhead_s": "software cost per GEMM / attention call before the kernel runs",
    "vector_launch_overhead_s": "software cost per softmax / norm / elementwise call",
    "collective_overhead_s": "software cost per collective call",
}
"""One line per Calibration field: what its value means physically."""
FIT_TOLERANCE = 1e-6
"""Relative change of the cost and of the fields at which a fit stops."""
MAX_EVALUATIONS = 400
"""Bound on the fit's trial evaluations (a fit of the A100 file converges in ~100)."""
SENSITIVITY_PROBE = {"efficiency": 0.5, "overhead_s": 1e-5}
"""How a field is probed to decide whether any row responds to it: an efficiency halved, an
overhead raised by 10 us; a row responds when its prediction moves by more than 0.1%."""


@dataclass
class CalibrationResult:
    """A fitted calibration and how well it does."""

    system: str
    """The preset whose chip was calibrated."""
    chip: str
    values: dict[str, float]
    """Every Calibration field after the fit (the unfitted ones at their preset values)."""
    fitted: list[str]
    """Fields the fit chose."""
    unconstrained: list[str]
    """Requested fields the rows do not determine (no row's prediction depends on them, at the
    preset values or at the fitted point), kept at their preset values."""
    per_row: pd.DataFrame
    """id, kind, system, measured_time_s, before_s, after_s, cv_s (out-of-fold prediction),
    ape_before, ape_after, ape_cv, fold."""
    errors: dict[str, pd.DataFrame]
    """"before" (uncalibrated), "in_sample" and "cross_validated": per-kind n, mape,
    median_ape, max_ape, bias (an "all" row last)."""
    folds: pd.DataFrame
    """The values each cross-validation fold fitted (one row per fold), for their spread."""
    k: int
    seed: int
    files: list[str] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    """{id, reason} of rows not used: other chips, or rows that cannot be predicted."""
    cv: str = "kfold"
    """How the held-out error was made (``CV_MODES``)."""
    stack: str | None = None
    """The stack the rows were measured under: the fitted overheads hold under it only."""

    @property
    def cv_label(self) -> str:
        return f"{self.k}-fold CV" if self.cv == "kfold" else f"leave-one-{self.cv}-out"

    def to_dict(self) -> dict[str, Any]:
        """The calibration file's content (see ``write``)."""
        from ..version import __version__

        def table(df: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
            return {r.kind: {"n": int(r.n), "mape": _r(r.mape), "median_ape": _r(r.median_ape),
                             "max_ape": _r(r.max_ape), "bias": _r(r.bias)} for r in df.itertuples(index=False)}

        from ..arch.calfile import document

        return {
            **document(self.calibration(), self.chip, self.stack),
            "system": self.system,
            "fit": {"fields": list(self.fitted), "unconstrained": list(self.unconstrained),
                    "rows": int(len(self.per_row)), "row_ids": [str(i) for i in self.per_row["id"]],
                    "files": list(self.files), "loss": LOSS, "f_scale": F_SCALE, "k_folds": self.k, "cv": self.cv,
                    "seed": self.seed, "ignored_rows": list(self.ignored),
                    "fold_spread": {f: [_r(self.folds[f].min()), _r(self.folds[f].max())]
                                    for f in self.fitted if f in self.folds}},
            "errors": {name: table(df) for name, df in self.errors.items()},
            "date": _dt.date.today().isoformat(),
            "accelsim_version": __version__,
        }

    def calibration(self):
        """The fitted values as an ``arch.spec.Calibration``."""
        from ..arch.spec import Calibration

        return Calibration(**calibration_update(self.values), stack=self.stack)

    def write(self, path: str | Path) -> Path:
        """Write the YAML that ``load_system(..., calibration=path)`` and ``--calibration``
        accept: a ``calibration:`` block plus metadata (system, chip, fitted rows, errors,
        date, accelsim version)."""
        import yaml

        path = Path(path)
        head = (f"# accelsim calibration of {self.chip} (preset {self.system}), fitted by `accelsim calibrate`.\n"
                f"# hardware: fields of the silicon (any stack); stack_costs: hold under stack {self.stack} only.\n"
                f"# Use: accelsim run {self.system} MODEL --calibration {path.name}\n"
                f"#      accelsim.load_system({self.system!r}, calibration={str(path)!r})\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + yaml.safe_dump(self.to_dict(), sort_keys=False, width=110))
        return path

    def table(self) -> str:
        """Per kind: n, then MAPE and worst APE before, in-sample and cross-validated."""
        b, a, c = (self.errors[n].set_index("kind") for n in ("before", "in_sample", "cross_validated"))
        lines = [f"{'kind':<14}{'n':>4}   {'uncalibrated':>17}   {'calibrated':>17}   {self.cv_label:>17}",
                 f"{'':<14}{'':>4}   {'MAPE':>8} {'worst':>8}   {'MAPE':>8} {'worst':>8}   {'MAPE':>8} {'worst':>8}"]
        for kind in a.index:
            cells = "".join(f"   {_p(t.loc[kind, 'mape']):>8} {_p(t.loc[kind, 'max_ape']):>8}" for t in (b, a, c))
            lines.append(f"{kind:<14}{int(a.loc[kind, 'n']):>4}{cells}")
        return "\n".join(lines)


def _r(x: Any) -> float | None:
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else None


def _p(x: float) -> str:
    return f"{100 * x:.1f}%" if math.isfinite(x) else "-"


# ------------------------------------------------------------------------------------------
# Fitting


def _is_overhead(name: str) -> bool:
    return name.endswith("_s")


def _bounds(fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Bounds in fit units (overheads in microseconds)."""
    lo = np.array([0.0 if _is_overhead(f) else EFFICIENCY_MIN for f in fields])
    hi = np.array([OVERHEAD_MAX_S * 1e6 if _is_overhead(f) else 1.0 for f in fields])
    return lo, hi


def _to_values(fields: Sequence[str], x: np.ndarray) -> dict[str, float]:
    return {f: float(v) * (1e-6 if _is_overhead(f) else 1.0) for f, v in zip(fields, x)}


def _to_x(fields: Sequence[str], values: dict[str, float]) -> np.ndarray:
    return np.array([values[f] * (1e6 if _is_overhead(f) else 1.0) for f in fields])


class _Problem:
    """Rows, their measured times and a predictor, for repeated trial predictions."""

    def __init__(self, rows, base: dict[str, float], predictor: Predictor):
        self.rows = rows
        self.meas = np.array([r.measured_time_s for r in rows], dtype=float)
        self.base = base
        self.pr = predictor

    def predict(self, values: dict[str, float], idx: Iterable[int] | None = None) -> np.ndarray:
        cal = _cal_key({**self.base, **values})  # hashed once for all rows
        sel = range(len(self.rows)) if idx is None else idx
        out = []
        for i in sel:
            p = self.pr.predict(self.rows[i], "analytical", cal)
            out.append(p.time_s if not p.skipped else math.nan)
        return np.array(out, dtype=float)

    def responsive(self, fields: Sequence[str], at: dict[str, float], idx: Iterable[int] | None = None
                   ) -> list[str]:
        """The fields some row's prediction (of rows ``idx``) responds to, probed from ``at``."""
        ref = self.predict(at, idx)
        out = []
        for f in fields:
            v = at[f]
            probe = v + SENSITIVITY_PROBE["overhead_s"] if _is_overhead(f) else \
                max(EFFICIENCY_MIN, v * SENSITIVITY_PROBE["efficiency"])
            moved = self.predict({**at, f: probe}, idx)
            if np.nanmax(np.abs(moved / ref - 1)) > 1e-3:
                out.append(f)
        return out

    def fit(self, fields: Sequence[str], start: dict[str, float], idx: np.ndarray
            ) -> tuple[dict[str, float], list[str]]:
        """Robust least squares of log(predicted / measured) over rows ``idx``: (the fields'
        values, the fields the rows determine)."""
        from scipy.optimize import least_squares

        if not fields or len(idx) == 0:
            return {}, []
        lo, hi = _bounds(fields)
        meas = self.meas[idx]

        def residuals(x: np.ndarray) -> np.ndarray:
            p = self.predict(_to_values(fields, x), idx)
            return np.log(p / meas)

        x0 = np.clip(_to_x(fields, start), lo, hi)
        sol = least_squares(residuals, x0, bounds=(lo, hi), loss=LOSS, f_scale=F_SCALE, x_scale="jac",
                            diff_step=1e-3, max_nfev=MAX_EVALUATIONS, ftol=FIT_TOLERANCE, xtol=FIT_TOLERANCE)
        values = {f: (0.0 if _is_overhead(f) and v < 1e-12 else v) for f, v in _to_values(fields, sol.x).items()}
        # a field no row depends on at the solution (an efficiency whose term stays hidden behind
        # another one) is not determined by the data: it keeps its starting (preset) value
        at = {**self.base, **values}
        live = self.responsive(fields, at, idx)
        return {f: (v if f in live else start[f]) for f, v in values.items()}, live


def _folds(kinds: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold index of each row: stratified by kind (each kind's rows dealt round-robin over the
    folds in a seeded random order, continuing where the previous kind stopped)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(kinds), dtype=int)
    kinds = np.asarray(kinds)
    offset = 0
    for kind in dict.fromkeys(kinds):
        idx = np.flatnonzero(kinds == kind)
        rng.shuffle(idx)
        fold[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)
    return fold


def _errors(ids, kinds, systems, meas, pred) -> pd.DataFrame:
    per = pd.DataFrame({"id": ids, "kind": kinds, "system": systems, "predicted_time_s": pred,
                        "measured_time_s": meas})
    per["skipped"] = ~np.isfinite(pred)
    per["ape"] = np.abs(pred / meas - 1)
    per["error"] = pred / meas - 1
    by_kind, overall = summarize(per)
    all_row = {"kind": "all", "n": overall["predicted"], **{k: overall[k] for k in ("mape", "median_ape", "max_ape",
                                                                                     "bias")}}
    return pd.concat([by_kind, pd.DataFrame([all_row])], ignore_index=True)


def start_values(spec, stack: str | None) -> dict[str, Any]:
    """Where a fit starts: the chip's calibration as realistic mode runs it under ``stack`` (its
    achievable priors plus the runtime's per-kernel cost), with the stack named (so the fitted
    overheads hold under that stack only)."""
    from ..stack.presets import load_stack
    from ..stack.realize import realize

    cal = realize(spec, load_stack(stack) if stack else None).chip.calibration
    out = flat_calibration(cal, (*calibration_fields(), "tensor_dtype_efficiency"))
    if stack:
        out["stack"] = stack
    return out


def calibrate(data: Any, system: str, fields: Sequence[str] | str | None = None, k: int = 5,
              seed: int = 0, cv: str = "kfold", stack: str | None = None) -> CalibrationResult:
    """Fit the calibration of ``system``'s chip to the measured rows on that chip.

    ``data``: measurement files or a DataFrame (as for ``correlate``). ``system``: a preset
    name or YAML; every row whose system uses the same chip (by chip name) is used, the others
    are listed as ignored. The fit runs the realistic model under the rows' stack (their
    ``stack`` column, else the system's default); rows under several stacks need ``stack`` to
    pick one (hardware fields are the chip's, overheads belong to that stack). The fit starts
    from the chip's achievable priors and the stack's costs (the "uncalibrated" column). ``fields``: Calibration fields to fit (names or "a,b,c"; default
    ``DEFAULT_FIELDS``). ``k``: folds of the cross-validation (at most the number of rows).
    Returns a CalibrationResult; ``.write(path)`` writes the calibration YAML."""
    df = measurements(data)
    df = df.sort_values("id", kind="stable").reset_index(drop=True)  # the fit must not depend on file order
    whole = df[df["kind"].isin(VALIDATION_KINDS)]
    if len(whole):
        ids = ", ".join(whole["id"].astype(str).head(5)) + (" ..." if len(whole) > 5 else "")
        raise MeasurementError(f"{len(whole)} validation row(s) ({ids}): layer, layer_op and model rows judge "
                               f"predictions and are never fitted; calibrate on kernel and collective rows "
                               f"(workloads/measurements/parts/) and pass these to `accelsim correlate`")
    files = sorted({o.rsplit(":", 1)[0] for o in df["origin"]}) if "origin" in df else []
    pr = Predictor("realistic")  # fitted on the realistic model, under the rows' stack
    try:
        spec = pr.base_system(system)
    except ConfigError as e:
        raise MeasurementError(f"--system: {e}") from None
    if stack is not None:
        from ..stack.presets import load_stack

        try:
            load_stack(stack)
        except ConfigError as e:
            raise MeasurementError(f"--stack: {e}") from None
    fields = _field_list(fields)
    if k < 2:
        raise MeasurementError(f"k must be at least 2 for cross-validation, got {k}")
    rows, ignored = [], []
    mine = []
    for row in rows_of(df):
        try:
            chip = pr.base_system(row.system).chip.name
        except ConfigError as e:
            ignored.append({"id": row.id, "reason": str(e)})
            continue
        if chip != spec.chip.name:
            ignored.append({"id": row.id, "reason": f"chip {chip}, not {spec.chip.name}"})
            continue
        mine.append(row)
    names = [pr.stack_name(row) or None for row in mine]
    stacks = Counter(names)
    if stack is None and len(stacks) > 1:
        raise MeasurementError(
            f"the rows on {spec.chip.name} were measured under {len(stacks)} stacks "
            f"({', '.join(f'{s or chr(45)}: {n}' for s, n in sorted(stacks.items(), key=lambda kv: kv[0] or ''))}); "
            f"a calibration's overheads belong to one stack: pass --stack NAME to fit the rows of one")
    if stack is None:
        stack = names[0] if names else spec.stack
    neutral = start_values(spec, stack)
    for row, name in zip(mine, names):
        if name != stack:
            ignored.append({"id": row.id, "reason": f"stack {name or 'none'}, not {stack}"})
            continue
        p = pr.predict(row, "analytical", neutral)
        if p.skipped:
            ignored.append({"id": row.id, "reason": p.reason})
            continue
        rows.append(row)
    if len(rows) < 2:
        raise MeasurementError(f"only {len(rows)} measured row(s) on {spec.chip.name} (preset {system}) can be "
                               f"predicted; a fit needs at least 2")
    prob = _Problem(rows, neutral, pr)
    all_idx = np.arange(len(rows))
    fit_fields = prob.responsive(fields, neutral)
    fitted, determined = prob.fit(fit_fields, neutral, all_idx)
    values = {**neutral, **fitted}
    unconstrained = [f for f in fields if f not in determined]
    before = prob.predict(neutral)
    after = prob.predict(values)

    kinds = [r.kind for r in rows]
    if cv not in CV_MODES:
        raise MeasurementError(f"cv must be one of {', '.join(CV_MODES)}, got {cv!r}")
    if cv == "kfold":
        k = min(k, len(rows))
        fold = _folds(kinds, k, seed)
    else:  # leave one group out: each source / measured system / kind predicted by a fit without it
        labels = [{"source": r.source or r.id, "chip": r.system, "kind": r.kind}[cv] for r in rows]
        groups = sorted(set(labels))
        if len(groups) < 2:
            raise MeasurementError(f"--cv {cv}: the rows on {spec.chip.name} come from one {cv} "
                                   f"({groups[0]!r}); leaving it out leaves nothing to fit")
        fold = np.array([groups.index(x) for x in labels])
        k = len(groups)
    held = np.full(len(rows), np.nan)
    fold_values = []
    for j in range(k):
        train, test = all_idx[fold != j], all_idx[fold == j]
        fj, _ = prob.fit(fit_fields, neutral, train)
        fold_values.append({"fold": j, **fj})
        held[test] = prob.predict({**neutral, **fj}, test)

    ids = [r.id for r in rows]
    systems = [r.system for r in rows]
    meas = prob.meas
    per_row = pd.DataFrame({"id": ids, "kind": kinds, "system": systems, "measured_time_s": meas,
                            "before_s": before, "after_s": after, "cv_s": held,
                            "ape_before": np.abs(before / meas - 1), "ape_after": np.abs(after / meas - 1),
                            "ape_cv": np.abs(held / meas - 1), "fold": fold})
    errors = {name: _errors(ids, kinds, systems, meas, pred)
              for name, pred in (("before", before), ("in_sample", after), ("cross_validated", held))}
    values.pop("stack", None)  # kept as the result's ``stack``
    return CalibrationResult(system=str(system), chip=spec.chip.name, values=values, fitted=determined,
                             unconstrained=unconstrained, per_row=per_row, errors=errors,
                             folds=pd.DataFrame(fold_values), k=k, seed=seed, files=files, ignored=ignored, cv=cv,
                             stack=stack)


def _field_list(fields: Sequence[str] | str | None) -> list[str]:
    from ..configio import suggest

    if fields is None:
        return list(DEFAULT_FIELDS)
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",") if f.strip()]
    known = calibration_fields()
    out = []
    for f in fields:
        if f not in known:
            raise MeasurementError(f"--fields: unknown calibration field {f!r}.{suggest(f, known)} "
                                   f"Known: {', '.join(known)}")
        if f not in out:
            out.append(f)
    if not out:
        raise MeasurementError("--fields: no calibration field named")
    return out


__all__ = ["calibrate", "CalibrationResult", "DEFAULT_FIELDS"]
