"""Predict the time of a measured row (``schema.MeasurementRow``) with the analytical tier (or,
where it applies, the event tier).

How each kind maps to a prediction (the decisions a validation engineer should know):

- ``gemm``: one ``MatMul`` C[m,n] = A[m,k] B[k,n], operands and output in ``dtype``; a batched
  row (``batch`` > 1) multiplies ``batch`` pairs of matrices, each with its own B, as a batched
  GEMM benchmark runs it (``torch.bmm``, a strided-batched BLAS call, XLA's ``dot`` with batch
  dimensions, a grouped MoE GEMM; ``b_shared=False``), while a row with a compression recipe
  multiplies by one compressed weight (``b_shared=True``); a ``layout: col`` row (a BLAS
  harness's column-major matrices) as the row-major product it stores, C^T[n,m] = B^T[n,k] A^T[k,m].
- ``softmax``, ``layernorm``, ``rmsnorm``: the row-wise op over [rows, cols].
- ``gelu``, ``silu_mul``, ``add``, ``copy``: ``Elementwise`` over ``elements`` output elements
  (``rows*cols`` when only the shape is given).
- ``allreduce``, ``allgather``, ``reducescatter``, ``alltoall``: ``collective_cost`` over
  ``ranks`` chips of ``system`` (chips 0..ranks-1, the fastest algorithm), ``bytes`` per rank;
  a system with fewer chips than ``max(ranks, chips)`` is replicated over its scale-out network.
- ``layer_op``: ONE transformer layer of ``model`` (``phase``, ``batch``, ``seq_len`` /
  ``context_len``, ``tp``) built with **unfused attention**; the sum of that layer's ops whose
  role is ``op`` (``allreduce_attn`` / ``allreduce_mlp`` are the tensor-parallel all-reduces
  after ``out_proj`` / ``mlp_down``).
- ``layer``: the sum of all ops of that one layer (norms, projections, unfused attention,
  activation, residual adds, KV-cache append, TP all-reduces), each costed on its own.
- ``model``: ``prefill`` is the time to first token (one prefill step), ``decode`` one decode
  step at ``context_len``, ``train`` one optimizer step (``evaluate_train``: ``batch`` is the
  global batch, ``tp``/``pp``/``dp``, ``compression`` ``fsdp`` -> ZeRO-3, ``zero1`` / ``zero2``
  / ``zero3`` -> that stage), with flash attention (what serving and training stacks run).
- ``tp`` counts NeuronCores on Trainium1 / Inferentia2 systems (two per chip), as the schema says.

Why unfused attention for layer rows: a ``layer`` / ``layer_op`` row is the schema's breakdown
of a layer into separately launched ops (LLMCompass's GPT-3 rows are "sum of per-op measured
latencies, ops run separately": Q K^T, softmax and A V are three kernels with the score matrix
in HBM), so every op is costed on its own, then summed. A layer is a one-layer copy of the
model (its learned-position table widened to the row's context when needed: the table is
outside the layer). For an MoE model whose first layers are dense, it is the first MoE layer.

Rows whose ``compression`` names a recipe (``w8a16``, ``w4a16-g64``, ``w4a16-g64+sparse2:4``, a
format name; see ``Compression.from_tag``) are predicted with that recipe applied by the builder
(a ``gemm`` row: B is the weight). A row that cannot be predicted (an unreadable compression
tag, pipeline-parallel inference, a plan that does not fit the system, ...) comes back
``skipped`` with its reason; it is never dropped.

Caching: systems and their ``ChipModel`` per (system, chips, calibration), graphs per (model,
phase, shape, tp, dtype, attention): a calibration fit re-predicting rows only recosts ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Mapping

from ..arch.presets import load_system
from ..arch.spec import SystemSpec
from ..errors import AccelsimError, ConfigError, MeasurementError
from ..sim.analytical import cost_ops, sequence_time
from ..sim.queueing import closed_loop_ttft
from ..cost.op_cost import ChipModel, OpCost, dispatch, one_call_saving
from ..workload.ops import Op
from .calkey import ALONE_KEY, KERNELS_KEY, LOAD_KEY, STACK_KEY, _cal_key
from .calvalues import calibration_update
from .offline import kv_unfit, offline_batch
from .row_ops import _recipe_tag, _renamed, kernel_ops, recipe_of
from .schema import COLLECTIVE_KINDS, MeasurementRow

FIDELITIES = ("analytical", "event")
MAX_CACHED_CHIPS = 4096
"""Calibrated chip models kept by one Predictor before the oldest half is dropped."""


@dataclass(frozen=True)
class Prediction:
    """The predicted time of one row, or why there is none."""

    time_s: float
    """Predicted seconds (NaN when skipped)."""
    bound: str = ""
    """What bounds it (the bound holding the most time for a sum of ops)."""
    skipped: bool = False
    reason: str = ""
    """Why the row was skipped."""
    fidelity: str = "analytical"
    """The tier that produced the time."""
    mfu: float = math.nan
    """A training step's model FLOPs utilisation at the predicted time (NaN for other rows)."""
    memory_fraction: float = math.nan
    """A training step's predicted peak memory per chip over the chip's HBM (above 1: it
    would not fit; NaN for other rows)."""
    note: str = ""
    """How the prediction read what the row leaves open (the batch an engine sets)."""


def skipped(reason: str) -> Prediction:
    return Prediction(math.nan, "", True, reason, "")


# ------------------------------------------------------------------------------------------
# The predictor


class Predictor:
    """Predicts rows; keeps systems, chip models and graphs between calls (see the module
    docstring). One predictor serves any number of calibrations."""

    def __init__(self, mode: str = "realistic", stack: str | None = None) -> None:
        if mode not in ("realistic", "ideal"):
            raise MeasurementError(f"mode must be 'realistic' or 'ideal', got {mode!r}")
        self.mode = mode
        self.default_stack = stack
        """Stack of the rows that name none (None: each system's default stack)."""
        """realistic: collectives run under the row's stack (its ``stack`` column, else the
        system's default stack); ideal: the peak-rate bound without software costs."""
        self._base: dict[str, SystemSpec] = {}
        self._systems: dict[tuple, SystemSpec] = {}
        self._chips: dict[tuple, ChipModel] = {}
        self._mappings: dict[tuple, dict] = {}
        self._costs: dict[tuple, dict[Op, OpCost]] = {}
        self._models: dict[str, Any] = {}
        self._graphs: dict[tuple, Any] = {}
        self._layer_ops: dict[tuple, list[Op]] = {}
        self._role_ops: dict[tuple, list[Op]] = {}
        self._event: dict[tuple, float] = {}

    # ---------------------------------------------------------------- systems
    def base_system(self, name: str) -> SystemSpec:
        s = self._base.get(name)
        if s is None:
            s = self._base[name] = load_system(name)
        return s

    def system(self, name: str, chips: int = 0, cal: Mapping[str, float] | tuple | None = None) -> SystemSpec:
        """The system ``name`` with at least ``chips`` chips (scaled out over its scale-out
        network when it has fewer) and ``cal`` replacing fields of its chip's calibration."""
        key = (name, chips, _cal_key(cal))
        s = self._systems.get(key)
        if s is not None:
            return s
        s = self.base_system(name)
        fields = dict(key[2])
        stack = fields.pop(STACK_KEY, None)
        kernels = fields.pop(KERNELS_KEY, None)
        load = fields.pop(LOAD_KEY, "burst")
        fields.pop(ALONE_KEY, None)  # a harness cost (``_alone``), not the chip's
        if fields:  # an explicit calibration (a file, or a fit's trial point)
            upd = calibration_update(fields, s.chip.calibration.tensor_dtype_efficiency)
            new = s.chip.calibration.model_copy(update=upd)
            s = s.model_copy(update={"chip": s.chip.model_copy(update={"calibration": new})})
        if stack is not None or fields:  # realistic: the chip's priors and the row's stack's costs
            from ..stack.presets import load_stack
            from ..stack.realize import realize, under_load

            st = load_stack(stack) if stack is not None else None
            if st is not None and kernels is not None:  # the row's own kernel library
                st = st.model_copy(update={"kernels": kernels})
            s = under_load(realize(s, st), st, load)
        if chips > s.num_chips:
            if s.scale_out is None:
                raise ConfigError(f"the case needs {chips} chips but {s.name} has {s.num_chips} and no "
                                  f"scale_out network to replicate it over")
            from ..arch.topology import scale_out_system

            node = s.chips_per_node
            s = scale_out_system(s, -(-chips // node) * node)
        self._systems[key] = s
        return s

    def chip_model(self, system: SystemSpec, key: tuple) -> ChipModel:
        cm = self._chips.get(key)
        if cm is None:
            cm = self._chips[key] = ChipModel(system, self.library_of(key[2]))
            self._costs[key] = {}
            # the GEMM mapping search depends on the calibration only through these fields, so
            # chip models that agree on them share their searches (a fit varies the others too)
            cal = system.chip.calibration
            search_key = (key[0], key[1], cal.tensor_efficiency, cal.sram_efficiency, cal.hbm_efficiency,
                          tuple(sorted(cal.tensor_dtype_efficiency.items())))
            cm._mappings = self._mappings.setdefault(search_key, {})
            if len(self._chips) > MAX_CACHED_CHIPS:  # a long fit: drop the oldest trial points
                for old in list(self._chips)[: len(self._chips) // 2]:
                    del self._chips[old], self._costs[old]
                    self._systems.pop(old, None)
                self._mappings = {search_key: cm._mappings}
        return cm

    def cost(self, name: str, chips: int, cal: Mapping[str, float] | tuple | None, ops: list[Op]) -> list[OpCost]:
        """Analytical cost of each op on one chip of the (calibrated) system."""
        key = (name, chips, _cal_key(cal))
        cm = self._chips.get(key)
        if cm is None:
            cm = self.chip_model(self.system(name, chips, cal), key)
        return cost_ops(ops, cm, self._costs[key])

    # ---------------------------------------------------------------- models and graphs
    def model(self, name: str):
        from ..workload import load_model

        m = self._models.get(name)
        if m is None:
            m = self._models[name] = load_model(name)
        return m

    def layer_ops(self, row: MeasurementRow, tp: int) -> list[Op]:
        """Ops of the one representative layer of ``row.model`` (unfused attention)."""
        from ..workload import build

        cfg = self.model(row.model)
        key = (row.model, row.phase, row.batch, row.seq_len or 0, row.context_len or 0, tp, row.dtype,
               _recipe_tag(row))
        ops = self._layer_ops.get(key)
        if ops is not None:
            return ops
        if cfg.family != "decoder" and cfg.family != "encoder":
            raise MeasurementError(f"{row.model} is a {cfg.family} model: layer rows need a transformer")
        layer = next((i for i in range(cfg.num_hidden_layers) if cfg.is_moe_layer(i)), 0) if cfg.is_moe else 0
        seq = row.seq_len or 0
        ctx = row.context_len or 0
        kv_len = ctx + (seq if row.phase == "prefill" else 1)
        update: dict[str, Any] = {"num_hidden_layers": layer + 1}
        if cfg.position_embedding == "learned":
            update["max_position_embeddings"] = max(cfg.max_position_embeddings, kv_len)
        one = cfg.model_copy(update=update)
        g = build(one, row.phase, batch=row.batch, seq_len=seq if row.phase == "prefill" else 0,
                  context_len=ctx, tp=tp, dtype=row.dtype, attention="unfused", compression=recipe_of(_recipe_tag(row)))
        ops = self._layer_ops[key] = [o for o in g.ops() if o.layer == layer]
        return ops

    # ---------------------------------------------------------------- rows
    def predict(self, row: MeasurementRow, fidelity: str = "analytical",
                calibration: Mapping[str, float] | None = None) -> Prediction:
        """Predict one row; a row accelsim cannot predict comes back skipped with its reason."""
        if fidelity not in FIDELITIES:
            raise MeasurementError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}")
        if not row.steady:
            return skipped("load cold: timed while the harness was warming up (first runs after start); "
                           "accelsim predicts the warm steady state")
        try:
            cal = _cal_key(calibration)
            if self.mode == "realistic" and STACK_KEY not in dict(cal):
                st = self.stack_name(row)
                own = {KERNELS_KEY: row.kernels} if st and row.kernels else {}
                if row.sustained:
                    own[LOAD_KEY] = "sustained"
                cal = _cal_key({**dict(cal), STACK_KEY: st, **own}) if st else cal
            return self._predict(row, fidelity, cal)
        except AccelsimError as e:
            return skipped(str(e))
        except ValueError as e:  # an op that rejects its shape
            return skipped(f"cannot build the case: {e}")

    def _predict(self, row: MeasurementRow, fidelity: str, cal) -> Prediction:
        comp = (row.compression or "").strip().lower()
        if row.zero and not (row.kind == "model" and row.phase == "train"):
            return skipped(f"zero={row.zero}: a ZeRO / FSDP plan applies to training rows only")
        if comp:
            if row.kind in COLLECTIVE_KINDS:
                return skipped(f"compression {row.compression!r}: a collective row has no compression recipe")
            try:
                recipe_of(comp)
            except AccelsimError as e:
                return skipped(f"compression {row.compression!r}: {e}")
        if row.kind in COLLECTIVE_KINDS:
            return self._collective(row, fidelity, cal)
        if row.kind in ("layer_op", "layer"):
            return self._layer(row, fidelity, cal)
        if row.kind == "model":
            return self._model(row, fidelity, cal)
        ops = kernel_ops(row)
        costs = self.cost(row.system, 0, cal, ops)
        if row.cache == "warm":  # re-run back to back on the same buffers: the shared level holds them
            from ..cost.cache import warm_rerun

            cm = self._chips[(row.system, 0, cal)]  # the chip model self.cost just used
            costs = [warm_rerun(cm, op, c) for op, c in zip(ops, costs)]
        call = self._program_call(cal)  # a one-kernel row is one call of a compiled program
        call -= self._one_timed_call(row, cal, ops)  # several kernels in one timed call
        if row.timing == "alone":
            call += self._alone(row, cal, ops[0])
        bound = costs[0].bound if len(costs) == 1 else _dominant(costs)
        if fidelity == "event":
            warm = row.cache == "warm"
            return Prediction(sum(self._event_time(row.system, cal, op, warm=warm) for op in ops) + call, bound,
                              fidelity="event")
        return Prediction(sum(c.time_s for c in costs) + call, bound)

    def _one_timed_call(self, row: MeasurementRow, cal, ops: list[Op]) -> float:
        """What a kernel row's further kernels do not pay (``op_cost.one_call_saving``)."""
        st = self.stack_of(cal)
        if st is None or st.runtime.further_kernel_s is None:
            return 0.0
        return one_call_saving(self._chips[(row.system, 0, cal)], ops, st.runtime.further_kernel_s)

    def _alone(self, row: MeasurementRow, cal, op: Op) -> float:
        """What a kernel timed alone on the device costs beyond its launch as the stack issues it
        back to back: ``runtime.alone_kernel_s`` (a fit's trial value under ``ALONE_KEY``) in
        place of the first kernel's launch (0 when the stack has none)."""
        c = dict(cal)
        alone = c.get(ALONE_KEY)
        if alone is None:
            st = self.stack_of(cal)
            alone = st.runtime.alone_kernel_s if st is not None else None
        if alone is None:
            return 0.0
        return alone - dispatch(self._chips[(row.system, 0, cal)], op)[1]

    def _program_call(self, cal) -> float:
        """Per-call cost of a stack whose runtime dispatches whole programs (0 otherwise)."""
        st = self.stack_of(cal)
        return st.runtime.kernel_launch_s if st is not None and st.runtime.dispatch == "program" else 0.0

    def _api_mode(self, cal) -> dict[str, Any]:
        """mode / stack / load arguments of ``api.evaluate`` for a calibration key."""
        c = dict(cal) if cal else {}
        st = c.get(STACK_KEY)
        return {"mode": "realistic", "stack": st, "load": c.get(LOAD_KEY, "burst")} if st else {"mode": "ideal"}

    def stack_name(self, row: MeasurementRow) -> str:
        """The stack a row was measured under: its ``stack`` column, else the system's default."""
        from ..stack.presets import for_platform

        default = self.base_system(row.system).stack
        name = row.stack or self.default_stack
        return for_platform(name, default) if name else default

    @staticmethod
    def stack_of(cal) -> Any:
        """The Stack of a realistic-mode calibration key (None otherwise)."""
        st = dict(cal).get(STACK_KEY) if cal else None
        if st is None:
            return None
        from ..stack.presets import load_stack

        return load_stack(st)

    def library_of(self, cal) -> Any:
        """The collective library of a realistic-mode calibration key (None otherwise)."""
        st = self.stack_of(cal)
        return st.collectives if st is not None else None

    def _collective(self, row: MeasurementRow, fidelity: str, cal) -> Prediction:
        from ..cost.collectives import collective_cost

        need = max(row.ranks, row.chips or 0)
        system = self.system(row.system, need if need > self.base_system(row.system).num_chips else 0, cal)
        lib = self.library_of(cal)
        r = collective_cost(system, row.kind, float(row.bytes), int(row.ranks), library=lib)
        bound = "interconnect" if r.bandwidth_s >= r.latency_s else "overhead"
        call = self._program_call(cal)  # a one-collective row of a compiled-program stack is one call
        if call:
            return Prediction(r.time_s + call, bound)
        if fidelity == "event":
            from ..sim.collective import simulate_collective

            key = ("collective", system.name, _cal_key(cal), row.kind, float(row.bytes), int(row.ranks))
            t = self._event.get(key)
            if t is None:
                t = self._event[key] = simulate_collective(system, row.kind, float(row.bytes), int(row.ranks),
                                                           r.algorithm, library=lib)[0]
            return Prediction(self._harness(row, cal, t), bound, fidelity="event")
        return Prediction(self._harness(row, cal, r.time_s), bound)

    def _harness(self, row: MeasurementRow, cal, t: float) -> float:
        """What the row's harness timed for one collective call of predicted time ``t`` (which
        pays the runtime's host enqueue for one device): the enqueue once per device the process
        drives, in series with the device work (``timing`` call) or, in a loop of back-to-back
        calls, overlapped with it (the larger of the two)."""
        from ..cost.collectives import p2p_host_s

        st = self.stack_of(cal)
        host1 = (st.runtime.collective_launch_s + p2p_host_s(row.kind, int(row.ranks), st.collectives)
                 if st is not None else 0.0)
        return harness_time(t - host1, host1 * (row.gpus_per_process or 1), row.timing)

    def tp_chips(self, system: str, tp: int) -> int:
        """Chips of ``tp`` tensor-parallel ranks (on Neuron chips a rank is a NeuronCore)."""
        return self.base_system(system).chip.chips_for_tp(tp)

    def _layer(self, row: MeasurementRow, fidelity: str, cal) -> Prediction:
        if (row.pp or 1) > 1:
            return skipped("pipeline parallelism splits layers over chips; a layer row runs with pp = 1")
        tp = self.tp_chips(row.system, row.tp or 1)
        ops = self.layer_ops(row, tp)
        if row.kind == "layer_op":
            key = (id(ops), row.op)
            sel = self._role_ops.get(key)
            if sel is None:
                sel = self._role_ops[key] = [o for o in ops if o.role == row.op]
            ops = sel
            if not ops:
                return skipped(f"{row.model} has no {row.op} op in {row.phase} with tp={tp} "
                               f"(all-reduces exist only with tp > 1)")
        chips = tp if tp > self.base_system(row.system).num_chips else 0
        costs = self.cost(row.system, chips, cal, ops)
        bound = _dominant(costs)
        if fidelity == "event":
            return Prediction(sum(self._event_time(row.system, cal, o, chips) for o in ops), bound,
                              fidelity="event")
        return Prediction(sequence_time(costs), bound)

    def _model(self, row: MeasurementRow, fidelity: str, cal) -> Prediction:
        cfg = self.model(row.model)
        if row.phase == "train":
            return self._train(row, cfg, cal)
        return self._serve(row, cfg, fidelity, cal)

    def _serve(self, row: MeasurementRow, cfg, fidelity: str, cal) -> Prediction:
        """A serving row: TTFT (one prefill step), TPOT (one decode step) or throughput
        (seconds per generated token over the batch: one prefill and ``output_len`` decode
        steps at the mean context; under an engine with decode buckets, at the mean of the steps'
        buckets, ``stack.realize.decode_context``). Every step pays the serving engine's per-step cost. A row
        with ``concurrency`` and no ``batch`` is continuous batching: see ``_continuous``; a throughput
        row with neither runs at the batch its engine admits, where the stack's engine sets one
        (``offline.offline_batch``)."""
        if (row.pp or 1) > 1:
            return skipped("pipeline-parallel inference is not modelled (pp > 1 in a prefill / decode row)")
        metric = row.metric or {"prefill": "ttft", "decode": "tpot"}[row.phase]
        batch = row.batch or row.concurrency
        if batch is None:  # an offline maximum-throughput row: the engine may set the batch
            batch, how = offline_batch(getattr(self.stack_of(cal), "serving", None), partial(self._meta, row, cfg),
                                       self.base_system(row.system).chip.hbm.capacity_bytes,
                                       self.tp_chips(row.system, row.tp or 1), row.input_len, row.output_len, metric)
            if batch is None:
                return skipped(how)
            p = self._serve(row.model_copy(update={"batch": batch}), cfg, fidelity, cal)
            return p if p.skipped else replace(p, note=f"batch {batch} set by the engine ({how})")
        prompt = row.seq_len or row.input_len
        ctx = row.context_len if row.context_len is not None else (
            (row.input_len or 0) + (row.output_len or 0) // 2)
        from ..stack.realize import decode_buckets, decode_context, step_cost_s

        engine = partial(step_cost_s, self.stack_of(cal))  # per step: program execution, serving engine
        cont = row.batch is None  # continuous batching: up to every request's whole context
        read = ctx  # the context the decode steps' attention reads: with decode buckets, the steps' buckets
        if decode_buckets(self.stack_of(cal)) and not cont:
            span = row.context_len is None and row.input_len is not None and row.output_len
            read = round(decode_context(self.stack_of(cal), row.input_len, row.output_len,
                                        row.input_len + row.output_len) if span else
                         decode_context(self.stack_of(cal), ctx))
        tokens = ctx + 1 if metric == "tpot" and not cont else \
            (prompt or 0) + ((row.output_len or 0) if cont or metric == "throughput" else 0)
        why = kv_unfit(partial(self._meta, row, cfg), self.base_system(row.system).chip.hbm.capacity_bytes, batch,
                       tokens) if cfg.family == "decoder" and tokens >= 2 else None
        if why:
            return skipped(why)
        if cont:
            return self._continuous(row, cfg, fidelity, cal, metric, row.concurrency, prompt, ctx, engine)
        if metric == "ttft":
            return self._step(row, cfg, fidelity, cal, "prefill", batch, prompt or 0, 0, engine(batch))
        if metric == "throughput" and not (prompt and row.output_len):
            return skipped("a throughput row needs input_len and output_len (its prefill and every decode step "
                           "are part of the time)")
        decode = self._step(row, cfg, fidelity, cal, "decode", batch, 0, read, engine(batch))
        if metric == "tpot" or decode.skipped:
            return decode
        pre = self._step(row, cfg, fidelity, cal, "prefill", batch, prompt, 0, engine(batch))
        if pre.skipped:
            return pre
        return Prediction((pre.time_s + row.output_len * decode.time_s) / (batch * row.output_len), decode.bound,
                          fidelity=decode.fidelity)

    def _continuous(self, row: MeasurementRow, cfg, fidelity: str, cal, metric: str, conc: int, prompt: int | None,
                    ctx: int, engine) -> Prediction:
        """Continuous batching at ``conc`` requests in flight, in steady state. Every engine
        iteration runs one forward pass over one decode token of each request plus, amortised,
        the prompt tokens of the requests that replace finished ones: while one request
        generates ``output_len`` tokens the other ``conc - 1`` bring ``input_len`` prompt tokens
        each, so ``(conc - 1) * input_len / output_len`` per iteration. The linear layers see all
        those tokens in one pass (one weight read), costed as a prefill of that many tokens; the
        decode tokens' attention over their KV cache is added on top (a decode step at the mean
        context minus the same step at context 1). TPOT is one iteration; throughput is an
        iteration over ``conc`` tokens; a new request's TTFT is the iteration that prefills its
        own prompt next to the other ``conc - 1`` requests' decode tokens, after the prompts queued
        ahead of it (``sim.queueing``: the clients send a request when their last one ends)."""
        if not prompt or not row.output_len:
            return skipped("a continuous-batching row needs input_len and output_len (they set the prefill load "
                           "each iteration carries)")

        def iteration(prefill_tokens: int, decoding: int) -> Prediction:  # conc requests in the step
            mixed = self._step(row, cfg, fidelity, cal, "prefill", 1, prefill_tokens + decoding, 0, engine(conc))
            if mixed.skipped or decoding == 0:
                return mixed
            full = self._step(row, cfg, fidelity, cal, "decode", decoding, 0, max(ctx, 1), 0.0)
            bare = self._step(row, cfg, fidelity, cal, "decode", decoding, 0, 1, 0.0)
            for p in (full, bare):
                if p.skipped:
                    return p
            return Prediction(mixed.time_s + max(0.0, full.time_s - bare.time_s), mixed.bound,
                              fidelity=mixed.fidelity)

        it = iteration(round((conc - 1) * prompt / row.output_len), conc)
        if metric == "ttft":
            first = iteration(prompt, conc - 1)
            if first.skipped or it.skipped:
                return first if first.skipped else it
            return Prediction(closed_loop_ttft(first.time_s, it.time_s, conc, row.output_len), first.bound,
                              fidelity=first.fidelity)
        if it.skipped or metric == "tpot":
            return it
        return Prediction(it.time_s / conc, it.bound, fidelity=it.fidelity)

    def _step(self, row: MeasurementRow, cfg, fidelity: str, cal, phase: str, batch: int, seq_len: int,
              context_len: int, engine_s: float) -> Prediction:
        """One prefill or decode step of the row's model on its system."""
        system_name = row.system
        from ..stack.realize import attention_of

        graph, tp = self._graph(row, cfg, phase, batch, seq_len, context_len, attention_of(self.stack_of(cal)))
        chips = tp if tp > self.base_system(system_name).num_chips else 0
        if fidelity == "event":
            from ..api import evaluate

            res = evaluate(self.system(system_name, chips, cal), graph, fidelity="event", **self._api_mode(cal))
            by = res.summary["time_by_bound_s"]
            return Prediction(res.summary["latency_s"], max(by, key=by.get), fidelity="event")  # step cost included
        costs = self.cost(system_name, chips, cal, graph.ops())
        return Prediction(sequence_time(costs) + engine_s, _dominant(costs))

    def _graph(self, row: MeasurementRow, cfg, phase: str, batch: int, seq_len: int, context_len: int,
               attention: str = "flash"):
        """(graph of one step of the row's model, TP degree in chips), built once per shape, with the
        attention its stack runs (``stack.realize.attention_of``)."""
        from ..workload import build
        from ..workload.model import tp_over_chips

        tp = self.tp_chips(row.system, row.tp or 1)
        key = ("model", row.model, phase, batch, seq_len, context_len, tp, row.dtype, _recipe_tag(row), attention)
        if key not in self._graphs:  # the Neuron stack pads heads to the TP degree (in NeuronCores)
            cfg = tp_over_chips(cfg, row.tp or 1, self.base_system(row.system).chip.tp_ranks)[0]
            self._graphs[key] = build(cfg, phase, batch=batch, seq_len=seq_len, context_len=context_len, tp=tp,
                                      dtype=row.dtype, attention=attention, compression=recipe_of(_recipe_tag(row)))
        return self._graphs[key], tp

    def _meta(self, row: MeasurementRow, cfg, phase: str, batch: int, seq_len: int, context_len: int):
        """The WorkloadMeta of one step of the row's model (``_graph``)."""
        return self._graph(row, cfg, phase, batch, seq_len, context_len)[0].meta

    def _train(self, row: MeasurementRow, cfg, cal) -> Prediction:
        """One optimizer step under the row's plan; what the row leaves empty (sp, recompute and
        what selective recomputation keeps, ZeRO) comes from its stack's training framework."""
        from ..api import evaluate_train
        from ..workload.parallel import ParallelPlan

        from ..stack.realize import plan_defaults

        cores = self.base_system(row.system).chip.tp_ranks
        tp, pp, cp = row.tp or 1, row.pp or 1, row.cp or 1
        dp = row.dp
        if dp is None:  # the chips the rest of the plan leaves
            per = max(1, tp // cores) * pp * cp
            dp = row.chips // per if row.chips and row.chips % per == 0 else 1
        given = {"sp": None if row.sp is None else bool(row.sp), "recompute": row.recompute, "zero": row.zero,
                 "selective": row.selective}
        plan = ParallelPlan(tp=tp, pp=pp, dp=dp, cp=cp, ep=row.ep or 1, microbatch=row.microbatch or 1,
                            vpp=row.vpp or 1, vocab_tiles=row.vocab_tiles or 1, cores_per_chip=cores,
                            **{**plan_defaults(self.stack_of(cal)), **{k: v for k, v in given.items() if v is not None}})
        if row.chips is not None and row.chips != plan.chips:
            return skipped(f"chips={row.chips} does not match tp x pp x dp x cp = {plan.chips} chips")
        res = evaluate_train(self.system(row.system, 0, cal), cfg, row.global_batch or row.batch, row.seq_len,
                             plan=plan, dtype=row.dtype, compression=recipe_of(_recipe_tag(row)),
                             **self._api_mode(cal))
        by = res.summary["time_by_bound_s"]
        s = res.summary
        return Prediction(s["step_time_s"], max(by, key=by.get) if by else "", fidelity="analytical", mfu=s["mfu"],
                          memory_fraction=s["memory_bytes_per_chip"] / s["hbm_capacity_bytes"])

    def _event_time(self, system_name: str, cal, op: Op, chips: int = 0, warm: bool = False) -> float:
        """Event-tier time of ``op`` run on its own (one op graph); ``warm``: re-run on buffers the
        chip-shared level holds, as the analytical tier's ``cost.cache.warm_rerun``."""
        from ..sim.event import simulate
        from ..workload.graph import WorkloadGraph, WorkloadMeta

        key = ("op", system_name, chips, _cal_key(cal), op, warm)
        t = self._event.get(key)
        if t is None:
            group = getattr(op, "group", 1) if op.kind == "collective" else 1
            meta = WorkloadMeta(model="kernel", phase="prefill", batch=1, tp=group, dtype=getattr(op, "dtype", "bf16"))
            named = op if op.name else _renamed(op)
            g = WorkloadGraph.from_ordered(meta, [named], [])
            t = self._event[key] = simulate(g, self.system(system_name, chips, cal), warm=warm).makespan_s
        return t


def harness_time(device_s: float, host_s: float, timing: str | None) -> float:
    """Time per collective call as a harness reports it: the device work and the host's enqueue
    of the call in series (``timing`` None or "call"), or overlapped in a loop of back-to-back
    calls ("loop": the next call is enqueued while the devices run this one)."""
    return max(device_s, host_s) if timing == "loop" else device_s + host_s


def _dominant(costs: list[OpCost]) -> str:
    """The bound holding the most time over ``costs``."""
    by: dict[str, float] = {}
    for c in costs:
        by[c.bound] = by.get(c.bound, 0.0) + c.time_s
    return max(by, key=by.get) if by else ""
