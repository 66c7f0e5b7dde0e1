"""The public entry points: load a system and a model, build the phase graph, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .arch.presets import load_system
from .arch.spec import SystemSpec
from .errors import WorkloadError
from .report.results import Results, build_results
from .sim.analytical import evaluate_arrays
from .sim.event import CATEGORY_TO_BOUND, simulate
from .workload import ModelConfig, WorkloadGraph, build, load_model

PHASES = ("prefill", "decode")
FIDELITIES = ("analytical", "event")


def evaluate(system: str | Path | SystemSpec, model: str | Path | ModelConfig | WorkloadGraph,
             phase: str = "decode", batch: int = 1, seq_len: int | None = None,
             context_len: int | None = None, tp: int = 1, dtype: str = "bf16",
             attention: str = "flash", overrides: Iterable[str] = (),
             fidelity: str = "analytical") -> Results:
    """Predict one step of ``model`` in ``phase`` on ``system``.

    ``fidelity="analytical"`` costs each op in closed form and sums them; ``"event"`` lowers
    the graph to tile tasks and simulates them on the chip's engines, DMA queues, SRAM and HBM
    (slower, and it adds a critical-path attribution, a trace and a timeline).

    ``system`` and ``model`` may be preset names, YAML paths (a model may also be a Hugging Face
    ``config.json``) or already-loaded objects; ``model`` may be a prebuilt WorkloadGraph.
    ``seq_len`` is the prompt length (prefill, default 2048); ``context_len`` the tokens already
    cached (decode, default 2048). ``overrides`` are ``path=value`` edits of the system spec.
    """
    if fidelity not in FIDELITIES:
        raise WorkloadError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}")
    spec = system if isinstance(system, SystemSpec) else load_system(system, overrides)
    if isinstance(model, WorkloadGraph):
        graph = model
    else:
        if phase not in PHASES:
            raise WorkloadError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
        cfg = model if isinstance(model, ModelConfig) else load_model(model)
        graph = build(cfg, phase, batch=batch,
                      seq_len=(seq_len or 2048) if phase == "prefill" else (seq_len or 0),
                      context_len=(context_len or 2048) if phase == "decode" else (context_len or 0),
                      tp=tp, dtype=dtype, attention=attention)
    results = build_results(graph, spec, evaluate_arrays(graph, spec))
    if fidelity == "event":
        add_event(results, simulate(graph, spec))
    return results


def add_event(results: Results, run) -> None:
    """Replace the analytical timing in ``results`` by an event-tier run's, keeping the
    analytical figures for comparison."""
    s = results.summary
    span = run.makespan_s
    first, last = run.op_times()
    by_name = dict(zip(run.schedule.op_names, range(len(run.schedule.op_names))))
    idx = [by_name[n] for n in results.ops["name"]]
    results.ops["event_start_s"] = first[idx]
    results.ops["event_end_s"] = last[idx]
    attr = run.attribution
    by_bound = {b: 0.0 for b in s["time_by_bound_s"]}
    for cat, sec in attr.total_s.items():
        by_bound[CATEGORY_TO_BOUND[cat]] += sec
    tokens = s["tokens_per_s"] * s["latency_s"]
    flops = s["flops_per_chip"]
    peak = s["mfu"] and flops / (s["mfu"] * s["latency_s"])
    s.update({
        "fidelity": "event",
        "analytical_latency_s": s["latency_s"],
        "latency_s": span,
        "tokens_per_s": tokens / span if span > 0 else 0.0,
        "mfu": flops / (span * peak) if span > 0 and peak else 0.0,
        "hbm_bandwidth_utilization": s["hbm_bandwidth_utilization"] * s["latency_s"] / span if span > 0 else 0.0,
        "time_by_bound_s": by_bound,
        "critical_path_s": dict(attr.total_s),
        "bottleneck": attr.sentence(),
        "utilization": run.result.utilization(),
        "num_tasks": run.schedule.num_tasks,
    })
    results.event = run
