"""Fuzzing the inputs (issue 13, item 5): hostile values in system, stack, model, compression
recipe, sweep space and calibration YAML files, CLI overrides, measurement CSVs (kernel rows, and
whole training and serving rows predicted), profiler traces, `run` / `collective` options and
Hugging Face configs must end in a clean refusal (an accelsim error
naming the file and field, or a non-zero exit with one message and no traceback) or a valid
result, never an exception of another kind. A fixed, derandomised profile keeps CI time small;
the counts are printed (``pytest tests/test_fuzz.py -s``) for the record."""

import json
from pathlib import Path
import math

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.arch import load_system
from accelsim.arch.presets import load_raw
from accelsim.cli import main
from accelsim.correlate.schema import load_measurements
from accelsim.errors import AccelsimError
from accelsim.workload.hf import load_hf_config

PROFILE = dict(max_examples=60, derandomize=True, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COUNTS: dict[str, dict[str, int]] = {}

HOSTILE = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, 0, 1e308, -1e308, 2**70, -(2**70), True, False,
                     None, "", "nan", "1:30", "-5 TB/s", "3 parsecs", "0x10", "1e999", "\x00", "=cmd|' /C calc'!A0",
                     [], {}, [1, 2], {"a": 1}, "true", "NaN GB/s"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(max_size=12),
)


def _count(kind: str, refused: bool) -> None:
    c = COUNTS.setdefault(kind, {"tried": 0, "refused": 0, "accepted": 0})
    c["tried"] += 1
    c["refused" if refused else "accepted"] += 1


def _load_or_refuse(kind: str, load, path) -> object | None:
    """``load(path)``: a result, or an accelsim error naming the file (counted either way)."""
    try:
        got = load(path)
    except AccelsimError as e:
        assert path.name in str(e)
        _count(kind, True)
        return None
    _count(kind, False)
    return got


def _leaves(d, prefix=()):
    for k, v in d.items():
        path = (*prefix, k)
        if isinstance(v, dict):
            yield from _leaves(v, path)
        elif not isinstance(v, list):
            yield path


RAW, _ = load_raw("trn2")
PATHS = sorted(_leaves(RAW))
DOTTED = sorted(".".join(p) for p in PATHS if p[0] != "sources")


def _set(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


@settings(**PROFILE)
@given(path=st.sampled_from(PATHS), value=HOSTILE)
def test_system_yaml_fields(tmp_path, path, value):
    spec = _fuzz_file(tmp_path, "system YAML fields", RAW, path, value, load_system, "sys.yaml")
    if spec is not None:  # accepted: a step on it is finite or refused
        _steps_are_finite(spec, where=(path, value))


def _steps_are_finite(system, stack=None, tp: int = 1, where=(), model="tiny", compression=None) -> None:
    """A decode, a prefill and a training step of ``model`` on ``system`` under ``stack``: refused
    (an accelsim error), or a finite, positive time and a finite energy."""
    from accelsim.api import evaluate, evaluate_train
    from accelsim.workload.parallel import ParallelPlan

    for phase in ("decode", "prefill", "train"):
        try:
            if phase == "train":
                r = evaluate_train(system, model, 4, 64, plan=ParallelPlan(tp=tp), stack=stack, compression=compression)
                t = r.summary["step_time_s"]
            else:
                r = evaluate(system, model, phase=phase, batch=2, seq_len=64, context_len=64, tp=tp, stack=stack,
                             compression=compression)
                t = r.summary["latency_s"]
        except AccelsimError:
            continue
        assert math.isfinite(t) and t > 0, (phase, where)
        assert math.isfinite(r.summary["energy_J"]) and r.summary["energy_J"] >= 0, (phase, where)


def _numbers(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _numbers(v)
    elif isinstance(d, (list, tuple)):
        for v in d:
            yield from _numbers(v)
    elif isinstance(d, float):
        yield d


@settings(**{**PROFILE, "max_examples": 40})
@given(path=st.sampled_from(DOTTED + ["chip..hbm", "a.b.c", "", "chip.hbm.bandwidth_Bps.x"]), value=HOSTILE)
def test_cli_overrides(path, value):
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, float) else repr(value)
    r = CliRunner().invoke(main, ["run", "trn2", "tiny", "--set", f"{path}={text}"])
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), (path, text, r.exception)
    if r.exit_code == 0:
        assert "latency" in r.output and "nan" not in r.output.split("latency")[1].split("\n")[0]
    _count("CLI --set overrides", r.exit_code != 0)


COLUMNS = ["id", "kind", "system", "chips", "dtype", "m", "n", "k", "bytes", "ranks", "measured_time_s", "source"]
GOOD = ["g1", "gemm", "h100-sxm-80gb", "1", "bf16", "64", "64", "64", "", "", "1e-5", "me"]


@settings(**PROFILE)
@given(col=st.integers(min_value=0, max_value=len(COLUMNS) - 1), value=HOSTILE, drop=st.booleans())
def test_measurement_csv_cells(tmp_path, col, value, drop):
    cells = list(GOOD)
    cells[col] = str(value).replace("\n", " ").replace("\r", " ")
    cols = list(COLUMNS)
    if drop:
        del cols[col], cells[col]
    f = tmp_path / "m.csv"
    import csv

    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerow(cells)
    _load_or_refuse("measurement CSV cells", load_measurements, f)


HF = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
      "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 100, "hidden_act": "silu",
      "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "max_position_embeddings": 128}


@settings(**PROFILE)
@given(key=st.sampled_from(sorted(HF) + ["num_experts", "head_dim", "attention_bias"]), value=HOSTILE)
def test_hugging_face_config_values(tmp_path, key, value):
    cfg = {**HF, key: value}
    f = tmp_path / "config.json"
    try:
        f.write_text(json.dumps(cfg, allow_nan=True))
    except (TypeError, ValueError):
        return
    cfg = _load_or_refuse("Hugging Face config values", load_hf_config, f)
    if cfg is not None:  # accepted: steps of it finite or refused
        _steps_are_finite("trn2", model=cfg, where=(key, value))


STACK = {**yaml.safe_load((Path(__file__).resolve().parents[1] / "stacks" / "cuda-native.yaml").read_text()),
         "name": "fuzzed", "serving": {"name": "engine", "step_overhead_s": 1e-4, "request_overhead_s": 1e-4,
                                       "decode_bucket_tokens": 128},
         "training": {"name": "framework", "recompute": "selective", "zero": 1, "vocab_multiple": 128}}
STACK.pop("sources", None)
STACK_PATHS = sorted(_leaves(STACK))


@settings(**PROFILE)
@given(path=st.sampled_from(STACK_PATHS), value=HOSTILE)
def test_stack_yaml_fields(tmp_path, path, value):
    """A software stack file with one hostile value (the runtime, collective library, serving
    engine and training framework blocks): refused naming the file, or every number finite and a
    step under it finite or refused."""
    from accelsim.stack.presets import load_stack

    stack = _fuzz_file(tmp_path, "stack YAML fields", STACK, path, value, load_stack, "stack.yaml")
    if stack is not None:
        _steps_are_finite("dgx-h100", stack, tp=2, where=(path, value))


ROOT = Path(__file__).resolve().parents[1]
MODEL = yaml.safe_load((ROOT / "workloads" / "tiny.yaml").read_text())
RECIPE = yaml.safe_load((ROOT / "workloads" / "recipes" / "w4a8-mxfp4-2of4.yaml").read_text())
SPACE = yaml.safe_load((ROOT / "workloads" / "sweeps" / "tiny.yaml").read_text())
CALIBRATION = {"chip": "trainium2", "format": 2, "stack": "neuron",
               "hardware": {"hbm_efficiency": 0.8, "tensor_efficiency": 0.9, "vector_efficiency": 1.0},
               "stack_costs": {"launch_overhead_s": 1e-6, "collective_overhead_s": 2e-6}}


def _fuzz_file(tmp_path, kind: str, doc: dict, path, value, load, name: str = "f.yaml"):
    """Write ``doc`` with one hostile value at ``path`` and load it: refused naming the file, or
    accepted (returned) with every number it holds finite."""
    raw = json.loads(json.dumps(doc))
    _set(raw, path, value)
    f = tmp_path / name
    try:
        f.write_text(yaml.safe_dump(raw, allow_unicode=True))
    except (yaml.YAMLError, ValueError):
        return None
    got = _load_or_refuse(kind, load, f)
    if got is not None and hasattr(got, "model_dump"):
        assert all(math.isfinite(x) for x in _numbers(got.model_dump()))
    return got


@settings(**PROFILE)
@given(path=st.sampled_from(sorted(_leaves(MODEL))), value=HOSTILE)
def test_model_yaml_fields(tmp_path, path, value):
    from accelsim.workload import load_model

    cfg = _fuzz_file(tmp_path, "model YAML fields", MODEL, path, value, load_model)
    if cfg is not None:
        _steps_are_finite("trn2", model=cfg, where=(path, value))


@settings(**PROFILE)
@given(path=st.sampled_from(sorted(_leaves(RECIPE))), value=HOSTILE)
def test_compression_recipe_fields(tmp_path, path, value):
    from accelsim.compress.recipes import Compression

    recipe = _fuzz_file(tmp_path, "compression recipe fields", RECIPE, path, value, Compression.load)
    if recipe is not None:
        _steps_are_finite("trn2", model="llama-3-8b", compression=recipe, where=(path, value))


@settings(**PROFILE)
@given(path=st.sampled_from(sorted(_leaves(SPACE))), value=HOSTILE)
def test_sweep_space_fields(tmp_path, path, value):
    from accelsim.sweep import DesignSpace

    space = _fuzz_file(tmp_path, "sweep space fields", SPACE, path, value, DesignSpace.load)
    if space is not None:  # accepted: its points enumerate or are refused, naming the space
        try:
            space.points()
        except AccelsimError:
            pass


@settings(**PROFILE)
@given(path=st.sampled_from(sorted(_leaves(CALIBRATION))), value=HOSTILE)
def test_calibration_file_fields(tmp_path, path, value):
    def load(f):
        return load_system("trn2", calibration=f)

    _fuzz_file(tmp_path, "calibration file fields", CALIBRATION, path, value, load)


STEP_ROWS = {
    "train": {"id": "t1", "kind": "model", "system": "dgx-h100", "chips": "8", "dtype": "bf16", "model": "tiny",
              "phase": "train", "seq_len": "512", "tp": "1", "pp": "1", "dp": "8", "cp": "1", "microbatch": "2",
              "global_batch": "16", "recompute": "selective", "zero": "3", "stack": "torchtitan",
              "measured_time_s": "0.01", "source": "me"},
    "serve": {"id": "s1", "kind": "model", "system": "trn1-32xl", "chips": "1", "dtype": "bf16", "model": "tiny",
              "phase": "decode", "metric": "tpot", "batch": "4", "input_len": "128", "output_len": "256", "tp": "2",
              "stack": "transformers-neuronx", "measured_time_s": "0.001", "source": "me"}}


@settings(**{**PROFILE, "max_examples": 40})
@given(which=st.sampled_from(sorted(STEP_ROWS)), data=st.data(), value=HOSTILE)
def test_training_and_serving_rows_predicted_or_refused(tmp_path, which, data, value):
    """A whole-step row (training or serving columns) with one hostile cell, through
    ``correlate``: refused naming the file, or predicted (a finite time) or skipped with a reason."""
    import csv

    from accelsim.correlate import correlate

    row = dict(STEP_ROWS[which])
    col = data.draw(st.sampled_from(sorted(row)))
    row[col] = str(value).replace("\n", " ").replace("\r", " ")
    f = tmp_path / "steps.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(row))
        w.writerow(list(row.values()))
    res = _load_or_refuse("training / serving rows", correlate, f)
    if res is not None:
        r = res.per_row.iloc[0]
        assert (bool(r["skipped"]) and r["reason"]) or math.isfinite(r["predicted_time_s"]), (col, value, r.to_dict())


TRACE = json.loads((ROOT / "tests" / "data" / "profiles" / "gpu_device_bound.json").read_text())
TRACE_FIELDS = sorted({(i, k) for i, ev in enumerate(TRACE["traceEvents"]) for k in ev if k != "args"}
                      | {(i, "args", k) for i, ev in enumerate(TRACE["traceEvents"]) for k in ev.get("args", {})})


@settings(**{**PROFILE, "max_examples": 40})
@given(field=st.sampled_from(TRACE_FIELDS), value=HOSTILE, command=st.sampled_from(["report", "whatif", "correlate"]))
def test_profiler_trace_fields(tmp_path, field, value, command):
    """A PyTorch profiler trace with one hostile event field, through ``profile report`` /
    ``profile whatif`` / ``correlate``: a result, or one message and a non-zero exit, never a
    traceback."""
    trace = json.loads(json.dumps(TRACE))
    target = trace["traceEvents"][field[0]]
    if field[1] == "args":
        target["args"][field[2]] = value
    else:
        target[field[1]] = value
    f = tmp_path / "trace.json"
    try:
        f.write_text(json.dumps(trace, allow_nan=True))
    except (TypeError, ValueError):
        return
    args = {"report": ["profile", "report", str(f), "--system", "h100-sxm-80gb"],
            "whatif": ["profile", "whatif", str(f), "--system", "h100-sxm-80gb"],
            "correlate": ["correlate", str(f), "--system", "h100-sxm-80gb"]}[command]
    r = CliRunner().invoke(main, args)
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), (field, value, command, repr(r.exception))
    _count("profiler trace fields", r.exit_code != 0)


RUN_OPTIONS = ["--batch", "--seq", "--context", "--tp", "--pp", "--dp", "--ep", "--cp", "--microbatch", "--vpp",
               "--chips", "--zero", "--vocab-tiles", "--dtype", "--weights", "--activations", "--kv", "--sparsity",
               "--recipe", "--stack", "--phase", "--selective", "--recompute", "--attention", "--fidelity"]


def _cli_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value) if not isinstance(value, float) else repr(value)


PLAUSIBLE = st.one_of(HOSTILE, st.integers(min_value=0, max_value=4096),
                     st.sampled_from(["fp8", "bf16", "int4-g128", "mxfp4", "2:4", "selective", "full", "op", "event",
                                      "prefill", "decode", "train", "megatron", "vllm", "neuron", "w4a16-g128"]))
"""Hostile values and values an option may take, so that accepted runs are exercised too."""


@settings(**{**PROFILE, "max_examples": 40})
@given(option=st.sampled_from(RUN_OPTIONS), value=PLAUSIBLE, train=st.booleans())
def test_run_options(option, value, train):
    """``accelsim run`` with one hostile option value (a training or an inference step): a result
    without NaN, or one message and a non-zero exit, never a traceback."""
    text = _cli_text(value)
    args = ["run", "trn2", "tiny", option, text] + (["--phase", "train", "--batch", "8", "--seq", "64"]
                                                      if train and option not in ("--phase", "--batch", "--seq") else [])
    r = CliRunner().invoke(main, args)
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), (option, text, train, repr(r.exception))
    if r.exit_code == 0:
        assert "nan " not in r.output.lower() and " nan" not in r.output.lower(), (option, text, r.output)
    _count("run options", r.exit_code != 0)


@settings(**{**PROFILE, "max_examples": 40})
@given(option=st.sampled_from(["--bytes", "--ranks", "--sweep", "--algorithm", "--stack", "--set"]),
       value=st.one_of(PLAUSIBLE, st.sampled_from(["8B:16GiB", "1KiB:1GiB", "ring", "direct", "in_switch", "tree",
                                                    "cuda-native", "64 KiB", "1e9"])),
       kind=st.sampled_from(["allreduce", "allgather", "alltoall", "sendrecv"]))
def test_collective_options(option, value, kind):
    """``accelsim collective`` with one hostile option value."""
    text = _cli_text(value)
    args = ["collective", kind, "--system", "dgx-h100", "--ranks", "2" if kind == "sendrecv" else "8",
            "--bytes", "1 MiB", option, text]
    r = CliRunner().invoke(main, args)
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), (option, text, kind, repr(r.exception))
    _count("collective options", r.exit_code != 0)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for kind, c in COUNTS.items():
        print(f"\nfuzz {kind}: {c['tried']} tried, {c['refused']} refused cleanly, {c['accepted']} accepted (valid)")
