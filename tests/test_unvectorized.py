"""ATen's unvectorized elementwise loop: its element rate, measured in the H200 profiler traces,
and the eager kernels that run through it (``Elementwise.unvectorized``)."""

from __future__ import annotations

import gzip
import json
import math
import statistics
from pathlib import Path

import pytest

from accelsim.arch import load_system
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.stack import load_stack
from accelsim.stack.presets import load_kernels
from accelsim.stack.realize import realize
from accelsim.workload.eager import composite_rope
from accelsim.workload.ops import Elementwise

PROFILES = Path(__file__).parent / "data" / "profiles"
LOOPS = ("at::native::elementwise_kernel<", "unrolled_elementwise_kernel")
"""ATen's two unvectorized loops (offset-computing, and contiguous with a widening cast)."""


def _kernels(name: str):
    """(kernel event, its launching aten op) of a trace, in time order."""
    ev = json.load(gzip.open(PROFILES / name))["traceEvents"]
    ops = {e["args"]["External id"]: e for e in ev if e.get("cat") == "cpu_op" and "External id" in e.get("args", {})}
    ks = sorted((e for e in ev if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    return [(k, ops.get(k["args"].get("External id"))) for k in ks]


def _elements(op) -> int:
    """Output elements of an elementwise aten op: its largest operand (the others broadcast)."""
    dims = [d for d in op["args"].get("Input Dims") or [] if isinstance(d, list) and d and isinstance(d[0], int)]
    return max((math.prod(d) for d in dims), default=0)


def test_aten_loop_rate_is_the_median_of_the_traced_kernels():
    rates = []
    for name in ("h200_llama3_8b_prefill_1x2048.json.gz", "h200_llama3_8b_prefill_1x512.json.gz",
                 "h200_gpt3_5b_train_1x2048.json.gz"):
        for k, op in _kernels(name):
            if op is not None and any(p in k["name"] for p in LOOPS):
                n = _elements(op)
                if n >= 4_000_000:  # large enough that the launch and the tail do not count
                    rates.append(n / (k["dur"] * 1e-6))
    assert len(rates) > 300
    h200 = load_system("h200-sxm-141gb").chip
    per_cycle = statistics.median(rates) / (h200.num_cores * h200.engine_hz("vector"))
    assert load_kernels("aten").unvectorized_elements_per_cycle == pytest.approx(per_cycle, rel=0.01)


def test_eager_rope_costs_what_the_h200_trace_measured():
    # Llama-3-8B prefill of 2048 tokens: per layer q is 32 x 2048 x 128 elements, k 8 x 2048 x 128;
    # the trace's RoPE kernels are the mul / neg / cat / add launched on 4-d views
    measured = []
    for k, op in _kernels("h200_llama3_8b_prefill_1x2048.json.gz"):
        dims = (op or {}).get("args", {}).get("Input Dims") or [[]]
        first = dims[0][0] if dims and dims[0] and isinstance(dims[0][0], list) else dims[0]
        if op and op["name"] in ("aten::mul", "aten::neg", "aten::cat", "aten::add") and len(first) == 4:
            measured.append(k["dur"] * 1e-6)
    assert len(measured) == 32 * 10
    per_layer = sum(measured) / 32
    cm = ChipModel(realize(load_system("h200-sxm-141gb"), load_stack("cuda-eager")))
    q, kk = 32 * 2048 * 128, 8 * 2048 * 128
    parts = composite_rope(q + kk, "bf16")
    # the op splits q and k evenly (it carries only their total): the same element passes. The
    # device's time: eager's launches are host work that overlaps it (``host_s``)
    predicted = sum(op_cost(cm, p).time_s - op_cost(cm, p).host_s for p in parts)
    assert all(p.unvectorized for p in parts)
    assert predicted == pytest.approx(per_layer, rel=0.2)
    # as vectorized kernels the same passes were a third of what the silicon took
    vec = [op_cost(cm, Elementwise(fn=p.fn, elements=p.elements, dtype="bf16")) for p in parts]
    plain = sum(c.time_s - c.host_s for c in vec)
    assert plain < 0.6 * per_layer


def test_event_tier_holds_the_loop_rate():
    from accelsim.sim.event import simulate
    from accelsim.workload.graph import WorkloadGraph, WorkloadMeta

    spec = realize(load_system("h200-sxm-141gb"), load_stack("cuda-eager"))
    n = 1 << 25
    rate = spec.chip.num_cores * spec.chip.engine_hz("vector") * spec.chip.calibration.unvectorized_elements_per_cycle
    for flag, low, high in ((True, n / rate, 1.3 * n / rate), (False, 0.0, 0.6 * n / rate)):
        g = WorkloadGraph(WorkloadMeta(model="x", phase="prefill", batch=1))
        g.add(Elementwise(name="e", fn="copy", elements=n, dtype="bf16", unvectorized=flag))
        t = simulate(g, spec).makespan_s
        assert low <= t <= high, (flag, t, n / rate)


def test_profile_report_predicts_the_traced_eager_elementwise_ops():
    from accelsim.profile import load_trace
    from accelsim.profile.report import profile_report

    r = profile_report(load_trace(PROFILES / "h200_llama3_8b_prefill_1x2048.json.gz"), "h200-sxm-141gb",
                       "cuda-eager")
    ops = r.ops
    # the kernel names say which loop ran; the RoPE products, SiLU on a chunk, the rotation's
    # negation and the residual sums (vectorized and not) within 10 % of the trace, as op totals
    for op in ("aten::mul", "aten::silu", "aten::add", "aten::neg"):
        assert ops.loc[op, "predicted_s"] == pytest.approx(ops.loc[op, "measured_s"], rel=0.1), op
