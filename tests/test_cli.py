"""The command line through click's CliRunner: outputs, files and error messages."""

import json

import pytest
from click.testing import CliRunner

from accelsim.cli import main

REQUIRED_KEYS = {"system", "model", "phase", "latency_s", "tokens_per_s", "mfu", "params",
                 "memory_bytes_per_chip", "time_by_bound_s", "num_ops"}


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_run_readable():
    r = run("run", "trn2", "llama-3-8b", "--phase", "decode", "--batch", "8", "--context", "2048")
    assert r.exit_code == 0, r.output
    for word in ("latency", "tokens/s", "time by bound", "memory", "mlp_up"):
        assert word in r.output


def test_run_json_keys():
    r = run("run", "trn2", "llama-3-8b", "--phase", "decode", "--batch", "8", "--context", "2048", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert REQUIRED_KEYS <= out.keys()
    assert out["system"] == "trn2" and out["model"] == "llama-3-8b" and out["phase"] == "decode"
    assert out["latency_s"] > 0 and out["tokens_per_s"] == pytest.approx(8 / out["latency_s"])
    assert sum(out["time_by_bound_s"].values()) == pytest.approx(out["latency_s"])
    assert 0 < out["mfu"] < 1


def test_run_out_dir(tmp_path):
    r = run("run", "a100-sxm-80gb", "tiny", "--phase", "prefill", "--seq", "128", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = (tmp_path / "ops.csv").read_text().splitlines()[0].split(",")
    for col in ("name", "layer", "kind", "engine", "flops", "bytes", "intensity", "compute_s", "memory_s",
                "time_s", "bound", "utilization"):
        assert col in header
    assert json.loads((tmp_path / "summary.json").read_text())["phase"] == "prefill"


def test_negative_bandwidth_is_refused():
    r = run("run", "trn2", "llama-3-8b", "--set", "chip.hbm.bandwidth_Bps=-5")
    assert r.exit_code == 2
    assert "chip.hbm.bandwidth_Bps" in r.output and "greater than 0" in r.output and "trn2.yaml" in r.output
    assert "Traceback" not in r.output


def test_set_with_units():
    slow = json.loads(run("run", "trn2", "llama-3-8b", "--set", "chip.hbm.bandwidth_Bps=1 TB/s", "--json").output)
    fast = json.loads(run("run", "trn2", "llama-3-8b", "--json").output)
    assert slow["latency_s"] > 2 * fast["latency_s"]  # decode is HBM-bound: 2.9 -> 1 TB/s


def test_misspelt_field(tmp_path):
    bad = tmp_path / "chip.yaml"
    bad.write_text((__import__("accelsim.arch.presets", fromlist=["x"]).preset_dir() / "trn2.yaml").read_text()
                   .replace("bandwidth_Bps: 2.9 TB/s", "bandwith_Bps: 2.9 TB/s"))
    r = run("validate", str(bad))
    assert r.exit_code == 1
    assert "chip.hbm.bandwith_Bps: unknown field" in r.output and str(bad) in r.output
    assert "chip.hbm.bandwidth_Bps: required field is missing" in r.output


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nchip: [unclosed\n")
    r = run("validate", str(bad))
    assert r.exit_code == 1 and "broken.yaml:" in r.output and "malformed YAML" in r.output


def test_unknown_names_suggest():
    r = run("run", "trn2", "llama-3-8c")
    assert r.exit_code == 2 and "llama-3-8b" in r.output
    r = run("run", "dgx-h10", "llama-3-8b")
    assert r.exit_code == 2 and "dgx-h100" in r.output


def test_tp_must_divide_heads():
    r = run("run", "dgx-h100", "llama-3-8b", "--tp", "3")
    assert r.exit_code == 2 and "32" in r.output and "3" in r.output and "Traceback" not in r.output


def test_tp_larger_than_system():
    r = run("run", "h100-sxm-80gb", "llama-3-8b", "--tp", "8")
    assert r.exit_code == 2 and "8 chips" in r.output
    # on Neuron chips --tp counts NeuronCores: 8 on Trainium2 (4 logical cores per chip) need 2 chips
    r = run("run", "trn2", "llama-3-8b", "--tp", "8")
    assert r.exit_code == 2 and "needs 2 chips" in r.output and "NeuronCores" in r.output


def test_presets_json_lists_everything():
    out = json.loads(run("presets", "--json").output)
    names = {s["name"] for s in out["systems"]}
    assert {"trn2", "dgx-h100", "tpu-v5e-256", "edge-npu"} <= names
    assert {"llama-3-8b", "resnet50"} <= {m["name"] for m in out["models"]}


def test_validate_shipped_preset():
    from accelsim.arch.presets import preset_dir

    r = run("validate", str(preset_dir() / "dgx-h100.yaml"))
    assert r.exit_code == 0 and "ok:" in r.output


def test_capacity_message_names_the_fix():
    r = run("run", "trn2", "llama-3-70b", "--batch", "8")
    assert r.exit_code == 0
    assert "does not fit" in r.output and "--tp 2" in r.output and "trn2-48xl" in r.output
    out = json.loads(run("run", "trn2", "llama-3-70b", "--batch", "8", "--json").output)
    assert out["fits_in_hbm"] is False and out["warnings"]
    # llama-3-70b bf16 weights alone are 141.1e9 B > 96 GiB (103.1e9 B)
    assert out["weight_bytes_per_chip"] == pytest.approx(2 * 70_553_706_496, rel=0.01)


@pytest.mark.parametrize("args, says", [
    (("--phase", "decode", "--microbatch", "4"), "apply to --phase train"),
    (("--phase", "decode", "--microbatch", "1"), "apply to --phase train"),  # given, even at its default
    (("--phase", "prefill", "--schedule", "gpipe"), "apply to --phase train"),
    (("--phase", "decode", "--pp", "2"), "apply to --phase train"),
    (("--phase", "decode", "--seq", "100"), "a decode step reads --context"),
    (("--phase", "train", "--batch", "8", "--context", "5"), "a training step reads --seq"),
])
def test_run_refuses_options_its_phase_would_ignore(args, says):
    """An option the phase does not read is a usage error naming it, not silently dropped."""
    r = CliRunner().invoke(main, ["run", "dgx-h100", "tiny", *args])
    assert r.exit_code == 2 and says in r.output, r.output


def test_run_takes_the_options_its_phase_reads():
    for args in (("--phase", "prefill", "--seq", "100", "--context", "50"), ("--phase", "decode", "--context", "9"),
                 ("--phase", "train", "--batch", "8", "--seq", "64", "--microbatch", "2", "--schedule", "gpipe")):
        r = CliRunner().invoke(main, ["run", "dgx-h100", "tiny", *args])
        assert r.exit_code == 0, r.output


def test_results_refuse_a_negative_top_and_a_file_for_a_folder(tmp_path):
    """top_ops(-1) returned every op but the last (pandas' head(-1)); write() onto a file raised a
    bare FileExistsError."""
    from accelsim.api import evaluate

    r = evaluate("dgx-h100", "tiny")
    with pytest.raises(ValueError, match="n must be >= 0"):
        r.top_ops(-1)
    assert len(r.top_ops(3)) == 3 and len(r.top_ops(0)) == 0
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        r.write(f)


def test_validate_knows_sweeps_recipes_tables_and_hf_configs(tmp_path):
    """`accelsim validate` read a sweep space or a compression recipe as a model ("family: required
    field is missing"), a measurement CSV as YAML; each kind is recognised now, and a YAML of no
    known kind is named as such."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cases = {"workloads/sweeps/tiny.yaml": "sweep space tiny-edge, 24 points",
             "workloads/recipes/w4a16-g128.yaml": "compression recipe w4a16-g128",
             "workloads/measurements/parts/nvidia_accelsim_h200.csv": "90 measurement rows",
             "tests/data/hf/llama-3-8b/config.json": "(Hugging Face config)"}
    for f, says in cases.items():
        r = run("validate", str(root / f))
        assert r.exit_code == 0 and says in r.output, r.output
    odd = tmp_path / "odd.yaml"
    odd.write_text("colour: blue\n")
    r = run("validate", str(odd))
    assert r.exit_code == 1 and "not a system, stack, kernel library, model, sweep space or compression" in r.output


@pytest.mark.parametrize("args, says", [
    (("--teacher-system", "dgx-a100"), "--teacher-system is where the --distill-from teacher runs"),
    (("--qat", "w4a8", "--teacher-system", "dgx-a100"), "--teacher-system is where the --distill-from teacher runs"),
    (("--distill-targets", "hidden"), "--distill-targets says what --distill-from matches"),
    (("--tokens", "1e9"), "--tokens is the length of a --qat, --distill-from or --prune run"),
])
def test_production_options_without_their_run_are_refused(args, says):
    """--teacher-system, --distill-targets and --tokens without the run they describe printed a
    plain training step (they were dropped silently)."""
    r = CliRunner().invoke(main, ["run", "dgx-h100", "tiny", "--phase", "train", "--batch", "16", "--seq", "64",
                                  "--dp", "8", *args])
    assert r.exit_code == 2 and says in r.output, r.output
