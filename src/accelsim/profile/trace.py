"""Import profiler traces: PyTorch profiler / Kineto Chrome-trace JSON, and Chrome traces in
general (accelsim's own included), streamed event by event (ijson), so a trace of hundreds of MB
never sits in memory as JSON.

What comes out is a measured timeline, ``Trace.work``: one row per unit of device work
- GPU traces: every kernel, memcpy and memset (``cat`` kernel / gpu_memcpy / gpu_memset), on its
  stream, with the CPU op that launched it (joined through the runtime launch's ``correlation``
  and the launch's ``External id``, as Kineto records them) and that op's input shapes;
- CPU-only traces (``torch.profiler`` with ProfilerActivity.CPU): the leaf CPU ops (ops with no
  op nested inside them on their thread) that do arithmetic, with their own input shapes; the
  view and bookkeeping ops (``aten::view``, ``aten::t``, ``aten::empty``, ...) are host work.
``Trace.host`` holds the CPU-side events (ops, runtime calls, annotations) with their threads.
Times are seconds from the trace's first event.

The Neuron profiler's JSON export is not publicly documented (its viewer reads a private
format), so it is not read; a Neuron trace converted to Chrome-trace JSON is.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..errors import ConfigError

DEVICE_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
"""Kineto categories of device work."""
VIEW_OPS = frozenset({
    "aten::view", "aten::_unsafe_view", "aten::reshape", "aten::t", "aten::transpose", "aten::permute",
    "aten::expand", "aten::as_strided", "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::zeros",
    "aten::detach", "detach", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::split",
    "aten::chunk", "aten::unbind", "aten::contiguous", "aten::alias", "aten::lift_fresh", "aten::resolve_conj",
    "aten::resolve_neg", "aten::result_type", "aten::to", "aten::_to_copy", "aten::size", "aten::stride",
    "aten::is_same_size", "aten::broadcast_tensors", "aten::_reshape_alias", "aten::flatten", "aten::new_empty",
    "aten::new_empty_strided", "aten::fill_", "aten::zero_", "aten::ones_like", "aten::zeros_like",
    "aten::numpy_T", "aten::matrix_H", "aten::clone", "aten::copy_", "aten::item", "aten::_local_scalar_dense",
})
"""CPU ops that move no data through arithmetic (views, allocation, bookkeeping): host work in a
CPU-only trace. (``copy_`` / ``clone`` move bytes, but as a CPU profile records them they are
mostly layout changes of views; they are counted as host work.)"""


@dataclass
class Trace:
    """A measured run: device work (``work``), host events (``host``) and metadata."""

    path: str
    work: pd.DataFrame
    """One row per unit of device work: name, cat, lane (stream or CPU thread), start_s, dur_s,
    end_s, correlation, op (the CPU op that caused it), dims (its input shapes), dtypes."""
    host: pd.DataFrame
    """CPU-side events: name, cat, tid, start_s, dur_s, end_s, correlation, external_id."""
    kind: str
    """"gpu" (device work from kernels) or "cpu" (a CPU-only profile)."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def step_s(self) -> float:
        """Wall time of the traced span: first device work start to last device work end (the
        profiler's ProfilerStep annotations when present)."""
        steps = self.host[self.host["name"].str.startswith("ProfilerStep#")]
        if len(steps):
            return float(steps["end_s"].max() - steps["start_s"].min())
        if not len(self.work):
            return 0.0
        return float(self.work["end_s"].max() - self.work["start_s"].min())


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _meta(path: Path) -> dict[str, Any]:
    """The top-level scalars written before ``traceEvents`` (Kineto puts its metadata there)."""
    import ijson

    meta: dict[str, Any] = {}
    with _open(path) as f:
        if f.read(4096).lstrip()[:1] != b"{":
            return meta
    with _open(path) as f:
        for prefix, event, value in ijson.parse(f, use_float=True):
            if prefix == "traceEvents":
                break
            if "." not in prefix and prefix and event in ("string", "number", "boolean"):
                meta[prefix] = value
    return meta


def _stream_events(path: Path) -> Iterator[dict]:
    """Trace events one at a time (objects built by ijson's C backend; the list never is)."""
    import ijson

    with _open(path) as f:
        head = f.read(4096).lstrip()
    if head[:1] not in (b"[", b"{"):
        raise ConfigError(f"{path}: not a Chrome-trace JSON file (expected an object or an array)")
    with _open(path) as f:
        yield from ijson.items(f, "item" if head[:1] == b"[" else "traceEvents.item", use_float=True)


def _time(ev: dict, key: str) -> float:
    """An event's ``ts`` or ``dur`` (microseconds): a finite number, a duration not negative (a
    NaN or a string there would leave the step's timeline, and a replay of it, without an end)."""
    v = ev.get(key, 0.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (key == "dur" and v < 0):
        raise ValueError(f"event {str(ev.get('name', ''))[:80]!r} has {key} {v!r}, not a finite number of "
                         f"microseconds{' >= 0' if key == 'dur' else ''}")
    return float(v)


class _Columns:
    """Compact columns of the kept events: numbers in typed arrays, names and shapes as codes
    into tables of the distinct values (a 500 MB trace has few distinct names and shapes)."""

    NUM = ("ts", "dur")
    INT = ("pid", "tid", "correlation", "external_id", "stream")
    CODE = ("name", "cat", "dims", "dtypes", "extra")

    def __init__(self) -> None:
        from array import array

        self.cols = {k: array("d") for k in self.NUM} | {k: array("q") for k in self.INT} | \
            {k: array("i") for k in self.CODE}
        self.tables: dict[str, dict] = {k: {} for k in self.CODE}

    def code(self, col: str, value) -> int:
        if value is None:
            return -1
        key = value if isinstance(value, str) else repr(value)
        t = self.tables[col]
        hit = t.get(key)
        if hit is None:
            hit = t[key] = (len(t), value)
        return hit[0]

    def add(self, ev: dict) -> None:
        args = ev.get("args") or {}
        c = self.cols
        c["ts"].append(_time(ev, "ts"))
        c["dur"].append(_time(ev, "dur"))
        for k, v in (("pid", ev.get("pid")), ("tid", ev.get("tid")), ("correlation", args.get("correlation")),
                     ("external_id", args.get("External id")), ("stream", args.get("stream"))):
            c[k].append(int(v) if isinstance(v, (int, float)) else -1)
        extra = {k: args[k] for k in ("Collective name", "In msg nelems", "Out msg nelems", "Group size", "dtype")
                 if k in args} or None
        for k, v in (("name", str(ev.get("name", ""))), ("cat", str(ev.get("cat", ""))),
                     ("dims", args.get("Input Dims")), ("dtypes", args.get("Input type")), ("extra", extra)):
            c[k].append(self.code(k, v))

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame({k: np.frombuffer(v, dtype=np.float64 if k in self.NUM else
                                            (np.int64 if k in self.INT else np.int32))
                           for k, v in self.cols.items()})
        for k in ("correlation", "external_id", "stream"):
            df[k] = df[k].where(df[k] >= 0)  # missing -> NaN (ids compare as floats)
        for k in self.CODE:
            values = [v for _, v in sorted(self.tables[k].values(), key=lambda x: x[0])]
            if k in ("name", "cat"):
                df[k] = pd.Categorical.from_codes(df[k].to_numpy(), categories=pd.Index(values, dtype=object)) \
                    if values else ""
            else:
                lookup = np.empty(len(values) + 1, dtype=object)
                lookup[:len(values)] = values
                lookup[-1] = None
                df[k] = lookup[df[k].to_numpy()]
        return df


def load_trace(path: str | Path) -> Trace:
    """Read a Kineto / Chrome trace (``.json`` or gzipped) into a ``Trace``, streaming."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such trace file")
    cols = _Columns()
    try:
        meta = _meta(p)
        for ev in _stream_events(p):
            if isinstance(ev, dict) and ev.get("ph") == "X" and "ts" in ev:
                cols.add(ev)
    except ConfigError:
        raise
    except Exception as e:  # a truncated or malformed file
        raise ConfigError(f"{p}: not a readable Chrome-trace JSON file ({type(e).__name__}: {e})") from None
    ev = cols.frame()
    del cols
    if ev.empty:
        raise ConfigError(f"{p}: the trace has no complete ('X') events")
    t0 = ev["ts"].min()
    ev["start_s"] = (ev["ts"] - t0) * 1e-6
    ev["dur_s"] = ev["dur"] * 1e-6
    ev["end_s"] = ev["start_s"] + ev["dur_s"]
    del ev["ts"], ev["dur"]
    device = ev["cat"].isin(DEVICE_CATS)
    if device.any():
        work = _gpu_work(ev, device)
        kind = "gpu"
    else:
        work = _cpu_work(ev)
        kind = "cpu"
    host = ev[~device].reset_index(drop=True)
    return Trace(path=str(p), work=work.reset_index(drop=True), host=host, kind=kind, meta=meta)


def _gpu_work(ev: pd.DataFrame, device: pd.Series) -> pd.DataFrame:
    """Kernels / copies, each joined to its launch (``correlation``) and the launch to its CPU op
    (``External id``), by merges (columnar: a big trace's joins need no per-row Python)."""
    work = ev[device].drop(columns=["dims", "dtypes", "external_id"])
    # runtime launches (cudaLaunchKernel) and driver ones (cuLaunchKernelEx: cuBLAS, cuDNN on CUDA 12.x+)
    launches = ev.loc[ev["cat"].isin(("cuda_runtime", "cuda_driver")) & ev["correlation"].notna(),
                      ["correlation", "external_id", "start_s"]].drop_duplicates("correlation")
    launches = launches.rename(columns={"start_s": "launch_s"})
    ops = ev.loc[(ev["cat"] == "cpu_op") & ev["external_id"].notna(),
                 ["external_id", "start_s", "name", "dims", "dtypes", "extra"]]
    # the innermost op of an External id carries the shapes (aten::mm inside aten::linear)
    ops = ops.sort_values("start_s", kind="stable").drop_duplicates("external_id", keep="last").drop(columns="start_s")
    ops = ops.rename(columns={"name": "op", "extra": "op_extra"})
    work = work.merge(launches, on="correlation", how="left").merge(ops, on="external_id", how="left")
    work["extra"] = work["extra"].where(work["extra"].notna(), work["op_extra"])
    work = work.drop(columns=["op_extra"])
    work["op"] = work["op"].astype(object).where(work["op"].notna(), None)
    work["lane"] = [f"stream {int(s)}" if s == s else f"tid {t}" for s, t in zip(work["stream"], work["tid"])]
    return work.sort_values(["start_s", "lane"], kind="stable")


def _cpu_work(ev: pd.DataFrame) -> pd.DataFrame:
    """CPU ops that do arithmetic: ops other than views and bookkeeping with no such op nested
    inside them on their thread (``aten::mm`` inside ``aten::linear`` and ``MmBackward0``)."""
    ops = ev[ev["cat"] == "cpu_op"].sort_values(["tid", "start_s", "end_s"], ascending=[True, True, False],
                                                kind="stable")
    view = ops["name"].isin(VIEW_OPS).to_numpy()
    has_work_child = np.zeros(len(ops), dtype=bool)
    tids, starts, ends = ops["tid"].to_numpy(), ops["start_s"].to_numpy(), ops["end_s"].to_numpy()
    stack: list[int] = []
    for i in range(len(ops)):
        if i and tids[i] != tids[i - 1]:
            stack = []
        while stack and ends[stack[-1]] <= starts[i] + 1e-12:
            stack.pop()
        if stack and not view[i]:
            has_work_child[stack[-1]] = True
        stack.append(i)
    work = ops[~view & ~has_work_child].copy()
    work["op"] = work["name"]
    work["launch_s"] = work["start_s"]
    work["lane"] = [f"tid {t}" for t in work["tid"]]
    return work.sort_values(["start_s", "lane"], kind="stable")
