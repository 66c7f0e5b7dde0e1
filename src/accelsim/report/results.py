"""Results: the per-op table, the summary and their renderings (markdown, JSON, files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..arch.spec import SystemSpec
from ..units import fmt
from ..sim.analytical import BOUNDS, step_totals  # noqa: F401 (both part of this module's interface)
from ..workload.graph import Block, WorkloadGraph

if TYPE_CHECKING:
    import pandas as pd



class Results:
    """What one evaluation produced: ``summary``, and ``ops`` with one row per op (one chip's
    share; built on first use from the per-stored-op columns of ``slot_columns``)."""

    def __init__(self, system: SystemSpec, graph: WorkloadGraph, ops: pd.DataFrame | None = None,
                 summary: dict[str, Any] | None = None, warnings: list[str] | None = None, event: Any = None,
                 slot_columns: dict[str, np.ndarray] | None = None):
        self.system = system
        self._graph = graph
        self.summary = summary if summary is not None else {}
        self.warnings = warnings if warnings is not None else []
        self.event = event
        """The EventRun (schedule, engine result, attribution) when fidelity is "event"."""
        self._slot_columns = slot_columns
        self.op_columns: dict[str, np.ndarray] = {}
        """Op-table columns given per op (program order), joined to ``ops`` on use."""
        self._ops = ops

    @property
    def slot_columns(self) -> dict[str, Any] | None:
        """Op-table columns per stored op of ``graph.slots()``, expanded into ``ops`` on use (a
        callable given for them is called on first use)."""
        if callable(self._slot_columns):
            self._slot_columns = self._slot_columns()
        return self._slot_columns

    @property
    def graph(self) -> WorkloadGraph:
        """The evaluated graph (a callable given for it is called on first use: the fast
        analytical path builds the graph only when asked for it)."""
        if callable(self._graph):
            self._graph = self._graph()
        return self._graph

    @graph.setter
    def graph(self, graph: WorkloadGraph) -> None:
        self._graph = graph

    @property
    def ops(self) -> pd.DataFrame:
        if self._ops is None:
            self._ops = _op_table(self.graph, self.slot_columns or {})
            for k, v in self.op_columns.items():
                self._ops[k] = v
        return self._ops

    @ops.setter
    def ops(self, df: pd.DataFrame) -> None:
        self._ops = df

    def add_op_column(self, name: str, values: np.ndarray) -> None:
        """Add an op-table column given per op in program order (kept until the table is built:
        the event tier's columns do not make a run import pandas)."""
        if self._ops is not None:
            self._ops[name] = values
        else:
            self.op_columns[name] = values

    def add_column(self, name: str, values: np.ndarray) -> None:
        """Add an op-table column, given per stored op when the results have ``slot_columns``
        (else per op)."""
        if self.slot_columns is None:
            self.ops[name] = values
            return
        self.slot_columns[name] = values
        if self._ops is not None:
            self._ops[name] = values[self.graph.slot_index()]

    def to_json(self) -> str:
        return json.dumps(self.summary, indent=2, default=_plain)

    def _headline(self) -> tuple[str, str]:
        s = self.summary
        what = f"{s.get('model')} {s.get('phase')} on {s.get('system')}"
        cal = (s.get("provenance") or {}).get("calibration") or "none"
        how = (f"{s.get('fidelity', 'analytical')}, {s.get('mode', '')}, stack {s.get('stack') or '-'}, "
               f"calibration {cal}")
        return what, how

    def __repr__(self) -> str:
        what, how = self._headline()
        s = self.summary
        return (f"<Results {what}: {fmt(s['latency_s'], 's')} per step, {s['tokens_per_s']:,.1f} tokens/s "
                f"({how})>")

    def _repr_html_(self) -> str:
        """A summary card and the top op roles, for notebooks (the full tables stay in
        ``summary`` and ``ops``)."""
        from html import escape

        what, how = self._headline()
        s = self.summary
        err = s.get("expected_error") or {}
        band = f"\u00b1{100 * err['relative']:.0f} %" if err.get("relative") else ""
        cells = [("latency", f"{fmt(s['latency_s'], 's')} {band}"), ("tokens/s", f"{s['tokens_per_s']:,.1f}"),
                 ("MFU", f"{100 * s['mfu']:.1f} %"), ("HBM BW used", f"{100 * s['hbm_bandwidth_utilization']:.1f} %"),
                 ("memory/chip", f"{fmt(s['memory_bytes_per_chip'], 'B', binary=True)} of "
                                 f"{fmt(s['hbm_capacity_bytes'], 'B', binary=True)}")]
        card = "".join(f"<td style='padding:2px 12px'><div style='color:#57606a;font-size:11px'>{escape(k)}</div>"
                       f"<div style='font-size:15px;font-weight:600'>{escape(v)}</div></td>" for k, v in cells)
        top = self.top_ops(8).assign(time=lambda d: d["time_s"].map(lambda t: fmt(t, "s")),
                                     share=lambda d: (100 * d["share"]).map("{:.1f} %".format))
        table = top[["count", "time", "share", "bound"]].to_html(escape=True, border=0)
        warn = "".join(f"<div style='color:#9a6700'>&#9888; {escape(w)}</div>" for w in self.warnings)
        return (f"<div><b>{escape(what)}</b> <span style='color:#57606a'>({escape(how)})</span>{warn}"
                f"<table><tr>{card}</tr></table>{table}</div>")

    def top_ops(self, n: int = 10, by_role: bool = True) -> pd.DataFrame:
        """The ``n`` ops (or, with ``by_role``, the op roles summed over layers) taking most time."""
        from ..configio import whole_number

        n = whole_number("n", n, 0, ValueError)  # pandas' head(-1) is "all but the last"
        df = self.ops
        if by_role:
            g = df.groupby("role", sort=False).agg(count=("name", "size"), time_s=("time_s", "sum"),
                                                   flops=("flops", "sum"), hbm_bytes=("hbm_bytes", "sum"),
                                                   bound=("bound", lambda b: b.value_counts().index[0]))
            g["share"] = g["time_s"] / df["time_s"].sum()
            return g.sort_values("time_s", ascending=False).head(n)
        return df.sort_values("time_s", ascending=False).head(n)

    def to_markdown(self, n: int = 10) -> str:
        """Summary and top op roles as markdown."""
        s = self.summary
        lines = [f"### {s['model']} {s['phase']} on {s['system']} (tp={s['tp']}, {s['dtype']})", "",
                 "| metric | value |", "|---|---|",
                 f"| latency | {fmt(s['latency_s'], 's')} |",
                 f"| tokens/s | {s['tokens_per_s']:,.1f} |",
                 f"| MFU | {100 * s['mfu']:.1f}% |",
                 f"| HBM bandwidth used | {100 * s['hbm_bandwidth_utilization']:.1f}% |",
                 f"| memory per chip | {fmt(s['memory_bytes_per_chip'], 'B', binary=True)} of "
                 f"{fmt(s['hbm_capacity_bytes'], 'B', binary=True)} |", ""]
        lines += ["| bound | time | share |", "|---|---|---|"]
        for b, t in s["time_by_bound_s"].items():
            lines.append(f"| {b} | {fmt(t, 's')} | {100 * t / s['latency_s']:.1f}% |")
        lines += ["", "| op | count | time | share | bound |", "|---|---|---|---|---|"]
        for role, r in self.top_ops(n).iterrows():
            lines.append(f"| {role} | {r['count']} | {fmt(r['time_s'], 's')} | {100 * r['share']:.1f}% | {r['bound']} |")
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ops.csv, summary.json, summary.md and roofline.png into ``out_dir`` (and for an
        event-tier run also trace.json and timeline.png)."""
        from .plots import roofline_figure

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"{out}: exists and is not a folder; the results are written as files into a folder")
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "ops.csv", out / "summary.json", out / "roofline.png", out / "summary.md"]
        from ..configio import spreadsheet_safe

        spreadsheet_safe(self.ops).to_csv(paths[0], index=False)
        paths[1].write_text(self.to_json() + "\n")
        paths[3].write_text(self.to_markdown() + "\n")
        fig = roofline_figure(self)
        fig.savefig(paths[2], dpi=120, bbox_inches="tight")
        if self.event is not None:
            paths.append(self.write_trace(out / "trace.json"))
            paths.append(self.write_timeline(out / "timeline.png"))
        return paths

    def write_trace(self, path: str | Path, window_s: tuple[float, float] | None = None,
                    detail: str = "compact") -> Path:
        """Chrome trace-event JSON of the event-tier run (opens in Perfetto); ``window_s``:
        only what overlaps (start, end) seconds; ``detail``: "compact" (one slice per op and
        engine class) or "full" (one per task), both with dependency arrows between ops."""
        from .trace_compact import write_trace

        if self.event is None:
            raise ValueError("a trace needs an event-tier run (fidelity='event')")
        return write_trace(self.event.result, path, detail=detail, system_name=self.system.name, window_s=window_s)

    def write_timeline(self, path: str | Path, detail: str = "class") -> Path:
        """Timeline and utilization figure of the event-tier run, as PNG: one row per engine
        class (``detail="class"``) or per engine server and DMA queue (``"queue"``)."""
        from .plots import timeline_figure

        if self.event is None:
            raise ValueError("a timeline needs an event-tier run (fidelity='event')")
        fig = timeline_figure(self.event.result, detail=detail)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return Path(path)


def _plain(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _systems_with(system: SystemSpec, chips: int) -> str:
    """' (e.g. trn2-48xl)': shipped presets with the same chip and enough chips."""
    from ..arch.presets import preset_chips

    names = [name for name, chip, n in preset_chips() if chip == system.chip.name and n >= chips]
    return f" (e.g. {', '.join(names)})" if names else ""


OP_COLUMNS = ("hbm_bytes", "link_bytes", "compute_s", "vector_s", "memory_s", "link_s", "overhead_s", "time_s")


def _op_table(graph: WorkloadGraph, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    import pandas as pd

    ops = graph.ops()
    index = graph.slot_index()
    df = pd.DataFrame({"name": [o.name for o in ops], "layer": [o.layer for o in ops],
                       "role": [o.role for o in ops], "kind": [o.kind for o in ops],
                       "engine": [o.engine for o in ops]})
    for k, v in cols.items():
        if k == "intensity":
            f, h = cols["flops"], cols["hbm_bytes"]
            v = np.divide(f, h, out=np.zeros(len(f)), where=h > 0)
        elif k == "utilization":  # holds the peak rate until the table is built
            f, t = cols["flops"], cols["time_s"]
            v = np.divide(f, t * v, out=np.zeros(len(f)), where=t > 0)
        elif k == "mapping":  # the fast path keeps a GEMM's mapping as numbers until asked for
            from ..cost.op_cost import gemm_mapping_text

            v = np.array([m if isinstance(m, str) else gemm_mapping_text(*m) for m in v], dtype=object)
        df[k] = v[index]
    return df


def build_results(graph: WorkloadGraph, system: SystemSpec, arrays: dict[str, np.ndarray],
                  step_overhead_s: float = 0.0) -> Results:
    """Assemble the summary (and the per-op table, built when first asked for) from
    ``evaluate_slots`` output (per stored op, with ``count``) or ``evaluate_arrays`` output
    (per op); ``step_overhead_s`` is a fixed cost per step outside the ops (the software
    stack's, see ``stack.realize.step_cost_s``), added to the latency as overhead."""
    if "count" in arrays:
        ops, count = graph.slots()
    else:  # one entry per op in program order: a flat view of the graph
        graph = WorkloadGraph.from_blocks(graph.meta, [Block(tuple(graph.ops()), tuple(graph.edges()))])
        ops, count = graph.ops(), np.ones(len(graph), dtype=np.int64)
    if "flops" not in arrays:
        fb = np.array([(o.flops(), o.bytes()) for o in ops], dtype=float).reshape(len(ops), 2)
        arrays = {**arrays, "flops": fb[:, 0], "bytes": fb[:, 1]}
    summary, cols = summarize(graph.meta, system, arrays, count, step_overhead_s)
    return Results(system=system, graph=graph, summary=summary, warnings=summary["warnings"], slot_columns=cols)


def summarize(meta, system: SystemSpec, arrays: dict[str, np.ndarray], count: np.ndarray,
              step_overhead_s: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary, op-table columns per stored op) of a step from its stored ops' ``arrays`` (as
    ``sim.analytical.evaluate_slots`` gives them, with ``flops`` and ``bytes``), their
    multiplicities ``count`` and the graph's ``meta`` (``build_results``)."""
    peak = peak_flops(system, meta.dtype)
    cols = {"flops": arrays["flops"], "bytes": arrays["bytes"]}
    for k in OP_COLUMNS:
        cols[k] = arrays[k]
    cols["intensity"] = None  # worked out with the op table (``_op_table``)
    cols["bound"] = arrays["bound"]
    cols["utilization"] = peak
    cols["mapping"] = arrays["mapping"]
    if "memory_level" in arrays:
        cols["memory_level"] = arrays["memory_level"]
    totals = step_totals(arrays["time_s"].tolist(), count.tolist(), arrays["bound"].tolist(), arrays["flops"].tolist(),
                         arrays["hbm_bytes"].tolist(), step_overhead_s)
    return step_summary(meta, system, *totals, int(count.sum()), peak), cols


def peak_flops(system: SystemSpec, dtype: str) -> float:
    """The chip's dense peak in ``dtype`` (bf16's when it has none), as MFU divides by it."""
    return system.chip.peak_flops(dtype) or system.chip.peak_flops("bf16")


def step_summary(meta, system: SystemSpec, latency: float, by_bound: dict[str, float], total_flops: float,
                 total_hbm: float, num_ops: int, peak: float) -> dict[str, Any]:
    """A step's summary from its totals (``step_totals``), op count and the MFU's ``peak``."""
    chips = meta.tp
    mem = meta.weight_bytes_per_chip + meta.kv_cache_bytes_per_chip + meta.activation_bytes_per_chip
    cap = system.chip.hbm.capacity_bytes
    warnings = []
    if mem > cap:
        need = 1 << int(np.ceil(np.log2(mem * chips / cap)))  # TP degrees are powers of two in practice
        warnings.append(
            f"{meta.model} needs {fmt(mem, 'B', binary=True)} per chip (weights "
            f"{fmt(meta.weight_bytes_per_chip, 'B', binary=True)}, KV cache "
            f"{fmt(meta.kv_cache_bytes_per_chip, 'B', binary=True)}) but one {system.chip.name} has "
            f"{fmt(cap, 'B', binary=True)} of HBM: it does not fit. The smallest change that fits: "
            f"--tp {need} on a system with at least {need} chips{_systems_with(system, need)}, "
            f"or a smaller batch / context.")
    return {
        "system": system.name, "chip": system.chip.name, "model": meta.model, "phase": meta.phase,
        "batch": meta.batch, "seq_len": meta.seq_len, "context_len": meta.context_len, "tp": meta.tp,
        "chips": chips, "dtype": meta.dtype, "attention": meta.attention,
        "latency_s": latency,
        "tokens_per_s": meta.tokens / latency if latency > 0 else 0.0,
        "mfu": total_flops / (latency * peak) if latency > 0 and peak > 0 else 0.0,
        "params": meta.params,
        "flops_per_chip": total_flops,
        "hbm_bytes_per_chip": total_hbm,
        "hbm_bandwidth_utilization": total_hbm / (latency * system.chip.hbm.bandwidth_Bps) if latency > 0 else 0.0,
        "memory_bytes_per_chip": mem,
        "weight_bytes_per_chip": meta.weight_bytes_per_chip,
        "kv_cache_bytes_per_chip": meta.kv_cache_bytes_per_chip,
        "hbm_capacity_bytes": cap,
        "fits_in_hbm": mem <= cap,
        "time_by_bound_s": by_bound,
        "num_ops": num_ops,
        "fidelity": "analytical",
        "warnings": warnings,
    }
