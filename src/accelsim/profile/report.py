"""The profile report: per-op table, unmatched share and the cycles-lost breakdown of a trace,
with accelsim's prediction of each matched op when a system is given."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..units import fmt
from .breakdown import RULES, cycles_lost
from .match import match_work, unmatched_share
from .trace import Trace


@dataclass
class ProfileReport:
    trace: Trace
    work: pd.DataFrame
    """Matched work rows with ``predicted_s`` and ``bound`` (NaN / None without a system)."""
    ops: pd.DataFrame
    """Per op (launching op, else kernel name): count, measured_s, share, kind, matched, predicted_s."""
    unmatched_share: float
    unmatched: pd.DataFrame
    breakdown: dict[str, float]
    step_s: float
    system: str | None = None

    def to_dict(self) -> dict:
        return {"trace": self.trace.path, "kind": self.trace.kind, "system": self.system, "step_s": self.step_s,
                "device_work_s": float(self.work["dur_s"].sum()), "unmatched_share": self.unmatched_share,
                "breakdown_s": self.breakdown,
                "ops": self.ops.reset_index().to_dict(orient="records"),
                "unmatched": self.unmatched.reset_index().to_dict(orient="records")}

    def to_text(self, n: int = 15) -> str:
        w = self.work
        lines = [f"{self.trace.path}: {self.trace.kind} trace, step {fmt(self.step_s, 's')}, "
                 f"{len(w):,} units of device work ({fmt(float(w['dur_s'].sum()), 's')}), "
                 f"{100 * self.unmatched_share:.1f} % of it unmatched"
                 + (f"; predictions on {self.system}" if self.system else ""), "",
                 f"{'op':<48}{'count':>7}{'measured':>12}{'share':>8}  {'kind':<12}{'predicted':>12}"]
        for name, r in self.ops.head(n).iterrows():
            pred = fmt(r["predicted_s"], "s") if r["predicted_s"] == r["predicted_s"] else "-"
            lines.append(f"{str(name)[:47]:<48}{int(r['count']):>7}{fmt(r['measured_s'], 's'):>12}"
                         f"{100 * r['share']:>7.1f}%  {r['kind']:<12}{pred:>12}")
        if len(self.ops) > n:
            lines.append(f"... {len(self.ops) - n} more ops")
        lines += ["", "where the step's time went (ordered rules, accelsim.profile.breakdown):"]
        for key, what in RULES:
            t = self.breakdown[key]
            lines.append(f"  {key:<26}{fmt(t, 's'):>12}{100 * t / self.step_s if self.step_s else 0:>7.1f}%  {what}")
        if len(self.unmatched):
            lines += ["", "unmatched work (kept in the tables above, no accelsim op):"]
            for name, r in self.unmatched.head(8).iterrows():
                lines.append(f"  {str(name)[:60]:<62}{int(r['count']):>6}{fmt(r['sum'], 's'):>12}")
        return "\n".join(lines)

    def figure(self):
        """A horizontal stacked bar of the breakdown (matplotlib Figure)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 2.2))
        ax = fig.add_subplot()
        left = 0.0
        scale, unit = (1e3, "ms") if self.step_s < 1 else (1.0, "s")
        for key, _ in RULES:
            t = self.breakdown[key] * scale
            if t > 0:
                ax.barh([0], [t], left=left, label=key.replace("_", " "))
                left += t
        ax.set_yticks([])
        ax.set_xlabel(f"step time ({unit})")
        ax.set_title(f"Where the step's time went: {self.trace.kind} trace")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=3, fontsize=7, frameon=False)
        return fig


def predict(work: pd.DataFrame, system, stack=None) -> tuple[pd.Series, pd.Series]:
    """accelsim's time and bound of each matched row on ``system`` (a preset, path or spec)."""
    from ..arch.presets import load_system
    from ..arch.spec import SystemSpec
    from ..cost.op_cost import op_cost
    from ..sim.analytical import chip_model
    from ..stack.presets import resolve
    from ..stack.realize import realize

    spec = system if isinstance(system, SystemSpec) else load_system(system)
    st = resolve(stack, spec.stack, "realistic")
    if st is not None:  # a trace times host dispatch as gaps between kernels: predict device time only
        st = st.model_copy(update={"runtime": st.runtime.model_copy(
            update={"kernel_launch_s": 0.0, "tensor_launch_s": 0.0, "collective_launch_s": 0.0})})
    cm = chip_model(realize(spec, st), st.collectives if st else None)
    times, bounds = [], []
    for o in work["accel_op"]:
        if o is None:
            times.append(float("nan"))
            bounds.append(None)
            continue
        try:
            c = op_cost(cm, o)
        except Exception:  # noqa: BLE001 - an op the chip cannot run (a dtype it lacks): no prediction
            times.append(float("nan"))
            bounds.append(None)
            continue
        times.append(c.time_s)
        bounds.append(c.bound)
    pred = pd.Series(times, index=work.index)
    if "external_id" in work:
        # one op call that launched several kernels (split-K's reduction, cuDNN's backward
        # stages) is predicted once: its time is spread over those kernels as they measured
        has = work["external_id"].notna() & pred.notna()
        if has.any():
            grp, dur = work.loc[has, "external_id"], work.loc[has, "dur_s"]
            tot = dur.groupby(grp).transform("sum")
            share = (dur / tot).where(tot > 0, 1.0 / dur.groupby(grp).transform("size"))
            pred[has] = pred[has] * share
    return pred, pd.Series(bounds, index=work.index, dtype=object)


def _main_kind(kinds: pd.Series) -> str:
    """An op's kind: that of its work other than copies and memsets (cuDNN attention clears a
    workspace before its kernel), else the first."""
    real = kinds[~kinds.isin(("copy", "other"))]
    return str(real.mode().iloc[0] if len(real) else kinds.iloc[0])


def profile_report(trace: Trace, system=None, stack=None) -> ProfileReport:
    """Match, predict (when ``system`` is given) and attribute the trace's step."""
    if stack is not None and system is None:
        from ..errors import WorkloadError

        raise WorkloadError("a stack is the stack of the predictions: give the system too (it was ignored without it)")
    work = match_work(trace.work)
    if system is not None:
        work["predicted_s"], work["bound"] = predict(work, system, stack)
    else:
        work["predicted_s"], work["bound"] = float("nan"), None
    key = work["op"].where(work["op"].notna(), work["name"])
    total = float(work["dur_s"].sum())
    ops = work.assign(key=key).groupby("key", sort=False).agg(
        count=("dur_s", "size"), measured_s=("dur_s", "sum"), kind=("kind", _main_kind), matched=("matched", "all"),
        predicted_s=("predicted_s", lambda p: p.sum(min_count=1)))
    ops["share"] = ops["measured_s"] / total if total > 0 else 0.0
    ops = ops.sort_values("measured_s", ascending=False)
    share, table = unmatched_share(work)
    steps = trace.host[trace.host["name"].str.startswith("ProfilerStep#")] if len(trace.host) else trace.host
    window = ((float(steps["start_s"].min()), float(steps["end_s"].max())) if len(steps)
              else (float(work["start_s"].min()), float(work["end_s"].max())))
    br = cycles_lost(work, trace.host, window, work["predicted_s"], work["bound"])
    name = None if system is None else (system if isinstance(system, str) else getattr(system, "name", str(system)))
    return ProfileReport(trace, work, ops, share, table, br, window[1] - window[0], name)
