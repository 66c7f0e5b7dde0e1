"""Composite RMSNorm (``op: composite`` rows): the norm as a reference module's eager ops, and
the measurement rows that must be the kernel alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from accelsim.correlate import correlate
from accelsim.correlate.predict import Predictor
from accelsim.correlate.schema import rows_of, validate_frame
from accelsim.errors import MeasurementError
from accelsim.workload.eager import composite_rmsnorm
from accelsim.workload.ops import RMSNorm


def test_composite_rmsnorm_moves_36_bytes_per_bf16_element():
    # upcast 2+4, square 4+4, mean 4, scale 4+4, downcast 4+2, weight 2+2 = 36 B per element;
    # per row: the mean's fp32 result (4), eps add (2 reads + 1 write of 4) and rsqrt (4 + 4) = 24 B
    r, c = 2048, 4096
    ops = composite_rmsnorm(r, c, "bf16")
    assert len(ops) == 8
    assert sum(o.bytes() for o in ops) == 36 * r * c + 24 * r
    assert RMSNorm(rows=r, cols=c, dtype="bf16").bytes() == 4 * r * c + 2 * c  # the fused kernel


def _row(**kw) -> pd.DataFrame:
    base = {"id": "x", "kind": "rmsnorm", "system": "a100-sxm-80gb", "dtype": "bf16", "rows": 2048,
            "cols": 32768, "stack": "cuda-native", "measured_time_s": 1e-3}
    return pd.DataFrame([{**base, **kw}])


def test_composite_prediction_is_the_eight_kernels():
    pr = Predictor()
    fused = pr.predict(rows_of(validate_frame(_row(kernels="aten")))[0]).time_s
    comp = pr.predict(rows_of(validate_frame(_row(op="composite", kernels="aten")))[0]).time_s
    # large rows are bandwidth- or loop-bound. Per element, at the copy rate C (the chip's
    # achievable HBM rate), the reduction rate C x red and ATen's unvectorized loop rate E:
    # fused 4 B at C x red; composite: upcast max(6 B / C, 1 / E), square 8 B / C, mean 4 B at
    # C x red, scale max(8 B / C, 1 / E), downcast 6 B / C, weight max(4 B / C, 1 / E)
    # (launch costs and the per-row eps / rsqrt are ~1 %)
    from accelsim.arch import load_system

    from accelsim.stack.presets import load_kernels

    chip = load_system("a100-sxm-80gb").chip
    red = chip.achievable.reduction_efficiency * load_kernels("aten").reduction_efficiency
    C = chip.hbm.bandwidth_Bps * chip.achievable.hbm_efficiency
    E = chip.num_cores * chip.engine_hz("vector") * load_kernels("aten").unvectorized_elements_per_cycle
    assert red < 0.9 and 1 / E > 6 / C  # the loop binds the upcast: the ratio tells the rates apart
    per_el = max(6 / C, 1 / E) + 8 / C + 4 / (C * red) + max(8 / C, 1 / E) + 6 / C + max(4 / C, 1 / E)
    assert comp / fused == pytest.approx(per_el / (4 / (C * red)), rel=0.03)


def test_unvectorized_kernels_run_at_the_library_loop_rate():
    from accelsim.arch import load_system
    from accelsim.cost.op_cost import ChipModel, op_cost
    from accelsim.stack import load_stack
    from accelsim.stack.presets import load_kernels
    from accelsim.stack.realize import realize
    from accelsim.workload.ops import Elementwise

    n = 1 << 26
    plain = Elementwise(fn="copy", elements=n, dtype="bf16")
    loop = Elementwise(fn="copy", elements=n, dtype="bf16", unvectorized=True)
    s = load_system("a100-sxm-80gb")
    rate = s.chip.num_cores * s.chip.engine_hz("vector") * load_kernels("aten").unvectorized_elements_per_cycle
    cm = ChipModel(realize(s, load_stack("cuda-eager")))
    assert op_cost(cm, loop).vector_s == pytest.approx(n / rate)
    assert op_cost(cm, loop).time_s > 1.5 * op_cost(cm, plain).time_s  # 4 B an element would stream faster
    # a stack without ATen's loop (CUDA graphs over native kernels) streams it at the copy rate
    cm = ChipModel(realize(s, load_stack("cuda-graphs")))
    assert op_cost(cm, loop).time_s == pytest.approx(op_cost(cm, plain).time_s)
    # the unfused norm's widening copy and its two broadcast products leave the vectorized loop
    assert [o.name for o in composite_rmsnorm(8, 8, "bf16") if o.unvectorized] == [
        "rmsnorm.upcast", "rmsnorm.scale", "rmsnorm.weight"]


def test_composite_is_an_rmsnorm_row_only():
    with pytest.raises(MeasurementError, match="op.*'composite' describes an rmsnorm row"):
        validate_frame(_row(kind="softmax", op="composite"))


def test_liger_rows_are_predicted_as_kernels_and_composites():
    liger = Path(__file__).resolve().parents[1] / "workloads/measurements/parts/nvidia_liger_kernel.csv"
    res = correlate(liger).by_kind.set_index("kind")
    # the HF rows were 6-10x fast as one fused kernel; as eight kernels they land within 35 %
    assert res.loc["rmsnorm", "max_ape"] < 0.35
    assert 0.75 < res.loc["rmsnorm", "bias"] < 1.15
