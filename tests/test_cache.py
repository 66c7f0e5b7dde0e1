"""Warm re-runs (cost/cache.py): residency of a footprint in the shared level, the memory time
of a warm kernel, and the ``cache`` column of measurement rows."""

from __future__ import annotations

import pandas as pd
import pytest

from accelsim.arch import load_system
from accelsim.correlate.predict import Predictor
from accelsim.correlate.schema import rows_of, validate_frame
from accelsim.cost.cache import FULL_FRACTION, residency, warm_rerun
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.errors import MeasurementError
from accelsim.workload.ops import Elementwise

MiB = 2**20


def test_residency_closed_form():
    c = 40 * MiB
    assert residency(0.4 * c, c) == 1.0  # within the full part
    assert residency(FULL_FRACTION * c, c) == 1.0
    assert residency(0.75 * c, c) == pytest.approx((c - 0.75 * c) / (c - FULL_FRACTION * c))  # 0.5
    assert residency(c, c) == 0.0 and residency(2 * c, c) == 0.0
    assert residency(MiB, 0.0) == 0.0  # no shared level


def test_warm_copy_moves_its_bytes_at_the_l2_rate():
    sys = load_system("a100-sxm-80gb")
    cm = ChipModel(sys)
    op = Elementwise(name="copy", role="copy", fn="copy", elements=2 * MiB, dtype="fp32")  # 16 MiB: fits
    cold = op_cost(cm, op)
    warm = warm_rerun(cm, op, cold)
    l2 = sys.chip.shared_sram.bandwidth_Bps
    hbm = sys.chip.hbm.bandwidth_Bps
    # ideal A100: the same bytes at 7.2192 TB/s instead of 2.039 TB/s
    assert warm.memory_s == pytest.approx(cold.memory_s * hbm / l2)
    assert warm.overhead_s == cold.overhead_s
    big = Elementwise(name="copy", role="copy", fn="copy", elements=32 * MiB, dtype="fp32")  # 256 MiB: misses
    c2 = op_cost(cm, big)
    assert warm_rerun(cm, big, c2) == c2


def _row(**kw) -> pd.DataFrame:
    base = {"id": "x", "kind": "copy", "system": "a100-sxm-80gb", "dtype": "fp32", "elements": 2 * MiB,
            "stack": "cuda-native", "measured_time_s": 1e-5}
    return pd.DataFrame([{**base, **kw}])


def test_cache_column():
    pr = Predictor()
    cold = pr.predict(rows_of(validate_frame(_row()))[0]).time_s
    warm = pr.predict(rows_of(validate_frame(_row(cache="warm")))[0]).time_s
    assert pr.predict(rows_of(validate_frame(_row(cache="cold")))[0]).time_s == cold
    assert warm < cold
    with pytest.raises(MeasurementError, match="cache"):
        validate_frame(_row(cache="hot"))
