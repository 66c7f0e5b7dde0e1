"""Kernel libraries (stacks/kernels/*.yaml): a stack's reductions stream at its library's
fraction of the copy rate, a measurement row may name its own library, `accelsim priors` fits
each library's fraction, and bad names are refused with the file and field."""

from __future__ import annotations

import pandas as pd
import pytest

from accelsim.arch.presets import load_system
from accelsim.arch.spec import Calibration
from accelsim.correlate.predict import Predictor
from accelsim.correlate.priors import fit_hardware
from accelsim.correlate.schema import MeasurementRow, rows_of, validate_frame
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.errors import ConfigError, MeasurementError
from accelsim.stack import load_stack
from accelsim.stack.presets import list_kernels, load_kernels
from accelsim.stack.realize import realize
from accelsim.workload.ops import LayerNorm


def test_shipped_libraries_and_the_stacks_that_name_them():
    assert {"aten", "triton"} <= set(list_kernels())
    for name in list_kernels():
        lib = load_kernels(name)
        assert 0 < lib.reduction_efficiency <= 1 and "reduction_efficiency" in lib.sources
    assert load_stack("cuda-eager").kernels == "aten"
    assert load_stack("inductor-cuda").kernels == "triton"
    assert load_stack("cuda-graphs").kernels is None


def test_realize_multiplies_the_chip_reduction_fraction_by_the_library():
    s = load_system("a100-sxm-80gb")
    chip_red = s.chip.achievable.reduction_efficiency
    eager = realize(s, load_stack("cuda-eager")).chip.calibration
    assert eager.reduction_efficiency == pytest.approx(chip_red * load_kernels("aten").reduction_efficiency)
    assert realize(s, load_stack("cuda-graphs")).chip.calibration.reduction_efficiency == pytest.approx(chip_red)
    assert realize(s, None).chip.calibration.reduction_efficiency == 1.0  # ideal: the bound


def _row(**kw) -> MeasurementRow:
    base = {"id": "x", "kind": "layernorm", "system": "a100-sxm-80gb", "dtype": "fp32", "rows": 8192,
            "cols": 16384, "stack": "cuda-native", "measured_time_s": 1e-3}
    return rows_of(validate_frame(pd.DataFrame([{**base, **kw}])))[0]


def test_a_row_runs_its_own_library():
    pr = Predictor()
    aten = pr.predict(_row(kernels="aten")).time_s
    triton = pr.predict(_row(kernels="triton")).time_s
    plain = pr.predict(_row()).time_s   # cuda-native names no library: the copy rate
    # 8192 x 16384 fp32 reads and writes 1 GiB: bandwidth-bound, so the times go as the inverse
    # fractions (the 3 us launch is < 0.5 % of them)
    ra, rt = load_kernels("aten").reduction_efficiency, load_kernels("triton").reduction_efficiency
    assert aten / triton == pytest.approx(rt / ra, rel=0.01)
    assert triton / plain == pytest.approx(1 / rt, rel=0.01)
    # ideal mode ignores the library (no stack at all)
    ideal = Predictor("ideal")
    assert ideal.predict(_row(kernels="aten")).time_s == ideal.predict(_row()).time_s


def test_bad_library_names_are_refused(tmp_path):
    with pytest.raises(MeasurementError, match="kernels.*unknown kernel library 'cudnn'"):
        _row(kernels="cudnn")
    with pytest.raises(MeasurementError, match="kernels.*kernel row, not a allreduce row"):
        _row(kind="allreduce", bytes=2**20, ranks=8, kernels="aten")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase: cuda-native\nkernels: atne\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: kernels: unknown kernel library 'atne'; known: aten"):
        load_stack(bad)


def test_priors_fit_each_library_fraction():
    """LayerNorm rows made on an A100 at HBM 0.8 with one library at 0.5 and another at 0.9 of
    the copy rate (set by hand) give those fractions back, and the chip keeps no reduction field."""
    s = load_system("a100-sxm-80gb")
    rows = []
    for i, e in enumerate((2**22, 2**26, 2**28)):
        from accelsim.workload.ops import Elementwise

        cm = ChipModel(s.model_copy(update={"chip": s.chip.model_copy(update={"calibration": Calibration(
            hbm_efficiency=0.8, launch_overhead_s=3e-6)})}))
        t = op_cost(cm, Elementwise(fn="copy", elements=e, dtype="fp32")).time_s
        rows.append(MeasurementRow(id=f"c{i}", kind="copy", system="a100-sxm-80gb", elements=e, dtype="fp32",
                                   stack="cuda-native", measured_time_s=t))
    for lib, frac in (("aten", 0.5), ("triton", 0.9)):
        cm = ChipModel(s.model_copy(update={"chip": s.chip.model_copy(update={"calibration": Calibration(
            hbm_efficiency=0.8, reduction_efficiency=frac, launch_overhead_s=3e-6)})}))
        for j, c in enumerate((4096, 8192, 16384)):
            t = op_cost(cm, LayerNorm(rows=4096, cols=c, dtype="fp32")).time_s
            rows.append(MeasurementRow(id=f"{lib}{j}", kind="layernorm", system="a100-sxm-80gb", rows=4096, cols=c,
                                       dtype="fp32", stack="cuda-native", kernels=lib, measured_time_s=t))
    fit = fit_hardware(rows, holdout=False)
    assert fit.kernels["aten"] == pytest.approx(0.5, rel=0.02)
    assert fit.kernels["triton"] == pytest.approx(0.9, rel=0.02)
    assert fit.chips["a100-sxm4-80gb"]["hbm_efficiency"] == pytest.approx(0.8, rel=0.02)
    assert "reduction_efficiency" not in fit.chips["a100-sxm4-80gb"]


def test_validate_checks_kernel_library_files(tmp_path):
    from click.testing import CliRunner

    from accelsim.cli import main
    from accelsim.stack.presets import kernels_dir

    ok = CliRunner().invoke(main, ["validate", str(kernels_dir() / "aten.yaml")])
    assert ok.exit_code == 0 and "kernel library aten" in ok.output
    bad = tmp_path / "k.yaml"
    bad.write_text("name: k\nreduction_efficiency: 1.5\n")
    res = CliRunner().invoke(main, ["validate", str(bad)])
    assert res.exit_code == 1 and "reduction_efficiency" in res.output and "k.yaml" in res.output
