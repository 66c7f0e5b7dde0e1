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


def _stream_events(path: Path) -> Iterator[tuple[str, Any]]:
    """(key, value) of the top-level scalars (metadata), then ("event", dict) per trace event,
    one at a time (the event list is never built)."""
    import ijson

    with _open(path) as f:
        head = f.read(4096).lstrip()
        f.seek(0)
        if head[:1] == b"[":
            for ev in ijson.items(f, "item", use_float=True):
                yield "event", ev
            return
        if head[:1] != b"{":
            raise ConfigError(f"{path}: not a Chrome-trace JSON file (expected an object or an array)")
        parser = ijson.parse(f, use_float=True)
        builder = None
        for prefix, event, value in parser:
            if prefix == "traceEvents.item" and event == "start_map":
                builder = ijson.ObjectBuilder()
            if builder is not None:
                builder.event(event, value)
                if prefix == "traceEvents.item" and event == "end_map":
                    yield "event", builder.value
                    builder = None
                continue
            if "." not in prefix and prefix not in ("", "traceEvents") and event in ("string", "number", "boolean"):
                yield prefix, value


def load_trace(path: str | Path) -> Trace:
    """Read a Kineto / Chrome trace (``.json`` or gzipped) into a ``Trace``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such trace file")
    meta: dict[str, Any] = {}
    rows: list[tuple] = []
    try:
        for key, ev in _stream_events(p):
            if key != "event":
                meta[key] = ev
                continue
            if not isinstance(ev, dict) or ev.get("ph") != "X" or "ts" not in ev:
                continue
            args = ev.get("args") or {}
            rows.append((str(ev.get("name", "")), str(ev.get("cat", "")), ev.get("pid"), ev.get("tid"),
                         float(ev["ts"]), float(ev.get("dur", 0.0)),
                         args.get("correlation"), args.get("External id"), args.get("stream"),
                         args.get("Input Dims"), args.get("Input type"),
                         {k: args[k] for k in ("Collective name", "In msg nelems", "Out msg nelems", "Group size",
                                               "dtype", "grid", "block") if k in args} or None))
    except Exception as e:  # a truncated or malformed file
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{p}: not a readable Chrome-trace JSON file ({type(e).__name__}: {e})") from None
    cols = ["name", "cat", "pid", "tid", "ts_us", "dur_us", "correlation", "external_id", "stream", "dims", "dtypes",
            "extra"]
    ev = pd.DataFrame(rows, columns=cols)
    if ev.empty:
        raise ConfigError(f"{p}: the trace has no complete ('X') events")
    t0 = ev["ts_us"].min()
    ev["start_s"] = (ev["ts_us"] - t0) * 1e-6
    ev["dur_s"] = ev["dur_us"] * 1e-6
    ev["end_s"] = ev["start_s"] + ev["dur_s"]
    ev = ev.drop(columns=["ts_us", "dur_us"])
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
    (``External id``)."""
    work = ev[device].copy()
    launches = ev[(ev["cat"] == "cuda_runtime") & ev["correlation"].notna()]
    ext_of = dict(zip(launches["correlation"], launches["external_id"]))
    launch_at = dict(zip(launches["correlation"], launches["start_s"]))
    ops = ev[(ev["cat"] == "cpu_op") & ev["external_id"].notna()]
    # the innermost op of an External id carries the shapes (aten::mm inside aten::linear)
    ops = ops.sort_values("start_s", kind="stable").drop_duplicates("external_id", keep="last")
    op_of = dict(zip(ops["external_id"], zip(ops["name"], ops["dims"], ops["dtypes"], ops["extra"])))
    info = [op_of.get(ext_of.get(c), (None, None, None, None)) for c in work["correlation"]]
    work["op"] = [i[0] for i in info]
    work["dims"] = [i[1] for i in info]
    work["dtypes"] = [i[2] for i in info]
    work["extra"] = [e if e is not None else i[3] for e, i in zip(work["extra"], info)]
    work["launch_s"] = [launch_at.get(c) for c in work["correlation"]]
    work["lane"] = [f"stream {s}" if s == s and s is not None else f"tid {t}" for s, t in zip(work["stream"], work["tid"])]
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
