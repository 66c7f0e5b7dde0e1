"""The public entry points: load a system and a model, build the phase graph, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .arch.presets import load_system
from .arch.spec import SystemSpec
from .errors import WorkloadError
from .report.results import Results, build_results
from .sim.analytical import evaluate_arrays
from .workload import ModelConfig, WorkloadGraph, build, load_model

PHASES = ("prefill", "decode")


def evaluate(system: str | Path | SystemSpec, model: str | Path | ModelConfig | WorkloadGraph,
             phase: str = "decode", batch: int = 1, seq_len: int | None = None,
             context_len: int | None = None, tp: int = 1, dtype: str = "bf16",
             attention: str = "flash", overrides: Iterable[str] = (),
             fidelity: str = "analytical") -> Results:
    """Predict one step of ``model`` in ``phase`` on ``system`` with the analytical tier.

    ``system`` and ``model`` may be preset names, YAML paths (a model may also be a Hugging Face
    ``config.json``) or already-loaded objects; ``model`` may be a prebuilt WorkloadGraph.
    ``seq_len`` is the prompt length (prefill, default 2048); ``context_len`` the tokens already
    cached (decode, default 2048). ``overrides`` are ``path=value`` edits of the system spec.
    """
    if fidelity != "analytical":
        raise WorkloadError(f"fidelity {fidelity!r} is not available yet; use 'analytical'")
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
    return build_results(graph, spec, evaluate_arrays(graph, spec))
