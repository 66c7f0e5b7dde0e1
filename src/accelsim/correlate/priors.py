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
from .schema import COLLECTIVE_KINDS, KERNEL_KINDS, MeasurementRow, load_measurements, rows_of

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
    return ((["bandwidth_fraction"] if lib.program else ["call_latency_s", "bandwidth_fraction"])
            + ["in_switch_bandwidth_fraction", "scale_out_step_latency_s", "scale_out_bandwidth_fraction"]
            + [f"protocols.{p.name}.step_latency_s" for p in lib.lib.protocols]
            + ([PROGRAM if lib.program else HOST] if lib.fit_host else []))


def _get(lib: _Lib, f: str) -> float:
    if f in (HOST, PROGRAM):
        return lib.host
    if f.startswith("protocols."):
        _, name, attr = f.split(".")
        return float(getattr(next(p for p in lib.lib.protocols if p.name == name), attr))
    return float(getattr(lib.lib, f))


def _with(lib: _Lib, values: dict[str, float]) -> _Lib:
    top = {f: v for f, v in values.items() if not f.startswith("protocols.") and f not in (HOST, PROGRAM)}
    protos = tuple(p.model_copy(update={"step_latency_s": values.get(f"protocols.{p.name}.step_latency_s",
                                                                      p.step_latency_s)}) for p in lib.lib.protocols)
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
        from ..cost.collectives import collective_cost

        out = []
        for i in idx:
            r, s = self.rows[i], self.systems[i]
            t = collective_cost(s, r.kind, float(r.bytes), int(r.ranks), library=lib.lib).time_s
            t += (lib.host if self.host[i] is None else self.host[i]) * self.devices[i]
            out.append(math.log(t / r.measured_time_s))
        return np.array(out)


def _own_host(stack: str) -> float | None:
    """The per-call host cost a stack sets in its own file (None: it inherits its base's)."""
    from ..configio import load_yaml
    from ..stack.presets import base_of, stack_path

    if not stack or base_of(stack) == stack:
        return None
    own = (load_yaml(stack_path(stack)).get("runtime") or {}).get("collective_launch_s")
    return None if own is None else float(own)


def _fit(data: _Rows, lib: _Lib, idx: list[int]) -> tuple[_Lib, list[str]]:
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
    benchmark, e.g. nccl-tests for NCCL) or under a stack extending it that sets its own
    per-call host cost (nccl-tests with CUDA graphs: ``cuda-graphs``, 0). Rows of other stacks
    that extend it (PyTorch eager, XLA executables) add costs of their own and are left for
    validation."""
    from ..arch.presets import load_raw as load_system_raw
    from ..stack.presets import base_of

    out, default = [], {}
    for r in rows:
        if r.kind not in COLLECTIVE_KINDS:
            continue
        name = r.stack
        if not name:
            if r.system not in default:
                default[r.system] = load_system_raw(r.system)[0].get("stack", "")
            name = default[r.system]
        if name == stack or (name and base_of(name) == stack and _own_host(name) is not None):
            out.append(r)
    return out


def fit_library(rows: list[MeasurementRow], stack: str, holdout: bool = True) -> LibraryFit:
    """Fit the collective library of base stack ``stack`` to ``rows`` (collective rows of it)."""
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
            f"({len(fit.sources)} sources; in-sample MAPE {100 * fit.mape:.1f}%, leave-one-source-out "
            + (f"{100 * fit.loso_mape:.1f}%" if fit.loso_mape is not None else "n/a") + ")")
    head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    path.write_text(head + yaml.safe_dump(data, sort_keys=False, width=110))
    return path


__all__ = ["LibraryFit", "derive", "fit_library", "library_rows", "write_fit"]


# ------------------------------------------------------------------------------------------
# Hardware: achievable fractions per chip, kernel cost per runtime

HARDWARE_KINDS = KERNEL_KINDS
REDUCTION_KINDS = ("softmax", "layernorm", "rmsnorm")
SIBLINGS = {"a100-sxm4-80gb": "h100-sxm5-80gb", "h100-sxm5-80gb": "h200-sxm-141gb",
            "h200-sxm-141gb": "h100-sxm5-80gb", "mi300x": "h100-sxm5-80gb", "trainium1": "trainium2",
            "trainium2": "trainium1", "inferentia2": "trainium1", "tpu-v5e": "tpu-v5p", "tpu-v5p": "tpu-v5e",
            "tpu-v4": "tpu-v5e"}
"""The nearest sibling of each chip: where a chip has no row for a field, its prior comes from
here, and leaving a chip out predicts it from here."""
GENERIC_FIELDS = ("tensor_efficiency", "hbm_efficiency")
"""Fields every chip gets: where neither the chip nor a sibling has rows, the median over the
measured chips (a chip at its datasheet peak is the one thing known to be wrong)."""
PRIORS_FILE = "priors/achievable.yaml"
"""Generated file under arch_configs/ with every chip's achievable priors."""


@dataclass
class HardwareFit:
    """Achievable priors per chip and the kernel cost of each runtime."""

    chips: dict[str, dict[str, float]]
    """chip name -> fitted fields (``tensor_efficiency``, ``tensor_dtype_efficiency.fp8``,
    ``hbm_efficiency``), only those its rows determine."""
    launch: dict[str, float]
    """stack -> ``runtime.kernel_launch_s``."""
    rows: dict[str, dict[str, int]]
    """chip -> kind -> rows."""
    in_sample: dict[str, dict[str, float]]
    """chip -> kind -> MAPE."""
    held_out: dict[str, dict[str, float]]
    """chip -> kind -> MAPE when the chip's priors come from its sibling only (leave one chip out)."""


class _KernelRows:
    def __init__(self, rows: list[MeasurementRow]):
        from .predict import Predictor

        self.pr = Predictor("ideal")
        self.rows = rows
        self.chip = [self.pr.base_system(r.system).chip.name for r in rows]
        self.stack = [r.stack or self.pr.base_system(r.system).stack for r in rows]

    def log_errors(self, chips: dict[str, dict[str, float]], launch: dict[str, float], idx) -> np.ndarray:
        out = []
        for i in idx:
            r = self.rows[i]
            cal = dict(chips.get(self.chip[i], {}))
            cal["launch_overhead_s"] = launch.get(self.stack[i], 0.0)
            p = self.pr.predict(r, "analytical", cal)
            out.append(math.log(p.time_s / r.measured_time_s) if not p.skipped and p.time_s > 0 else 0.0)
        return np.array(out)


def _hw_fields(rows: list[MeasurementRow], chips: list[str]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for r, c in zip(rows, chips):
        f = fields.setdefault(c, [])
        if r.kind == "gemm":
            name = "tensor_dtype_efficiency.fp8" if r.dtype == "fp8" else "tensor_efficiency"
            if name not in f:
                f.append(name)
        else:
            for name in (("hbm_efficiency",) + (("reduction_efficiency",) if r.kind in REDUCTION_KINDS else ())
                         + (("sram_efficiency",) if r.cache == "warm" else ())):
                if name not in f:
                    f.append(name)
    for c, f in fields.items():
        if "tensor_dtype_efficiency.fp8" in f and "tensor_efficiency" not in f:
            f.append("tensor_efficiency")
    return fields


def fit_hardware(rows: list[MeasurementRow], holdout: bool = True) -> HardwareFit:
    """Fit every chip's achievable fractions and every stack's per-kernel cost to kernel rows,
    jointly (a stack's kernel cost is shared by the chips it was measured on)."""
    from scipy.optimize import least_squares

    # a kernel measured on one NeuronCore of a multi-core chip says nothing about the whole
    # chip's rate (the cost model spreads a kernel over every core), so it is left out; so is
    # a composite row (several eager kernels timed as one): it judges the composite model, the
    # rates come from one-kernel rows
    rows = sorted((r for r in rows if r.kind in HARDWARE_KINDS and "one neuroncore" not in (r.notes or "").lower()
                   and r.op != "composite"), key=lambda r: r.id)
    data = _KernelRows(rows)
    fields = _hw_fields(rows, data.chip)
    stacks = sorted({s for s in data.stack if s})
    names = [(c, f) for c in sorted(fields) for f in fields[c]] + [("@launch", s) for s in stacks]
    lo = np.array([0.0 if c == "@launch" else FRACTION_MIN for c, _ in names])
    hi = np.array([LATENCY_MAX_S if c == "@launch" else 1.0 for c, _ in names])
    x0 = np.array([3e-6 if c == "@launch" else 0.7 for c, _ in names])

    def unpack(x):
        chips: dict[str, dict[str, float]] = {}
        launch: dict[str, float] = {}
        for (c, f), v in zip(names, x):
            if c == "@launch":
                launch[f] = float(v)
            else:
                chips.setdefault(c, {})[f] = float(v)
        return chips, launch

    every = list(range(len(rows)))
    # chips that share no runtime share no parameter: each such group is fitted on its own, so
    # a chip's priors do not move when another vendor's rows change (the joint trust region
    # would otherwise stop at a different point of a flat valley)
    x = x0.copy()
    for group in _groups(names, rows, data):
        cols = [j for j, n in enumerate(names) if n in group["names"]]
        sub = group["rows"]

        def res(xs, cols=cols, sub=sub):
            full = x.copy()
            full[cols] = xs
            return data.log_errors(*unpack(full), sub)

        sol = least_squares(res, x0[cols], bounds=(lo[cols], hi[cols]), loss="soft_l1", f_scale=0.1,
                            x_scale=np.where([names[j][0] == "@launch" for j in cols], 1e-6, 0.1),
                            ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
        x[cols] = sol.x
    chips, launch = unpack(x)
    err = data.log_errors(chips, launch, every)
    by = {}
    for i, r in enumerate(rows):
        by.setdefault(data.chip[i], {}).setdefault(r.kind, []).append(i)
    count = {c: {k: len(v) for k, v in ks.items()} for c, ks in by.items()}
    in_sample = {c: {k: _ape(err[v]) for k, v in ks.items()} for c, ks in by.items()}
    held: dict[str, dict[str, float]] = {}
    if holdout:
        for c, ks in by.items():
            others = {k: v for k, v in chips.items() if k != c}
            sib = _from_siblings(c, others)  # the chip's priors as if it had no rows (the same rule as
            for f in GENERIC_FIELDS:        # priors_table: siblings, else the median of the others)
                vals = sorted(v[f] for v in others.values() if f in v)
                if f not in sib and vals:
                    sib[f] = float(np.median(vals))
            for k, v in ks.items():
                need = {"gemm": ("tensor_efficiency",)}.get(k, ("hbm_efficiency",))
                if not all(f in sib for f in need):
                    continue  # no sibling has rows of this kind: nothing to hold out against
                e = data.log_errors({**others, c: sib}, launch, v)
                held.setdefault(c, {})[k] = _ape(e)
    return HardwareFit(chips, launch, count, in_sample, held)


def _groups(names, rows, data) -> list[dict]:
    """Connected groups of (chip, runtime): chips measured under a common runtime, with their
    parameter names and row indices, in a fixed order."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for i in range(len(rows)):
        a, b = find("chip:" + data.chip[i]), find("stack:" + (data.stack[i] or ""))
        if a != b:
            parent[max(a, b)] = min(a, b)
    out: dict[str, dict] = {}
    for i in range(len(rows)):
        g = out.setdefault(find("chip:" + data.chip[i]), {"names": set(), "rows": []})
        g["rows"].append(i)
    for c, f in names:
        key = find(("stack:" + f) if c == "@launch" else ("chip:" + c))
        if key in out:
            out[key]["names"].add((c, f))
    return [out[k] for k in sorted(out)]


def _from_siblings(chip: str, chips: dict[str, dict[str, float]]) -> dict[str, float]:
    """Fields for ``chip`` taken along its sibling chain from ``chips`` (the nearest first)."""
    out: dict[str, float] = {}
    sib, seen = SIBLINGS.get(chip), {chip}
    while sib is not None and sib not in seen:
        for f, v in chips.get(sib, {}).items():
            out.setdefault(f, v)
        seen.add(sib)
        sib = SIBLINGS.get(sib)
    return out


def priors_table(fit: HardwareFit, all_chips: Iterable[str]) -> dict[str, dict]:
    """Every chip's achievable block: its own fitted fields, the rest from its sibling (chain)."""
    out = {}
    for c in sorted(all_chips):
        own = dict(fit.chips.get(c, {}))
        borrowed = {}
        sib, seen = SIBLINGS.get(c), {c}
        while sib is not None and sib not in seen:
            for f, v in fit.chips.get(sib, {}).items():
                if f not in own and f not in borrowed:
                    borrowed[f] = (v, sib)
            seen.add(sib)
            sib = SIBLINGS.get(sib)
        for f in GENERIC_FIELDS:  # no sibling measured it either: the median of the chips that were
            if f not in own and f not in borrowed:
                measured = sorted(v[f] for v in fit.chips.values() if f in v)
                if measured:
                    borrowed[f] = (float(np.median(measured)), "median of measured chips")
        values = {**own, **{f: v for f, (v, _) in borrowed.items()}}
        if not values:
            continue
        block: dict = {k: round(v, 4) for k, v in values.items() if not k.startswith("tensor_dtype_efficiency.")}
        dt = {k.split(".", 1)[1]: round(v, 4) for k, v in values.items() if k.startswith("tensor_dtype_efficiency.")}
        if dt:
            block["tensor_dtype_efficiency"] = dt
        out[c] = {"achievable": block, "fitted": sorted(own), "from_sibling": {f: s for f, (_, s) in borrowed.items()},
                  "rows": fit.rows.get(c, {}),
                  "in_sample_mape": {k: round(v, 4) for k, v in fit.in_sample.get(c, {}).items()},
                  "leave_one_chip_out_mape": {k: round(v, 4) for k, v in fit.held_out.get(c, {}).items()}}
    return out


def write_hardware(fit: HardwareFit, corpus: str, preset_chips: Iterable[str]) -> list[Path]:
    """Write arch_configs/priors/achievable.yaml and each fitted stack's ``runtime.kernel_launch_s``."""
    import yaml

    from ..arch.presets import preset_dir

    path = preset_dir() / PRIORS_FILE
    path.parent.mkdir(exist_ok=True)
    head = ("# Achievable priors per chip, generated by `accelsim priors --write` from the kernel rows of\n"
            f"# {corpus} (robust least squares, all chips and runtimes jointly); do not edit by hand.\n"
            "# Realistic mode runs each chip with its `achievable` block; fields it has no rows for come\n"
            "# from its nearest sibling (`from_sibling`); `leave_one_chip_out_mape` predicts the chip's rows\n"
            "# with its sibling's values (what a chip nobody measured can expect).\n")
    doc = {"chips": priors_table(fit, preset_chips)}
    path.write_text(head + yaml.safe_dump(doc, sort_keys=False, width=110))
    paths = [path]
    for st, v in fit.launch.items():
        paths.append(_write_launch(st, v, f"accelsim priors: fitted with the chips' achievable fractions to the kernel "
                                          f"rows of {corpus} measured under this stack (the fixed cost of one kernel "
                                          f"issued back to back)"))
    return paths


def _write_launch(stack: str, value: float, source: str) -> Path:
    """Set a stack file's ``runtime.kernel_launch_s`` and its source, keeping the header comments."""
    import yaml

    from ..stack.presets import stack_path

    p = stack_path(stack)
    data = yaml.safe_load(p.read_text())
    data.setdefault("runtime", {})["kernel_launch_s"] = float(f"{value:.4g}")
    data.setdefault("sources", {})["runtime.kernel_launch_s"] = source
    head = "".join(line for line in p.read_text().splitlines(keepends=True) if line.startswith("#"))
    p.write_text(head + yaml.safe_dump(data, sort_keys=False, width=110))
    return p


__all__ += ["HardwareFit", "fit_hardware", "priors_table", "write_hardware", "SIBLINGS"]


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
    return c, _ape(np.log(pred / meas)), _ape(np.log((pred + c) / meas))


def program_stacks_with_rows(rows: list[MeasurementRow]) -> dict[str, list[MeasurementRow]]:
    """Collective rows per program-dispatch stack (other than a base stack)."""
    from ..stack.presets import base_of, list_stacks, load_stack

    # a base stack's own rows fitted its library (its call cost is the library's call latency)
    program = {s for s in list_stacks() if load_stack(s).runtime.dispatch == "program" and base_of(s) != s}
    out: dict[str, list[MeasurementRow]] = {}
    for r in rows:
        if r.kind in COLLECTIVE_KINDS and r.stack in program:
            out.setdefault(r.stack, []).append(r)
    return out


def write_program_call(stack: str, value: float, n: int, before: float, after: float, corpus: str) -> Path:
    """Store a program stack's fitted per-call cost in its file."""
    return _write_launch(stack, value, f"accelsim priors: per-call cost fitted to the {n} collective rows of {corpus} "
                                       f"measured under this stack (library values fixed; MAPE {100 * before:.1f}% -> "
                                       f"{100 * after:.1f}%)")


__all__ += ["fit_program_call", "program_stacks_with_rows", "write_program_call"]
