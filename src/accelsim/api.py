"""The public entry points: load a system and a model, build the phase graph, evaluate."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from .arch.presets import load_system
from .arch.spec import SystemSpec
from .configio import whole_number
from .errors import WorkloadError
from .memo import IdentityCache
from .analysis.energy import energy_entries, energy_table, price_terms, row_pricer
from .report.results import Results, build_results, peak_flops, step_summary
from .sim import fast
from .sim.analytical import BOUNDS, check_tp_fits, chip_model, evaluate_slots
from .stack.presets import resolve
from .stack.realize import (LOADS, attention_of, calibration_kind, dropped_stack_costs, load_of, read_context,
                            realize, step_cost_s, train_attention, under_load)
from .workload import ModelConfig, WorkloadGraph, build, cp_ring, load_model, rows
from .workload.build import checked_args, phase_meta
from .workload.model import tp_over_chips

PHASES = ("prefill", "decode")
FIDELITIES = ("analytical", "event")


def evaluate(system: str | Path | SystemSpec, model: str | Path | ModelConfig | WorkloadGraph,
             phase: str = "decode", batch: int = 1, seq_len: int | None = None,
             context_len: int | None = None, tp: int = 1, dtype: str = "bf16",
             attention: str | None = None, overrides: Iterable[str] = (),
             fidelity: str = "analytical", compression=None, mode: str = "realistic", stack=None,
             load: str = "sustained") -> Results:
    """Predict one step of ``model`` in ``phase`` on ``system``.

    ``fidelity="analytical"`` costs each op in closed form and sums them; ``"event"`` lowers
    the graph to tile tasks and simulates them on the chip's engines, DMA queues, SRAM and HBM
    (slower, and it adds a critical-path attribution, a trace and a timeline).

    ``system`` and ``model`` may be preset names, YAML paths (a model may also be a Hugging Face
    ``config.json``) or already-loaded objects; ``model`` may be a prebuilt WorkloadGraph.
    ``seq_len`` is the prompt length (prefill, default 2048); ``context_len`` the tokens already
    cached (decode, default 2048). ``attention``: "flash", "unfused" (eager: K / V repeated to
    the query heads) or "unfused_grouped"; default: the stack's (``stack.realize.attention_of``:
    flash unless its engine runs attention unfused). ``overrides`` are ``path=value`` edits of
    the system spec.
    ``compression`` is a recipe (``compress.recipes.Compression``, a tag such as
    "w4a16-g128" or a YAML path) applied by the builder.

    ``mode="realistic"`` (default) predicts what the silicon delivers under ``stack`` (a
    ``stacks/`` name or a Stack; default: the system's stack): the chip's achievable priors,
    the runtime's per-kernel cost and the collective library; ``mode="ideal"`` is the preset's
    peak-rate bound without software costs. ``load="sustained"`` (default) is a production run's
    steady state, the tensor engines at the chip's sustained clock (``ChipSpec.sustained_clock_fraction``);
    ``"burst"`` a short benchmark run, at the clock the achievable priors were measured at.
    """
    if fidelity not in FIDELITIES:
        raise WorkloadError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}")
    results = None
    load = load_of(load)
    preset = system_with(system, overrides)
    st = _stack(preset, stack, mode)
    if isinstance(model, ModelConfig) and type(tp) is int and type(phase) is str and (attention is None
                                                                                    or type(attention) is str):
        per = _SETUPS.get((preset, st, model), dict)  # a notebook's loop over one system and model object
        setup = per.get((phase, tp, attention, load))
        if setup is None:
            setup = _setup(preset, st, model, phase, tp, attention, load)
            if len(per) >= 64:
                per.clear()
            per[(phase, tp, attention, load)] = setup
    else:
        setup = _setup(preset, st, model, phase, tp, attention, load)
    cal_kind, spec, ranks, tp, cfg, padding = setup[:6]
    if isinstance(model, WorkloadGraph):
        args = (("phase", phase, "decode"), ("batch", batch, 1), ("seq_len", seq_len, None),
                ("context_len", context_len, None), ("tp", ranks, 1), ("dtype", dtype, "bf16"),
                ("attention", attention, None), ("compression", compression, None))
        given = ", ".join(f"{k}={v!r}" for k, v, default in args
                          if v != default and not (k == "phase" and v == model.meta.phase))
        if given:
            raise WorkloadError(f"model is a prebuilt WorkloadGraph, which carries its own phase, batch, lengths, "
                                f"tp, dtype, attention and compression; {given} would be ignored: build the graph "
                                f"with them (accelsim.workload.build) or pass the model instead")
        graph = model
    else:
        context_len = read = _given(context_len, 2048 if phase == "decode" else 0)
        if phase == "decode" and whole_number("context_len", context_len, 0) >= 1:
            read = read_context(st, context_len, cfg.max_position_embeddings)  # a decode bucket's whole length
        shape = dict(batch=batch, seq_len=_given(seq_len, 2048 if phase == "prefill" else 0), context_len=read, tp=tp,
                     dtype=dtype, attention=setup.attention)
        if fidelity == "analytical" and compression is None:
            results = _fast(spec, st, cfg, phase, shape, setup.fast)
        if results is None:
            graph = build(cfg, phase, compression=compression, **shape)
    if results is None:
        step_s = step_cost_s(st, graph.meta.batch)
        results = build_results(graph, spec, evaluate_slots(graph, spec, st.collectives if st else None), step_s)
        if fidelity == "event":
            from .sim.event import simulate as simulate_graph

            add_event(results, simulate_graph(graph, spec, st.collectives if st else None), step_s)
        from .analysis.energy import add_energy

        add_energy(results)
    _stamp(results, st, cal_kind, preset)
    _note_load(results.summary, st, load, preset)
    if ranks != tp:
        results.summary["tp_ranks"] = ranks
    if not isinstance(model, WorkloadGraph) and read != context_len:  # the engine's decode program is longer
        results.summary.update(context_len=context_len, decode_bucket_tokens=read + 1)
    if padding:
        results.summary["padding"] = padding
        results.summary.setdefault("warnings", []).append(padding)
    if st is not None and st.serving is not None and st.serving.kv_cache == "concat":
        results.summary["kv_cache"] = "concat"  # the engine copies the cache at every append (kv_concat)
    if not isinstance(model, WorkloadGraph):
        _note_unmodelled(results.warnings, cfg)
    return results


def _fast(spec: SystemSpec, st, cfg: ModelConfig, phase: str, shape: dict, memo: dict | None = None
          ) -> Results | None:
    """The analytical results of a dense transformer phase by the fast path (``sim.fast``: the
    same numbers as building the graph and costing its ops, the graph and the op-table columns
    built when asked for), or None where the fast path does not cover the model or the stack.
    ``memo``: what one ``_Setup`` keeps per element type once a point has passed (the chip
    model's terms, the phase's table and the peak; every point's arguments are checked still)."""
    dt, attention = shape["dtype"], shape["attention"]
    if type(dt) is not str:  # refused below (checked_args); kept nowhere
        memo = None
    hit = memo.get(dt) if memo is not None else None
    if hit is None:
        if not rows.covers(cfg):
            return None
        cm, table, price, peaks, terms = _FAST.get((spec, st), lambda: _fast_terms(spec, st))
        if cm is None:
            return None
    else:
        cm, table, price, terms, t, peak = hit
    batch, seq_len, context_len, kv_len, tp = checked_args(cfg, phase, shape["batch"], shape["seq_len"],
                                                           shape["context_len"], shape["tp"], dt, attention)
    if hit is None:
        check_tp_fits(tp, spec)
        t = rows.phase_table(cfg, phase, tp, dt, attention)
        peak = peaks.get(dt)
        if peak is None:
            peak = peaks[dt] = peak_flops(spec, dt)
    q_len = seq_len if phase == "prefill" else 1
    out, sums, kept, given, names = fast.evaluate_point(cm, cfg, t, (1, batch * q_len, batch, q_len, kv_len), tp, dt,
                                                       price, terms, step_cost_s(st, batch))
    if hit is None and memo is not None:
        memo[dt] = (cm, table, price, terms, t, peak)
    meta = phase_meta(cfg, phase, batch, seq_len, context_len, kv_len, tp, dt, attention)
    summary = step_summary(meta, spec, sums[0], dict(zip(BOUNDS, sums[1:6])), sums[6], sums[7], t.ops, peak)
    summary.update(energy_entries(table, sums[8:13], summary))
    return Results(system=spec, graph=partial(build, cfg, phase, **shape), summary=summary,
                   warnings=summary["warnings"], slot_columns=partial(fast.point_columns, t, out, kept, given, names,
                                                                      peak))


_FAST = IdentityCache(32)
"""``_fast_terms`` per (system, stack) object pair: both are frozen."""


class _Setup(NamedTuple):
    """What ``evaluate`` works out from its system, stack, model, phase, tp and attention before
    the point's numbers: kept per (system, stack, model) objects and those arguments."""

    cal_kind: str
    spec: SystemSpec
    ranks: int
    tp: int
    cfg: ModelConfig | None
    padding: str
    attention: str | None
    fast: dict
    """``_fast``'s terms per element type, once a point of it has passed."""


def _setup(preset: SystemSpec, st, model, phase: str, tp, attention, load: str = LOADS[0]) -> _Setup:
    cal_kind, spec = _REALIZED.get((preset, st, load), lambda: (calibration_kind(preset, st),
                                                                 under_load(realize(preset, st), st, load)))
    ranks = whole_number("tp", tp)
    chips = spec.chip.chips_for_tp(ranks)  # Neuron: tp counts NeuronCores
    if chips > spec.num_chips and spec.scale_out is not None:
        from .sim.training import system_for

        spec = system_for(spec, -(-chips // spec.chips_per_node) * spec.chips_per_node)
    if isinstance(model, WorkloadGraph):
        return _Setup(cal_kind, spec, ranks, chips, None, "", None, {})
    if phase not in PHASES:
        raise WorkloadError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
    cfg, _, padding = tp_over_chips(model if isinstance(model, ModelConfig) else load_model(model), ranks,
                                    spec.chip.tp_ranks)
    return _Setup(cal_kind, spec, ranks, chips, cfg, padding, attention_of(st, attention), {})


_SETUPS = IdentityCache(32)
"""``_Setup`` per (system, stack, model) objects, then per (phase, tp, attention)."""


def _fast_terms(spec: SystemSpec, st) -> tuple:
    """What the fast path takes from the system and stack alone: the chip model (None where the
    fast path does not cover the stack), the energy table, its pricer, the peaks by dtype and
    the table's prices by element type."""
    cm = chip_model(spec, st.collectives if st else None)
    table = energy_table(spec)
    return (cm if fast.covers(cm) else None), table, row_pricer(table), {}, partial(price_terms, table)


def _given(value, default):
    """``value``, or ``default`` when it is None (0 is a value: a prefill of 0 tokens is refused,
    not run as the default 2048)."""
    return default if value is None else value


def _note_unmodelled(warnings: list[str], cfg: ModelConfig) -> None:
    """Warn when the model's Hugging Face config declares keys accelsim does not model."""
    if cfg.unmodelled:
        warnings.append(f"{cfg.name}: its config declares {', '.join(cfg.unmodelled)}, which accelsim does not "
                        f"model; the prediction is of the model without them")


_OVERRIDDEN = IdentityCache(32)


def system_with(system: str | Path | SystemSpec, overrides: Iterable[str] = ()) -> SystemSpec:
    """``system`` (a preset name, a YAML path or a SystemSpec) with ``path=value`` overrides
    applied and validated; errors name the field. A SystemSpec with the same overrides again gives
    the same object back, so what was cached for it (chip model, op costs) applies."""
    overrides = tuple(overrides)
    if not isinstance(system, SystemSpec):
        return load_system(system, overrides)
    if not overrides:
        return system
    per = _OVERRIDDEN.get((system,), dict)
    hit = per.get(overrides)
    if hit is None:
        from .arch.presets import with_overrides

        if len(per) >= 64:
            per.clear()
        hit = per[overrides] = with_overrides(system, overrides, f"system {system.name!r} (with --set "
                                                                  f"{', '.join(overrides)})")
    return hit


_REALIZED = IdentityCache(32)
"""(calibration kind, realized spec) per (system object, stack object, load): all frozen."""


def _stack(spec: SystemSpec, stack, mode: str):
    return resolve(stack, spec.stack, mode)


_DIGESTS: dict[int, tuple[object, str]] = {}


def _digest(obj) -> str:
    """sha256 (12 hex digits) of a spec's JSON dump, computed once per object (a reused system
    or stack object is not dumped again on every evaluation)."""
    hit = _DIGESTS.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    import hashlib
    import json as _json

    d = hashlib.sha256(_json.dumps(obj.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    if len(_DIGESTS) > 256:
        _DIGESTS.clear()
    _DIGESTS[id(obj)] = (obj, d)
    return d


_STAMPS = IdentityCache(64)


def _stamp(results: Results, st, calibration: str, preset: SystemSpec) -> None:
    """Provenance of a prediction: mode, stack, version, hashes of the preset (as given, before
    the stack's priors are applied: those follow from the stack hash) and the stack, the
    expected error of its kind on its chip (worked out once per system, stack and kind)."""
    s = results.summary
    by = s.get("time_by_bound_s", {})
    top = max(by, key=by.get) if by else "compute"
    kind = {"compute": "gemm", "interconnect": "allreduce"}.get(top, "copy")
    per = _STAMPS.get((preset, st, results.system), dict)
    hit = per.get((calibration, kind))
    if hit is None:
        fields, warning = _stamp_fields(results.system, st, calibration, preset, kind)
        hit = per[(calibration, kind)] = (fields, tuple(k for k, v in fields.items() if isinstance(v, dict)), warning)
    fields, nested, warning = hit
    if warning:
        results.warnings.append(warning)
    s.update(fields)
    for k in nested:  # each summary its own copy (in place: the keys keep their order)
        s[k] = dict(fields[k])


def _note_load(s: dict, st, load: str, preset: SystemSpec) -> None:
    """The run's load in the summary, with the fraction of the tensor engines' short-run rate it
    ran them at (``sustained_clock_fraction``: None where none applied, as in ideal mode)."""
    f = preset.chip.sustained_clock_fraction
    s["load"] = load
    s["sustained_clock_fraction"] = f if st is not None and load == "sustained" and f is not None else None


def _stamp_fields(system: SystemSpec, st, calibration: str, preset: SystemSpec, kind: str) -> tuple[dict, str]:
    from .arch.presets import error_band
    from .version import __version__

    band = error_band(system.chip.name, kind) if st is not None else None
    dropped = dropped_stack_costs(preset, st)
    warning = ""
    if dropped is not None:
        warning = (f"the calibration's overheads were fitted under stack {dropped}; this prediction runs "
                   + (f"stack {st.name} and uses its costs" if st is not None else "the ideal mode, which has none")
                   + " (its hardware fields apply)")
    return {
        "expected_error": {"relative": band[0], "basis": band[1]} if band else None,
        "mode": "realistic" if st is not None else "ideal",
        "stack": st.name if st is not None else None,
        "provenance": {"accelsim": __version__, "system_sha": _digest(preset),
                       "stack_sha": _digest(st) if st is not None else None, "calibration": calibration},
    }, warning


def add_event(results: Results, run, step_overhead_s: float = 0.0) -> None:
    """Replace the analytical timing in ``results`` by an event-tier run's (plus the stack's
    fixed cost per step), keeping the analytical figures for comparison."""
    s = results.summary
    span = run.makespan_s + step_overhead_s
    first, last = run.op_times()
    by_name = dict(zip(run.schedule.op_names, range(len(run.schedule.op_names))))
    idx = [by_name[o.name] for o in results.graph.ops()]  # the op table's rows, in program order
    results.add_op_column("event_start_s", first[idx])
    results.add_op_column("event_end_s", last[idx])
    attr = run.attribution
    by_bound = {b: 0.0 for b in s["time_by_bound_s"]}
    from .sim.event import CATEGORY_TO_BOUND

    for cat, sec in attr.total_s.items():
        by_bound[CATEGORY_TO_BOUND[cat]] += sec
    by_bound["overhead"] = by_bound.get("overhead", 0.0) + step_overhead_s
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
        "critical_path_s": {**attr.total_s, "overhead": attr.total_s.get("overhead", 0.0) + step_overhead_s},
        "bottleneck": attr.sentence(),
        "utilization": run.result.utilization(),
        "num_tasks": run.schedule.num_tasks,
    })
    results.event = run


def evaluate_train(system: str | Path | SystemSpec, model: str | Path | ModelConfig, global_batch: int,
                   seq_len: int = 2048, plan=None, dtype: str = "bf16", attention: str | None = None,
                   overrides: Iterable[str] = (), compression=None, mode: str = "realistic", stack=None,
                   fp8_scope: str | None = None, fidelity: str = "analytical", load: str = "sustained",
                   **plan_fields) -> Results:
    """Predict one training step: ``global_batch`` sequences of ``seq_len`` tokens under a
    ParallelPlan (or its fields: tp, pp, dp, ep, cp, sp, microbatch, zero, recompute, schedule;
    given as fields, sp / recompute / zero default to the stack's training framework's). A plan
    needing more chips than the system has runs on the system scaled out over its ``scale_out``
    network. ``fp8_scope`` (an fp8 step: "gemm" = only the linear layers' GEMMs in fp8, "all")
    defaults to the framework's recipe in realistic mode ("gemm" without one) and "all" in ideal.
    ``fidelity="event"`` runs the step op by op with every parallel group's traffic on the
    shared links (``sim.train_event``); the analytical figures stay in the summary beside it.
    ``load`` as in ``evaluate`` (a training run is sustained load). ``attention``: "flash" or
    "unfused" (the score matrix in HBM, K / V repeated to the query heads); None: the stack's
    (``stack.realize.train_attention``: flash unless its framework runs attention unfused)."""
    from .sim.training import simulate_train
    from .workload.memory import fit_message
    from .workload.parallel import ParallelPlan
    from .workload.train import build_train

    spec = system_with(system, overrides)
    st = _stack(spec, stack, mode)
    cal_kind = calibration_kind(spec, st)
    preset, spec = spec, under_load(realize(spec, st), st, load)
    cfg = model if isinstance(model, ModelConfig) else load_model(model)
    from .stack.realize import fp8_scope as scope_of, plan_defaults

    if plan is None:
        plan = ParallelPlan(**{**plan_defaults(st), **plan_fields})
        if plan_fields.get("selective") is not None and plan.recompute != "selective":
            raise WorkloadError(f"selective={plan_fields['selective']!r} says what selective recomputation keeps, but "
                                f"the step recomputes {plan.recompute!r}: add recompute='selective'")
    elif plan_fields:
        raise WorkloadError(f"give a ParallelPlan or its fields, not both: {', '.join(sorted(plan_fields))} "
                            f"would be ignored beside plan= (ParallelPlan.model_copy(update=...) edits a plan)")
    if fp8_scope is None:
        fp8_scope = scope_of(st)
    attention = train_attention(st, attention)
    step = build_train(cfg, global_batch, seq_len, plan, dtype=dtype, attention=attention, compression=compression,
                       fp8_scope=fp8_scope, fp8_transposes=spec.chip.core.tensor.fp8_tn_only)
    run = simulate_train(spec, step, st.collectives if st else None)
    sysx, pipe = run.system, run.pipeline
    span = pipe.step_time_s
    from .compress.recipes import as_compression

    comp = as_compression(compression)
    peak_dtype = dtype
    if comp is not None and comp.activations and comp.weights:  # FP8 training: MFU against the FP8 peak
        from .cost.op_cost import rate_dtype

        peak_dtype = rate_dtype(comp.activations)
    peak = sysx.chip.peak_flops(peak_dtype) or sysx.chip.peak_flops(dtype) or sysx.chip.peak_flops("bf16")
    mem = step.memory()
    cap = sysx.chip.hbm.capacity_bytes
    warnings = [] if mem.total_bytes <= cap else [fit_message(mem, cap, plan)]
    _note_unmodelled(warnings, cfg)
    # critical-path time by bound: stage compute segments split in proportion to the bounds of
    # that stage's ops; communication and delays as they are
    by_bound = {b: 0.0 for b in ("compute", "memory", "vector", "interconnect", "overhead")}
    ops = run.ops
    shares = {}
    for (s, p), g in ops[ops["kind"] != "collective"].groupby(["stage", "pass"]):
        t = g.groupby("bound")["time_s"].sum()
        shares[(int(s), p)] = (t / t.sum()).to_dict() if t.sum() > 0 else {"compute": 1.0}
    sched, res = pipe.schedule, pipe.result
    for t in pipe.attribution.path:
        seg = float(res.end_s[t] - res.start_s[t])
        name = sched.op_names[sched.op[t]]
        stage, kind = name.split(".")
        if kind in ("fwd", "bwd", "optimizer") and sched.category[t] != 5:
            for b, f in shares.get((int(stage[5:]), {"optimizer": "opt"}.get(kind, kind)), {"compute": 1.0}).items():
                by_bound[b] += seg * f
        else:
            by_bound["interconnect" if sched.category[t] == 5 else "overhead"] += seg
    summary = {
        "system": sysx.name, "chip": sysx.chip.name, "model": cfg.name, "phase": "train",
        "batch": global_batch, "seq_len": seq_len, "context_len": 0,
        "tp": plan.tp, "pp": plan.pp, "dp": plan.dp, "ep": plan.ep, "cp": plan.cp, "sp": plan.sp,
        "tp_comm_overlap": plan.tp_overlapped,
        "cp_attention": (plan.cp_attention if cp_ring.applies(cfg, plan, attention) else "fused") if plan.cp > 1 else None,
        "vocab_tiles": plan.vocab_tiles, "zero": plan.zero, "recompute": plan.recompute,
        "selective": plan.selective if plan.recompute == "selective" else None,
        "recompute_scope": plan.recompute_scope, "schedule": plan.schedule, "vpp": plan.vpp,
        "microbatch": plan.microbatch, "microbatches": step.microbatches, "chips": plan.chips,
        "dtype": dtype, "fp8_scope": fp8_scope if dtype == "fp8" else None, "attention": attention,
        "fidelity": "analytical", "latency_s": span, "step_time_s": span,
        "tokens_per_s": step.tokens / span if span > 0 else 0.0,
        "mfu": step.model_flops / (span * plan.chips * peak) if span > 0 else 0.0,
        "model_flops_per_s_per_chip": step.model_flops / (span * plan.chips) if span > 0 else 0.0,
        "peak_flops_per_chip": peak,
        "hfu": step.hardware_flops() / (span * plan.chips * peak) if span > 0 else 0.0,
        "params": step.params,
        "bubble_fraction": pipe.bubble_fraction,
        "comm_exposed_s": pipe.comm_exposed_s,
        "comm_hidden_s": _nonneg(pipe.comm_total_s - pipe.comm_exposed_s, span),
        "critical_path_s": dict(pipe.attribution.total_s),
        "bottleneck": _bound_sentence(by_bound, ops),
        "memory_bytes_per_chip": mem.total_bytes,
        "memory_breakdown_bytes": mem.components(),
        "host_offload_bytes_per_chip": mem.host_bytes,
        "hbm_capacity_bytes": cap, "fits_in_hbm": mem.total_bytes <= cap,
        "hbm_bytes_per_chip": float((ops["hbm_bytes"] * np.where(ops["pass"].isin(["fwd", "bwd"]), step.microbatches, 1)).sum() / plan.pp),
        "hbm_bandwidth_utilization": 0.0,
        "time_by_bound_s": by_bound,
        "num_ops": len(ops),
        "warnings": warnings,
    }
    summary.update(_train_energy(sysx, step, ops, span, plan))
    res = Results(system=sysx, graph=step.fwd[0], ops=ops, summary=summary, warnings=warnings, event=None)
    if fidelity == "event":
        _train_event(res, spec, step, st.collectives if st else None)
    elif fidelity != "analytical":
        raise WorkloadError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}")
    _stamp(res, st, cal_kind, preset)
    _note_load(res.summary, st, load, preset)
    return res


def _train_event(res: Results, spec: SystemSpec, step, library) -> None:
    """Replace a training step's analytical timing by the event tier's (op granularity, shared
    links), keeping the analytical step time beside it."""
    from .sim.train_event import simulate_train_event

    run = simulate_train_event(spec, step, library)
    s, span, chips = res.summary, run.makespan_s, step.plan.chips
    by_bound = {b: 0.0 for b in s["time_by_bound_s"]}
    from .sim.event import CATEGORY_TO_BOUND

    for cat, sec in run.attribution.total_s.items():
        by_bound[CATEGORY_TO_BOUND[cat]] += sec
    s.update({
        "fidelity": "event", "analytical_step_time_s": s["step_time_s"], "latency_s": span, "step_time_s": span,
        "tokens_per_s": step.tokens / span, "mfu": step.model_flops / (span * chips * s["peak_flops_per_chip"]),
        "model_flops_per_s_per_chip": step.model_flops / (span * chips),
        "hfu": step.hardware_flops() / (span * chips * s["peak_flops_per_chip"]),
        "comm_exposed_s": run.attribution.total_s["interconnect"],
        "comm_hidden_s": max(0.0, s["comm_exposed_s"] + s["comm_hidden_s"] - run.attribution.total_s["interconnect"]),
        "critical_path_s": dict(run.attribution.total_s), "time_by_bound_s": by_bound,
        "bottleneck": run.attribution.sentence(), "num_tasks": run.schedule.num_tasks,
    })
    res.event = run


def _train_energy(system, step, ops, span: float, plan) -> dict:
    """Energy of one training step: every stage's ops (fwd / bwd once per microbatch) on each
    of the ``plan.chips`` chips, averaged over pipeline stages, plus static power."""
    from .analysis.energy import energy_summary, energy_table, op_energy_terms

    table = energy_table(system)
    src = []  # the op objects in the order simulate_train tabulated them
    for st in range(plan.pp):
        for g in (step.fwd[st], step.bwd[st], step.optimizer[st]):
            src.extend(g.ops())
        src.extend(step.grad_sync[st])
    if len(src) != len(ops):
        return {}
    terms = op_energy_terms(src, system, ops["hbm_bytes"].to_numpy(float), ops["link_bytes"].to_numpy(float), table)
    repeat = np.where(ops["pass"].isin(["fwd", "bwd"]), step.microbatches, 1) / plan.pp
    return energy_summary(terms, span, plan.chips, step.tokens, table.static_W, repeat)


def _bound_sentence(by_bound: dict[str, float], ops) -> str:
    """"62% compute-bound on the critical path, mostly in fwd.mlp_up/bwd.mlp_up_dgrad"."""
    total = sum(by_bound.values())
    if total <= 0:
        return "empty step"
    top = max(by_bound, key=by_bound.get)
    sel = ops[ops["bound"] == top] if top != "overhead" else ops.iloc[0:0]
    roles = sel.groupby("role")["time_s"].sum().sort_values(ascending=False).head(2).index.tolist()
    where = f", mostly in {'/'.join(roles)}" if roles else ""
    return f"{100 * by_bound[top] / total:.0f}% {top}-bound on the critical path{where}"


def _nonneg(x: float, scale: float) -> float:
    """``x`` clipped at zero, float residue (below 1e-12 of ``scale``) included."""
    return x if x > 1e-12 * max(scale, 1e-30) else 0.0


def simulate(system, model, **kwargs) -> Results:
    """``evaluate`` with the event tier: tile tasks on engines, DMA queues, SRAM and HBM."""
    return evaluate(system, model, fidelity="event", **kwargs)
