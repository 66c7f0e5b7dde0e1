"""Hostile input is refused at once with a message naming the file (issue 13, item 4): devices
and folders are never read as configs, YAML may not expand past a node budget or nest too
deeply, non-UTF-8 text and malformed override paths are refused. Time limits here are hang
guards, not speed tests."""

import time

import pytest
from click.testing import CliRunner

from accelsim.cli import main
from accelsim.configio import MAX_YAML_DEPTH, apply_overrides, load_yaml, parse_yaml
from accelsim.errors import ConfigError, WorkloadError
from accelsim.sweep.space import DesignSpace
from accelsim.workload.hf import load_hf_config

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh"))


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args", [("run", "/dev/zero", "llama-3-8b"), ("run", "trn2", "/dev/zero")])
def test_a_device_is_never_read_as_a_config(args):
    t = time.perf_counter()
    r = run(*args)
    assert time.perf_counter() - t < 10  # hang guard
    assert r.exit_code != 0 and "/dev/zero: not a regular file" in r.output
    assert "Traceback" not in r.output


def test_a_measurement_row_naming_a_device_is_skipped_with_the_reason(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("id,kind,system,chips,dtype,m,n,k,measured_time_s,source\n"
                   "x1,gemm,/dev/zero,1,bf16,64,64,64,1e-5,me\n")
    r = run("correlate", str(csv))
    assert r.exit_code == 0, r.output
    assert "skipped x1: /dev/zero: not a regular file" in r.output


def test_an_alias_bomb_in_a_sweep_axis_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("system: trn2\nworkload: {model: llama-3-8b, layers: 1}\n" + BOMB +
                    "axes:\n  chip.hbm.bandwidth_Bps: *h\n")
    t = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml: refused: expands to more than"):
        DesignSpace.load(path)
    assert time.perf_counter() - t < 1.0
    r = run("sweep", str(path), "-o", str(tmp_path / "out.parquet"))
    assert r.exit_code != 0 and "alias bomb" in r.output and "Traceback" not in r.output


def test_deep_nesting_non_utf8_and_bad_override_paths_are_refused(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: refused: nested"):
        load_yaml(deep)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.yaml: not UTF-8 text \(byte 9"):
        load_yaml(latin)
    with pytest.raises(ConfigError, match="folder"):
        load_yaml(tmp_path)
    with pytest.raises(ConfigError, match="empty path segment"):
        apply_overrides({"chip": {}}, ["chip..hbm=1"])
    with pytest.raises(ConfigError, match="refused: nested"):
        apply_overrides({"x": 1}, ["x=" + "[" * 100 + "]" * 100])
    # a well-formed document with anchors within the budget still loads
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "ok") == {"a": [1, 2], "b": [1, 2]}


def test_a_hugging_face_config_that_is_a_device_or_too_deep_is_refused(tmp_path):
    with pytest.raises(WorkloadError, match="not a regular file"):
        load_hf_config("/dev/zero")
    deep = tmp_path / "config.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(WorkloadError, match="nested too deeply|expected a JSON object"):
        load_hf_config(deep)


def test_numbers_are_finite_and_never_booleans_and_base_60_is_not_a_number(tmp_path):
    for bad, msg in (("chip.core.tensor.macs_per_cycle.bf16=.nan", "finite number"),
                     ("chip.core.tensor.rows=true", "expected a number, got the boolean true"),
                     ("chip.hbm.bandwidth_Bps=1:30", "unknown unit ':30'")):
        r = run("run", "trn2", "llama-3-8b", "--set", bad)
        assert r.exit_code != 0 and msg in r.output and "Traceback" not in r.output, bad
    assert parse_yaml("t: 1:30", "x") == {"t": "1:30"}  # YAML 1.1 would read 90


def test_a_hugging_face_boolean_must_be_a_boolean(tmp_path):
    import json

    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_hidden_layers": 2, "vocab_size": 100, "hidden_act": "silu", "rms_norm_eps": 1e-5,
           "tie_word_embeddings": "false"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(WorkloadError, match=r"tie_word_embeddings must be true or false, got 'false'"):
        load_hf_config(path)
    path.write_text(json.dumps({**cfg, "tie_word_embeddings": False}))
    assert load_hf_config(path).tied_embeddings is False


def test_huge_integers_are_refused_and_csv_output_cannot_run_formulas(tmp_path):
    import pandas as pd

    from accelsim.configio import spreadsheet_safe

    r = run("run", "trn2", "llama-3-8b", "--set", "chip.core.tensor.rows=100000000000000000000")
    assert r.exit_code != 0 and "2^53" in r.output and "Traceback" not in r.output
    df = spreadsheet_safe(pd.DataFrame({"reason": ["=HYPERLINK(\"x\")", "+1", "ok", None], "t": [1.0, -2.0, 3.0, 4.0]}))
    assert df["reason"].tolist()[:3] == ["'=HYPERLINK(\"x\")", "'+1", "ok"] and df["t"].tolist() == [1.0, -2.0, 3.0, 4.0]


def test_sweep_output_never_overwrites_a_foreign_file_and_a_truncated_one_is_refused(tmp_path):
    space = {"system": "trn2", "workload": {"model": "llama-3-8b", "layers": 1, "batch": 8},
             "axes": {"chip.hbm.bandwidth_Bps": ["2 TB/s", "3 TB/s"]}}
    import yaml

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(space))
    notes = tmp_path / "notes.parquet"
    notes.write_text("my precious notes")
    r = run("sweep", str(spec), "-o", str(notes), "--no-progress")
    assert r.exit_code != 0 and "refusing to overwrite" in r.output and notes.read_text() == "my precious notes"
    out = tmp_path / "out.parquet"
    assert run("sweep", str(spec), "-o", str(out), "--no-progress").exit_code == 0
    assert run("sweep", str(spec), "-o", str(out), "--no-progress").exit_code == 0  # same space: replaced
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**space, "axes": {"chip.hbm.bandwidth_Bps": ["5 TB/s"]}}))
    r = run("sweep", str(other), "-o", str(out), "--no-progress")
    assert r.exit_code != 0 and "another design space" in r.output
    assert run("sweep", str(other), "-o", str(out), "--no-progress", "--overwrite").exit_code == 0
    out.write_bytes(out.read_bytes()[: 100])  # truncated
    r = run("sweep", str(other), "-o", str(out), "--no-progress", "--resume")
    assert r.exit_code != 0 and "not a readable parquet sweep result" in r.output and "Traceback" not in r.output


def test_runs_beyond_the_resource_limits_are_refused_at_once_and_a_flag_raises_them(tmp_path):
    from accelsim import limits
    from accelsim.lower.schedule import BUSY, CAT_TENSOR, ScheduleBuilder

    t = time.perf_counter()
    r = run("run", "dgx-h100", "tiny", "--phase", "train", "--batch", "1000000", "--seq", "128", "--dp", "1000000")
    assert r.exit_code != 0 and "1000000 chips" in r.output and "--max-chips" in r.output
    r = run("collective", "allreduce", "--system", "dgx-h100", "--ranks", "10000000", "--bytes", "1MiB")
    assert r.exit_code != 0 and "10,000,000 chips" in r.output
    assert time.perf_counter() - t < 20  # hang guard
    r = run("--max-chips", "131072", "collective", "allreduce", "--system", "dgx-h100", "--ranks", "65544",
            "--bytes", "1MiB")
    assert "more than the" not in r.output
    limits.set_limits(chips=65_536)
    old = limits.max_tasks()
    limits.set_limits(tasks=1_000_000)
    try:
        b = ScheduleBuilder()
        op = b.op("x", "x", "x")
        res = b.resource("r", "tensor")
        with pytest.raises(WorkloadError, match="would need 1,048,576 tasks or more.*past the limit of 1,000,000.*--max-tasks"):
            for _ in range(3_000_000):
                b.task(BUSY, CAT_TENSOR, op, (), resource=res, duration_s=1e-9)
        # a training step's pipeline schedule is sized before it is built: 200,000 microbatches
        # over 2 stages are 2.4 M tasks of 480 B, refused at once
        t = time.perf_counter()
        r = run("run", "dgx-h100", "llama-3-8b", "--phase", "train", "--batch", "200000", "--seq", "512", "--pp", "2")
        assert r.exit_code != 0 and "pipeline schedule of 200,000 microbatches over 2 stages would need 2,400,000" in r.output
        assert time.perf_counter() - t < 10  # hang guard
    finally:
        limits.set_limits(tasks=old)
    # whatever the flag, task ids are 32-bit
    limits.set_limits(tasks=2**40)
    try:
        with pytest.raises(WorkloadError, match="2\\^31"):
            limits.check_tasks(2**31)
        limits.check_tasks(2**31 - 1)
    finally:
        limits.set_limits(tasks=old)
    import yaml

    from accelsim.workload import load_model

    huge = tmp_path / "huge.yaml"
    huge.write_text(yaml.safe_dump({**load_model("tiny").model_dump(mode="json"), "num_hidden_layers": 10**7}))
    with pytest.raises(WorkloadError, match=r"huge\.yaml.*num_hidden_layers"):
        load_model(huge)


def test_sweep_spaces_refuse_booleans_and_nan_for_numbers():
    base = {"system": "trn2", "workload": {"model": "llama-3-8b", "layers": 1, "batch": 8}}
    with pytest.raises(ConfigError, match="boolean"):
        DesignSpace.load({**base, "workload": {**base["workload"], "batch": True}})
    with pytest.raises(ConfigError, match="boolean"):
        DesignSpace.load({**base, "axes": {"chip.hbm.bandwidth_Bps": {"low": True, "high": 2, "num": 3}}})
    with pytest.raises(ConfigError, match="finite"):
        DesignSpace.load({**base, "axes": {"chip.hbm.bandwidth_Bps": {"low": float("nan"), "high": 2, "num": 3}}})


def test_a_boolean_field_takes_only_a_boolean(tmp_path):
    """pydantic reads the strings "yes" or "off" and the numbers 1 or 0 as booleans; a spec, stack
    or plan field that is a switch takes true or false only, and the error names the field."""
    from accelsim.api import evaluate_train, load_system

    from pathlib import Path

    src = (Path(__file__).parents[1] / "arch_configs" / "edge-npu.yaml").read_text()
    assert "preload_overlap: true" in src
    for bad in ("1", '"off"', "0.0"):  # (YAML's own yes / no are booleans)
        p = tmp_path / f"npu_{bad.strip(chr(34))}.yaml"
        p.write_text(src.replace("preload_overlap: true", f"preload_overlap: {bad}"))
        with pytest.raises(ConfigError, match="preload_overlap.*expected true or false"):
            load_system(p)
    for bad in ("yes", 1):
        with pytest.raises(WorkloadError, match="sp: .*expected true or false"):
            evaluate_train("dgx-h100", "tiny", 8, 64, tp=2, dp=4, sp=bad)
    assert evaluate_train("dgx-h100", "tiny", 8, 64, tp=2, dp=4, sp=False).summary["step_time_s"] > 0
    r = CliRunner().invoke(main, ["run", "edge-npu", "tiny", "--set", "chip.core.tensor.preload_overlap=false"])
    assert r.exit_code == 0, r.output


def test_a_latency_stops_at_an_hour():
    """A latency of 1e308 s loaded and made every step infinite: a Seconds field (a latency or an
    overhead) refuses a value beyond an hour, naming the field; a millisecond is fine."""
    from accelsim.arch import load_system
    from accelsim.errors import ConfigError

    for bad in ("1e308", "7200", "3601 s"):
        with pytest.raises(ConfigError, match="chip.dma.setup_latency_s"):
            load_system("trn2", [f"chip.dma.setup_latency_s={bad}"])
    assert load_system("trn2", ["chip.dma.setup_latency_s=1 ms"]).chip.dma.setup_latency_s == pytest.approx(1e-3)
