"""A kernel timed alone on the device (``timing: alone``: triton.testing.do_bench's CUDA events
around one call queued behind its cache flush) pays the stack's ``runtime.alone_kernel_s`` in
place of the back-to-back ``kernel_launch_s``; the priors fit tells the two apart."""

from __future__ import annotations

import pytest

from accelsim.arch import load_system
from accelsim.arch.spec import Calibration
from accelsim.correlate.predict import Predictor
from accelsim.correlate.priors import fit_hardware
from accelsim.correlate.schema import MeasurementRow, load_measurements
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.errors import MeasurementError
from accelsim.stack import load_stack
from accelsim.workload.ops import Elementwise


def _row(**kw):
    base = dict(id="a", kind="add", system="a100-sxm-80gb", elements=4096, dtype="fp32", stack="cuda-native",
                cache="cold", measured_time_s=7e-6)
    return MeasurementRow(**{**base, **kw})


def test_a_kernel_timed_alone_pays_the_alone_cost_in_place_of_the_launch():
    rt = load_stack("cuda-native").runtime
    assert rt.alone_kernel_s is not None and rt.alone_kernel_s > rt.kernel_launch_s
    pr = Predictor()
    loop = pr.predict(_row()).time_s
    alone = pr.predict(_row(timing="alone")).time_s
    # hand derivation: the same kernel, its launch (kernel_launch_s, cuda-native's vector ops
    # pay no extra library cost) replaced by alone_kernel_s
    assert alone - loop == pytest.approx(rt.alone_kernel_s - rt.kernel_launch_s, rel=1e-9)
    # the device-side cost is the chip's and the driver's: a stack built on cuda-native keeps it
    assert load_stack("cuda-eager").runtime.alone_kernel_s == rt.alone_kernel_s
    # a stack without the field: unchanged
    row = dict(system="mi300x", stack="rocm-native")
    assert load_stack("rocm-native").runtime.alone_kernel_s is None
    assert pr.predict(_row(**row, timing="alone")).time_s == pytest.approx(pr.predict(_row(**row)).time_s)


def test_timing_alone_is_for_kernel_rows_and_loop_for_collectives(tmp_path):
    head = "id,kind,system,elements,bytes,ranks,dtype,timing,measured_time_s\n"
    for line, msg in (("c,allreduce,dgx-h100,,1024,8,fp32,alone,1e-5", "timing alone describes a kernel row"),
                      ("k,add,a100-sxm-80gb,4096,,,fp32,loop,1e-5", "timing loop describes a collective row")):
        f = tmp_path / "m.csv"
        f.write_text(head + line + "\n")
        with pytest.raises(MeasurementError, match=msg) as e:
            load_measurements(f)
        assert "m.csv" in str(e.value) and "timing" in str(e.value)


def test_the_fit_recovers_a_known_alone_cost():
    """Rows made by hand on an A100 (HBM 0.8, a 3 us back-to-back launch, 7 us alone) are fitted back."""
    s = load_system("a100-sxm-80gb")
    truth = s.model_copy(update={"chip": s.chip.model_copy(update={
        "calibration": Calibration(hbm_efficiency=0.8, launch_overhead_s=3e-6)})})
    cm = ChipModel(truth)
    rows = []
    for i, e in enumerate((2**12, 2**16, 2**20, 2**24, 2**28)):
        t = op_cost(cm, Elementwise(fn="copy", elements=e, dtype="fp32")).time_s
        rows.append(MeasurementRow(id=f"c{i}", kind="copy", system="a100-sxm-80gb", elements=e, dtype="fp32",
                                   stack="cuda-native", measured_time_s=t))
        rows.append(MeasurementRow(id=f"d{i}", kind="copy", system="a100-sxm-80gb", elements=e, dtype="fp32",
                                   stack="cuda-native", timing="alone", measured_time_s=t - 3e-6 + 7e-6))
    fit = fit_hardware(rows, holdout=False)
    assert fit.chips["a100-sxm4-80gb"]["hbm_efficiency"] == pytest.approx(0.8, rel=0.02)
    assert fit.launch["cuda-native"] == pytest.approx(3e-6, rel=0.05)
    assert fit.alone["cuda-native"] == pytest.approx(7e-6, rel=0.05)
