"""Priors from the measurement corpus: the collective-library fields of each stack, fitted to the
published collective rows of ``workloads/measurements/parts/`` (``accelsim priors``).

Deterministic and re-runnable: the same rows give the same values. For each collective library
(a stack without ``base:``, shared by the stacks that extend it) the rows fitted are the
collective rows whose stack (the row's ``stack`` column, else the system preset's default)
resolves to that library. The fit is robust least squares (soft-L1) on log(predicted /
measured) over: ``call_latency_s``, each protocol's ``step_latency_s``, ``bandwidth_fraction``,
``in_switch_bandwidth_fraction``, ``scale_out_step_latency_s`` and
``scale_out_bandwidth_fraction``. Protocol bandwidth fractions are facts of the protocol (LL
half the rate, LL128 120/128) and stay fixed. A field no row constrains (e.g. the in-switch
fraction of a library whose rows never run on a switch with in-network reduction) keeps its
file value and is reported as not determined.

Next to the in-sample error the report gives leave-one-source-out error: the library is refitted
without each source's rows and that source is predicted, so the figure says how the fit does on
a benchmark it did not see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import MeasurementError
from .schema import COLLECTIVE_KINDS, MeasurementRow, load_measurements, rows_of

FRACTION_MIN = 0.05
LATENCY_MAX_S = 1e-3
GLOBAL_POPSIZE = 8
GLOBAL_MAXITER = 80
"""Differential evolution (seed 0) before the least-squares polish."""


@dataclass
class LibraryFit:
    """The fitted collective library of one base stack."""

    stack: str
    values: dict[str, float]
    """Field path -> value (protocol fields as ``protocols.NAME.step_latency_s``)."""
    determined: list[str]
    rows: int
    sources: list[str]
    mape: float
    bias: float
    loso_mape: float | None
    """Leave-one-source-out MAPE (None with a single source)."""
    per_source: dict[str, tuple[int, float, float | None]] = field(default_factory=dict)
    """source -> (rows, in-sample MAPE, held-out MAPE)."""


def _fields(lib) -> list[str]:
    return (["call_latency_s", "bandwidth_fraction", "in_switch_bandwidth_fraction", "scale_out_step_latency_s",
             "scale_out_bandwidth_fraction"] + [f"protocols.{p.name}.step_latency_s" for p in lib.protocols])


def _get(lib, f: str) -> float:
    if f.startswith("protocols."):
        _, name, attr = f.split(".")
        return float(getattr(next(p for p in lib.protocols if p.name == name), attr))
    return float(getattr(lib, f))


def _with(lib, values: dict[str, float]):
    top = {f: v for f, v in values.items() if not f.startswith("protocols.")}
    protos = tuple(p.model_copy(update={"step_latency_s": values.get(f"protocols.{p.name}.step_latency_s",
                                                                      p.step_latency_s)}) for p in lib.protocols)
    return lib.model_copy(update={**top, "protocols": protos})


def _bounds(f: str) -> tuple[float, float]:
    return (FRACTION_MIN, 1.0) if f.endswith("fraction") else (0.0, LATENCY_MAX_S)


class _Rows:
    """Collective rows with their systems resolved once (scaled out where the row needs it)."""

    def __init__(self, rows: list[MeasurementRow]):
        from ..arch.presets import load_system
        from ..arch.topology import scale_out_system

        self.rows = rows
        self.systems = []
        cache: dict = {}
        for r in rows:
            key = (r.system, r.ranks, r.chips)
            if key not in cache:
                s = load_system(r.system)
                need = max(r.ranks, r.chips or 0)
                if need > s.num_chips:
                    node = s.chips_per_node
                    s = scale_out_system(s, -(-need // node) * node)
                cache[key] = s
            self.systems.append(cache[key])

    def log_errors(self, lib, idx: Iterable[int]) -> np.ndarray:
        from ..cost.collectives import collective_cost

        out = []
        for i in idx:
            r, s = self.rows[i], self.systems[i]
            t = collective_cost(s, r.kind, float(r.bytes), int(r.ranks), library=lib).time_s
            out.append(math.log(t / r.measured_time_s))
        return np.array(out)


def _fit(data: _Rows, lib, idx: list[int]) -> tuple[object, list[str]]:
    from scipy.optimize import differential_evolution, least_squares

    names = _fields(lib)
    # fractions are fitted as they are, latencies as log10(seconds) in [-9, log10(LATENCY_MAX_S)]
    frac = np.array([f.endswith("fraction") for f in names])
    lo = np.where(frac, FRACTION_MIN, -9.0)
    hi = np.where(frac, 1.0, math.log10(LATENCY_MAX_S))

    def values(x) -> dict[str, float]:
        return {f: (float(v) if fr else 10.0 ** float(v)) for f, v, fr in zip(names, x, frac)}

    def res(x):
        return data.log_errors(_with(lib, values(x)), idx)

    def cost(x) -> float:  # soft-L1 on log error, scale 0.1 (as the least-squares polish)
        r = res(x) / 0.1
        return float(np.sum(2.0 * (np.sqrt(1.0 + r * r) - 1.0)))

    # The time is a minimum over algorithms and protocols: piecewise smooth, with flat regions
    # where a protocol never wins. A seeded global search (deterministic) finds the basin, a
    # least-squares polish the optimum; a re-run on the same rows gives the same numbers.
    glob = differential_evolution(cost, list(zip(lo, hi)), seed=0, popsize=GLOBAL_POPSIZE,
                                  maxiter=GLOBAL_MAXITER, tol=1e-8, polish=False, init="sobol")
    sol = least_squares(res, glob.x, bounds=(lo, hi), loss="soft_l1", f_scale=0.1)
    best = sol.x if 0.5 * np.sum(2.0 * (np.sqrt(1.0 + (sol.fun / 0.1) ** 2) - 1.0)) <= cost(glob.x) else glob.x
    base = cost(best)
    determined = []
    for i, f in enumerate(names):  # a field is determined if moving it changes the fit
        for step in (-0.3, 0.3):
            x = best.copy()
            x[i] = np.clip(x[i] * (1 + step) if frac[i] else x[i] + step, lo[i], hi[i])
            if abs(cost(x) - base) > 1e-6 * max(1.0, base):
                determined.append(f)
                break
    fitted = values(best)
    for i, f in enumerate(names):  # an undetermined field keeps the file's value where that changes nothing
        if f not in determined:
            x = best.copy()
            x[i] = _get(lib, f) if frac[i] else math.log10(max(_get(lib, f), 1e-9))
            if abs(cost(x) - base) <= 1e-6 * max(1.0, base):
                fitted[f] = _get(lib, f)
    return _with(lib, fitted), determined


def _ape(e: np.ndarray) -> float:
    return float(np.mean(np.abs(np.exp(e) - 1.0))) if len(e) else math.nan


def library_rows(rows: list[MeasurementRow], stack: str) -> list[MeasurementRow]:
    """The collective rows measured under the base stack ``stack`` itself (the library's own
    benchmark, e.g. nccl-tests for NCCL). Rows of stacks that extend it (PyTorch eager, XLA
    executables) add their runtime's costs and are left for validation."""
    from ..arch.presets import load_raw as load_system_raw

    out, default = [], {}
    for r in rows:
        if r.kind not in COLLECTIVE_KINDS:
            continue
        name = r.stack
        if not name:
            if r.system not in default:
                default[r.system] = load_system_raw(r.system)[0].get("stack", "")
            name = default[r.system]
        if name == stack:
            out.append(r)
    return out


def fit_library(rows: list[MeasurementRow], stack: str, holdout: bool = True) -> LibraryFit:
    """Fit the collective library of base stack ``stack`` to ``rows`` (collective rows of it)."""
    from ..stack.presets import load_stack

    if not rows:
        raise MeasurementError(f"no collective rows for stack {stack!r} in the corpus")
    lib = load_stack(stack).collectives
    data = _Rows(rows)
    every = list(range(len(rows)))
    fitted, determined = _fit(data, lib, every)
    err = data.log_errors(fitted, every)
    sources = sorted({r.source or r.id for r in rows})
    per_source: dict[str, tuple[int, float, float | None]] = {}
    held: list[float] = []
    for src in sources:
        idx = [i for i, r in enumerate(rows) if (r.source or r.id) == src]
        rest = [i for i in every if i not in idx]
        out = None
        if holdout and rest and len(sources) > 1:
            lib_rest, _ = _fit(data, lib, rest)
            e = data.log_errors(lib_rest, idx)
            out = _ape(e)
            held += list(np.abs(np.exp(e) - 1.0))
        per_source[src] = (len(idx), _ape(err[idx]), out)
    values = {f: _get(fitted, f) for f in _fields(lib)}
    return LibraryFit(stack, values, determined, len(rows), sources, _ape(err), float(np.exp(err.mean())),
                      float(np.mean(held)) if held else None, per_source)


def derive(paths, stacks: Iterable[str] | None = None, holdout: bool = True) -> list[LibraryFit]:
    """Fit every base stack's collective library to the corpus files ``paths``."""
    from ..stack.presets import base_of, list_stacks

    rows = rows_of(load_measurements(paths))
    bases = sorted({base_of(s) for s in list_stacks()}) if stacks is None else list(stacks)
    out = []
    for b in bases:
        sel = library_rows(rows, b)
        if sel:
            out.append(fit_library(sel, b, holdout))
    return out


def write_fit(fit: LibraryFit, corpus: str) -> Path:
    """Write the fitted values into the stack's YAML file (its ``collectives`` block), with a
    ``sources`` entry for each fitted field naming the rows it came from."""
    import yaml

    from ..stack.presets import stack_path

    path = stack_path(fit.stack)
    data = yaml.safe_load(path.read_text())
    col = data["collectives"]
    for f, v in fit.values.items():
        if f not in fit.determined:
            continue
        v = float(f"{v:.4g}")
        if f.startswith("protocols."):
            _, name, attr = f.split(".")
            next(p for p in col["protocols"] if p["name"] == name)[attr] = v
        else:
            col[f] = v
        data.setdefault("sources", {})[f"collectives.{f}"] = (
            f"accelsim priors: fitted to {fit.rows} collective rows of {corpus} "
            f"({len(fit.sources)} sources; in-sample MAPE {100 * fit.mape:.1f}%, leave-one-source-out "
            + (f"{100 * fit.loso_mape:.1f}%" if fit.loso_mape is not None else "n/a") + ")")
    head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    path.write_text(head + yaml.safe_dump(data, sort_keys=False, width=110))
    return path


__all__ = ["LibraryFit", "derive", "fit_library", "library_rows", "write_fit"]
