"""Sustained load: a production run's chip settles at a power-limited clock below the one the
kernel microbenchmarks (and so the achievable priors) saw, so whole steps run the tensor engines
at the chip's ``sustained_clock_fraction`` of their achievable rate; kernel rows, burst runs and
the ideal bound do not."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from accelsim.api import evaluate, evaluate_train
from accelsim.arch.presets import load_system
from accelsim.cli import main
from accelsim.correlate import correlate
from accelsim.correlate.schema import load_measurements
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.errors import AccelsimError
from accelsim.stack.presets import load_stack
from accelsim.stack.realize import realize, under_load
from accelsim.workload.ops import MatMul


def test_presets_carry_the_cited_fractions():
    # H200 at 700 W: sustained / burst BF16 matmul 0.849, 0.878, 0.857 -> median 0.857, taken as 0.86;
    # H100 SXM5 and the 500 W Grand Teton part: their die's sibling; A100: HPL's 1305 of 1410 MHz
    want = {"h200-sxm-141gb": 0.86, "h100-sxm-80gb": 0.86, "h100-gt-96gb": 0.86, "a100-sxm-80gb": 0.926}
    for name, f in want.items():
        spec = load_system(name)
        assert spec.chip.sustained_clock_fraction == f
        assert spec.sources["chip.sustained_clock_fraction"]  # cited
    assert abs(1305 / 1410 - 0.926) < 5e-4
    for name in ("trn2", "tpu-v5e", "mi300x"):  # no published drop: the chip keeps its rate
        assert load_system(name).chip.sustained_clock_fraction is None


def test_a_compute_bound_gemm_slows_by_exactly_the_fraction():
    st = load_stack("cuda-graphs")
    burst = realize(load_system("h100-sxm-80gb"), st)
    sus = under_load(burst, st, "sustained")
    assert sus.chip.calibration.tensor_efficiency == pytest.approx(burst.chip.calibration.tensor_efficiency * 0.86)
    assert under_load(sus, st, "sustained") is sus  # once: a loaded system passed on is not slowed again
    mm = MatMul(name="g", m=8192, n=8192, k=8192)
    a, b = op_cost(ChipModel(burst), mm), op_cost(ChipModel(sus), mm)
    assert a.bound == b.bound == "compute"
    # the tensor passes take 1 / 0.86 as long; the bytes moved do not change
    assert b.compute_s == pytest.approx(a.compute_s / 0.86, rel=1e-9)
    assert b.hbm_bytes == a.hbm_bytes
    # a memory-bound GEMV (decode's weight stream) is not slowed
    gemv = MatMul(name="v", m=1, n=8192, k=8192, b_shared=True)
    # (beyond its last K step's pass, which drains after the stream: parts in 10^5)
    assert op_cost(ChipModel(sus), gemv).time_s == pytest.approx(op_cost(ChipModel(burst), gemv).time_s, rel=1e-4)


def test_burst_ideal_and_chips_without_a_figure_are_left_alone():
    st = load_stack("cuda-graphs")
    h100 = realize(load_system("h100-sxm-80gb"), st)
    assert under_load(h100, st, "burst") is h100
    assert under_load(load_system("h100-sxm-80gb"), None, "sustained").chip == load_system("h100-sxm-80gb").chip
    trn = realize(load_system("trn2"), load_stack("neuron"))
    assert under_load(trn, load_stack("neuron"), "sustained") is trn
    with pytest.raises(AccelsimError, match="load"):
        under_load(h100, st, "steady")
    with pytest.raises(AccelsimError, match="unknown load"):
        evaluate("h100-sxm-80gb", "llama-3-8b", load="steady")


def test_whole_steps_default_to_sustained_and_say_so():
    kw = dict(phase="prefill", batch=1, seq_len=4096)
    sus = evaluate("h100-sxm-80gb", "llama-3-8b", **kw).summary
    burst = evaluate("h100-sxm-80gb", "llama-3-8b", load="burst", **kw).summary
    ideal = evaluate("h100-sxm-80gb", "llama-3-8b", mode="ideal", **kw).summary
    assert sus["load"] == "sustained" and sus["sustained_clock_fraction"] == 0.86
    assert burst["sustained_clock_fraction"] is None and ideal["sustained_clock_fraction"] is None
    # a compute-bound prefill: slower, by at most 1 / 0.86 (its memory-bound ops do not slow)
    assert 1.0 < sus["latency_s"] / burst["latency_s"] <= 1 / 0.86 + 1e-9
    # MFU stays against the datasheet peak: the same FLOPs over a longer step
    assert sus["mfu"] * sus["latency_s"] == pytest.approx(burst["mfu"] * burst["latency_s"], rel=1e-9)
    # the event tier runs the same clock
    ev = evaluate("h100-sxm-80gb", "llama-3-8b", fidelity="event", **kw).summary
    assert ev["latency_s"] == pytest.approx(sus["latency_s"], rel=0.05)
    t_sus = evaluate_train("h100-sxm-80gb", "llama-3-8b", 8, 2048).summary
    t_burst = evaluate_train("h100-sxm-80gb", "llama-3-8b", 8, 2048, load="burst").summary
    assert t_sus["load"] == "sustained" and t_sus["step_time_s"] > 1.05 * t_burst["step_time_s"]


def test_correlate_rows_take_their_kind_default_or_their_column(tmp_path):
    head = "id,kind,system,dtype,m,n,k,model,phase,metric,batch,seq_len,input_len,stack,load,measured_time_s\n"
    body = ("g1,gemm,h100-sxm-80gb,bf16,8192,8192,8192,,,,,,,cuda-native,,0.0015\n"
            "g2,gemm,h100-sxm-80gb,bf16,8192,8192,8192,,,,,,,cuda-native,sustained,0.0015\n"
            "p1,model,h100-sxm-80gb,bf16,,,,llama-3-8b,prefill,ttft,1,4096,4096,cuda-graphs,,0.1\n"
            "p2,model,h100-sxm-80gb,bf16,,,,llama-3-8b,prefill,ttft,1,4096,4096,cuda-graphs,burst,0.1\n")
    f = tmp_path / "rows.csv"
    f.write_text(head + body)
    got = correlate(load_measurements(f)).per_row.set_index("id")["predicted_time_s"]
    assert got["g2"] / got["g1"] == pytest.approx(1 / 0.86, rel=0.01)  # a kernel row: burst unless it says
    kw = dict(phase="prefill", batch=1, seq_len=4096, stack="cuda-graphs")
    assert got["p1"] == pytest.approx(evaluate("h100-sxm-80gb", "llama-3-8b", **kw).summary["latency_s"], rel=1e-9)
    assert got["p2"] == pytest.approx(evaluate("h100-sxm-80gb", "llama-3-8b", load="burst", **kw)
                                      .summary["latency_s"], rel=1e-9)
    bad = tmp_path / "bad.csv"
    bad.write_text(head + body.replace("burst", "steady"))
    with pytest.raises(AccelsimError, match="load"):
        load_measurements(bad)


def test_run_prints_the_load():
    r = CliRunner().invoke(main, ["run", "h100-sxm-80gb", "llama-3-8b", "--phase", "prefill", "--seq", "1024"])
    assert r.exit_code == 0 and "load          sustained: tensor engines at 0.86 of their short-run rate" in r.output
    r = CliRunner().invoke(main, ["run", "h100-sxm-80gb", "llama-3-8b", "--load", "burst"])
    assert r.exit_code == 0 and "load          burst" in r.output
    r = CliRunner().invoke(main, ["run", "h100-sxm-80gb", "llama-3-8b", "--ideal"])
    assert r.exit_code == 0 and "load " not in r.output


def test_sweeps_take_the_load():
    from accelsim.sweep import DesignSpace, sweep

    s = DesignSpace.load({"system": "h100-sxm-80gb",
                          "workload": {"model": "llama-3-8b", "phase": "prefill", "seq_len": 2048},
                          "axes": {"workload.batch": [1, 2]}})
    for load in ("sustained", "burst"):
        df = sweep(s, progress=False, workers=1, load=load)
        for _, row in df.iterrows():
            ref = evaluate("h100-sxm-80gb", "llama-3-8b", phase="prefill", batch=int(row["workload.batch"]),
                           seq_len=2048, load=load).summary
            assert row["latency_s"] == pytest.approx(ref["latency_s"], rel=1e-9)
    with pytest.raises(AccelsimError, match="unknown load"):
        sweep(s, progress=False, workers=1, load="steady")
