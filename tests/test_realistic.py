"""Realistic mode: achievable priors and runtime costs applied to a system (stack.realize), the
per-dtype tensor fraction and the reduction-kernel fraction in the cost model, priors shipped
with the presets, the hardware prior fit, and what `accelsim run` reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from accelsim.api import evaluate
from accelsim.arch.presets import achievable_priors, load_system
from accelsim.arch.spec import Calibration
from accelsim.cli import main
from accelsim.correlate.priors import fit_hardware
from accelsim.correlate.schema import MeasurementRow
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.stack import load_stack
from accelsim.stack.realize import realize
from accelsim.workload.ops import Elementwise, MatMul, RMSNorm


def with_cal(system, **fields):
    return system.model_copy(update={"chip": system.chip.model_copy(update={"calibration": Calibration(**fields)})})


def test_realize_applies_priors_and_runtime_cost_and_keeps_explicit_calibrations():
    s = load_system("h100-sxm-80gb")
    neutral = s.model_copy(update={"chip": s.chip.model_copy(update={
        "achievable": Calibration(tensor_efficiency=0.7, hbm_efficiency=0.8)})})
    st = load_stack("cuda-native")
    r = realize(neutral, st)
    assert r.chip.calibration.tensor_efficiency == 0.7 and r.chip.calibration.hbm_efficiency == 0.8
    assert r.chip.calibration.launch_overhead_s == pytest.approx(st.runtime.kernel_launch_s)
    assert realize(neutral, None) is neutral                                # ideal: the preset as written
    explicit = with_cal(neutral, tensor_efficiency=0.5)
    assert realize(explicit, st).chip.calibration == Calibration(tensor_efficiency=0.5)


def test_per_dtype_tensor_fraction_scales_compute_time():
    """A compute-bound 8192^3 fp8 GEMM on H100: compute time ~ 1 / (tensor_efficiency x fp8 fraction);
    the bf16 GEMM does not see the fp8 fraction."""
    base = load_system("h100-sxm-80gb")
    fp8 = MatMul(m=8192, n=8192, k=8192, dtype_a="fp8", dtype_b="fp8", dtype_out="bf16", b_shared=True)
    bf16 = MatMul(m=8192, n=8192, k=8192, dtype_a="bf16", dtype_b="bf16", dtype_out="bf16", b_shared=True)
    full = ChipModel(with_cal(base))
    half = ChipModel(with_cal(base, tensor_dtype_efficiency={"fp8": 0.5}))
    # the mapping search may re-tile at the lower rate, so at most 2x and never much less
    assert 0.97 * 2 <= op_cost(half, fp8).compute_s / op_cost(full, fp8).compute_s <= 2 * (1 + 1e-9)
    assert op_cost(half, bf16).compute_s == pytest.approx(op_cost(full, bf16).compute_s, rel=1e-12)
    with pytest.raises(ValueError, match="must be in"):
        Calibration(tensor_dtype_efficiency={"fp8": 1.5})


def test_reduction_fraction_slows_norms_not_elementwise():
    """RMSNorm over 32768 x 8192 bf16 reads and writes 2 x 512 MiB: memory-bound; at
    reduction_efficiency 0.4 its memory time is 2.5x; a residual add is unchanged."""
    base = load_system("h100-sxm-80gb")
    norm = RMSNorm(rows=32768, cols=8192, dtype="bf16")
    add = Elementwise(fn="add", elements=32768 * 8192, dtype="bf16")
    full, slow = ChipModel(with_cal(base)), ChipModel(with_cal(base, reduction_efficiency=0.4))
    assert op_cost(slow, norm).memory_s == pytest.approx(op_cost(full, norm).memory_s / 0.4, rel=1e-9)
    assert op_cost(slow, add).memory_s == op_cost(full, add).memory_s
    assert op_cost(full, norm).memory_s == pytest.approx(norm.bytes() / 3.35e12, rel=1e-6)


def test_presets_carry_their_priors():
    table = achievable_priors()
    assert "h100-sxm5-80gb" in table and "a100-sxm4-80gb" in table
    s = load_system("dgx-h100")
    assert s.chip.achievable is not None and s.chip.achievable.tensor_efficiency < 1
    assert "chip.achievable" in s.sources and "achievable.yaml" in s.sources["chip.achievable"]
    # a chip with no rows of its own borrows from its nearest sibling and says so
    assert table["tpu-v5p"]["from_sibling"]["tensor_efficiency"] == "tpu-v5e"
    # a chip on another's compute die shares its tensor fields (fitted on both chips' GEMMs)
    h200, h100 = table["h200-sxm-141gb"], table["h100-sxm5-80gb"]
    assert h200["same_die"]["tensor_efficiency"] == "h100-sxm5-80gb"
    assert h200["achievable"]["tensor_efficiency"] == h100["achievable"]["tensor_efficiency"]
    assert h200["achievable"]["hbm_efficiency"] != h100["achievable"]["hbm_efficiency"]


def test_realistic_is_slower_than_ideal_and_stamped():
    ideal = evaluate("h100-sxm-80gb", "llama-3-8b", phase="prefill", batch=1, seq_len=2048, mode="ideal").summary
    real = evaluate("h100-sxm-80gb", "llama-3-8b", phase="prefill", batch=1, seq_len=2048).summary
    assert real["latency_s"] > ideal["latency_s"]
    assert ideal["mode"] == "ideal" and ideal["stack"] is None and ideal["expected_error"] is None
    assert real["mode"] == "realistic" and real["stack"] == "cuda-graphs"
    p = real["provenance"]
    assert p["calibration"] == "priors" and len(p["system_sha"]) == 12 and len(p["stack_sha"]) == 12
    assert 0 < real["expected_error"]["relative"] < 1 and "h100-sxm5-80gb" in real["expected_error"]["basis"]


def test_cli_run_names_stack_mode_and_band():
    r = CliRunner().invoke(main, ["run", "trn2", "llama-3-8b"])
    assert r.exit_code == 0, r.output
    assert "realistic, stack neuron" in r.output
    r = CliRunner().invoke(main, ["run", "h100-sxm-80gb", "llama-3-8b", "--phase", "prefill"])
    assert "expected +-" in r.output and "realistic, stack cuda-graphs" in r.output
    ideal = CliRunner().invoke(main, ["run", "trn2", "llama-3-8b", "--ideal"])
    assert "ideal (peak rates" in ideal.output and "expected" not in ideal.output
    out = json.loads(CliRunner().invoke(main, ["run", "trn2", "llama-3-8b", "--stack", "neuron", "--json"]).output)
    assert out["mode"] == "realistic" and out["stack"] == "neuron"
    bad = CliRunner().invoke(main, ["run", "trn2", "llama-3-8b", "--ideal", "--stack", "neuron"])
    assert bad.exit_code == 2 and "exclude" in bad.output


def _made_rows(system: str, tensor: float, gemm_sizes) -> list[MeasurementRow]:
    """GEMM and copy rows timed by the model itself on ``system`` at tensor ``tensor``, HBM 0.8 and
    a 5 us kernel cost (set by hand), under cuda-native: a fit must give those values back."""
    cm = ChipModel(with_cal(load_system(system), tensor_efficiency=tensor, hbm_efficiency=0.8, launch_overhead_s=5e-6))
    rows = []
    for i, n in enumerate(gemm_sizes):
        t = op_cost(cm, MatMul(m=n, n=n, k=n, dtype_a="bf16", dtype_b="bf16", dtype_out="bf16", b_shared=True)).time_s
        rows.append(MeasurementRow(id=f"g{i}", kind="gemm", system=system, m=n, n=n, k=n, dtype="bf16",
                                   stack="cuda-native", measured_time_s=t))
    for i, e in enumerate((2**20, 2**24, 2**28)):
        t = op_cost(cm, Elementwise(fn="copy", elements=e, dtype="fp32")).time_s
        rows.append(MeasurementRow(id=f"c{i}", kind="copy", system=system, elements=e, dtype="fp32",
                                   stack="cuda-native", measured_time_s=t))
    return rows


def test_hardware_fit_recovers_known_fractions():
    """Rows made on an A100 with tensor 0.7, HBM 0.8 and a 5 us kernel cost (set by hand) are
    fitted back to those values."""
    fit = fit_hardware(_made_rows("a100-sxm-80gb", 0.7, (1024, 2048, 4096, 8192)), holdout=False)
    got = fit.chips["a100-sxm4-80gb"]
    assert got["tensor_efficiency"] == pytest.approx(0.7, rel=0.03)
    assert got["hbm_efficiency"] == pytest.approx(0.8, rel=0.03)
    assert fit.launch["cuda-native"] == pytest.approx(5e-6, rel=0.1)


def test_a_calibration_does_not_transfer_between_chips(tmp_path):
    from accelsim.errors import ConfigError

    cal = tmp_path / "a100.yaml"
    cal.write_text("system: a100-sxm-80gb\nchip: a100-sxm4-80gb\ncalibration:\n  tensor_efficiency: 0.9\n")
    assert load_system("a100-sxm-80gb", calibration=cal).chip.calibration.tensor_efficiency == 0.9
    with pytest.raises(ConfigError, match="fitted on chip 'a100-sxm4-80gb'.*h100-sxm5-80gb.*--force-calibration"):
        load_system("h100-sxm-80gb", calibration=cal)
    assert load_system("h100-sxm-80gb", calibration=cal, force_calibration=True).chip.calibration.tensor_efficiency == 0.9
    r = CliRunner().invoke(main, ["run", "h100-sxm-80gb", "tiny", "--calibration", str(cal)])
    assert r.exit_code == 2 and "does not transfer" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["run", "h100-sxm-80gb", "tiny", "--calibration", str(cal), "--force-calibration"])
    assert r.exit_code == 0, r.output


def test_program_dispatch_pays_once_per_call_not_per_op():
    """xla-tpu runs compiled programs: its fitted per-call cost is not added to each op of a
    model step, but a one-kernel measurement row (one call) pays it once."""
    import pandas as pd

    from accelsim.correlate import correlate
    from accelsim.correlate.schema import COLUMNS

    st = load_stack("xla-tpu")
    assert st.runtime.dispatch == "program" and st.runtime.kernel_launch_s > 0
    s = load_system("tpu-v5e")
    assert realize(s, st).chip.calibration.launch_overhead_s == s.chip.achievable.launch_overhead_s
    eager = load_stack("cuda-eager")
    assert realize(load_system("a100-sxm-80gb"), eager).chip.calibration.launch_overhead_s == pytest.approx(
        eager.runtime.kernel_launch_s)
    row = {"id": "g", "kind": "gemm", "system": "tpu-v5e", "m": 1024, "n": 1024, "k": 1024, "dtype": "bf16",
           "stack": "xla-tpu", "measured_time_s": 1e-4}
    df = pd.DataFrame([{c: row.get(c) for c in COLUMNS}])
    got = correlate(df).per_row["predicted_time_s"].iloc[0]
    spec = realize(s, st)
    mm = MatMul(m=1024, n=1024, k=1024, dtype_a="bf16", dtype_b="bf16", dtype_out="bf16", b_shared=True)
    assert got == pytest.approx(op_cost(ChipModel(spec), mm).time_s + st.runtime.kernel_launch_s, rel=1e-9)


def test_priors_always_report_leave_one_chip_out_errors():
    """``--no-holdout`` skips only the collective libraries' slow refits: the chips' leave-one-chip-out
    errors (which the printed error bands read) are computed every time, so a ``--write`` run
    never stores a table without them."""
    import json as _json

    from click.testing import CliRunner

    from accelsim.cli import main

    root = Path(__file__).resolve().parents[1]
    files = [str(p) for p in sorted((root / "workloads" / "measurements" / "parts").glob("*.csv"))]
    r = CliRunner().invoke(main, ["priors", *files, "--no-collectives", "--no-holdout", "--json"])
    assert r.exit_code == 0, r.output
    table = _json.loads(r.output)["hardware"]
    fitted = {c: e for c, e in table.items() if e["fitted"]}
    assert fitted and all(e["leave_one_chip_out_mape"] for e in fitted.values())


def test_a_die_counts_once_in_the_median_of_measured_chips():
    """A chip with no rows of any sibling takes the median over measured chips; the H100 and the
    H200 share one die's tensor fields, which count once."""
    import statistics

    table = achievable_priors()
    dies = ["a100-sxm4-80gb", "h100-sxm5-80gb", "mi300x", "tpu-v5e"]  # the chips with own GEMM rows, one per die
    assert table["h200-sxm-141gb"]["same_die"]["tensor_efficiency"] == "h100-sxm5-80gb"
    expected = statistics.median(table[c]["achievable"]["tensor_efficiency"] for c in dies)
    assert table["trainium1"]["achievable"]["tensor_efficiency"] == pytest.approx(expected, abs=1e-4)


def test_a_warm_row_informs_the_shared_level_only_when_its_footprint_fits():
    """A warm re-run of buffers far beyond the chip's shared level (BabelStream's gigabytes on
    an A100's 40 MB L2) is served by HBM, so it says nothing about ``sram_efficiency``; one that
    fits half the level does."""
    truth = with_cal(load_system("a100-sxm-80gb"), hbm_efficiency=0.8, launch_overhead_s=3e-6)
    cm = ChipModel(truth)

    def row(i, e, cache):
        t = op_cost(cm, Elementwise(fn="copy", elements=e, dtype="fp32")).time_s
        return MeasurementRow(id=f"r{i}", kind="copy", system="a100-sxm-80gb", elements=e, dtype="fp32",
                              stack="cuda-native", cache=cache, measured_time_s=t)

    cold = [row(i, e, "cold") for i, e in enumerate((2**16, 2**20, 2**24, 2**28))]
    big = fit_hardware(cold + [row(9, 2**29, "warm")], holdout=False)  # 4 GiB moved: no L2 residency
    assert "sram_efficiency" not in big.chips["a100-sxm4-80gb"]
    small = fit_hardware(cold + [row(9, 2**20, "warm")], holdout=False)  # 8 MiB: inside half the L2
    assert "sram_efficiency" in small.chips["a100-sxm4-80gb"]


def _shipped_fit(chip_changes=None, launch_changes=None):
    """A HardwareFit holding exactly the shipped priors and kernel costs (each chip's whole
    achievable block as its own fields), with the given changes (chip -> {field: value}, stack ->
    kernel launch seconds)."""
    from accelsim.correlate.priors import HardwareFit, _flat
    from accelsim.stack.presets import load_kernels, own_runtime

    chips = {c: _flat(e["achievable"]) for c, e in achievable_priors().items() if e.get("achievable")}
    launch = {st: own_runtime(st)["kernel_launch_s"] for st in ("cuda-native", "cuda-graphs")}
    for c, upd in (chip_changes or {}).items():
        chips[c].update(upd)
    launch.update(launch_changes or {})
    return HardwareFit(chips, launch, {}, {"aten": load_kernels("aten").reduction_efficiency}, {}, {}, {}, {}), chips


def test_drift_lists_exactly_the_shipped_values_a_fit_moves():
    from accelsim.correlate.priors import drift

    fit, chips = _shipped_fit()
    assert drift(fit, chips) == []
    fit, chips = _shipped_fit({"h100-sxm5-80gb": {"hbm_efficiency": 0.9}}, {"cuda-native": 6.1e-6})
    shipped = achievable_priors()["h100-sxm5-80gb"]["achievable"]["hbm_efficiency"]
    want = [("h100-sxm5-80gb", "hbm_efficiency", shipped, 0.9)]
    got = drift(fit, chips)
    assert got[0] == want[0] and len(got) == 2
    assert got[1][:2] == ("cuda-native", "runtime.kernel_launch_s") and got[1][3] == 6.1e-6
    assert drift(fit, chips, tolerance=1.0) == []  # within 100 %: nothing


def test_priors_check_exits_1_on_drift_and_0_without(monkeypatch):
    """``accelsim priors --check`` fails when a fit of the rows would move a shipped prior."""
    import accelsim.correlate.priors as pr

    root = Path(__file__).resolve().parents[1]
    small = str(root / "workloads" / "measurements" / "parts" / "nvidia_accelsim_h200.csv")
    r = CliRunner().invoke(main, ["priors", small, "--no-collectives", "--no-holdout", "--check"])
    assert r.exit_code == 1 and "shipped values that differ from this fit" in r.output
    monkeypatch.setattr(pr, "drift", lambda *a, **k: [])
    r = CliRunner().invoke(main, ["priors", small, "--no-collectives", "--no-holdout", "--check"])
    assert r.exit_code == 0 and "are this fit's" in r.output
    r = CliRunner().invoke(main, ["priors", small, "--check", "--write"])
    assert r.exit_code == 2 and "--check" in r.output


def test_a_die_owner_measured_only_through_another_chip_on_it_is_fitted():
    """The H200's tensor fields are the H100 die's (``same_die``): rows made on an H200 alone at
    tensor 0.75 fit the die owner's field back to 0.75 (it was left at the fit's starting point,
    0.7, when the owner had no rows of its own, and the identification test then failed on an
    empty row set)."""
    fit = fit_hardware(_made_rows("h200-sxm-141gb", 0.75, (2048, 4096, 8192)), holdout=False)
    assert fit.chips["h100-sxm5-80gb"]["tensor_efficiency"] == pytest.approx(0.75, rel=0.03)
    assert fit.chips["h200-sxm-141gb"]["hbm_efficiency"] == pytest.approx(0.8, rel=0.03)


def test_priors_refuse_a_corpus_without_kernel_rows(tmp_path):
    """With no kernel row the hardware fit has nothing to fit: it is refused (an empty fit reported
    the shipped priors as its own, and --write would have emptied the priors file)."""
    root = Path(__file__).resolve().parents[1]
    src = root / "workloads" / "measurements" / "parts" / "nvidia_accelsim_h200.csv"
    empty = tmp_path / "empty.csv"
    empty.write_text(src.read_text().splitlines()[0] + "\n")
    for extra in ([], ["--write"], ["--check"]):
        r = CliRunner().invoke(main, ["priors", str(empty), "--no-collectives", *extra])
        assert r.exit_code == 2 and "no kernel rows" in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(main, ["priors", str(empty), "--no-hardware"])
    assert r.exit_code == 0 and "no collective library fitted" in r.output


def test_priors_json_without_the_hardware_fit(tmp_path):
    """--json --no-hardware raised an UnboundLocalError (the drift list existed only with the
    hardware fit)."""
    root = Path(__file__).resolve().parents[1]
    lines = (root / "workloads" / "measurements" / "parts" / "neuron_docs.csv").read_text().splitlines()
    f = tmp_path / "few.csv"
    f.write_text("\n".join(lines[:6]) + "\n")  # the header and five all-gather rows: a quick fit
    r = CliRunner().invoke(main, ["priors", str(f), "--json", "--no-hardware", "--no-holdout"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["drift"] is None
