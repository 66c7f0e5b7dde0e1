"""Priors from the measurement corpus: the collective-library fields of each stack, fitted to the
published collective rows of ``workloads/measurements/parts/`` (``accelsim priors``).

Deterministic and re-runnable: the same rows give the same values. For each collective library
(a stack without ``base:``, shared by the stacks that extend it) the rows fitted are the
collective rows whose stack (the row's ``stack`` column, else the system preset's default)
resolves to that library. The fit is robust least squares (soft-L1) on log(predicted /
measured) over: ``call_latency_s``, each protocol's ``step_latency_s``, the bulk protocol's
``base_latency_s`` (its pipeline's fixed cost; a small protocol's is one constant with the call's
latency, and a program-dispatch runtime's with its program cost, so those stay as written),
``bandwidth_fraction``,
``in_switch_bandwidth_fraction``, ``in_switch_step_latency_s`` (libraries with in-switch
reductions), ``scale_out_step_latency_s`` and
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
from .priors import FRACTION_MIN, LATENCY_MAX_S, mean_ape, write_kernel_launch
from .schema import COLLECTIVE_KINDS, MeasurementRow, load_measurements, rows_of

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
    only: tuple[str, ...] = ()
    """The fields fitted when not all were (the others kept their file values)."""


HOST = "runtime.collective_launch_s"
"""The base stack's per-call host cost per device: fitted with its library when the rows pay it
a different number of times (graph replay rows: never; ``-g 8`` rows: once per device; one
process per device: once), which tells the host part from the device part."""


PROGRAM = "runtime.kernel_launch_s"
"""A program-dispatch base stack's cost per program execution (Neuron): a standalone collective
(nccom-test) is one program run by the runtime, so its constant per-call cost is the runtime's,
fitted in place of the library's ``call_latency_s`` (0): in a compiled model the collectives run
inside the step's one program and pay it once per step, not once per collective."""


@dataclass(frozen=True)
class _Lib:
    """A trial point: a collective library, and the per-call host cost of the base stack's runtime
    (paid by the rows of stacks that do not set their own); for a program-dispatch runtime, its
    cost per program execution instead."""

    lib: object
    host: float
    fit_host: bool = False
    """Whether ``host`` is fitted (``_Rows.host_separable``; always for a program runtime)."""
    program: bool = False
    """The runtime dispatches programs: ``host`` is ``PROGRAM``, the library's call latency is 0."""


def _fields(lib: _Lib) -> list[str]:
    switch = not lib.lib.algorithms or "in_switch" in lib.lib.algorithms
    return ((["bandwidth_fraction"] if lib.program else ["call_latency_s", "bandwidth_fraction"])
            + ["in_switch_bandwidth_fraction", "scale_out_step_latency_s", "scale_out_bandwidth_fraction"]
            + (["in_switch_step_latency_s"] if switch else [])
            + [f"protocols.{p.name}.step_latency_s" for p in lib.lib.protocols]
            + ([] if lib.program else [f"protocols.{lib.lib.bulk.name}.base_latency_s", "p2p_op_host_s"])
            + ([PROGRAM if lib.program else HOST] if lib.fit_host else []))


def _get(lib: _Lib, f: str) -> float:
    if f in (HOST, PROGRAM):
        return lib.host
    if f.startswith("protocols."):
        _, name, attr = f.split(".")
        return float(getattr(next(p for p in lib.lib.protocols if p.name == name), attr))
    if f == "in_switch_step_latency_s":
        return lib.lib.in_switch_step_s
    return float(getattr(lib.lib, f))


def _with(lib: _Lib, values: dict[str, float]) -> _Lib:
    top = {f: v for f, v in values.items() if not f.startswith("protocols.") and f not in (HOST, PROGRAM)}
    protos = tuple(p.model_copy(update={a: values.get(f"protocols.{p.name}.{a}", getattr(p, a))
                                        for a in ("step_latency_s", "base_latency_s")}) for p in lib.lib.protocols)
    host = values.get(PROGRAM if lib.program else HOST, lib.host)
    return _Lib(lib.lib.model_copy(update={**top, "protocols": protos}), host, lib.fit_host, lib.program)


def _bounds(f: str) -> tuple[float, float]:
    return (FRACTION_MIN, 1.0) if f.endswith("fraction") else (0.0, LATENCY_MAX_S)


class _Rows:
    """Collective rows with their systems resolved once (scaled out where the row needs it)."""

    def __init__(self, rows: list[MeasurementRow]):
        from .predict import Predictor

        pr = Predictor("ideal")  # its systems: loaded once, scaled out where a row needs more chips
        self.rows = rows
        self.systems = [pr.system(r.system, max(r.ranks, r.chips or 0)) for r in rows]
        names = [pr.stack_name(r) for r in rows]
        own = {s: _own_host(s) for s in set(names)}
        self.host: list[float | None] = [own[s] for s in names]
        """Per row: the host cost its stack sets itself, or None (the base stack's)."""
        self.devices = [r.gpus_per_process or 1 for r in rows]
        """Per row: devices the calling process drove (each pays the host enqueue)."""

    def host_separable(self) -> bool:
        """Whether the rows tell the base stack's host cost from the library's device latency:
        some pay it and they pay it a different number of times (graph replay rows: none;
        ``-g 8`` rows: eight times; one process per device: once)."""
        times = {(self.devices[i] if h is None else 0) for i, h in enumerate(self.host)}
        return any(h is None for h in self.host) and len(times) > 1

    def log_errors(self, lib: _Lib, idx: Iterable[int]) -> np.ndarray:
        from ..cost.collectives import collective_cost, p2p_host_s
        from .predict import harness_time

        out = []
        for i in idx:
            r, s = self.rows[i], self.systems[i]
            t = collective_cost(s, r.kind, float(r.bytes), int(r.ranks), library=lib.lib).time_s
            p2p = p2p_host_s(r.kind, int(r.ranks), lib.lib)  # in t already, as a model step pays it
            host = (lib.host if self.host[i] is None else self.host[i]) + p2p
            t = harness_time(t - p2p, host * self.devices[i], r.timing)
            out.append(math.log(t / r.measured_time_s))
        return np.array(out)


def _own_host(stack: str) -> float | None:
    """The per-call host cost a stack sets in its own file (None: it inherits its base's)."""
    from ..stack.presets import base_of, own_runtime

    if not stack or base_of(stack) == stack:
        return None
    own = own_runtime(stack).get("collective_launch_s")
    return None if own is None else float(own)


def _fit(data: _Rows, lib: _Lib, idx: list[int], only: tuple[str, ...] = ()) -> tuple[_Lib, list[str]]:
    from scipy.optimize import differential_evolution, least_squares

    names = [f for f in _fields(lib) if not only or f in only]  # ``only``: the rest keep the file's values
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


def library_rows(rows: list[MeasurementRow], stack: str) -> list[MeasurementRow]:
    """The collective rows measured under the base stack ``stack`` itself (the library's own
    benchmark, e.g. nccl-tests for NCCL) or under a stack extending it that sets its own
    per-call host cost (nccl-tests with CUDA graphs: ``cuda-graphs``, 0). Rows of other stacks
    that extend it (PyTorch eager, XLA executables) add costs of their own and are left for
    validation."""
    from ..arch.presets import load_raw as load_system_raw
    from ..stack.presets import base_of

    out, default = [], {}
    for r in rows:
        if r.kind not in COLLECTIVE_KINDS or not r.steady:
            continue
        name = r.stack
        if not name:
            if r.system not in default:
                default[r.system] = load_system_raw(r.system)[0].get("stack", "")
            name = default[r.system]
        if name == stack or (name and base_of(name) == stack and _own_host(name) is not None):
            out.append(r)
    return out


def fit_library(rows: list[MeasurementRow], stack: str, holdout: bool = True, only: Iterable[str] = ()) -> LibraryFit:
    """Fit the collective library of base stack ``stack`` to ``rows`` (collective rows of it);
    ``only``: fit these fields, the others keep their file values (a new mechanism's field
    fitted without moving the rest)."""
    from ..stack.presets import load_stack

    if not rows:
        raise MeasurementError(f"no collective rows for stack {stack!r} in the corpus")
    st = load_stack(stack)
    data = _Rows(rows)
    every = list(range(len(rows)))
    if st.runtime.dispatch == "program":  # each row is one program run: its constant cost is the runtime's
        lib = _Lib(st.collectives.model_copy(update={"call_latency_s": 0.0}), st.runtime.kernel_launch_s,
                   fit_host=True, program=True)
    else:
        lib = _Lib(st.collectives, st.runtime.collective_launch_s, fit_host=data.host_separable())
    only = tuple(only)
    unknown = [f for f in only if f not in _fields(lib)]
    if unknown:
        raise MeasurementError(f"--field {unknown[0]!r} is not a fitted field of {stack}; "
                               f"fitted fields: {', '.join(_fields(lib))}")
    fitted, determined = _fit(data, lib, every, only)
    err = data.log_errors(fitted, every)
    sources = sorted({r.source or r.id for r in rows})
    per_source: dict[str, tuple[int, float, float | None]] = {}
    held: list[float] = []
    for src in sources:
        idx = [i for i, r in enumerate(rows) if (r.source or r.id) == src]
        rest = [i for i in every if i not in idx]
        out = None
        if holdout and rest and len(sources) > 1:
            lib_rest, _ = _fit(data, lib, rest, only)
            e = data.log_errors(lib_rest, idx)
            out = mean_ape(e)
            held += list(np.abs(np.exp(e) - 1.0))
        per_source[src] = (len(idx), mean_ape(err[idx]), out)
    values = {f: _get(fitted, f) for f in _fields(lib)}
    return LibraryFit(stack, values, determined, len(rows), sources, mean_ape(err), float(np.exp(err.mean())),
                      float(np.mean(held)) if held else None, per_source, only)


def derive(paths, stacks: Iterable[str] | None = None, holdout: bool = True, only: Iterable[str] = ()) -> list[LibraryFit]:
    """Fit every base stack's collective library to the corpus files ``paths``."""
    from ..stack.presets import base_of, list_stacks

    rows = rows_of(load_measurements(paths))
    bases = sorted({base_of(s) for s in list_stacks()}) if stacks is None else list(stacks)
    for b in bases:
        if base_of(b) != b:  # its collectives are another stack's library: that one is fitted
            raise MeasurementError(f"stack {b!r} has no collective library of its own (it uses the one of {base_of(b)!r}): "
                                   f"fit {base_of(b)!r}; a program stack's per-call cost is fitted with every run")
    out = []
    for b in bases:
        sel = library_rows(rows, b)
        if sel:
            out.append(fit_library(sel, b, holdout, only))
    return out


def write_fit(fit: LibraryFit, corpus: str) -> Path:
    """Write the fitted values into the stack's YAML file (its ``collectives`` block), with a
    ``sources`` entry for each fitted field naming the rows it came from."""
    from ..stack.presets import rewrite_stack

    def update(data: dict) -> None:
        _set_fitted(data, fit, corpus)

    return rewrite_stack(fit.stack, update)


def _set_fitted(data: dict, fit: LibraryFit, corpus: str) -> None:
    col = data["collectives"]
    for f, v in fit.values.items():
        if f not in fit.determined:
            continue
        v = float(f"{v:.4g}")
        if f == HOST:
            data.setdefault("runtime", {})["collective_launch_s"] = v
        elif f == PROGRAM:
            data.setdefault("runtime", {})["kernel_launch_s"] = v
            col["call_latency_s"] = 0
            data.setdefault("sources", {})["collectives.call_latency_s"] = (
                "0: a program-dispatch runtime's standalone collective pays its constant cost as one program "
                "execution (runtime.kernel_launch_s); in a compiled model the collectives run inside the step's program")
        elif f.startswith("protocols."):
            _, name, attr = f.split(".")
            next(p for p in col["protocols"] if p["name"] == name)[attr] = v
        else:
            col[f] = v
        data.setdefault("sources", {})[f if f in (HOST, PROGRAM) else f"collectives.{f}"] = (
            f"accelsim priors: fitted to {fit.rows} collective rows of {corpus} "
            + ("(the library's other fields fixed; " if fit.only else "(")
            + f"{len(fit.sources)} sources; in-sample MAPE {100 * fit.mape:.1f}%, leave-one-source-out "
            + (f"{100 * fit.loso_mape:.1f}%" if fit.loso_mape is not None else "n/a") + ")")


# ------------------------------------------------------------------------------------------
# Program-dispatch runtimes measured through collectives (XLA executables)


def fit_program_call(rows: list[MeasurementRow], stack: str) -> tuple[float, float, float]:
    """(per-call cost, MAPE before, MAPE after) of a stack whose runtime dispatches whole
    programs, from its collective rows (each row is one program call: the library's time plus
    the call cost; the library keeps its fitted values)."""
    from scipy.optimize import minimize_scalar

    from ..stack.presets import load_stack

    st = load_stack(stack)
    if st.runtime.dispatch != "program":
        raise MeasurementError(f"stack {stack!r} dispatches kernels, not programs: nothing to fit per call")
    data = _Rows(rows)
    base = np.exp(data.log_errors(_Lib(st.collectives, 0.0), range(len(rows))))  # predicted / measured, no call
    meas = np.array([r.measured_time_s for r in rows])
    pred = base * meas

    def cost(c: float) -> float:
        r = np.log((pred + c) / meas) / 0.1
        return float(np.sum(2.0 * (np.sqrt(1.0 + r * r) - 1.0)))

    sol = minimize_scalar(cost, bounds=(0.0, LATENCY_MAX_S), method="bounded", options={"xatol": 1e-9})
    c = float(sol.x)
    return c, mean_ape(np.log(pred / meas)), mean_ape(np.log((pred + c) / meas))


def program_stacks_with_rows(rows: list[MeasurementRow]) -> dict[str, list[MeasurementRow]]:
    """Collective rows per program-dispatch stack (other than a base stack)."""
    from ..stack.presets import base_of, list_stacks, load_stack

    # a base stack's own rows fitted its library (its call cost is the library's call latency)
    # a stack whose file states its per-call cost as a definition (not a fit of this routine:
    # ``neuron-device``, device time with no program execution in it) keeps it
    program = {s for s in list_stacks() if load_stack(s).runtime.dispatch == "program" and base_of(s) != s
               and _fitted_here(s)}
    out: dict[str, list[MeasurementRow]] = {}
    for r in rows:
        if r.kind in COLLECTIVE_KINDS and r.stack in program and r.steady:
            out.setdefault(r.stack, []).append(r)
    return out


def _fitted_here(stack: str) -> bool:
    """Whether ``stack``'s own ``runtime.kernel_launch_s`` is absent or came from this fit (its
    source says ``accelsim priors``), i.e. may be refitted."""
    from ..stack.presets import load_stack, own_runtime

    if "kernel_launch_s" not in own_runtime(stack):
        return True
    return load_stack(stack).sources.get("runtime.kernel_launch_s", "").startswith("accelsim priors")


def write_program_call(stack: str, value: float, n: int, before: float, after: float, corpus: str) -> Path:
    """Store a program stack's fitted per-call cost in its file."""
    return write_kernel_launch(stack, value, f"accelsim priors: per-call cost fitted to the {n} collective rows of {corpus} "
                                       f"measured under this stack (library values fixed; MAPE {100 * before:.1f}% -> "
                                       f"{100 * after:.1f}%)")


__all__ = ["LibraryFit", "derive", "fit_library", "library_rows", "write_fit", "fit_program_call",
           "program_stacks_with_rows", "write_program_call"]
