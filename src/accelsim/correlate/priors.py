"""Priors from the measurement corpus: each chip's achievable fractions (tensor per dtype, HBM,
shared level), each kernel library's reduction efficiency and each runtime's per-kernel cost,
fitted jointly to the published kernel rows of ``workloads/measurements/parts/`` (``accelsim
priors``). The collective libraries are fitted by ``library_fit``.

Deterministic and re-runnable: the same rows give the same values. Next to the in-sample error
the report gives leave-one-chip-out error: a chip's rows predicted from its nearest sibling's
values, what a chip nobody measured can expect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..stack.spec import REDUCTION_KINDS
from .predict import ALONE_KEY
from .schema import KERNEL_KINDS, MeasurementRow

FRACTION_MIN = 0.05
"""Smallest achievable fraction a fit may return."""
LATENCY_MAX_S = 1e-3
"""Largest per-call or per-step latency a fit may return, seconds."""


def mean_ape(e: np.ndarray) -> float:
    """Mean absolute percentage error of log errors ``e`` (log(predicted / measured))."""
    return float(np.mean(np.abs(np.exp(e) - 1.0))) if len(e) else math.nan


HARDWARE_KINDS = KERNEL_KINDS
SIBLINGS = {"a100-sxm4-80gb": "h100-sxm5-80gb", "h100-sxm5-80gb": "h200-sxm-141gb",
            "h200-sxm-141gb": "h100-sxm5-80gb", "mi300x": "h100-sxm5-80gb", "trainium1": "trainium2",
            "trainium2": "trainium1", "inferentia2": "trainium1", "tpu-v5e": "tpu-v5p", "tpu-v5p": "tpu-v5e",
            "tpu-v4": "tpu-v5e"}
"""The nearest sibling of each chip: where a chip has no row for a field, its prior comes from
here (a chip not listed: the chip whose die it is, ``ChipSpec.die``), and leaving a chip out
predicts it from here."""


def same_die() -> dict[str, str]:
    """Chips built on another chip's compute die (the presets' ``ChipSpec.die``): they share its
    tensor fields, fitted on both chips' GEMM rows (their memory fields stay their own). The H200
    is the H100's GH100 die with HBM3e: its datasheet lists the H100 SXM's tensor peaks
    (arch_configs/h200-sxm-141gb.yaml, nv_h200). Fitted apart, the H200's own rows (a mid-size-GEMM
    sweep) left its tensor fraction at the bound, 1.0, against the H100's 0.81."""
    from ..arch.presets import chip_dies

    return chip_dies()


def _sibling_chain(chip: str) -> list[str]:
    """The chip's siblings, nearest first: ``SIBLINGS``, else the chip whose die it is, and so on
    (each chip once)."""
    dies, out, seen = same_die(), [], {chip}
    sib = SIBLINGS.get(chip) or dies.get(chip)
    while sib is not None and sib not in seen:
        out.append(sib)
        seen.add(sib)
        sib = SIBLINGS.get(sib) or dies.get(sib)
    return out


TENSOR_FIELDS = ("tensor_efficiency", "tensor_dtype_efficiency.fp8")
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
    tensor_launch: dict[str, float]
    """stack -> ``runtime.tensor_launch_s`` (stacks with both GEMM and other kernel rows)."""
    kernels: dict[str, float]
    """kernel library -> ``reduction_efficiency`` (libraries with reduction rows)."""
    alone: dict[str, float]
    """stack -> ``runtime.alone_kernel_s`` (stacks with kernel rows timed alone)."""
    rows: dict[str, dict[str, int]]
    """chip -> kind -> rows."""
    in_sample: dict[str, dict[str, float]]
    """chip -> kind -> MAPE."""
    held_out: dict[str, dict[str, float]]
    """chip -> kind -> MAPE when the chip's priors come from its sibling only (leave one chip out)."""


SOFT = ("@launch", "@tensor", "@kernels", "@alone")
"""The software parameters of the hardware fit, each a mapping: stack -> ``runtime.kernel_launch_s``,
stack -> ``runtime.tensor_launch_s``, kernel library -> ``reduction_efficiency``, stack ->
``runtime.alone_kernel_s``."""


class _KernelRows:
    def __init__(self, rows: list[MeasurementRow]):
        from .predict import Predictor

        self.pr = Predictor("ideal")
        self.rows = rows
        self.chip = [self.pr.base_system(r.system).chip.name for r in rows]
        self.stack = [r.stack or self.pr.base_system(r.system).stack for r in rows]
        self.kernels = [_library(r, s) for r, s in zip(rows, self.stack)]

    def log_errors(self, chips: dict[str, dict[str, float]], soft: dict[str, dict[str, float]], idx) -> np.ndarray:
        """log(predicted / measured) of rows ``idx`` under the chips' fields and the software
        parameters ``soft`` (``SOFT``: per stack, its kernel launch, GEMM call and lone-kernel
        cost; per kernel library, its reduction fraction)."""
        out = []
        for i in idx:
            r = self.rows[i]
            st = self.stack[i]
            cal = dict(chips.get(self.chip[i], {}))
            cal["launch_overhead_s"] = soft["@launch"].get(st, 0.0)
            cal["tensor_launch_overhead_s"] = soft["@tensor"].get(st, 0.0)
            if r.timing == "alone" and st in soft["@alone"]:
                cal[ALONE_KEY] = soft["@alone"][st]
            if self.kernels[i] in soft["@kernels"]:
                cal["reduction_efficiency"] = soft["@kernels"][self.kernels[i]]
            p = self.pr.predict(r, "analytical", cal)
            out.append(math.log(p.time_s / r.measured_time_s) if not p.skipped and p.time_s > 0 else 0.0)
        return np.array(out)


def _library(row: MeasurementRow, stack: str | None) -> str | None:
    """The kernel library of a reduction row: its ``kernels`` column, else its stack's (None for
    other kinds)."""
    if row.kind not in REDUCTION_KINDS:
        return None
    if row.kernels:
        return row.kernels
    from ..stack.presets import load_stack

    return load_stack(stack).kernels if stack else None


def _cached(data: "_KernelRows", i: int) -> bool:
    """Whether row ``i`` is a warm re-run whose footprint the chip's shared level serves in part
    (``cost.cache.residency`` > 0): only such a row says anything about that level's rate."""
    from ..cost.cache import residency
    from .row_ops import kernel_ops

    r = data.rows[i]
    if r.cache != "warm":
        return False
    shared = data.pr.base_system(r.system).chip.shared_sram
    return shared is not None and residency(sum(op.bytes() for op in kernel_ops(r)), shared.capacity_bytes) > 0


def _hw_fields(rows: list[MeasurementRow], chips: list[str], cached: list[bool]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for r, c, hit in zip(rows, chips, cached):
        f = fields.setdefault(c, [])
        if r.kind == "gemm":
            name = "tensor_dtype_efficiency.fp8" if r.dtype == "fp8" else "tensor_efficiency"
            if name not in f:
                f.append(name)
        else:
            for name in ("hbm_efficiency",) + (("sram_efficiency",) if hit else ()):
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
                   and r.op != "composite" and r.steady), key=lambda r: r.id)
    if not rows:
        from ..errors import MeasurementError

        raise MeasurementError(f"no kernel rows ({', '.join(sorted(HARDWARE_KINDS))}) to fit the chips' achievable "
                               f"fractions on (a kernel measured on one NeuronCore or a composite row does not count)")
    data = _KernelRows(rows)
    fields = _hw_fields(rows, data.chip, [_cached(data, i) for i in range(len(rows))])
    dies = same_die()
    for c, die in dies.items():  # a die's tensor fields are one parameter, the die owner's
        for f in TENSOR_FIELDS:
            if f in fields.get(c, []):
                fields[c].remove(f)
                if f not in fields.setdefault(die, []):
                    fields[die].append(f)
    stacks = sorted({s for s in data.stack if s})
    # a stack whose file declares a GEMM library call's host cost (an eager runtime, where the host
    # is on the timed path) and that is measured on GEMMs and on other kernels tells that cost
    # apart from the plain kernel launch
    kinds = {s: {r.kind == "gemm" for r, t in zip(rows, data.stack) if t == s} for s in stacks}
    split = [s for s in stacks if kinds[s] == {True, False} and _declares_tensor_launch(s)]
    libraries = sorted({k for k in data.kernels if k})
    # a stack with rows timed alone (do_bench) and rows issued back to back tells the two apart
    alone = sorted({s for r, s in zip(rows, data.stack) if s and r.timing == "alone"}
                   & {s for r, s in zip(rows, data.stack) if s and r.timing != "alone"})
    names = ([(c, f) for c in sorted(fields) for f in fields[c]] + [("@launch", s) for s in stacks]
             + [("@tensor", s) for s in split] + [("@kernels", k) for k in libraries] + [("@alone", s) for s in alone])
    timing = [c in SOFT and c != "@kernels" for c, _ in names]  # latencies (the rest are fractions)
    lo = np.array([0.0 if t else FRACTION_MIN for t in timing])
    hi = np.array([LATENCY_MAX_S if t else 1.0 for t in timing])
    x0 = np.array([3e-6 if t else 0.7 for t in timing])

    def unpack(x):
        chips: dict[str, dict[str, float]] = {}
        soft: dict[str, dict[str, float]] = {k: {} for k in SOFT}
        for (c, f), v in zip(names, x):
            if c in soft:
                soft[c][f] = float(v)
            else:
                chips.setdefault(c, {})[f] = float(v)
        for c, die in dies.items():
            if c in data.chip:
                chips.setdefault(c, {}).update({f: v for f, v in chips.get(die, {}).items() if f in TENSOR_FIELDS})
        return chips, soft

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
                            x_scale=np.where([timing[j] for j in cols], 1e-6, 0.1),
                            ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=2000)
        x[cols] = sol.x
    chips, soft = unpack(x)
    chips = _identified(data, chips, soft)
    err = data.log_errors(chips, soft, every)
    by = {}
    for i, r in enumerate(rows):
        by.setdefault(data.chip[i], {}).setdefault(r.kind, []).append(i)
    count = {c: {k: len(v) for k, v in ks.items()} for c, ks in by.items()}
    in_sample = {c: {k: mean_ape(err[v]) for k, v in ks.items()} for c, ks in by.items()}
    held: dict[str, dict[str, float]] = {}
    if holdout:
        for c, ks in by.items():
            others = {k: v for k, v in chips.items() if k != c}
            sib = _from_siblings(c, others)  # the chip's priors as if it had no rows (the same rule as
            for f in GENERIC_FIELDS:        # priors_table: siblings, else the median of the others)
                vals = _measured(others, f)
                if f not in sib and vals:
                    sib[f] = float(np.median(vals))
            for k, v in ks.items():
                need = {"gemm": ("tensor_efficiency",)}.get(k, ("hbm_efficiency",))
                if not all(f in sib for f in need):
                    continue  # no sibling has rows of this kind: nothing to hold out against
                # a kernel library measured on this chip alone says nothing once the chip is left out
                kern = {lib: x for lib, x in soft["@kernels"].items()
                        if any(data.kernels[i] == lib and data.chip[i] != c for i in every)}
                e = data.log_errors({**others, c: sib}, {**soft, "@kernels": kern}, v)
                held.setdefault(c, {})[k] = mean_ape(e)
    return HardwareFit(chips, soft["@launch"], soft["@tensor"], soft["@kernels"], soft["@alone"], count, in_sample,
                       held)


def _identified(data: "_KernelRows", chips: dict[str, dict[str, float]], soft: dict[str, dict[str, float]]
                ) -> dict[str, dict[str, float]]:
    """``chips`` without the fields none of their chip's rows respond to: a field whose term
    never binds on those rows (a GPU whose large GEMMs the SRAM term bounds leaves
    ``tensor_efficiency`` free, and the fit parks it at a bound) is not fitted, so the chip takes
    it from its sibling like a field it has no rows for. Test: 10 % less of the field moves no
    row's log error by 1e-4."""
    base = data.log_errors(chips, soft, list(range(len(data.chip))))
    dies = same_die()
    out = {}
    for c, fs in chips.items():
        # its rows, and those of the chips on its die (a die owner measured only through another
        # chip on it, as the H100 through H200 rows, holds the tensor fields those rows fit)
        idx = [i for i, ch in enumerate(data.chip) if ch == c or dies.get(ch) == c]
        keep = {}
        for f, v in fs.items():
            trial = {**chips, c: {**fs, f: v * 0.9}}
            if f in TENSOR_FIELDS:  # the die's field moves on every chip of the die
                trial.update({ch: {**chips[ch], f: v * 0.9} for ch in chips if dies.get(ch) == c and f in chips[ch]})
            if idx and np.abs(data.log_errors(trial, soft, idx) - base[idx]).max() >= 1e-4:
                keep[f] = v
        out[c] = keep
    return out


def _declares_tensor_launch(stack: str) -> bool:
    """Whether ``stack``'s own file (not its base) sets ``runtime.tensor_launch_s`` on a runtime
    that dispatches kernels from a host on the timed path (``host_async``: eager PyTorch); a graph
    replay's is 0 by definition (no library call on the host), whatever its rows."""
    from ..stack.presets import load_stack, own_runtime

    rt = load_stack(stack).runtime
    return "tensor_launch_s" in own_runtime(stack) and rt.dispatch == "kernel" and rt.host_async


def _groups(names, rows, data) -> list[dict]:
    """Connected groups of (chip, runtime, kernel library): chips measured under a common runtime or
    kernel library, with their parameter names and row indices, in a fixed order."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for c, die in same_die().items():  # a shared die's fields (held by its owner) tie the two chips' rows
        if c in data.chip:
            union("chip:" + c, "chip:" + die)
    for i in range(len(rows)):
        union("chip:" + data.chip[i], "stack:" + (data.stack[i] or ""))
        if data.kernels[i]:
            union("chip:" + data.chip[i], "kernels:" + data.kernels[i])
    out: dict[str, dict] = {}
    for i in range(len(rows)):
        g = out.setdefault(find("chip:" + data.chip[i]), {"names": set(), "rows": []})
        g["rows"].append(i)
    node = {"@launch": "stack:", "@tensor": "stack:", "@alone": "stack:", "@kernels": "kernels:"}  # what a parameter belongs to
    for c, f in names:
        key = find(node[c] + f if c in node else "chip:" + c)
        if key in out:
            out[key]["names"].add((c, f))
    return [out[k] for k in sorted(out)]


def _measured(chips: dict[str, dict[str, float]], field: str) -> list[float]:
    """``field`` of every chip that has it, sorted; a die's tensor fields once (not again for a
    chip on the same die)."""
    dies = same_die()
    return sorted(v[field] for c, v in chips.items()
                  if field in v and not (field in TENSOR_FIELDS and dies.get(c) in chips))


def _from_siblings(chip: str, chips: dict[str, dict[str, float]]) -> dict[str, float]:
    """Fields for ``chip`` taken along its sibling chain from ``chips`` (the nearest first)."""
    out: dict[str, float] = {}
    for sib in _sibling_chain(chip):
        for f, v in chips.get(sib, {}).items():
            out.setdefault(f, v)
    return out


def priors_table(fit: HardwareFit, all_chips: Iterable[str]) -> dict[str, dict]:
    """Every chip's achievable block: its own fitted fields, the rest from its sibling (chain)."""
    out, dies = {}, same_die()
    for c in sorted(all_chips):
        own = dict(fit.chips.get(c, {}))
        borrowed = {}
        for sib in _sibling_chain(c):
            for f, v in fit.chips.get(sib, {}).items():
                if f not in own and f not in borrowed:
                    borrowed[f] = (v, sib)
        for f in GENERIC_FIELDS:  # no sibling measured it either: the median of the chips that were
            if f not in own and f not in borrowed:
                measured = _measured(fit.chips, f)
                if measured:
                    borrowed[f] = (float(np.median(measured)), "median of measured chips")
        values = {**own, **{f: v for f, (v, _) in borrowed.items()}}
        if not values:
            continue
        block: dict = {k: round(v, 4) for k, v in values.items() if not k.startswith("tensor_dtype_efficiency.")}
        dt = {k.split(".", 1)[1]: round(v, 4) for k, v in values.items() if k.startswith("tensor_dtype_efficiency.")}
        if dt:
            block["tensor_dtype_efficiency"] = dt
        shared = {f: dies[c] for f in own if f in TENSOR_FIELDS and c in dies}
        out[c] = {"achievable": block, "fitted": sorted(own), "from_sibling": {f: s for f, (_, s) in borrowed.items()},
                  **({"same_die": shared} if shared else {}),
                  "rows": fit.rows.get(c, {}),
                  "in_sample_mape": {k: round(v, 4) for k, v in fit.in_sample.get(c, {}).items()},
                  "leave_one_chip_out_mape": {k: round(v, 4) for k, v in fit.held_out.get(c, {}).items()}}
    return out


def _flat(block: dict) -> dict[str, float]:
    """An achievable block with ``tensor_dtype_efficiency`` spelled out per dtype."""
    out = {k: float(v) for k, v in block.items() if k != "tensor_dtype_efficiency"}
    out.update({f"tensor_dtype_efficiency.{d}": float(v) for d, v in (block.get("tensor_dtype_efficiency") or {}).items()})
    return out


def drift(fit: HardwareFit, preset_chips: Iterable[str], tolerance: float = 1e-3) -> list[tuple[str, str, float, float]]:
    """Where the shipped priors differ from ``fit`` by more than ``tolerance`` (relative):
    ``(chip, stack or kernel library, field, shipped, fitted)`` as ``(where, field, shipped,
    fitted)``; a shipped value with no fitted one (or the reverse) counts as ``nan``. The shipped
    ones are ``arch_configs/priors/achievable.yaml`` and the fitted fields of the stack and
    kernel-library files (what ``write_hardware`` writes); rounding on writing stays inside the
    default tolerance."""
    from ..arch.presets import achievable_priors
    from ..stack.presets import load_kernels, own_runtime

    def differs(a: float, b: float) -> bool:
        return not (math.isfinite(a) and math.isfinite(b)) or abs(a - b) > tolerance * max(abs(a), abs(b), 1e-12)

    out = []
    shipped = achievable_priors()
    table = priors_table(fit, preset_chips)
    for chip in sorted(set(table) | {c for c in preset_chips if (shipped.get(c) or {}).get("achievable")}):
        new = _flat(table.get(chip, {}).get("achievable") or {})
        old = _flat((shipped.get(chip) or {}).get("achievable") or {})
        for f in sorted(new.keys() | old.keys()):
            a, b = old.get(f, math.nan), new.get(f, math.nan)
            if differs(a, b):
                out.append((chip, f, a, b))
    for field, fitted in (("runtime.kernel_launch_s", fit.launch), ("runtime.tensor_launch_s", fit.tensor_launch),
                          ("runtime.alone_kernel_s", fit.alone)):
        for st, b in sorted(fitted.items()):
            a = float(own_runtime(st).get(field.split(".", 1)[1], math.nan))
            if differs(a, b) and not (a == 0.0 and b < 1e-9):  # a bound written as 0
                out.append((st, field, a, b))
    for lib, b in sorted(fit.kernels.items()):
        a = float(load_kernels(lib).reduction_efficiency)
        if differs(a, b):
            out.append((lib, "reduction_efficiency", a, b))
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
        paths.append(write_kernel_launch(st, v, f"accelsim priors: fitted with the chips' achievable fractions to the kernel "
                                          f"rows of {corpus} measured under this stack (the fixed cost of one kernel "
                                          f"issued back to back)"))
    for lib, v in fit.kernels.items():
        paths.append(write_reduction(lib, v, f"accelsim priors: fitted with the chips' achievable fractions to the "
                                     f"softmax and norm rows of {corpus} run with this library's kernels"))
    for st, v in fit.alone.items():
        paths.append(write_kernel_launch(st, v, f"accelsim priors: fitted with the kernel launch to the kernel rows of "
                                          f"{corpus} timed alone under this stack (do_bench: CUDA events around one "
                                          f"call behind a cache flush) and those issued back to back",
                                          "alone_kernel_s"))
    for st, v in fit.tensor_launch.items():
        paths.append(write_kernel_launch(st, v, f"accelsim priors: fitted with the kernel launch to the GEMM and the other "
                                          f"kernel rows of {corpus} measured under this stack (what a GEMM's library "
                                          f"call costs beyond a native kernel's launch)", "tensor_launch_s"))
    return sorted(set(paths))


def write_reduction(library: str, value: float, source: str) -> Path:
    """Set a kernel library file's ``reduction_efficiency`` and its source."""
    from ..stack.presets import rewrite_kernels

    def update(data: dict) -> None:
        data["reduction_efficiency"] = round(value, 4)
        data.setdefault("sources", {})["reduction_efficiency"] = source

    return rewrite_kernels(library, update)


def write_kernel_launch(stack: str, value: float, source: str, field: str = "kernel_launch_s") -> Path:
    """Set a stack file's ``runtime.FIELD`` (default ``kernel_launch_s``) and its source, keeping
    the header comments."""
    from ..stack.presets import rewrite_stack

    def update(data: dict) -> None:
        data.setdefault("runtime", {})[field] = float(f"{value:.4g}") if value >= 1e-9 else 0.0  # a bound
        data.setdefault("sources", {})[f"runtime.{field}"] = source

    return rewrite_stack(stack, update)


__all__ = ["FRACTION_MIN", "LATENCY_MAX_S", "HardwareFit", "drift", "fit_hardware", "mean_ape", "priors_table",
           "write_hardware", "write_kernel_launch", "SIBLINGS"]
