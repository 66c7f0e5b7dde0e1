"""Design-space sweeps: spaces and sampling, invalid points, agreement with accelsim.evaluate,
resume after a kill, executors (process pool, Dask), Pareto, sensitivity, plots and the CLI."""

from __future__ import annotations

import importlib.util
import io
import math
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from accelsim import evaluate
from accelsim.cli import main
from accelsim.errors import ConfigError
from accelsim.sweep import (DesignSpace, one_at_a_time, pareto, pareto_front, sensitivity, sweep)
from accelsim.sweep import runner
from accelsim.sweep.analysis import pareto_mask_array
from accelsim.sweep.store import Store
from accelsim.workload import load_model

ROOT = Path(__file__).parents[1]
SWEEPS = ROOT / "workloads" / "sweeps"

needs_pyarrow = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None,
                                   reason='parquet needs pyarrow: pip install -e ".[parquet]"')

TINY = {"name": "t", "system": "edge-npu", "workload": {"model": "tiny", "phase": "decode", "batch": 4,
                                                       "context_len": 256}}


def space(axes, **kw) -> DesignSpace:
    return DesignSpace.load({**TINY, "axes": axes, **kw})


# --- spaces and sampling ------------------------------------------------------------------------
def test_grid_and_zip_counts():
    s = space({"chip.core.sram.capacity_bytes": ["2 MiB", "4 MiB", "8 MiB"], "workload.batch": [1, 8]})
    pts = s.points()
    assert s.size() == len(pts) == 6
    assert [p.index for p in pts] == list(range(6))
    # first axis slowest; unit strings become SI numbers
    assert [p.columns["chip.core.sram.capacity_bytes"] for p in pts[:2]] == [2 * 2**20] * 2
    assert [p.overrides["workload.batch"] for p in pts[:2]] == [1, 8]
    z = space({"chip.hbm.bandwidth_Bps": ["50 GB/s", "100 GB/s"], "workload.batch": [1, 8]}, sampling="zip")
    assert [(p.overrides["chip.hbm.bandwidth_Bps"], p.overrides["workload.batch"]) for p in z.points()] == \
        [(50e9, 1), (100e9, 8)]
    with pytest.raises(ConfigError, match="equal length"):
        space({"chip.hbm.bandwidth_Bps": [1e9, 2e9], "workload.batch": [1, 2, 4]}, sampling="zip").points()
    # a range expands to num values in a grid (geometric with log)
    r = space({"chip.hbm.bandwidth_Bps": {"low": "10 GB/s", "high": "1 TB/s", "log": True, "num": 3}})
    assert [p.overrides["chip.hbm.bandwidth_Bps"] for p in r.points()] == pytest.approx([1e10, 1e11, 1e12])


@pytest.mark.parametrize("kind", ["random", "lhs"])
def test_random_and_lhs_counts_and_determinism(kind):
    axes = {"chip.hbm.bandwidth_Bps": {"low": "10 GB/s", "high": "1 TB/s", "log": True},
            "chip.core.tensor.rows": {"low": 8, "high": 64},
            "workload.phase": ["prefill", "decode"]}
    a = space(axes, sampling=kind, samples=40, seed=7).points()
    b = space(axes, sampling=kind, samples=40, seed=7).points()
    c = space(axes, sampling=kind, samples=40, seed=8).points()
    assert len(a) == 40
    assert [p.overrides for p in a] == [p.overrides for p in b]
    assert [p.hash for p in a] == [p.hash for p in b]
    assert [p.overrides for p in a] != [p.overrides for p in c]
    bw = np.array([p.overrides["chip.hbm.bandwidth_Bps"] for p in a])
    rows = [p.overrides["chip.core.tensor.rows"] for p in a]
    assert ((bw >= 1e10) & (bw <= 1e12)).all()
    assert all(isinstance(r, int) and 8 <= r <= 64 for r in rows)  # integer ends -> integer samples
    if kind == "lhs":
        # one sample per stratum of each dimension
        u = (np.log(bw) - np.log(1e10)) / (np.log(1e12) - np.log(1e10))
        assert sorted(np.floor(u * 40).astype(int)) == list(range(40))
        phases = [p.overrides["workload.phase"] for p in a]
        assert phases.count("prefill") == phases.count("decode") == 20


def test_space_validation_errors():
    with pytest.raises(ConfigError, match="samples"):
        space({"workload.batch": [1, 2]}, sampling="lhs")
    with pytest.raises(ConfigError, match="two axes"):
        space({"chip.core.tensor.rows": [8], "arr": [{"chip.core.tensor.rows": 16}]})
    with pytest.raises(ConfigError, match="bundle"):
        space({"not_a_path": [1, 2]})
    with pytest.raises(ConfigError, match="unknown workload field"):
        space({"workload.bogus": [1]})
    with pytest.raises(ConfigError, match="unknown system preset"):
        sweep(DesignSpace.load({**TINY, "system": "no-such-system"}), progress=False)


def test_point_hash_is_stable_and_order_independent():
    a = space({"chip.core.tensor.rows": [16, 32], "workload.batch": [1, 2]})
    b = space({"workload.batch": [1, 2], "chip.core.tensor.rows": [16, 32]})
    assert {p.hash for p in a.points()} == {p.hash for p in b.points()}
    assert len({p.hash for p in a.points()}) == 4
    # hashing is a pure function of the point and the shared context
    from accelsim.sweep.space import point_hash

    p = a.points()[0]
    assert p.hash == point_hash(a.context_key(), {"workload.batch": 1, "chip.core.tensor.rows": 16})
    other = DesignSpace.load({**TINY, "workload": {**TINY["workload"], "batch": 8},
                              "axes": {"chip.core.tensor.rows": [16, 32], "workload.batch": [1, 2]}})
    assert {q.hash for q in other.points()}.isdisjoint({q.hash for q in a.points()})


def test_example_spaces_load_and_evaluate():
    tiny = DesignSpace.from_yaml(SWEEPS / "tiny.yaml")
    assert tiny.size() == 24
    big = DesignSpace.from_yaml(SWEEPS / "trn2_llama3_70b.yaml")
    assert big.size() == 162
    pts = big.points()
    # the first design as a decode step and as a training step
    out = dict(runner.evaluate_batch(runner.context(big, "analytical"), [(p.index, p.overrides) for p in pts[:2]]))
    assert out[0]["status"] == out[1]["status"] == "ok", out
    assert out[0]["chips"] == 8 and out[1]["chips"] == 16
    assert not math.isnan(out[1]["bubble_fraction"])


# --- evaluation ---------------------------------------------------------------------------------
def test_sweep_matches_evaluate():
    # tp counts NeuronCores on Trainium2 (4 logical cores per chip): 8 is 2 chips
    s = DesignSpace.load({"system": "trn2-48xl", "workload": {"model": "llama-3-8b", "batch": 8, "layers": 1, "tp": 8},
                          "axes": {"chip.hbm.bandwidth_Bps": ["2 TB/s", "4 TB/s"],
                                   "interconnect.link_bandwidth_Bps": ["100 GB/s", "400 GB/s"],
                                   "workload.phase": ["prefill", "decode"]}})
    df = sweep(s, progress=False, workers=1)
    assert (df["status"] == "ok").all() and len(df) == 8
    layer = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 1})
    for _, r in df.iterrows():
        ov = [f"chip.hbm.bandwidth_Bps={r['chip.hbm.bandwidth_Bps']}",
              f"interconnect.link_bandwidth_Bps={r['interconnect.link_bandwidth_Bps']}"]
        ref = evaluate("trn2-48xl", layer, phase=r["workload.phase"], batch=8, tp=8, overrides=ov).summary
        for k in ("latency_s", "tokens_per_s", "mfu", "memory_bytes_per_chip", "hbm_bandwidth_utilization"):
            assert r[k] == ref[k], k
        assert r["fits"] == ref["fits_in_hbm"] and r["chips"] == 2
        for b, t in ref["time_by_bound_s"].items():
            assert r[f"share_{b}"] == pytest.approx(t / ref["latency_s"], rel=1e-12, abs=1e-15)
    # more link bandwidth never slows a point down; the link only matters with collectives
    g = df.groupby(["chip.hbm.bandwidth_Bps", "workload.phase"])["latency_s"]
    assert (g.first() >= g.last()).all()


def test_tensor_rates_follow_the_array():
    s = space({"chip.core.tensor.rows": [16, 32]})
    df = sweep(s, progress=False, workers=1)
    assert df["peak_flops_per_chip"].tolist() == pytest.approx([1.024e12, 2.048e12])
    off = sweep(space({"chip.core.tensor.rows": [16, 32]}, scale_tensor_rates=False), progress=False, workers=1)
    assert off["peak_flops_per_chip"].tolist() == pytest.approx([2.048e12, 2.048e12])


@pytest.mark.parametrize("preset", ["trn2", "dgx-h100", "tpu-v5e-256"])
def test_a_point_revalidates_only_what_it_changes_and_gets_the_same_spec(preset):
    """A point's spec is built by revalidating the models along its changed paths; it must
    equal a validation of the whole system dict, field for field, and refuse what that refuses."""
    from accelsim.arch.presets import load_raw
    from accelsim.arch.spec import SystemSpec
    from accelsim.configio import revalidate
    from accelsim.sweep.space import system_dict
    from pydantic import ValidationError

    raw, _ = load_raw(preset)
    base = SystemSpec.model_validate(raw)
    for ov in ({"chip.hbm.bandwidth_Bps": "2 TB/s"}, {"chip.core.tensor.rows": 64, "chip.core.sram.capacity_bytes": 7e6},
               {"chip.calibration.tensor_efficiency": 0.5, "num_chips": base.num_chips},
               {"chip.energy.mac_pJ": {"bf16": 0.3}}):
        data = system_dict(raw, ov)
        new = revalidate(base, raw, data)
        assert new.model_dump() == SystemSpec.model_validate(data).model_dump() != base.model_dump()
    for bad in ({"chip.core.tensor.rows": 0}, {"chip.hbm.bandwidth_Bps": "-1 TB/s"}, {"chip.num_cores": -2}):
        with pytest.raises(ValidationError):
            SystemSpec.model_validate(system_dict(raw, bad))
        with pytest.raises(ValidationError):
            revalidate(base, raw, system_dict(raw, bad))
    assert revalidate(base, raw, raw) is base
    # models that check each field alone are copied with their new sub-models, not validated again;
    # a model with a cross-field check (SystemSpec's network, TensorEngine's rates) always is
    from accelsim.arch.spec import ChipSpec, Core, TensorEngine
    from accelsim.configio import _checks_fields_alone

    assert _checks_fields_alone(ChipSpec) and _checks_fields_alone(Core)
    assert not _checks_fields_alone(SystemSpec) and not _checks_fields_alone(TensorEngine)


def test_invalid_and_failing_points_are_recorded():
    s = space({"chip.core.tensor.rows": [32, 0],
               "chip.core.sram.capacity_bytes": ["4 MiB", "12 parsecs", 64],
               "workload.tp": [1, 3]})
    df = sweep(s, progress=False, workers=1)
    assert len(df) == 12
    ok = df[df["status"] == "ok"]
    assert len(ok) == 1 and ok["latency_s"].iloc[0] > 0
    zero = df[(df["chip.core.tensor.rows"] == 0)]
    assert (zero["status"] == "invalid").all()
    assert zero["error_path"].str.contains("chip.core.tensor.rows").all()
    assert zero["error"].str.contains("chip.core.tensor.rows=0").all()
    assert zero["error"].str.contains("greater than 0").all()
    unit = df[(df["chip.core.sram.capacity_bytes"] == "12 parsecs") & (df["chip.core.tensor.rows"] == 32)]
    assert (unit["status"] == "invalid").all()
    assert (unit["error_path"] == "chip.core.sram.capacity_bytes").all()
    assert unit["error"].str.contains("'12 parsecs'").all()
    tp = df[(df["workload.tp"] == 3) & (df["chip.core.tensor.rows"] == 32)
            & (df["chip.core.sram.capacity_bytes"] == 4 * 2**20)]
    assert tp["status"].tolist() == ["invalid"] and tp["error_path"].tolist() == ["workload.tp"]
    assert "does not divide" in tp["error"].iloc[0]
    tiny_sram = df[(df["chip.core.sram.capacity_bytes"] == 64) & (df["chip.core.tensor.rows"] == 32)
                   & (df["workload.tp"] == 1)]
    assert tiny_sram["status"].tolist() == ["error"] and "no tile fits" in tiny_sram["error"].iloc[0]
    assert (~df.loc[df["status"] != "ok", "feasible"]).all()


def test_constraints_and_filters():
    s = space({"chip.core.tensor.rows": [16, 32, 64], "workload.batch": [1, 64]},
              constraints={"max": {"power_W": 5.0, "chip.tdp_W": "6 W"}, "min": {"tokens_per_s": 1000}})
    s.filters.append(lambda row: row["workload.batch"] < 64)
    df = sweep(s, progress=False, workers=1)
    assert (df["status"] == "ok").all()
    expect = (df["power_W"] <= 5.0) & (df["tokens_per_s"] >= 1000) & (df["workload.batch"] < 64)
    assert df["feasible"].tolist() == expect.tolist()
    assert df.loc[df["power_W"] > 5.0, "violations"].str.contains("power_W=").all()
    assert df.loc[df["workload.batch"] == 64, "violations"].str.contains("rejected by").all()
    assert (df["chip.tdp_W"] == 5.0).all()  # a spec path named by a constraint is recorded
    # the base chip reproduces its published TDP; a bigger array draws more
    base = df[(df["chip.core.tensor.rows"] == 32)]
    assert base["power_W"].tolist() == pytest.approx([5.0, 5.0])
    assert df.loc[df["chip.core.tensor.rows"] == 64, "power_W"].gt(5.0).all()


# --- storage and resume -----------------------------------------------------------------------
@needs_pyarrow
def test_resume_after_a_partial_run(tmp_path):
    out = tmp_path / "r.parquet"
    full = space({"chip.core.tensor.rows": [16, 32, 64], "workload.batch": [1, 2, 4]})
    part = space({"chip.core.tensor.rows": [16, 32], "workload.batch": [1, 2, 4]})  # a sweep "killed" after 6
    sweep(part, out=out, progress=False, workers=1)
    n0 = runner.EVALUATIONS
    df = sweep(full, out=out, resume=True, progress=False, workers=1)
    assert runner.EVALUATIONS - n0 == 3
    assert len(df) == 9 and df["point_hash"].is_unique and df["point"].tolist() == list(range(9))
    fresh = sweep(full, progress=False, workers=1)
    cols = ["point", "chip.core.tensor.rows", "workload.batch", "latency_s", "tokens_per_s", "point_hash"]
    pd.testing.assert_frame_equal(df[cols], fresh[cols], check_dtype=False)
    stored = pd.read_parquet(out)
    assert len(stored) == 9 and stored["point_hash"].is_unique
    assert not out.with_name("r.parquet.parts").exists()
    # nothing left to do: no evaluation at all
    n1 = runner.EVALUATIONS
    again = sweep(full, out=out, resume=True, progress=False, workers=1)
    assert runner.EVALUATIONS == n1 and len(again) == 9
    # without resume the file starts afresh
    sweep(part, out=out, progress=False, workers=1)
    assert len(pd.read_parquet(out)) == 6
    # rows of another fidelity are not reused
    n2 = runner.EVALUATIONS
    ev = sweep(part, out=out, resume=True, fidelity="event", progress=False, workers=1)
    assert runner.EVALUATIONS - n2 == 6 and (ev["fidelity"] == "event").all()
    assert (pd.read_parquet(out)["fidelity"] == "event").all()


KILLED = """
import sys, time
from accelsim.sweep import runner
slow = runner.Evaluator.evaluate
def evaluate(self, overrides):
    time.sleep(0.05)
    return slow(self, overrides)
runner.Evaluator.evaluate = evaluate
runner.sweep(sys.argv[1], out=sys.argv[2], workers=1, batch_size=1, progress=False)
"""


@needs_pyarrow
def test_resume_after_kill(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("system: edge-npu\nworkload: {model: tiny, batch: 2, context_len: 64}\n"
                    "axes:\n  chip.core.tensor.rows: [8, 16, 32, 64]\n  workload.batch: [1, 2, 3, 4, 5, 6]\n")
    out = tmp_path / "r.parquet"
    parts = tmp_path / "r.parquet.parts"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(spec), str(out)])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 6:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be killed"
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    stored = Store(out).load()
    n_stored = stored["point_hash"].nunique()
    assert 6 <= n_stored < 24 and len(stored) == n_stored
    n0 = runner.EVALUATIONS
    df = sweep(spec, out=out, resume=True, progress=False, workers=1)
    assert runner.EVALUATIONS - n0 == 24 - n_stored  # no point computed twice
    assert len(df) == 24 and df["point_hash"].is_unique and (df["status"] == "ok").all()
    fresh = sweep(spec, progress=False, workers=1)
    assert df["latency_s"].tolist() == fresh["latency_s"].tolist()


def test_missing_pyarrow_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[parquet\]"'):
        sweep(space({"workload.batch": [1]}), out=tmp_path / "x.parquet", progress=False)


# --- executors ----------------------------------------------------------------------------------
EXEC_AXES = {"chip.core.tensor.rows": [16, 32], "chip.hbm.bandwidth_Bps": ["25 GB/s", "50 GB/s", "100 GB/s"],
             "workload.phase": ["prefill", "decode"], "workload.batch": [1, 4]}
RESULT_COLS = ["point", "point_hash", "status", "latency_s", "tokens_per_s", "mfu", "share_memory", "area_mm2"]


def test_process_pool_matches_serial():
    serial = sweep(space(EXEC_AXES), progress=False, workers=1)
    with ProcessPoolExecutor(max_workers=2) as ex:
        pooled = sweep(space(EXEC_AXES), executor=ex, batch_size=5, progress=False)
    pd.testing.assert_frame_equal(serial[RESULT_COLS], pooled[RESULT_COLS])


def test_dask_matches_process_pool():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    with ProcessPoolExecutor(max_workers=2) as ex:
        pooled = sweep(space(EXEC_AXES), executor=ex, batch_size=5, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dasked = sweep(space(EXEC_AXES), executor=client.get_executor(), batch_size=5, progress=False)
    pd.testing.assert_frame_equal(pooled[RESULT_COLS], dasked[RESULT_COLS])


# --- analysis -----------------------------------------------------------------------------------
def test_pareto_on_a_hand_made_set():
    df = pd.DataFrame({"cost": [1, 2, 3, 2, 4, 1, np.nan, 0.5],
                       "perf": [1, 3, 4, 2, 4, 1, 9.0, 9.0],
                       "status": ["ok"] * 7 + ["invalid"]})
    # min cost, max perf: (1,1) twice (identical: both kept), (2,3), (3,4); (2,2) and (4,4) dominated
    front = pareto_front(df, {"cost": "min", "perf": "max"})
    assert front.tolist() == [True, True, True, False, False, True, False, False]
    assert pareto(df, ["cost", "-perf"])["cost"].tolist() == [1, 1, 2, 3]
    # three objectives: adding a third column rescues (2,2) when it is best in it
    df["energy"] = [5, 5, 5, 1, 5, 5, 5, 5]
    front3 = pareto_front(df, {"cost": "min", "perf": "max", "energy": "min"})
    assert front3.tolist() == [True, True, True, True, False, True, False, False]
    # brute force agreement on random data
    rng = np.random.default_rng(0)
    v = rng.random((300, 3))
    dom = np.array([any(np.all(v[j] <= v[i]) and np.any(v[j] < v[i]) for j in range(300)) for i in range(300)])
    assert (pareto_mask_array(v) == ~dom).all()
    with pytest.raises(ValueError, match="sense"):
        pareto_front(df, {"cost": "smallest"})


def test_sensitivity_and_one_at_a_time():
    a, b = np.meshgrid([1.0, 2.0, 4.0], ["x", "y"], indexing="ij")
    df = pd.DataFrame({"point": range(6), "a": a.ravel(), "b": b.ravel(), "latency_s": 10.0 / a.ravel(),
                       "status": "ok"})
    s = sensitivity(df, "latency_s", axes=["a", "b"])
    assert s.loc["a", "variance_share"] == pytest.approx(1.0)
    assert s.loc["b", "variance_share"] == pytest.approx(0.0)
    assert s.loc["a", "ratio"] == pytest.approx(4.0) and s.loc["a", "best_for_min"] == 4.0
    oat = one_at_a_time(df, "latency_s", axes=["a", "b"])
    line = oat[oat["axis"] == "a"]
    assert line["value"].tolist() == [1.0, 2.0, 4.0]  # other axis at its middle value ("x")
    assert line["delta"].tolist() == pytest.approx([1.0, 0.0, -0.5])
    assert oat.loc[oat["axis"] == "b", "delta"].tolist() == pytest.approx([0.0, 0.0])


def test_plots_render():
    from matplotlib.figure import Figure

    from accelsim.sweep import heatmap, parallel_coordinates, pareto_plot, sensitivity_plot

    df = sweep(DesignSpace.from_yaml(SWEEPS / "tiny.yaml"), progress=False, workers=1)
    front = pareto_front(df, {"area_mm2": "min", "tokens_per_s": "max"})
    figs = [pareto_plot(df, "area_mm2", "tokens_per_s", color="workload.phase"),
            heatmap(df, "chip.hbm.bandwidth_Bps", "array", "latency_s", log=True),
            parallel_coordinates(df, ["array", "chip.core.sram.capacity_bytes", "chip.hbm.bandwidth_Bps",
                                      "latency_s"], color="tokens_per_s", highlight=front),
            sensitivity_plot(sensitivity(df, "latency_s", log=True))]
    for fig in figs:
        assert isinstance(fig, Figure)
        fig.savefig(io.BytesIO(), format="png")


# --- CLI ----------------------------------------------------------------------------------------
@needs_pyarrow
def test_cli_sweep(tmp_path):
    out = tmp_path / "tiny.parquet"
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "-o", str(out), "--workers", "1",
                                  "--no-progress", "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "24 points (24 ok" in r.output and "best 3 by tokens_per_s" in r.output
    assert len(pd.read_parquet(out)) == 24
    n0 = runner.EVALUATIONS
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "-o", str(out), "--resume", "--json"])
    assert r.exit_code == 0, r.output
    assert runner.EVALUATIONS == n0 and '"points": 24' in r.output


def test_cli_sweep_prints_and_errors(tmp_path):
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "--workers", "1", "--no-progress",
                                  "--rank", "latency_s:min", "--top", "2"])
    assert r.exit_code == 0, r.output
    assert "best 2 by latency_s (min)" in r.output and "decode" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: trn2\nworkload: {model: tiny}\naxes: {chip.core.tensor.rows: [8]}\nsampling: sobol\n")
    r = CliRunner().invoke(main, ["sweep", str(bad)])
    assert r.exit_code == 2 and "error:" in r.output and "sampling" in r.output
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "--resume"])
    assert r.exit_code == 2 and "--resume needs" in r.output
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "--overwrite"])
    assert r.exit_code == 2 and "--overwrite needs" in r.output
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "--dask", "tcp://127.0.0.1:1", "--workers", "2"])
    assert r.exit_code == 2 and "runs on its own workers" in r.output  # --workers was dropped silently
    for flag in ("resume", "overwrite"):  # the API refuses them without out= too (they were dropped silently)
        with pytest.raises(ConfigError, match=f"{flag}=True needs out="):
            sweep(SWEEPS / "tiny.yaml", progress=False, **{flag: True})
    r = CliRunner().invoke(main, ["sweep", str(SWEEPS / "tiny.yaml"), "--rank", "speed"])
    assert r.exit_code == 2 and "not a result column" in r.output


def test_model_axis_with_files_relative_to_the_sweep_file(tmp_path):
    model = (ROOT / "workloads" / "tiny.yaml").read_text().replace("num_hidden_layers: 2", "num_hidden_layers: 1")
    (tmp_path / "one.yaml").write_text(model.replace("name: tiny", "name: tiny-one-layer"))
    spec = tmp_path / "s.yaml"
    spec.write_text("system: edge-npu\nworkload: {model: tiny, batch: 2}\naxes:\n  workload.model: [tiny, one.yaml]\n")
    df = sweep(spec, progress=False, workers=1)
    assert df["status"].tolist() == ["ok", "ok"]
    assert df["latency_s"].iloc[1] < df["latency_s"].iloc[0]


def test_sweep_pays_the_engine_cost_per_request_as_evaluate_does():
    s = DesignSpace.load({"system": "h100-sxm-80gb", "workload": {"model": "llama-3-8b", "layers": 1, "phase": "decode"},
                          "axes": {"workload.batch": [1, 32]}})
    df = sweep(s, progress=False, workers=1, stack="vllm-cuda")
    layer = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 1})
    for _, r in df.iterrows():
        ref = evaluate("h100-sxm-80gb", layer, phase="decode", batch=int(r["workload.batch"]), stack="vllm-cuda")
        assert r["latency_s"] == pytest.approx(ref.summary["latency_s"], rel=1e-12)
    assert df["latency_s"].iloc[1] - df["latency_s"].iloc[0] > 31 * 1e-4  # 31 more requests at 0.1 ms each


def test_a_killed_worker_loses_no_points(tmp_path):
    """SIGKILL one process-pool worker mid-run (as the OOM killer would): its batch is sent again
    on a fresh pool, no point is lost or wrongly failed, and the output has every point once."""
    import os
    import signal
    import threading
    import time
    from concurrent.futures import ProcessPoolExecutor

    space = DesignSpace.load({"system": "trn2", "workload": {"model": "llama-3-8b", "layers": 1, "batch": 8},
                              "axes": {"chip.hbm.bandwidth_Bps": [f"{1 + i / 10:.1f} TB/s" for i in range(40)],
                                       "chip.core.sram.capacity_bytes": [f"{8 + i} MiB" for i in range(25)]}})
    ex = ProcessPoolExecutor(max_workers=2)
    killed = []

    def kill_one():
        t0 = time.time()
        while not getattr(ex, "_processes", None) and time.time() - t0 < 30:
            time.sleep(0.01)
        time.sleep(0.3)
        pids = list(ex._processes or {})
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    th = threading.Thread(target=kill_one)
    th.start()
    try:
        df = sweep(space, executor=ex, batch_size=4, progress=False, out=tmp_path / "k.parquet")
    finally:
        th.join()
        ex.shutdown(cancel_futures=True)
    assert killed, "the worker was not killed while the sweep ran"
    assert len(df) == 1000 and df["point_hash"].is_unique
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]["error"].head().tolist()


def test_a_killed_dask_worker_loses_no_points():
    """The same with a Dask LocalCluster of two worker processes: one is SIGKILLed mid-run; Dask
    reschedules its tasks (and the sweep would resend a lost one), no point is lost or failed."""
    pytest.importorskip("distributed")
    import os
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    sp = DesignSpace.load({"system": "trn2", "workload": {"model": "llama-3-8b", "layers": 1, "batch": 8},
                           "axes": {"chip.hbm.bandwidth_Bps": [f"{1 + i / 10:.1f} TB/s" for i in range(40)],
                                    "chip.core.sram.capacity_bytes": [f"{8 + i} MiB" for i in range(25)]}})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one():
            time.sleep(1.0)
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

        th = threading.Thread(target=kill_one)
        th.start()
        df = sweep(sp, executor=client.get_executor(), batch_size=4, progress=False)
        th.join()
    assert killed
    assert len(df) == 1000 and df["point_hash"].is_unique
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]["error"].head().tolist()


def test_heatmap_ticks_in_engineering_units_and_title_says_phase_and_metric():
    import pandas as pd

    from accelsim.sweep.plots import heatmap, pareto_plot

    df = pd.DataFrame({"chip.hbm.bandwidth_Bps": [1.5e12, 1.5e12, 3e12, 3e12],
                       "chip.core.sram.capacity_bytes": [2**23, 2**24, 2**23, 2**24],
                       "latency_s": [2e-3, 1.9e-3, 1.1e-3, 1e-3], "phase": "decode", "status": "ok"})
    fig = heatmap(df, "chip.hbm.bandwidth_Bps", "chip.core.sram.capacity_bytes", "latency_s")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1.5 TB/s", "3 TB/s"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["8 MiB", "16 MiB"]
    assert ax.get_title() == "median latency (s), decode" and ax.get_xlabel() == "chip.hbm.bandwidth (B/s)"
    assert "2 ms" in [t.get_text() for t in ax.texts]
    fig = pareto_plot(df, "latency_s", "chip.hbm.bandwidth_Bps", senses=("min", "min"))
    assert fig.axes[0].get_xlabel() == "latency (s), lower is better"


def test_a_misspelt_system_axis_is_refused_when_the_space_loads():
    """Every point of a sweep over a misspelt field was invalid (and the run exited 0); the space
    now refuses the path when it loads, naming the axis and the close match."""
    base = {"name": "t", "system": "trn2", "workload": {"model": "tiny", "phase": "decode"}}
    with pytest.raises(ConfigError, match=r"axis 'chip.hbm.bandwith_Bps'.*unknown field.*Did you mean bandwidth_Bps"):
        DesignSpace.load({**base, "axes": {"chip.hbm.bandwith_Bps": ["1 TB/s", "2 TB/s"]}})
    with pytest.raises(ConfigError, match=r"bundle axis 'v': chip.core.sram.capacity_bytes is not a mapping"):
        DesignSpace.load({**base, "axes": {"v": [{"chip.core.sram.capacity_bytes.x": 1}]}})
    ok = DesignSpace.load({**base, "axes": {"chip.core.tensor.macs_per_cycle.bf16": [1024.0],
                                            "chip.calibration.tensor_efficiency": [0.5]}})
    assert len(ok.points()) == 1


def test_a_decode_point_of_zero_cached_tokens_is_invalid_not_the_default():
    """workload.context_len 0 on a decode point ran as 2048 (0 read as "not given")."""
    df = sweep({"name": "c", "system": "trn2", "workload": {"model": "tiny", "batch": 2, "phase": "decode"},
                "axes": {"workload.context_len": [0, 64]}}, progress=False, workers=1)
    bad = df[df["workload.context_len"] == 0].iloc[0]
    assert bad["status"] == "invalid" and "context_len >= 1" in bad["error"]
    assert (df[df["workload.context_len"] == 64]["status"] == "ok").all()


def test_a_batch_size_or_worker_count_below_one_is_refused():
    """batch_size=-3 returned the first 64 of 300 points and dropped the rest silently (the batches
    were cut with a negative step); workers=-1 or True ran as the default."""
    space = {"name": "b", "system": "trn2", "workload": {"model": "tiny", "batch": 2, "phase": "decode"},
             "axes": {"chip.hbm.bandwidth_Bps": {"low": "1 TB/s", "high": "2 TB/s", "num": 300}}}
    for kw in (dict(batch_size=-3, workers=1), dict(batch_size=0, workers=1), dict(workers=-1), dict(workers=0),
               dict(workers=True)):
        with pytest.raises(ConfigError, match="batch_size must be|workers must be"):
            sweep(space, progress=False, **kw)
    assert len(sweep(space, progress=False, batch_size=7, workers=1)) == 300


def test_analysis_names_a_missing_column_or_an_off_grid_baseline():
    """pareto / sensitivity / one_at_a_time raised a bare KeyError for a misspelt column, and a
    baseline off the grid (or naming no axis) gave an empty table without a word."""
    space = {"name": "a", "system": "trn2", "workload": {"model": "tiny", "batch": 2, "phase": "decode"},
             "axes": {"chip.hbm.bandwidth_Bps": ["1 TB/s", "2 TB/s", "3 TB/s"], "chip.core.sram.capacity_bytes": ["8 MiB", "16 MiB"]}}
    df = sweep(space, progress=False, workers=1)
    with pytest.raises(ConfigError, match="objective 'latncy_s' is not a column.*Did you mean latency_s"):
        pareto(df, {"latncy_s": "min"})
    with pytest.raises(ConfigError, match="metric 'speed' is not a column"):
        sensitivity(df, "speed")
    with pytest.raises(ConfigError, match="bins must be positive"):
        sensitivity(df, "latency_s", bins=0)
    with pytest.raises(ConfigError, match="baseline names 'chip.hbm'"):
        one_at_a_time(df, "latency_s", baseline={"chip.hbm": 1})
    with pytest.raises(ConfigError, match="not a value of that axis"):
        one_at_a_time(df, "latency_s", baseline={"chip.hbm.bandwidth_Bps": 123.0})
    at = one_at_a_time(df, "latency_s", baseline={"chip.hbm.bandwidth_Bps": 2e12})
    assert len(at) == 5 and at["baseline"].sum() == 2  # 3 bandwidths + 2 SRAM sizes, the baseline in each line


def test_a_sweep_pauses_the_cyclic_collector_and_restores_it():
    """The sweep's own work runs with Python's cyclic collector paused (its collections over the
    imported heap cost ~20 % of a one-core sweep) and leaves it as it found it, on an error too;
    evaluation makes no cycles for it to miss."""
    import gc

    sp = space({"chip.hbm.bandwidth_Bps": {"low": "20 GB/s", "high": "80 GB/s"}}, sampling="random", samples=40,
               seed=3)
    gc.collect()
    assert gc.isenabled()
    df = sweep(sp, workers=1, progress=False)
    assert len(df) == 40 and gc.isenabled()
    gc.disable()
    try:
        sweep(sp, workers=1, progress=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ConfigError):
        sweep(sp, workers=0, progress=False)
    assert gc.isenabled()
    assert gc.collect() < 200  # what 40 evaluations left unreachable


def test_a_bound_that_is_not_a_finite_number_is_refused(tmp_path):
    """A NaN bound compares false with every value, so the constraint would silently drop out
    (the fuzz suite found `max: {power_W: .nan}` accepted): refused at load, naming the field."""
    from accelsim.errors import ConfigError

    for bad in (".nan", ".inf", '"nan"', "true"):
        f = tmp_path / "s.yaml"
        f.write_text(f"name: x\nsystem: edge-npu\nworkload: {{model: tiny}}\naxes:\n  workload.batch: [1, 2]\n"
                     f"constraints:\n  max: {{power_W: {bad}}}\n")
        with pytest.raises(ConfigError, match=r"s\.yaml.*constraints\.max\.power_W"):
            DesignSpace.load(f)
