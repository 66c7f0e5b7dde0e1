"""A schedule keeps each distinct (duration, bytes, cap, weight, flops) once: a value table and a
narrow row number per task, lossless."""

from __future__ import annotations

import numpy as np

from accelsim.arch import load_system
from accelsim.lower.lowering import lower
from accelsim.lower.schedule import (ARRAY_FIELDS, BUSY, CAT_TENSOR, LIST_FIELDS, VALUE_COLUMNS, XFER, Schedule,
                                     ScheduleBuilder)
from accelsim.workload import build, load_model


def _random_builder(n: int, seed: int):
    rng = np.random.default_rng(seed)
    pool = np.array([0.0, -0.0, 1e-9, 3.5, np.inf, 1.0 / 3.0, 2.0**-1074, 7e30])
    b = ScheduleBuilder()
    r, srv = b.resource("r", "dma", 2), b.bandwidth_server("hbm", 1e12)
    op = b.op("x", "x", "matmul")
    want = {k: [] for k in VALUE_COLUMNS}
    for t in range(n):
        v = dict(zip(VALUE_COLUMNS, rng.choice(pool, size=5)))
        b.task(XFER if t % 2 else BUSY, CAT_TENSOR, op, [t - 1] if t else [], resource=r, server=srv, **v)
        for k in VALUE_COLUMNS:
            want[k].append(v[k])
    return b, {k: np.array(x) for k, x in want.items()}


def test_values_come_back_bit_for_bit():
    b, want = _random_builder(3000, 0)
    s = b.build()
    assert s.cls.dtype == np.uint16 and len(s.cls_table) > 256  # 8^5 combinations possible, ~3000 drawn
    for k in VALUE_COLUMNS:
        got = getattr(s, k)
        assert np.array_equal(got.view(np.uint64), want[k].view(np.uint64)), k  # -0.0 and 0.0 kept apart
        t = 1234
        assert s.value(k, t) == want[k][t] or (np.isnan(want[k][t]))
        assert np.array_equal(s.values(k, [5, 7]), want[k][[5, 7]])


def test_a_lowered_model_needs_a_byte_a_task_for_its_values(tmp_path):
    g = build(load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 2}), "prefill", batch=1,
              seq_len=256)
    s = lower(g, load_system("trn2"))
    assert s.cls.dtype == np.uint8 and len(s.cls_table) < 256
    per_task = sum(getattr(s, f).nbytes for f in ARRAY_FIELDS if getattr(s, f).shape[:1] == (s.num_tasks,))
    assert per_task / s.num_tasks < 30  # ids, kinds and the row number (dep_idx counted apart)
    # save / load, and a file of the layout before the value table (five float columns)
    s.save(tmp_path / "s.npz")
    back = Schedule.load(tmp_path / "s.npz")
    for k in VALUE_COLUMNS:
        assert np.array_equal(getattr(back, k), getattr(s, k))
    old = {f: getattr(s, f) for f in ARRAY_FIELDS if f not in ("cls", "cls_table")}
    old.update({k: getattr(s, k) for k in VALUE_COLUMNS})
    old.update({f: np.array(getattr(s, f), dtype=str) for f in LIST_FIELDS})
    np.savez_compressed(tmp_path / "old.npz", **old)
    legacy = Schedule.load(tmp_path / "old.npz")
    for k in VALUE_COLUMNS:
        assert np.array_equal(getattr(legacy, k), getattr(s, k))
    assert np.array_equal(legacy.cls_table, s.cls_table)  # the same canonical table
