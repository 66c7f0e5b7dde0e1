"""Chrome trace, its checker, utilization over time and the timeline figure, on hand-built
schedules with hand-written timings (no engine involved)."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest

from accelsim.lower.schedule import (BUSY, CAT_DMA_IN, CAT_OVERHEAD, CAT_TENSOR, CAT_VECTOR, DELAY, XFER,
                                     ScheduleBuilder)
from accelsim.report.plots import merge_intervals, timeline_figure
from accelsim.report.trace import check_trace, check_trace_file, chrome_trace, partition_intervals, track_layout
from accelsim.report.trace_compact import write_trace
from accelsim.sim.result import BLOCK_DEP, BLOCK_NONE, SimResult

US = 1e-6


def make_result(sched, start, end, lane, ready=None) -> SimResult:
    start, end = np.asarray(start, float), np.asarray(end, float)
    T = start.size
    return SimResult(schedule=sched, start_s=start, end_s=end,
                     wait_s=np.zeros(T, np.float32) if ready is None else (start - np.asarray(ready, float)).astype(np.float32),
                     xfer_delay_s=np.zeros(T, np.float32), capped_s=np.zeros(T, np.float32), lane=np.asarray(lane, np.int64),
                     blocker=np.full(T, -1, np.int64), block_kind=np.full(T, BLOCK_NONE, np.int8))


@pytest.fixture
def small():
    """Two chips. Chip 0: tensor engine, 4 DMA queues, launch delays; ops A and B overlap in
    time. Chip 1: a vector engine running op C."""
    b = ScheduleBuilder()
    te = b.resource("core0.tensor", "tensor", 1, chip=0)
    dma = b.resource("core0.dma", "dma", 4, chip=0)
    ve = b.resource("chip1.core0.vector", "vector", 1, chip=1)
    hbm = b.bandwidth_server("hbm0", 1e12)
    A, B, C = b.op("L0.A", "a", "matmul"), b.op("L0.B", "b", "matmul"), b.op("L0.C", "c", "elementwise")
    rows = []  # (task id, start us, end us, lane)

    def add(op, kind, cat, res, s, e, lane, **kw):
        t = b.task(kind, cat, op, resource=res, duration_s=(e - s) * US, **kw)
        rows.append((t, s, e, lane))
        return t

    d0 = add(A, DELAY, CAT_OVERHEAD, -1, 0.0, 1.0, -1)
    add(A, DELAY, CAT_OVERHEAD, -1, 0.5, 1.5, -1)  # overlaps the first delay
    x0 = add(A, XFER, CAT_DMA_IN, dma, 1.0, 3.0, 0, server=hbm, nbytes=4096, deps=[d0])
    add(A, XFER, CAT_DMA_IN, dma, 1.0, 2.0, 3, server=hbm, nbytes=2048, deps=[d0])
    add(A, BUSY, CAT_TENSOR, te, 3.0, 5.5, 0, flops=1e6, deps=[x0])  # 2.5 us
    add(B, XFER, CAT_DMA_IN, dma, 2.0, 4.0, 3, server=hbm, nbytes=4096)
    add(B, BUSY, CAT_TENSOR, te, 5.5, 7.0, 0, flops=2e6)
    add(C, BUSY, CAT_VECTOR, ve, 0.0, 4.0, 0)
    add(C, DELAY, CAT_OVERHEAD, -1, 4.0, 4.25, -1)  # resource-less: goes to chip 1 (C's chip)
    sched = b.build()
    rows.sort()
    start = [r[1] * US for r in rows]
    end = [r[2] * US for r in rows]
    lane = [r[3] for r in rows]
    res = make_result(sched, start, end, lane)
    bk = res.block_kind.copy()
    bk[4] = BLOCK_DEP  # the first tensor pass waited for its DMA
    return SimResult(**{**res.__dict__, "block_kind": bk})


def x_events(trace):
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


def thread_names(trace):
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


def test_trace_is_valid_and_in_microseconds(small, tmp_path):
    tr = chrome_trace(small, system_name="toy")
    assert check_trace(tr) == []
    assert tr["displayTimeUnit"] == "ns"
    assert tr["otherData"]["system"] == "toy" and not tr["otherData"]["truncated"]
    tasks = [e for e in x_events(tr) if e["cat"] != "op"]
    assert len(tasks) == small.schedule.num_tasks
    tensor = [e for e in tasks if e["cat"] == "tensor"]
    first = min(tensor, key=lambda e: e["ts"])
    assert first["ts"] == 3.0 and first["dur"] == 2.5
    assert first["name"] == "L0.A tensor"
    assert first["args"]["op"] == "L0.A" and first["args"]["flops"] == 1e6
    assert first["args"]["block_kind"] == "dependency" and first["args"]["ready_us"] == 3.0
    xfer = next(e for e in tasks if e["cat"] == "dma_in" and e["args"]["bytes"] == 4096)
    assert xfer["name"] == "L0.A dma_in 4 KiB"
    for e in tr["traceEvents"]:
        for k in ("ts", "dur"):
            if k in e:
                assert isinstance(e[k], (int, float))
    path = write_trace(small, tmp_path / "t.json", system_name="toy")
    text = path.read_text()
    assert ", " not in text[:200] and json.loads(text)["otherData"]["system"] == "toy"
    assert check_trace_file(path) == []
    gz = write_trace(small, tmp_path / "t.json.gz")
    assert check_trace_file(gz) == []


def test_pids_and_tids(small):
    tr = chrome_trace(small)
    names = thread_names(tr)
    procs = {e["pid"]: e["args"]["name"] for e in tr["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs == {1: "chip 0", 2: "chip 1"}
    sched = small.schedule
    seen: dict[tuple[int, int], tuple] = {}
    for e in x_events(tr):
        if e["cat"] in ("op", "overhead"):
            continue
        t = e["args"]["task"]
        r = int(sched.resource[t])
        key = (r, int(small.lane[t]))
        assert e["pid"] == int(sched.res_chip[r]) + 1
        assert seen.setdefault(key, (e["pid"], e["tid"])) == (e["pid"], e["tid"])
        assert (e["pid"], e["tid"]) in names
    # distinct (resource, lane) pairs -> distinct tracks
    assert len(set(seen.values())) == len(seen) == 4
    # every server of every resource has a named track, engines numbered 1..sum(capacity)
    engine = {v for k, v in names.items() if not v.startswith(("ops", "overhead"))}
    assert engine == {"core0.tensor", "core0.dma q0", "core0.dma q1", "core0.dma q2", "core0.dma q3",
                      "chip1.core0.vector"}
    lay = track_layout(small)
    eng = sorted(t.tid for t in lay.tracks if t.kind == "engine")
    assert eng == list(range(1, 7))
    assert all(t.tid > 6 for t in lay.tracks if t.kind != "engine")
    # a pool resource's lanes
    assert names[(1, 2 + 3)] == "core0.dma q3"
    # resource-less tasks: overhead tracks, on their op's chip
    ovh = [e for e in x_events(tr) if e["cat"] == "overhead"]
    assert {names[(e["pid"], e["tid"])] for e in ovh} == {"overhead 0", "overhead 1"}
    assert {e["pid"] for e in ovh if e["args"]["op"] == "L0.C"} == {2}
    chip0 = [e for e in ovh if e["pid"] == 1]
    assert len({e["tid"] for e in chip0}) == 2  # the two overlapping delays are spread


def test_op_slices_contain_their_tasks_and_overlapping_ops_split(small):
    tr = chrome_trace(small)
    names = thread_names(tr)
    ev = x_events(tr)
    ops = [e for e in ev if e["cat"] == "op"]
    assert sorted(e["name"] for e in ops) == ["L0.A", "L0.B", "L0.C"]
    for op in ops:
        assert names[(op["pid"], op["tid"])].startswith("ops ")
        mine = [e for e in ev if e["cat"] != "op" and e["args"]["op"] == op["name"]]
        assert mine and op["args"]["tasks"] == len(mine)
        for e in mine:
            assert e["pid"] == op["pid"]
            assert op["ts"] <= e["ts"] and e["ts"] + e["dur"] <= op["ts"] + op["dur"] + 1e-9
        assert op["ts"] == min(e["ts"] for e in mine)
    by = {e["name"]: e for e in ops}
    a, b = by["L0.A"], by["L0.B"]
    assert (a["ts"], a["ts"] + a["dur"]) == (0.0, 5.5) and (b["ts"], b["ts"] + b["dur"]) == (2.0, 7.0)
    assert a["tid"] != b["tid"]  # A and B overlap: different ops tracks
    assert by["L0.C"]["pid"] == 2


def test_partition_intervals_never_overlaps():
    rng = np.random.default_rng(0)
    st = rng.uniform(0, 100, 500)
    en = st + rng.exponential(5, 500)
    k = partition_intervals(st, en)
    for track in np.unique(k):
        i = np.flatnonzero(k == track)
        o = np.argsort(st[i])
        assert np.all(st[i][o][1:] >= en[i][o][:-1])
    # as few tracks as the peak overlap
    t = np.sort(np.concatenate([st, en]))
    depth = max(int(((st <= x) & (en > x)).sum()) for x in t)
    assert k.max() + 1 == depth
    # touching intervals share a track
    assert partition_intervals(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])).tolist() == [0, 0, 0]


def test_max_tasks_truncates(small):
    tr = chrome_trace(small, max_tasks=3)
    assert check_trace(tr) == []
    ev = x_events(tr)
    tasks = [e for e in ev if e["cat"] != "op"]
    assert len(tasks) == 3 and len([e for e in ev if e["cat"] == "op"]) == 3
    assert max(e["ts"] for e in tasks) <= 1.0
    assert tr["otherData"]["truncated"] and tr["otherData"]["task_slices"] == 3


def _minimal():
    return {"traceEvents": [
        {"name": "process_name", "ph": "M", "ts": 0, "pid": 1, "tid": 0, "args": {"name": "chip 0"}},
        {"name": "thread_name", "ph": "M", "ts": 0, "pid": 1, "tid": 1, "args": {"name": "e"}},
        {"name": "a", "ph": "X", "ts": 0.0, "dur": 10.0, "pid": 1, "tid": 1},
        {"name": "b", "ph": "X", "ts": 2.0, "dur": 3.0, "pid": 1, "tid": 1},
        {"name": "c", "ph": "X", "ts": 10.0, "dur": 1.0, "pid": 1, "tid": 1},
    ]}


def test_checker_catches_problems():
    assert check_trace(_minimal()) == []

    t = _minimal()
    del t["traceEvents"][3]["dur"]
    assert any("dur" in p for p in check_trace(t))

    t = _minimal()
    t["traceEvents"][3]["dur"] = 9.0  # [2, 11] partially overlaps [0, 10]
    assert any("partially overlaps" in p for p in check_trace(t))

    t = _minimal()
    t["traceEvents"][4]["tid"] = 2  # no thread_name for tid 2
    assert any("thread_name" in p for p in check_trace(t))

    t = _minimal()
    del t["traceEvents"][0]
    assert any("process_name" in p for p in check_trace(t))

    for bad in (float("nan"), float("inf"), "3"):
        t = _minimal()
        t["traceEvents"][2]["ts"] = bad
        assert any("finite" in p for p in check_trace(t))

    t = _minimal()
    t["traceEvents"][2]["dur"] = -1.0
    assert any("negative" in p for p in check_trace(t))

    t = _minimal()
    t["traceEvents"][2]["ph"] = "Q"
    assert any("unknown ph" in p for p in check_trace(t))

    t = _minimal()
    del t["traceEvents"][2]["pid"]
    assert any("pid" in p for p in check_trace(t))

    # float rounding at a shared boundary is tolerated
    t = _minimal()
    t["traceEvents"][3].update(ts=0.1 + 0.2, dur=10.0 - 0.30000000000000004 + 1e-12)
    assert check_trace(t) == []

    assert check_trace({"events": []})


def test_trace_of_a_pool_with_back_to_back_tasks_is_valid():
    """Many tasks back to back on every lane with times that do not round nicely."""
    b = ScheduleBuilder()
    dma = b.resource("core0.dma", "dma", 16)
    op = b.op("x", "x", "copy")
    rng = np.random.default_rng(1)
    n = 2000
    lane = np.arange(n) % 16
    dur = rng.uniform(0.1, 3.0, n) * 1e-7 / 3
    start = np.zeros(n)
    end = np.zeros(n)
    free = np.zeros(16)
    for i in range(n):
        start[i] = free[lane[i]]
        end[i] = free[lane[i]] = start[i] + dur[i]
        b.task(BUSY, CAT_DMA_IN, op, resource=dma, duration_s=dur[i])
    tr = chrome_trace(make_result(b.build(), start, end, lane))
    assert check_trace(tr) == []
    assert len({(e["pid"], e["tid"]) for e in x_events(tr) if e["cat"] != "op"}) == 16


def _old_utilization_over_time(res, bins):
    s = res.schedule
    edges = np.linspace(0.0, res.makespan_s or 1.0, bins + 1)
    out = {}
    for cls in dict.fromkeys(s.res_class):
        idx = np.array([i for i, c in enumerate(s.res_class) if c == cls])
        servers = float(s.res_capacity[idx].sum())
        sel = np.isin(s.resource, idx)
        lo = np.clip(res.start_s[sel][:, None], edges[None, :-1], edges[None, 1:])
        hi = np.clip(res.end_s[sel][:, None], edges[None, :-1], edges[None, 1:])
        out[cls] = (hi - lo).sum(axis=0) / (np.diff(edges) * servers) if sel.any() else np.zeros(bins)
    return edges, out


def test_utilization_over_time_hand_computed():
    b = ScheduleBuilder()
    te = b.resource("t", "tensor", 1)
    dma = b.resource("d", "dma", 2)
    b.resource("v", "vector", 1)  # never used
    op = b.op("o", "o", "k")
    b.task(BUSY, CAT_TENSOR, op, resource=te, duration_s=5 * US)
    b.task(BUSY, CAT_DMA_IN, op, resource=dma, duration_s=10 * US)
    b.task(BUSY, CAT_DMA_IN, op, resource=dma, duration_s=2.5 * US)
    res = make_result(b.build(), [0, 0, 5 * US], [5 * US, 10 * US, 7.5 * US], [0, 0, 1])
    edges, u = res.utilization_over_time(bins=4)
    assert np.allclose(edges, np.linspace(0, 10 * US, 5))
    # tensor busy for the first half of the run on its only server
    assert np.allclose(u["tensor"], [1, 1, 0, 0])
    assert np.isclose((u["tensor"] * np.diff(edges)).sum(), 0.5 * res.makespan_s)
    # dma: one queue busy all along, the other during [5, 7.5] us -> bin 2 fully, of 2 servers
    assert np.allclose(u["dma"], [0.5, 0.5, 1.0, 0.5])
    assert np.allclose(u["vector"], 0)
    # the busy seconds agree with utilization()
    for cls, frac in u.items():
        assert np.isclose(frac.mean(), res.utilization()[cls])
    # and with the old quadratic implementation on random data
    b = ScheduleBuilder()
    rs = [b.resource(f"r{i}", cls, cap) for i, (cls, cap) in enumerate([("tensor", 1), ("dma", 16), ("dma", 4),
                                                                         ("link", 2)])]
    op = b.op("o", "o", "k")
    rng = np.random.default_rng(2)
    n = 3000
    r = rng.integers(0, 4, n)
    st = rng.uniform(0, 1e-3, n)
    en = st + rng.exponential(2e-5, n)
    for i in range(n):
        b.task(BUSY, CAT_TENSOR, op, resource=rs[r[i]])
    b.task(DELAY, CAT_OVERHEAD, op)
    res = make_result(b.build(), np.append(st, 0), np.append(en, 1e-4), np.append(np.zeros(n), -1))
    e1, u1 = res.utilization_over_time(bins=97)
    e0, u0 = _old_utilization_over_time(res, 97)
    assert np.allclose(e0, e1)
    for cls in u0:
        assert np.allclose(u0[cls], u1[cls], rtol=1e-9, atol=1e-9)


def _synthetic(n_tasks=10_000, chips=2):
    """Layers of ops, each a DMA-in, a tensor pass and a vector pass per tile, back to back."""
    b = ScheduleBuilder()
    rng = np.random.default_rng(3)
    starts, ends, lanes = [], [], []
    res = {}
    for c in range(chips):
        for core in range(2):
            p = f"chip{c}.core{core}"
            res[c, core] = (b.resource(f"{p}.tensor", "tensor", 1, c), b.resource(f"{p}.vector", "vector", 1, c),
                            b.resource(f"{p}.dma", "dma", 16, c))
        res[c, "link"] = b.resource(f"chip{c}.link", "link", 2, c)
    free: dict = {}
    n = 0
    layer = 0
    while n < n_tasks:
        for c in range(chips):
            op = b.op(f"L{layer}.op{c}", "mlp", "matmul")
            t0 = free.get(("op", c), 0.0)
            b.task(DELAY, CAT_OVERHEAD, op, duration_s=1e-6)
            starts.append(t0)
            ends.append(t0 + 1e-6)
            lanes.append(-1)
            n += 1
            for tile in range(40):
                core = tile % 2
                te, ve, dma = res[c, core]
                for r, cat, lane in ((dma, CAT_DMA_IN, tile % 16), (te, CAT_TENSOR, 0), (ve, CAT_VECTOR, 0)):
                    d = float(rng.uniform(0.2, 2.0)) * 1e-6
                    s = max(free.get((r, lane), 0.0), t0 + 1e-6)
                    free[r, lane] = s + d
                    kind = XFER if cat == CAT_DMA_IN else BUSY
                    b.task(kind, cat, op, resource=r, duration_s=d, nbytes=65536.0 if kind == XFER else 0.0)
                    starts.append(s)
                    ends.append(s + d)
                    lanes.append(lane)
                    n += 1
            free["op", c] = max(ends[-120:])
        layer += 1
    return make_result(b.build(), starts, ends, lanes)


def test_timeline_figure_renders_png_quickly(tmp_path):
    res = _synthetic()
    assert res.schedule.num_tasks >= 10_000
    tr = chrome_trace(res)
    assert check_trace(tr) == []
    t0 = time.perf_counter()
    fig = timeline_figure(res, max_tracks=20, detail="queue")
    path = tmp_path / "timeline.png"
    fig.savefig(path, dpi=80)
    elapsed = time.perf_counter() - t0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert elapsed < 20, elapsed
    # fewer rows than tracks: the busiest drawn, the rest noted in the title
    assert "busiest" in fig.axes[0].get_title(loc="left")
    assert len(fig.axes[0].get_yticks()) == 2 + 20  # an ops row per chip, then 20 tracks


def test_timeline_figure_small(small, tmp_path):
    fig = timeline_figure(small, detail="queue")
    fig.savefig(tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[:2] == ["c0 ops", "c1 ops"] and "c0 core0.dma q3" in labels and "c0 core0.dma q1" not in labels
    # by default one row per engine class and chip, with the servers it aggregates
    fig = timeline_figure(small)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[:2] == ["c0 ops", "c1 ops"] and not any(" q" in lb for lb in labels)
    assert any(lb.startswith("c0 dma (") for lb in labels) and "engine class" in fig.axes[0].get_title(loc="left")


def test_merge_intervals():
    st, en = merge_intervals(np.array([5.0, 0.0, 1.0, 9.0]), np.array([6.0, 2.0, 1.5, 9.5]), gap=0.5)
    assert st.tolist() == [0.0, 5.0, 9.0] and en.tolist() == [2.0, 6.0, 9.5]


def test_trace_json_roundtrip_has_no_numpy_types(small):
    text = json.dumps(chrome_trace(small))
    assert check_trace(json.loads(text)) == []
    assert copy.deepcopy(json.loads(text)) == json.loads(text)


def test_default_trace_of_a_decode_step_is_compact_with_arrows(tmp_path):
    """The issue's case: an 8B decode step on Trainium2 (~220k tasks) traces to < 5 MB by default,
    in the Chrome trace-event format, with one slice per (op, engine class) and an arrow per op
    dependency; --trace-detail full writes every task."""
    from click.testing import CliRunner

    from accelsim.cli import main

    out = tmp_path / "t.json"
    r = CliRunner().invoke(main, ["run", "trn2", "llama-3-8b", "--phase", "decode", "--batch", "8", "--context",
                                  "2048", "--fidelity", "event", "--trace", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size < 5 * 2**20
    assert check_trace_file(out) == []
    d = json.loads(out.read_text())
    ev = d["traceEvents"]
    assert d["otherData"]["detail"] == "compact" and d["otherData"]["num_tasks"] > 100_000
    xs = [e for e in ev if e["ph"] == "X"]
    ops = [e for e in xs if e["cat"] == "op"]
    assert len(ops) == d["otherData"]["num_ops"]
    assert {e["cat"] for e in xs} >= {"op", "tensor", "dma"}
    starts, ends = [e for e in ev if e["ph"] == "s"], [e for e in ev if e["ph"] == "f"]
    assert len(starts) == len(ends) >= len(ops) - 1  # a chain of ops at least
    assert {e["id"] for e in starts} == {e["id"] for e in ends}
    # an arrow leaves an op slice and lands on one: both ends are inside a slice of their track
    by_track = {}
    for e in ops:
        by_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for e in starts + ends:
        assert any(a <= e["ts"] <= b for a, b in by_track[(e["pid"], e["tid"])]), e
    # a class slice's busy time never exceeds its span times the servers it used (the span is
    # written to the ns: each server's share may be over by that rounding)
    for e in xs:
        if e["cat"] in ("tensor", "dma"):
            assert e["args"]["busy_us"] <= (e["dur"] + 1e-3) * e["args"]["servers"] + 1e-3
    # a small run in full detail: every task is a slice, arrows included
    full = tmp_path / "full.json"
    r = CliRunner().invoke(main, ["run", "trn2", "tiny", "--phase", "decode", "--fidelity", "event", "--trace", str(full),
                                  "--trace-detail", "full"])
    assert r.exit_code == 0, r.output
    f = json.loads(full.read_text())
    assert f["otherData"]["detail"] == "full" and check_trace_file(full) == []
    assert sum(e["ph"] == "X" and e["cat"] != "op" for e in f["traceEvents"]) == f["otherData"]["num_tasks"]
    assert any(e["ph"] == "s" for e in f["traceEvents"])


def test_roofline_draws_memory_levels_and_names_the_bounding_one():
    import accelsim

    res = accelsim.evaluate("h100-sxm-80gb", "llama-3-8b", phase="prefill", batch=4, seq_len=1024)
    fig = accelsim.roofline_figure(res)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("L2" in lb and "roof" in lb for lb in labels)
    assert any(lb.startswith("HBM-bound") or lb.startswith("on-chip") for lb in labels)
    assert not any(lb == "memory-bound ops" for lb in labels)


def test_memory_level_comes_from_the_cost_model():
    # a GEMM whose operand re-reads through L2 take longer than its HBM traffic is labelled by
    # the shared level; a GEMV streaming its weight once by HBM
    from accelsim.arch import load_system
    from accelsim.cost.op_cost import ChipModel, op_cost
    from accelsim.workload.ops import MatMul

    cm = ChipModel(load_system("h100-sxm-80gb"))
    gemv = op_cost(cm, MatMul(m=1, n=8192, k=8192, b_shared=True))
    assert gemv.memory_level == "hbm"
    for mm in (MatMul(m=4096, n=4096, k=4096, b_shared=True), MatMul(m=16384, n=1024, k=8192, b_shared=True)):
        c = op_cost(cm, mm)
        f = __import__("accelsim.cost.op_cost", fromlist=["gemm_mapping"]).gemm_mapping(cm, mm)
        assert c.memory_level == ("shared" if f["shared_s"] > f["hbm_s"] else "hbm")


def test_a_window_outside_the_run_is_refused(small, tmp_path):
    """A trace window after the run's end wrote a trace holding only its metadata."""
    from accelsim.errors import ConfigError

    end = small.makespan_s
    for detail in ("compact", "full"):
        with pytest.raises(ConfigError, match="lies outside the run"):
            write_trace(small, tmp_path / f"{detail}.json", detail=detail, window_s=(2 * end + 1.0, 3 * end + 2.0))
        write_trace(small, tmp_path / f"{detail}_in.json", detail=detail, window_s=(0.0, end / 2))
        assert check_trace_file(tmp_path / f"{detail}_in.json") == []
