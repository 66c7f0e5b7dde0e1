"""Measurement files: the schema of ``shared/data/measurements/SCHEMA.md``, loaded from CSV (or
parquet, with pyarrow) and validated row by row.

One row is one measured case on real silicon (a GEMM, a norm, a collective, one op of a
transformer layer, a whole layer or a whole model step) with its measured time. Each row is
validated by ``MeasurementRow`` (pydantic; empty cells are None). Every problem is reported with
the file, the line (CSV; parquet: the row number), the row id and the column, and all problems
of a file come back together in one ``MeasurementError``. A file that lacks a required column
(``REQUIRED_COLUMNS``) is refused naming the column; the other columns are optional (a missing
column reads as all-empty).

Checks beyond the types: ``kind`` is one of ``KINDS``; ``measured_time_s`` is positive and
finite; ``system`` is a shipped system preset or a YAML file (relative paths are resolved
against the measurement file's folder first); ``model`` is a shipped model preset or a model
file; ``op`` is a layer op (``LAYER_OPS``); ``phase`` is prefill, decode or train; and the
fields each kind needs are present (``NEEDS``). Row ids must be unique across the files loaded
together.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Literal

import pandas as pd
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, MeasurementError
from ..configio import MAX_TABLE_BYTES, StrictModel, check_regular_file
from ..workload.parallel import Selective

KERNEL_KINDS = ("gemm", "softmax", "layernorm", "rmsnorm", "gelu", "silu_mul", "add", "copy")
"""Single-kernel rows."""
COLLECTIVE_KINDS = ("allreduce", "allgather", "reducescatter", "alltoall")
"""Collective rows: ``bytes`` per rank over ``ranks`` chips."""
KINDS = KERNEL_KINDS + COLLECTIVE_KINDS + ("layer_op", "layer", "model")
"""Every row kind of the schema, in display order."""
LAYER_OPS = ("qkv_proj", "attn_score", "attn_softmax", "attn_context", "out_proj", "mlp_up", "mlp_act",
             "mlp_down", "norm_attn", "norm_mlp", "allreduce_attn", "allreduce_mlp")
"""Ops of one transformer layer a ``layer_op`` row may name (roles of ``workload.build``)."""
PHASES = ("prefill", "decode", "train")
MEASUREMENT_DTYPES = ("fp32", "bf16", "fp16", "fp8")
ZERO_TAGS = {"fsdp": 3, "zero1": 1, "zero2": 2, "zero3": 3}
"""Deprecated ``compression`` values that name a ZeRO stage (now the ``zero`` column)."""
METRICS = ("ttft", "tpot", "throughput", "step")
"""What a model row's time is: time to first token (prefill), time per output token of one
sequence (one decode step), seconds per generated token over the whole batch (1 / output
tokens per second, prefill included), one optimizer step (train)."""
METRIC_PHASES = {"ttft": "prefill", "tpot": "decode", "throughput": "decode", "step": "train"}
COLUMNS = ("id", "kind", "system", "chips", "dtype", "m", "n", "k", "batch", "rows", "cols", "elements",
           "bytes", "ranks", "model", "op", "phase", "metric", "seq_len", "context_len", "input_len", "output_len",
           "concurrency", "tp", "pp", "dp", "sp", "cp", "ep", "vpp", "microbatch", "global_batch", "recompute",
           "selective", "vocab_tiles", "zero", "compression", "stack", "kernels", "cache", "layout", "gpus_per_process",
           "timing", "load", "measured_time_s", "source", "notes")
"""Columns of the schema, in file order."""
REQUIRED_COLUMNS = ("id", "kind", "system", "measured_time_s")
"""Columns a file must have (every other column may be absent)."""
STR_COLUMNS = ("id", "kind", "system", "dtype", "model", "op", "phase", "metric", "recompute", "selective",
               "compression", "stack", "kernels", "cache", "layout", "timing", "load", "source", "notes")
INT_COLUMNS = ("chips", "m", "n", "k", "batch", "rows", "cols", "elements", "ranks", "seq_len", "context_len",
               "input_len", "output_len", "concurrency", "tp", "pp", "dp", "sp", "cp", "ep", "vpp", "microbatch",
               "global_batch", "vocab_tiles", "zero", "gpus_per_process")

NEEDS: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k", "dtype"),
    **{k: ("rows", "cols", "dtype") for k in ("softmax", "layernorm", "rmsnorm")},
    **{k: ("elements", "dtype") for k in ("gelu", "copy")},
    **{k: ("bytes", "ranks") for k in COLLECTIVE_KINDS},
    "layer_op": ("model", "op", "phase", "batch", "dtype"),
    "layer": ("model", "phase", "batch", "dtype"),
    "model": ("model", "phase", "dtype"),
}
"""Columns each kind needs (``silu_mul`` and ``add`` need ``elements`` or ``rows`` and
``cols``; layer and layer-op rows also need ``seq_len`` in prefill and ``context_len`` in
decode; a train row needs ``seq_len`` and ``batch`` or ``global_batch``; a prefill row
``seq_len`` or ``input_len``; a decode row ``context_len`` or ``input_len``. A serving row
without ``batch`` or ``concurrency`` loads; when predicted it is skipped (the load it was
measured at is unknown) unless it is a throughput row whose stack's engine sets the batch of an
offline run, ``serving.offline_batch: kv_capacity``)."""


class MeasurementRow(StrictModel):
    """One measured case (see SCHEMA.md). Empty cells are None."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    """Unique row id."""
    kind: Literal[KINDS]  # type: ignore[valid-type]
    """What was measured (``KINDS``)."""
    system: str = Field(min_length=1)
    """accelsim system preset (or YAML file) of the measured system."""
    chips: int | None = Field(None, ge=1)
    """Chips the case ran on (may exceed one node of the preset: it is then scaled out)."""
    dtype: Literal[MEASUREMENT_DTYPES] | None = None  # type: ignore[valid-type]
    """Compute / storage dtype of activations and weights."""
    m: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1)
    k: int | None = Field(None, ge=1)
    batch: int | None = Field(None, ge=1)
    """Batch count of a batched GEMM, or sequences of a layer / model case."""
    rows: int | None = Field(None, ge=1)
    cols: int | None = Field(None, ge=1)
    elements: int | None = Field(None, ge=1)
    bytes: float | None = Field(None, gt=0)
    """Payload per rank of a collective (the buffer each rank contributes)."""
    ranks: int | None = Field(None, ge=1)
    model: str | None = None
    """accelsim workload preset (or model file)."""
    cache: Literal["warm", "cold"] | None = None
    """What the harness leaves in the chip's last-level cache before each timed call of a
    kernel row: ``warm`` (the same buffers re-run back to back: those that fit stay there) or
    ``cold`` (flushed, or first touch; the default)."""
    layout: Literal["row", "col"] | None = None
    """How a gemm row's harness stores its matrices: ``row`` (row-major, the default: C[m,n]
    with n contiguous, as PyTorch, JAX and CUTLASS row-major kernels do) or ``col``
    (column-major, the BLAS convention of cuBLAS(Lt) / hipBLASLt harnesses: C[m,n] with m
    contiguous). A ``col`` row is predicted as the row-major product it stores, C^T[n,m] =
    B^T[n,k] A^T[k,m]: which dimension of the output must meet the tensor engine's alignment
    (``alignment_bytes``) depends on it."""
    gpus_per_process: int | None = Field(None, ge=1)
    """Devices one host thread enqueued a collective call on, one after another (nccl-tests
    ``-g 8``: 8; one process per device, as ``mpirun -np 8 ... -g 1`` or PyTorch / torchrun run
    it: 1, the default; XLA's PjRt enqueues each device from that device's own execute thread:
    1). The runtime's per-call host enqueue (``runtime.collective_launch_s``) is paid once per
    such device."""
    timing: Literal["loop", "call", "alone"] | None = None
    """How the harness timed the row. A collective row: ``loop``, many calls issued back to back
    and the total divided by their count (nccl-tests, rccl-tests: one host clock around ``-n``
    iterations and one final synchronize), so the host's enqueue of the next call overlaps the
    devices' work and a call costs the larger of the two; ``call`` (the default), each call
    timed to its completion, the host enqueue and the device work in series. A kernel row:
    ``alone``, one call timed on the device by CUDA events, queued behind other device work
    (``triton.testing.do_bench`` zeroes a 256 MB buffer before each call), so the host's launch
    is hidden but the kernel's start and the closing event have no earlier kernel to overlap
    (the stack's ``runtime.alone_kernel_s`` in place of its ``kernel_launch_s``); unset, the
    kernel as the row's stack issues it."""
    load: Literal["sustained", "burst", "cold"] | None = None
    """How long the chip ran flat out while the row was measured (``stack.realize.LOADS``):
    ``sustained``, a production run's steady state (minutes at the power limit: the chip's
    ``sustained_clock_fraction`` applies), the default of a ``model`` row (published training
    and serving figures); ``burst``, a benchmark harness's seconds of timed calls, the default
    of every other kind (the regime of the kernel microbenchmarks the achievable priors were
    fitted to); ``cold``, timed while the program was still warming up (the harness's first
    executables after start: clocks ramping from idle, communicators, connections and kernels set
    up on first use) with too few runs for its median to step past that. A cold row stays in the
    corpus but is skipped when predicted, with that reason: accelsim predicts the warm steady state."""
    op: Literal[LAYER_OPS + ("composite",)] | None = None  # type: ignore[valid-type]
    """Layer op of a ``layer_op`` row; ``composite`` on an ``rmsnorm`` row: the norm ran as the
    separate eager ops of a reference module (several kernels), not as one fused kernel."""
    phase: Literal[PHASES] | None = None  # type: ignore[valid-type]
    metric: Literal[METRICS] | None = None  # type: ignore[valid-type]
    """What the time of a ``model`` row is (``METRICS``); None: the phase's own (prefill: TTFT,
    decode: TPOT, train: step)."""
    seq_len: int | None = Field(None, ge=1)
    """Prompt length (prefill) or training sequence length."""
    context_len: int | None = Field(None, ge=0)
    """Tokens in the KV cache when the measured decode step runs."""
    input_len: int | None = Field(None, ge=1)
    """Serving: prompt tokens per request (a prefill row's ``seq_len`` when that is empty; a
    decode row without ``context_len`` runs at the mean context ``input_len + output_len / 2``)."""
    output_len: int | None = Field(None, ge=1)
    """Serving: generated tokens per request."""
    concurrency: int | None = Field(None, ge=1)
    """Serving: requests in flight (continuous batching); the decode batch when ``batch`` is empty."""
    tp: int | None = Field(None, ge=1)
    pp: int | None = Field(None, ge=1)
    dp: int | None = Field(None, ge=1)
    sp: int | None = Field(None, ge=0, le=1)
    """Sequence parallelism on (1) or off (0); empty: the stack's default."""
    cp: int | None = Field(None, ge=1)
    """Context-parallel degree."""
    ep: int | None = Field(None, ge=1)
    """Expert-parallel degree."""
    vpp: int | None = Field(None, ge=1)
    """Virtual pipeline stages per rank (interleaved 1F1B); empty: not interleaved."""
    microbatch: int | None = Field(None, ge=1)
    """Sequences per micro-batch."""
    global_batch: int | None = Field(None, ge=1)
    """Sequences per optimizer step (a train row's ``batch`` when that is empty)."""
    recompute: Literal["none", "selective", "full"] | None = None
    """Activation recomputation; empty: the stack's default."""
    selective: Selective | None = None
    """What selective recomputation keeps (``ParallelPlan.selective``, e.g. a MaxText remat
    policy); empty: the stack's default."""
    vocab_tiles: int | None = Field(None, ge=1)
    """Tiles the loss runs over (``ParallelPlan.vocab_tiles``, MaxText's ``num_vocab_tiling``);
    empty: 1."""
    zero: int | None = Field(None, ge=0, le=3)
    """ZeRO stage of the optimizer state (1: distributed optimizer, 3: FSDP full shard)."""
    compression: str | None = None
    """e.g. ``w8a16``, ``w4a16-g64``; None for none (``fsdp`` / ``zero1-3`` here are deprecated:
    they load as the ``zero`` column)."""
    stack: str | None = None
    """Software stack the case was measured under (a ``stacks/`` name); None: the preset's default stack."""
    kernels: str | None = None
    """Kernel library of a kernel row's softmax / norm (a ``stacks/kernels/`` name: ``aten``,
    ``triton``) when it is not the stack's (``Stack.kernels``): e.g. a benchmark that times
    PyTorch's native LayerNorm and a Triton one under the same harness."""
    measured_time_s: float = Field(gt=0)
    """Measured time of one call / step / token, seconds."""
    source: str | None = None
    """Where the number was published."""
    notes: str | None = None

    @property
    def steady(self) -> bool:
        """Whether the row was timed in steady state (not ``load: cold``): what a fit may use."""
        return self.load != "cold"

    @property
    def sustained(self) -> bool:
        """Whether the row ran under sustained load: its ``load``, else its kind's default
        (``model`` rows sustained, every other kind burst)."""
        return (self.load or ("sustained" if self.kind == "model" else "burst")) == "sustained"

    @field_validator("measured_time_s", "bytes")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="before")
    @classmethod
    def _zero_from_compression(cls, data: Any) -> Any:
        """Old files put ZeRO / FSDP in ``compression``; they load as the ``zero`` column."""
        if isinstance(data, dict) and isinstance(data.get("compression"), str):
            tag = data["compression"].strip().lower()
            if tag in ZERO_TAGS:
                import warnings

                warnings.warn(f"compression {data['compression']!r} is deprecated for ZeRO / FSDP: write zero = "
                              f"{ZERO_TAGS[tag]} (the zero column) instead; it loads as that", FutureWarning,
                              stacklevel=2)
                data = {**data, "compression": None}
                if data.get("zero") is None:
                    data["zero"] = ZERO_TAGS[tag]
        return data

    @model_validator(mode="after")
    def _fields_of_kind(self) -> "MeasurementRow":
        needs = NEEDS.get(self.kind, ())
        what = f"a {self.kind} row needs {', '.join(needs)}"
        missing = [(c, what) for c in needs if getattr(self, c) is None]
        if self.kind in ("silu_mul", "add"):
            if self.elements is None and (self.rows is None or self.cols is None):
                missing.append(("elements", f"a {self.kind} row needs elements (or rows and cols)"))
            if self.dtype is None:
                missing.append(("dtype", f"a {self.kind} row needs a dtype"))
        if self.kind in ("layer_op", "layer", "model") and self.phase is not None:
            serving = self.kind == "model"
            if self.phase == "train" and self.seq_len is None:
                missing.append(("seq_len", f"a train {self.kind} row needs seq_len"))
            if self.phase == "train" and self.batch is None and self.global_batch is None:
                missing.append(("global_batch", "a train row needs global_batch (or batch)"))
            if self.phase == "prefill" and self.seq_len is None and not (serving and self.input_len):
                missing.append(("seq_len", f"a prefill {self.kind} row needs seq_len"
                                + (" (or input_len)" if serving else "")))
            if self.phase == "decode" and self.context_len is None and not (serving and self.input_len) \
                    and self.metric != "throughput":  # a throughput row without its lengths loads, and is skipped
                missing.append(("context_len", f"a decode {self.kind} row needs context_len"
                                + (" (or input_len)" if serving else "")))
        if missing:
            raise _KindError(missing)
        if self.metric is not None:
            if self.kind != "model":
                raise _ColumnError("metric", f"a metric describes a model row, not a {self.kind} row")
            if self.phase != METRIC_PHASES[self.metric]:
                raise _ColumnError("metric", f"{self.metric!r} is a {METRIC_PHASES[self.metric]} figure, "
                                             f"but the row's phase is {self.phase!r}")
        if self.batch is not None and self.global_batch is not None and self.phase == "train" \
                and self.batch != self.global_batch:
            raise _ColumnError("global_batch", f"{self.global_batch} differs from batch={self.batch} "
                                               "(a train row's batch is the global batch)")
        if self.timing in ("loop", "call") and self.kind not in COLLECTIVE_KINDS:
            raise _ColumnError("timing", f"timing {self.timing} describes a collective row, not a {self.kind} row")
        if self.layout is not None and self.kind != "gemm":
            raise _ColumnError("layout", f"a matrix layout describes a gemm row, not a {self.kind} row")
        if self.layout == "col" and (self.batch or 1) > 1:
            raise _ColumnError("layout", "a column-major row is predicted as its transpose, whose shared matrix "
                                         "would be the other operand: give batched GEMMs row-major (layout row)")
        if self.timing == "alone" and self.kind not in KERNEL_KINDS:
            raise _ColumnError("timing", f"timing alone describes a kernel row, not a {self.kind} row")
        if self.kernels is not None:
            from ..stack.presets import list_kernels

            if self.kind not in KERNEL_KINDS:
                raise _ColumnError("kernels", f"a kernel library describes a kernel row, not a {self.kind} row")
            if self.kernels not in list_kernels():
                raise _ColumnError("kernels", f"unknown kernel library {self.kernels!r}; known: {', '.join(list_kernels())}")
        if self.op == "composite" and self.kind != "rmsnorm":
            raise _ColumnError("op", f"'composite' describes an rmsnorm row, not a {self.kind} row")
        if self.kind in ("layer_op", "layer") and self.phase == "train":
            raise _ColumnError("phase", f"a {self.kind} row is an inference case (prefill or decode), not train")
        if self.kind in COLLECTIVE_KINDS and self.chips is not None and self.ranks is not None \
                and self.ranks > self.chips:
            raise _ColumnError("ranks", f"{self.ranks} ranks exceed chips={self.chips}")
        return self


class _KindError(ValueError):
    def __init__(self, missing: list[tuple[str, str]]):
        self.missing = missing
        super().__init__("; ".join(f"{c}: missing ({why})" for c, why in missing))


class _ColumnError(ValueError):
    def __init__(self, column: str, message: str):
        self.column, self.message = column, message
        super().__init__(message)


# ------------------------------------------------------------------------------------------
# Loading


def _cell(v: Any) -> Any:
    """A raw cell as the model should see it: empty strings and NaN are None."""
    if v is None:
        return None
    if isinstance(v, str):
        v = v.strip()
        return v or None
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def _raw_rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """(header, [(location, cells)]) of a CSV or parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MeasurementError(f"{path}: reading parquet needs pyarrow (pip install 'accelsim[parquet]')") from None
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many kinds
            raise MeasurementError(f"{path}: cannot read parquet: {e}") from None
        header = [str(c) for c in df.columns]
        return header, [(f"row {i + 1}", {c: _cell(v) for c, v in zip(header, rec)})
                        for i, rec in enumerate(df.itertuples(index=False, name=None))]
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise MeasurementError(f"{path}: empty file (expected a CSV header with "
                                       f"{', '.join(REQUIRED_COLUMNS)})") from None
            out = []
            for rec in reader:
                line = reader.line_num
                if not any(c.strip() for c in rec):
                    continue
                if len(rec) > len(header):
                    out.append((f"line {line}", {"__width__": len(rec)}))
                    continue
                out.append((f"line {line}", {h: _cell(c) for h, c in zip(header, rec)}))
            return header, out
    except FileNotFoundError:
        raise MeasurementError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise MeasurementError(f"{path}: not a readable CSV file: {e}") from None


def _check_header(path: Path | str, header: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise MeasurementError(f"{path}: missing required column{s} {', '.join(repr(c) for c in missing)} "
                               f"(the header has {', '.join(header) or 'nothing'}; see SCHEMA.md)")
    unknown = [c for c in header if c not in COLUMNS and not c.startswith("_")]
    if unknown:
        from ..configio import suggest

        raise MeasurementError(f"{path}: unknown column {unknown[0]!r}.{suggest(unknown[0], COLUMNS)} "
                               f"Known columns: {', '.join(COLUMNS)}")


def _known_system(value: str, base: Path | None) -> str | None:
    """The system as it should be loaded (a preset name or a resolved path), or None."""
    from ..arch.presets import preset_path

    p = Path(value)
    if base is not None and not p.is_absolute() and (p.suffix in (".yaml", ".yml")) and not p.exists():
        cand = base / p
        if cand.exists():
            return str(cand)
    preset_path(value)  # raises ConfigError with suggestions
    return value


def _known_model(value: str, base: Path | None) -> str:
    from ..configio import suggest
    from ..workload import list_models

    if value in list_models():
        return value
    p = Path(value)
    if p.suffix in (".yaml", ".yml", ".json"):
        for cand in ([p] + ([base / p] if base is not None and not p.is_absolute() else [])):
            if cand.exists():
                return str(cand)
        raise ValueError(f"no such model file {value!r}")
    raise ValueError(f"unknown model preset {value!r}.{suggest(value, list_models())} "
                     f"Run `accelsim presets` for the list.")


def _problems(origin: str, loc: str, cells: dict[str, Any], base: Path | None
              ) -> tuple[MeasurementRow | None, list[str]]:
    """Validate one row; returns the row (None when invalid) and its problems."""
    rid = cells.get("id")
    where = f"{origin}: {loc}" + (f", row {rid}" if rid is not None else "")
    if "__width__" in cells:
        return None, [f"{where}: more cells than header columns"]
    data = {c: v for c, v in cells.items() if c in COLUMNS}
    for c in STR_COLUMNS:  # an id of 7 read from parquet or a DataFrame is the string "7"
        v = data.get(c)
        if v is not None and not isinstance(v, str):
            data[c] = str(v.item() if hasattr(v, "item") else v)
    for c in INT_COLUMNS:  # "8.0" from a float column is an int
        v = data.get(c)
        if isinstance(v, str):
            try:
                f = float(v)
                if f.is_integer():
                    data[c] = int(f)
            except ValueError:
                pass
    problems: list[str] = []
    try:
        row = MeasurementRow.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), _KindError):
                for col, why in err["ctx"]["error"].missing:
                    problems.append(f"{where}, column {col}: missing ({why})")
                continue
            if err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), _ColumnError):
                ce = err["ctx"]["error"]
                problems.append(f"{where}, column {ce.column}: {ce.message}")
                continue
            col = ".".join(str(p) for p in err["loc"]) or "?"
            val = data.get(col)
            msg = err["msg"]
            if err["type"] == "missing":
                msg = "missing (required)"
            elif err["type"] == "literal_error" and col == "kind":
                from ..configio import suggest

                msg = f"unknown kind {val!r}.{suggest(str(val), KINDS)} Known: {', '.join(KINDS)}"
            elif err["type"] == "literal_error":
                msg = f"{val!r}: {msg}"
            elif val is not None:
                msg = f"{val!r}: {msg}"
            problems.append(f"{where}, column {col}: {msg}")
        return None, problems
    updates: dict[str, Any] = {}
    try:
        updates["system"] = _known_system(row.system, base)
    except ConfigError as e:
        problems.append(f"{where}, column system: {e}")
    if row.model is not None:
        try:
            updates["model"] = _known_model(row.model, base)
        except ValueError as e:
            problems.append(f"{where}, column model: {e}")
    if problems:
        return None, problems
    return row.model_copy(update=updates), []


def validate_rows(records: Iterable[tuple[str, dict[str, Any]]], origin: str, base: Path | None = None
                  ) -> list[tuple[str, MeasurementRow]]:
    """Validate (location, cells) records; raises one MeasurementError listing every problem."""
    rows: list[tuple[str, MeasurementRow]] = []
    problems: list[str] = []
    for loc, cells in records:
        row, probs = _problems(origin, loc, cells, base)
        problems += probs
        if row is not None:
            rows.append((f"{origin}:{loc.split()[-1]}" if loc.startswith("line") else f"{origin} {loc}", row))
    if problems:
        head = (f"{origin}: {len(problems)} problems in the measurements:\n  " if len(problems) > 1 else "")
        raise MeasurementError(head + "\n  ".join(problems))
    return rows


def _frame(rows: list[tuple[str, MeasurementRow]]) -> pd.DataFrame:
    """The validated rows as a DataFrame with every schema column, plus ``origin``."""
    recs = [{**r.model_dump(), "origin": origin} for origin, r in rows]
    df = pd.DataFrame.from_records(recs, columns=list(COLUMNS) + ["origin"])
    for c in INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    df["bytes"] = df["bytes"].astype(float)
    df["measured_time_s"] = df["measured_time_s"].astype(float)
    return df


def _check_unique(df: pd.DataFrame) -> None:
    dup = df[df["id"].duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]["id"]
        where = ", ".join(dup[dup["id"] == first]["origin"])
        raise MeasurementError(f"duplicate row id {first!r} ({where}), column id: ids must be unique")


def load_measurements(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Load and validate one or more measurement files (CSV, or parquet with pyarrow) into one
    DataFrame with every schema column (typed; empty cells are NA) and an ``origin`` column
    ("file:line"). Raises MeasurementError naming the file, line, row id and column of every
    problem."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise MeasurementError(f"{path}: no such file")
        if path.is_dir():
            raise MeasurementError(f"{path}: is a folder, not a measurement file")
        check_regular_file(path, MeasurementError, MAX_TABLE_BYTES)
        header, records = _raw_rows(path)
        _check_header(path, header)
        frames.append(_frame(validate_rows(records, str(path), path.parent.resolve())))
    if not frames:
        raise MeasurementError("no measurement files given")
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    _check_unique(df)
    return df


def validate_frame(df: pd.DataFrame, origin: str = "<DataFrame>") -> pd.DataFrame:
    """Validate an in-memory DataFrame in the schema (as ``load_measurements`` validates a
    file; locations are ``row N``, counting from 1). Returns the typed frame."""
    if not isinstance(df, pd.DataFrame):
        raise MeasurementError(f"expected a pandas DataFrame of measurements, got {type(df).__name__}")
    header = [str(c) for c in df.columns if c != "origin"]
    _check_header(origin, header)
    records = [(f"row {i + 1}", {c: _cell(v) for c, v in zip(header, rec)})
               for i, rec in enumerate(df[header].itertuples(index=False, name=None))]
    out = _frame(validate_rows(records, origin))
    _check_unique(out)
    return out


def rows_of(df: pd.DataFrame) -> list[MeasurementRow]:
    """The rows of a validated frame as MeasurementRow objects (no re-validation)."""
    cols = list(COLUMNS)
    out = []
    for rec in df[cols].itertuples(index=False, name=None):
        cells = {c: _cell(v) for c, v in zip(cols, rec)}
        out.append(MeasurementRow.model_construct(**{c: (v.item() if hasattr(v, "item") else v)
                                                     for c, v in cells.items()}))
    return out
