"""Run a DesignSpace over any ``concurrent.futures.Executor`` and collect a DataFrame.

Per point, a worker validates the point's system (the base system dict with the point's
overrides, through ``SystemSpec.model_validate``) and workload, then evaluates it:

- analytical inference (prefill / decode): the graph of each distinct workload is built once
  per worker and reused; each distinct op of it is costed once per chip variant by the shared
  cost functions (``sim.costs.op_cost``, the same ones ``evaluate_arrays`` uses; collectives
  once per system variant), and a light summary (the fields of ``report.results`` that a sweep
  needs) is computed from those arrays. ``tests/test_sweep.py`` holds it equal to
  ``accelsim.evaluate``.
- ``phase: train`` goes through ``api.evaluate_train``; ``fidelity="event"`` through
  ``api.evaluate(..., fidelity="event")``.

A point whose system or workload does not validate gets ``status = "invalid"`` with the
offending path(s) and value(s) in ``error_path`` / ``error``; a point whose evaluation raises
gets ``status = "error"``; neither stops the sweep.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from functools import partial
from concurrent.futures import Executor, FIRST_COMPLETED, wait
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from ..arch.spec import SystemSpec
from ..configio import revalidate
from ..cost.op_cost import ChipModel
from ..sim.analytical import check_tp_fits
from ..stack.realize import attention_of, read_context
from ..workload import build, rows
from ..workload.build import checked_args, phase_meta
from ..workload.model import tp_over_chips
from ..errors import AccelsimError, ConfigError, WorkloadError
from ..gcpause import paused
from .costing import BOUNDS, OpGraph, OpRows, step_row, summary_row
from .derived import CostModel
from .space import WORKLOAD_PREFIX, DesignSpace, Point, WorkloadSpec, canonical_json, resolve_ref, system_dict
from .executor import MAX_RETRIES, Pool, die_with_parent
from .store import Store, require_pyarrow

FIDELITIES = ("analytical", "event")
METRICS = ("latency_s", "tokens_per_s", "mfu", "memory_bytes_per_chip", "hbm_capacity_bytes", "fits",
           "hbm_bandwidth_utilization", "chips", "peak_flops_per_chip",
           *(f"share_{b}" for b in BOUNDS), "bound", "bubble_fraction", "area_mm2", "power_W", "tokens_per_J")
"""Metric columns of every result row (NaN where a metric does not apply or the point failed).
``latency_s`` is the step time; ``share_*`` the fraction of it by bound; ``tokens_per_J`` is
``tokens_per_s / (power_W * chips)``."""
TARGET_TASK_S = 0.5
"""Points go out in batches sized so that one task runs at least about this long."""

EVALUATIONS = 0
"""Points evaluated in this process (for tests and progress accounting)."""


# --- worker side -----------------------------------------------------------------------------
class _Invalid:
    """A cached validation failure."""

    __slots__ = ("status", "path", "message")

    def __init__(self, status: str, path: str, message: str):
        self.status, self.path, self.message = status, path, message


class Evaluator:
    """Evaluates points of one sweep context; caches specs, graphs and op costs per process."""

    MAX_CACHE = 200_000

    def __init__(self, ctx: dict[str, Any]):
        self.base = ctx["base"]
        self.base_spec = SystemSpec.model_validate(self.base)
        # the base workload as the fields that differ from their defaults: a point's workload is
        # validated from it and the point's overrides, and each field given runs the strict-number check
        self.workload = WorkloadSpec.model_validate(ctx["workload"]).model_dump(exclude_defaults=True)
        self.fidelity = ctx["fidelity"]
        self.scale = ctx["scale_tensor_rates"]
        self.cost_model = CostModel.model_validate(ctx["cost_model"])
        self.spec_paths = ctx["spec_paths"]
        self.root = ctx["root"]
        from ..stack.presets import resolve
        from ..stack.spec import Stack

        self.mode = ctx.get("mode", "realistic")
        self.load = ctx.get("load", "sustained")
        chosen = Stack.model_validate(ctx["stack"]) if ctx.get("stack") else None
        self.stack = resolve(chosen, self.base_spec.stack, self.mode)
        from ..stack.realize import step_cost_s

        self.step_cost = step_cost_s(self.stack)
        """The stack's fixed cost per model step (program execution, serving engine)."""
        self.request_cost = step_cost_s(self.stack, 1) - self.step_cost
        """The serving engine's further cost per request in a step."""
        self.specs: dict[str, Any] = {}
        self.chip_models: dict[str, Any] = {}
        self.op_costs: dict[tuple, tuple[float, float, int]] = {}
        self.graphs: dict[str, OpGraph | OpRows] = {}
        self.models: dict[tuple, Any] = {}
        self.workloads: dict[str, Any] = {}

    # -- validation --
    def system(self, overrides: dict[str, Any], key: str):
        hit = self.specs.get(key)
        if hit is not None:
            return hit
        if len(self.specs) > self.MAX_CACHE // 10:
            self.specs.clear()
            self.chip_models.clear()
        try:
            from ..stack.realize import realize, under_load

            data = system_dict(self.base, overrides, self.scale)
            try:  # only the models along the changed paths
                spec = revalidate(self.base_spec, self.base, data)
            except (ValidationError, ConfigError):  # the whole system again, for the error's full path
                spec = SystemSpec.model_validate(data)
            extra = self.cost_model.costs(spec, self.base_spec)
            for p in self.spec_paths:
                extra[p] = _spec_value(spec, p)
            hit = (under_load(realize(spec, self.stack), self.stack, self.load), extra)
        except ValidationError as e:
            hit = _invalid(e, overrides, "")
        except ConfigError as e:
            hit = _Invalid("invalid", ", ".join(overrides), str(e))
        self.specs[key] = hit
        return hit

    def workload_spec(self, overrides: dict[str, Any], key: str):
        hit = self.workloads.get(key)
        if hit is None:
            try:
                hit = WorkloadSpec.model_validate({**self.workload, **overrides})
            except ValidationError as e:
                hit = _invalid(e, overrides, WORKLOAD_PREFIX)
            self.workloads[key] = hit
        return hit

    def model(self, wl: WorkloadSpec):
        key = (wl.model, wl.layers)
        cfg = self.models.get(key)
        if cfg is None:
            from ..workload import load_model
            from ..workload.model import ModelConfig

            cfg = load_model(resolve_ref(self.root, wl.model))  # a workload.model axis may name files
            if wl.layers is not None and wl.layers != cfg.num_hidden_layers:
                cfg = ModelConfig.model_validate({**cfg.model_dump(), "num_hidden_layers": wl.layers})
            self.models[key] = cfg
        return cfg

    def graph(self, wl: WorkloadSpec, key: str, ranks_per_chip: int = 1) -> OpGraph | OpRows:
        """The workload's graph; on chips whose tensor-parallel rank is a core (AWS Neuron)
        ``tp`` counts cores, as ``api.evaluate`` reads it."""
        key = f"{key}|r{ranks_per_chip}"
        g = self.graphs.get(key)
        if g is None:
            if len(self.graphs) >= 64:
                self.graphs.clear()
            prefill = wl.phase == "prefill"
            cfg, chips, _ = tp_over_chips(self.model(wl), wl.tp, ranks_per_chip)
            context = (2048 if wl.context_len is None else wl.context_len) if wl.phase == "decode" else (
                wl.context_len or 0)  # a decode of 0 cached tokens is refused, not run at 2048
            shape = dict(batch=wl.batch, seq_len=(wl.seq_len or 2048) if prefill else (wl.seq_len or 0),  # >= 1 given
                         context_len=(read_context(self.stack, context, cfg.max_position_embeddings)
                                      if wl.phase == "decode" and context >= 1 else context),
                         tp=chips, dtype=wl.dtype, attention=attention_of(self.stack, wl.attention))
            if rows.covers(cfg):
                dt, attention = shape["dtype"], shape["attention"]
                b, s, c, kv, tp = checked_args(cfg, wl.phase, shape["batch"], shape["seq_len"], shape["context_len"],
                                               shape["tp"], dt, attention)
                q = s if prefill else 1
                g = OpRows(cfg, rows.phase_table(cfg, wl.phase, tp, dt, attention), (1, b * q, b, q, kv), tp,
                           phase_meta(cfg, wl.phase, b, s, c, kv, tp, dt, attention),
                           partial(build, cfg, wl.phase, **shape))
            else:
                g = OpGraph(build(cfg, wl.phase, **shape))
            self.graphs[key] = g
        return g

    # -- evaluation --
    def evaluate(self, overrides: dict[str, Any]) -> dict[str, Any]:
        global EVALUATIONS
        EVALUATIONS += 1
        sys_ov = {p: v for p, v in overrides.items() if not p.startswith(WORKLOAD_PREFIX)}
        wl_ov = {p[len(WORKLOAD_PREFIX):]: v for p, v in overrides.items() if p.startswith(WORKLOAD_PREFIX)}
        skey = canonical_json(sys_ov)
        hit = self.system(sys_ov, skey)
        if isinstance(hit, _Invalid):
            return _failed(hit)
        spec, extra = hit
        wkey = canonical_json(wl_ov)
        wl = self.workload_spec(wl_ov, wkey)
        if isinstance(wl, _Invalid):
            return {**extra, **_failed(wl)}
        try:
            if wl.phase == "train":
                row = summary_row(self._train(spec, wl), spec, wl)
            elif self.fidelity == "event":
                from ..api import evaluate

                row = summary_row(evaluate(spec, self.graph(wl, wkey).graph, fidelity="event", mode=self.mode,
                                           stack=self.stack, load=self.load).summary, spec, wl)
            else:
                ckey = canonical_json({p: v for p, v in sys_ov.items() if p.startswith("chip")})
                row = self._analytical(spec, skey, ckey, wl, wkey)
        except WorkloadError as e:
            paths = ", ".join(WORKLOAD_PREFIX + p for p in wl_ov) or "workload"
            return {**extra, **_failed(_Invalid("invalid", paths, str(e)))}
        except Exception as e:  # a failing point is recorded, never fatal
            msg = str(e) if isinstance(e, AccelsimError) else f"{type(e).__name__}: {e}"
            return {**extra, **_failed(_Invalid("error", "", msg))}
        row.update(extra)
        row["tokens_per_J"] = _div(row["tokens_per_s"], row["power_W"] * row["chips"])
        row["status"] = "ok"
        return row

    def _train(self, spec: SystemSpec, wl: WorkloadSpec) -> dict[str, Any]:
        from ..api import evaluate_train
        from ..workload.parallel import ParallelPlan

        fields = wl.plan_fields()
        if fields["cores_per_chip"] == 1:  # AWS Neuron: tp counts NeuronCores, as api.evaluate reads it
            fields["cores_per_chip"] = spec.chip.tp_ranks
        plan = ParallelPlan(**fields)
        return evaluate_train(spec, self.model(wl), wl.batch, wl.seq_len or 2048, plan=plan, dtype=wl.dtype,
                              attention=wl.attention, mode=self.mode, stack=self.stack,
                              load=self.load).summary

    def _analytical(self, spec: SystemSpec, skey: str, ckey: str, wl: WorkloadSpec, wkey: str) -> dict[str, Any]:
        tp_chips = spec.chip.chips_for_tp(wl.tp)
        if tp_chips > spec.num_chips and spec.scale_out is not None:
            from ..sim.training import system_for

            chips = -(-tp_chips // spec.chips_per_node) * spec.chips_per_node
            skey = f"{skey}|x{chips}"
            spec = system_for(spec, chips)
        g = self.graph(wl, wkey, spec.chip.tp_ranks)
        check_tp_fits(g.meta.tp, spec)
        cm = self.chip_models.get(skey)
        if cm is None:
            cm = self.chip_models[skey] = ChipModel(spec, self.stack.collectives if self.stack else None)
        if len(self.op_costs) > self.MAX_CACHE:
            self.op_costs.clear()
        step = self.step_cost + self.request_cost * g.meta.batch  # as report.results.build_results adds it
        return step_row(spec, g, cm, self.op_costs, skey, ckey, step)


def _spec_value(spec: SystemSpec, path: str) -> Any:
    node: Any = spec
    for k in path.split("."):
        node = node.get(k) if isinstance(node, dict) else getattr(node, k, None)
        if node is None:
            return None
    return node if isinstance(node, (int, float, str, bool)) else str(node)


def _div(a: float, b: float) -> float:
    return a / b if b and b > 0 and math.isfinite(b) else math.nan


def _invalid(err: ValidationError, overrides: dict[str, Any], prefix: str) -> _Invalid:
    """Name the override(s) behind each validation problem: the path, the value, the message.
    A problem at a field belongs to the overrides on that field's path; a cross-field problem
    (no field) to the overrides its message names, else to all of them."""
    lines, culprits = [], []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = _MESSAGES.get(e["type"], e["msg"]).removeprefix("Value error, ")
        if loc:
            hits = [p for p in overrides if loc == p or loc.startswith(p + ".") or p.startswith(loc + ".")]
        else:
            hits = [p for p in overrides if p in msg] or [p for p in overrides if p.rsplit(".", 1)[-1] in msg]
        hits = hits or list(overrides)
        for p in hits:
            if p not in culprits:
                culprits.append(p)
        what = ", ".join(f"{prefix}{p}={overrides[p]!r}" for p in hits) or "(base)"
        lines.append(f"{what}: {prefix}{loc or '(top level)'}: {msg}")
    return _Invalid("invalid", ", ".join(prefix + p for p in culprits), "; ".join(lines))


_MESSAGES = {"extra_forbidden": "unknown field (misspelt?)", "missing": "required field is missing"}
"""The wording of ``configio.validation_problems`` for the two most common problems."""


def _failed(inv: _Invalid) -> dict[str, Any]:
    return {"status": inv.status, "error": inv.message, "error_path": inv.path}


_EVALUATORS: dict[str, Evaluator] = {}


def evaluate_batch(ctx: dict[str, Any], batch: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """Evaluate ``(index, overrides)`` pairs in this process (the task sent to executors).

    The cyclic garbage collector is paused for the batch (evaluation makes no reference cycles
    worth collecting, and its passes over the caches cost ~20% of the time)."""
    ev = _EVALUATORS.get(ctx["key"])
    if ev is None:
        if len(_EVALUATORS) >= 4:
            _EVALUATORS.clear()
        ev = _EVALUATORS[ctx["key"]] = Evaluator(ctx)
    with paused():
        return [(i, ev.evaluate(ov)) for i, ov in batch]


# --- parent side -----------------------------------------------------------------------------
def context(space: DesignSpace, fidelity: str, mode: str = "realistic", stack=None,
            load: str = "sustained") -> dict[str, Any]:
    """Everything a worker needs to evaluate the points of ``space`` (picklable)."""
    from ..stack.presets import resolve
    from ..stack.realize import load_of

    load = load_of(load)
    base = space.base_system()
    st = resolve(stack, base.stack, mode)
    ctx = {"base": base.model_dump(), "workload": space.base_workload(), "fidelity": fidelity,
           "mode": mode, "load": load, "stack": st.model_dump() if st is not None else None,
           "scale_tensor_rates": space.scale_tensor_rates, "cost_model": space.cost_model.model_dump(),
           "spec_paths": space.constraints.spec_paths(), "root": str(space.root)}
    ctx["key"] = canonical_json({k: v for k, v in ctx.items()})
    return ctx


def sweep(space: DesignSpace | str | Path | dict, fidelity: str = "analytical", executor: Executor | None = None,
          batch_size: int | None = None, out: str | Path | None = None, resume: bool = False,
          progress: bool = True, workers: int | None = None, mode: str = "realistic", stack=None,
          overwrite: bool = False, load: str = "sustained") -> pd.DataFrame:
    """Evaluate every point of ``space``; one row per point (see ``METRICS`` and the module doc).

    ``executor``: any ``concurrent.futures.Executor`` (Dask: ``Client(...).get_executor()``);
    default: a ProcessPoolExecutor of ``workers`` processes (all cores), or this process alone
    when ``workers == 1`` or the whole sweep is estimated to take under a second. One point is
    evaluated here first to size the batches (``batch_size`` overrides it). ``out``: a parquet
    file; rows are flushed as batches arrive (into ``OUT.parts/``) and consolidated at the end;
    ``overwrite=False`` refuses to replace an ``out`` that is not a sweep result of this space.
    ``resume=True`` skips every point whose hash is already stored (a killed sweep loses at most
    the batches in flight), ``resume=False`` starts the file afresh. ``mode`` / ``stack`` / ``load``: as
    for ``accelsim.evaluate`` (realistic under the base system's stack, sustained load, by default).
    """
    space = DesignSpace.load(space)
    if fidelity not in FIDELITIES:
        raise ConfigError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}")
    from ..configio import whole_number

    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if value is not None:  # a batch size below one lost every point after the first ones
            whole_number(name, value, 1, ConfigError)
    if out is not None:
        require_pyarrow()
    elif resume or overwrite:
        raise ConfigError(f"{'resume' if resume else 'overwrite'}=True needs out= (the parquet file it refers to)")
    ctx = context(space, fidelity, mode, stack, load)
    with paused():  # the parent's own work (points, the serial loop, the frames) makes no cycles either
        points = space.points()
    by_hash = {p.hash: p for p in points}
    store = Store(out) if out is not None else None
    previous = pd.DataFrame()
    if store is not None:
        if resume:
            previous = store.load()
            if len(previous):  # this space's points at this fidelity
                keep = previous["point_hash"].isin(list(by_hash))
                if "fidelity" in previous.columns:
                    keep &= previous["fidelity"] == fidelity
                if "status" in previous.columns:  # failed points are evaluated again
                    keep &= previous["status"] != "error"
                previous = previous[keep].drop_duplicates("point_hash")
        else:
            if not overwrite:
                store.check_overwrite(set(by_hash))
            store.clear()
    done = set(previous["point_hash"]) if len(previous) else set()
    todo = [p for p in points if p.hash not in done]
    rows: list[dict[str, Any]] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(points), initial=len(points) - len(todo), disable=not progress, unit="pt",
               desc=space.name, dynamic_ncols=True)
    own = None
    try:
        # measure: the first point warms the caches, the next few give the time per point
        pos, t_point = 0, 0.0
        if todo:
            rows += _run_local(ctx, todo[:1], store)
            pos = 1
            t0 = time.perf_counter()
            while pos < len(todo) and time.perf_counter() - t0 < 0.05 and pos < 64:
                rows += _run_local(ctx, todo[pos:pos + 1], None)
                pos += 1
            n_timed = pos - 1
            t_point = (time.perf_counter() - t0) / n_timed if n_timed else 0.0
            if n_timed and store is not None:
                store.append(_frame(rows[1:], by_points(todo[1:pos]), fidelity))
            bar.update(pos)
        rest = todo[pos:]
        if rest:
            n_workers = workers or _executor_workers(executor) or os.cpu_count() or 1
            size = batch_size or max(1, math.ceil(TARGET_TASK_S / max(t_point, 1e-6)))
            if batch_size is None:
                size = max(1, min(size, math.ceil(len(rest) / (2 * n_workers))))
            batches = [rest[i:i + size] for i in range(0, len(rest), size)]
            serial = executor is None and (n_workers == 1 or t_point * len(rest) < 1.0)
            if serial:
                with paused():  # a 5,000-point sweep leaves 11 unreachable objects
                    for b in batches:
                        rows += _run_local(ctx, b, store)
                        bar.update(len(b))
            else:
                if executor is None:
                    from concurrent.futures import ProcessPoolExecutor

                    executor = own = ProcessPoolExecutor(max_workers=n_workers, initializer=die_with_parent)
                rows += _run_executor(executor, ctx, batches, store, bar)
    finally:
        bar.close()
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
    with paused():
        new = _frame(rows, {p.index: p for p in todo}, fidelity)
        df = pd.concat([d for d in (previous, new) if len(d)], ignore_index=True) if len(previous) else new
        df = _finish(df, space, by_hash)
    if store is not None:
        store.finish(df)
    return df


def by_points(points: Iterable[Point]) -> dict[int, Point]:
    return {p.index: p for p in points}


def _executor_workers(executor: Executor | None) -> int | None:
    if executor is None:
        return None
    n = getattr(executor, "_max_workers", None)
    if n:
        return int(n)
    client = getattr(executor, "_client", None)  # distributed.cfexecutor.ClientExecutor
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:
            return None
    return None


def _run_local(ctx: dict[str, Any], batch: list[Point], store: Store | None) -> list[dict[str, Any]]:
    out = [r for _, r in evaluate_batch(ctx, [(p.index, p.overrides) for p in batch])]
    for p, r in zip(batch, out):
        r["point"] = p.index
    if store is not None:
        store.append(_frame(out, by_points(batch), ctx["fidelity"]))
    return out


def _run_executor(executor: Executor, ctx: dict[str, Any], batches: list[list[Point]], store: Store | None,
                  bar) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    pool = Pool(executor, evaluate_batch)
    pending = {pool.submit(ctx, b): (b, 0) for b in batches}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                batch, tries = pending.pop(fut)
                try:
                    got = fut.result()
                except Exception as e:  # the executor lost the task (a worker died): send it again, then fail
                    if tries < MAX_RETRIES:
                        pool.renew_if_broken()
                        pending[pool.submit(ctx, batch)] = (batch, tries + 1)
                        continue
                    msg = f"executor: {type(e).__name__}: {e} (after {tries} retries)"
                    rows += [{"point": p.index, "status": "error", "error": msg, "error_path": ""} for p in batch]
                else:
                    part = []
                    for i, r in got:
                        r["point"] = i
                        part.append(r)
                    rows += part
                    if store is not None:
                        store.append(_frame(part, by_points(batch), ctx["fidelity"]))
                bar.update(len(batch))
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    finally:
        pool.close()
    return rows


def _frame(rows: list[dict[str, Any]], points: dict[int, Point], fidelity: str) -> pd.DataFrame:
    """Result rows with their axis columns, hash and version, in point order."""
    from ..version import __version__

    recs = []
    for r in rows:
        p = points[r["point"]]
        rec = {"point": p.index, **p.columns}
        for m in METRICS:
            rec[m] = r.get(m, math.nan)
        for k, v in r.items():
            if k not in rec and k not in ("status", "error", "error_path"):
                rec[k] = v
        rec.update(status=r.get("status", "error"), error=r.get("error"), error_path=r.get("error_path"),
                   point_hash=p.hash, fidelity=fidelity, accelsim_version=__version__)
        recs.append(rec)
    return pd.DataFrame.from_records(recs)


def _finish(df: pd.DataFrame, space: DesignSpace, by_hash: dict[str, Point]) -> pd.DataFrame:
    """Current point indices, point order, constraints applied."""
    if not len(df):
        return df
    df = df.copy()
    df["point"] = [by_hash[h].index for h in df["point_hash"]]
    df = df.sort_values("point", kind="stable").drop_duplicates("point_hash").reset_index(drop=True)
    from .analysis import apply_constraints

    return apply_constraints(df, space)


__all__ = ["sweep", "context", "evaluate_batch", "Evaluator", "METRICS", "FIDELITIES"]
