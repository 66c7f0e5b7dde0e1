"""Measurements, predictions and their comparison (accelsim.correlate): the schema and its error
messages, the mapping of each row kind to a prediction, the error figures, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import accelsim
from accelsim.api import evaluate, evaluate_train
from accelsim.arch import load_system
from accelsim.arch.presets import preset_dir
from accelsim.cli import main
from accelsim.correlate import correlate, load_measurements
from accelsim.correlate.compare import BY_KIND_COLUMNS, PER_ROW_COLUMNS
from accelsim.correlate.predict import Predictor
from accelsim.correlate.schema import COLUMNS, KINDS, rows_of
from accelsim.errors import MeasurementError
from accelsim.cost.collectives import collective_cost
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.workload import build, load_model
from accelsim.workload.ops import LayerNorm, MatMul

MEAS = Path(__file__).resolve().parents[1] / "workloads" / "measurements"
A100_PARTS = MEAS / "parts" / "a100_llmcompass.csv"
A100 = [A100_PARTS, MEAS / "validation" / "a100_llmcompass_gpt3.csv"]  # kernels + collectives, GPT-3 layer


@pytest.fixture(scope="module")
def a100():
    return correlate(A100, mode="ideal")  # the ideal bound: the figures below are hand-checked against it


def write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def frame(*rows: dict) -> pd.DataFrame:
    """A measurement DataFrame: every schema column, the given cells filled."""
    return pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows])


# ------------------------------------------------------------------------------------------
# the shipped A100 file


def test_shipped_split_is_the_shared_file():
    """parts/ (kernels, collectives) and validation/ (the GPT-3 layer) hold exactly the rows of
    the shared research file, split by kind."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "measurements" / "a100_calibration.csv"
    if shared.exists():
        import csv

        def rows(p):  # every column but ``stack`` and ``timing`` (the project's copies say how they were run)
            data = list(csv.reader(open(p, newline="")))
            keep = [i for i, c in enumerate(data[0]) if c not in ("stack", "timing")]
            return sorted(tuple(r[i] for i in keep) for r in data[1:])

        parts, val = rows(A100[0]), rows(A100[1])
        assert sorted(parts + val) == rows(shared)
        assert {r[1] for r in val} == {"layer_op", "layer"} and "layer" not in {r[1] for r in parts}
        # PyTorch 2.0: torch.softmax / torch.bmm eager; layernorm and GELU through @torch.compile functions
        # (LLMCompass software_model/layernorm.py and gelu.py), all timed one call at a time
        stacks = {(r["kind"], r["stack"]) for r in csv.DictReader(open(A100[0]))}
        assert {s for k, s in stacks if k in ("layernorm", "gelu")} == {"inductor-cuda"}
        assert {s for k, s in stacks if k not in ("layernorm", "gelu")} == {"cuda-eager"}


def test_every_a100_row_is_predicted(a100):
    pr = a100.per_row
    assert list(pr.columns) == list(PER_ROW_COLUMNS)
    assert len(pr) == 56 and a100.overall["rows"] == 56
    assert a100.overall["skipped"] == 0 and a100.skipped == []
    assert (pr["predicted_time_s"] > 0).all() and pr["bound"].isin(
        ["compute", "memory", "vector", "interconnect", "overhead"]).all()
    assert set(pr["kind"]) == {"gemm", "softmax", "layernorm", "gelu", "allreduce", "layer_op", "layer"}


def test_uncalibrated_a100_figures(a100):
    """The numbers the README quotes (neutral presets: peak rates, no launch overhead)."""
    k = a100.by_kind.set_index("kind")
    assert list(a100.by_kind.columns) == list(BY_KIND_COLUMNS)
    assert k.loc["gemm", "n"] == 20
    assert k.loc["gemm", "mape"] == pytest.approx(0.281, abs=0.002)  # 0.290 before split-K reductions followed the last wave
    assert k.loc["gemm", "median_ape"] == pytest.approx(0.131, abs=0.002)  # 0.162 before (0.174 before the split-K tail read every late partial)
    assert k.loc["allreduce", "mape"] == pytest.approx(0.389, abs=0.002)
    assert (k["bias"] < 1).all()  # uncalibrated predictions are best cases: fast everywhere but one row


def test_error_figures_by_hand():
    """ape, error, MAPE, median, worst and bias (geometric mean of predicted / measured)."""
    df = frame({"id": "a", "kind": "gemm", "system": "a100-sxm-80gb", "m": 4096, "n": 4096, "k": 4096,
                "dtype": "fp16", "measured_time_s": 1.0},
               {"id": "b", "kind": "gemm", "system": "a100-sxm-80gb", "m": 8192, "n": 8192, "k": 8192,
                "dtype": "fp16", "measured_time_s": 1.0})
    res = correlate(df)
    p = res.per_row["predicted_time_s"].to_numpy()
    assert res.per_row["ape"].tolist() == pytest.approx(list(np.abs(p - 1)))
    assert res.per_row["error"].tolist() == pytest.approx(list(p - 1))
    g = res.by_kind.set_index("kind").loc["gemm"]
    assert g["mape"] == pytest.approx(np.mean(np.abs(p - 1)))
    assert g["max_ape"] == pytest.approx(np.max(np.abs(p - 1)))
    assert g["bias"] == pytest.approx(math.sqrt(p[0] * p[1]))
    assert res.overall["mape"] == pytest.approx(g["mape"])


def test_to_json(a100):
    out = json.loads(a100.to_json())
    for key in ("rows", "predicted", "skipped", "mape", "by_kind", "per_row", "skipped_rows"):
        assert key in out
    assert out["rows"] == 56 and out["predicted"] == 56 and out["skipped"] == 0
    assert set(out["by_kind"]["gemm"]) >= {"n", "mape", "max_ape", "bias"}
    assert out["by_kind"]["gemm"]["n"] == 20
    assert len(out["per_row"]) == 56
    assert set(out["per_row"][0]) >= {"id", "predicted_time_s", "measured_time_s", "ape"}


def test_public_api():
    res = accelsim.correlate(A100)  # the package is callable
    assert res.overall["predicted"] == 56
    df = load_measurements(A100)
    assert accelsim.correlate(df).overall["mape"] == pytest.approx(res.overall["mape"])


# ------------------------------------------------------------------------------------------
# each kind's prediction, derived by hand from the cost functions


def test_gemm_row_is_one_shared_weight_matmul(a100):
    cm = ChipModel(load_system("a100-sxm-80gb"))
    expect = op_cost(cm, MatMul(m=8192, n=4096, k=4096, dtype_a="fp16", dtype_b="fp16", dtype_out="fp16",
                                b_shared=True)).time_s
    row = a100.per_row.set_index("id").loc["m016"]
    assert row["predicted_time_s"] == pytest.approx(expect)


def test_batched_gemm_and_vector_rows():
    df = frame({"id": "g", "kind": "gemm", "system": "a100-sxm-80gb", "m": 128, "n": 256, "k": 512, "batch": 4,
                "dtype": "bf16", "measured_time_s": 1e-5},
               {"id": "n", "kind": "layernorm", "system": "a100-sxm-80gb", "rows": 1024, "cols": 4096,
                "dtype": "fp16", "measured_time_s": 1e-5},
               {"id": "s", "kind": "silu_mul", "system": "a100-sxm-80gb", "rows": 64, "cols": 1000, "dtype": "bf16",
                "measured_time_s": 1e-5})
    res = correlate(df, mode="ideal").per_row.set_index("id")
    cm = ChipModel(load_system("a100-sxm-80gb"))
    g = op_cost(cm, MatMul(m=128, n=256, k=512, batch=4, dtype_a="bf16", dtype_b="bf16", dtype_out="bf16",
                           b_shared=True))
    assert res.loc["g", "predicted_time_s"] == pytest.approx(g.time_s)
    assert res.loc["n", "predicted_time_s"] == pytest.approx(op_cost(cm, LayerNorm(rows=1024, cols=4096,
                                                                                   dtype="fp16")).time_s)
    assert res.loc["s", "predicted_time_s"] > 0 and not res.loc["s", "skipped"]


def test_allreduce_row_is_collective_cost(a100):
    expect = collective_cost(load_system("a100x4-nvlink"), "allreduce", 1073741824.0, 4)
    row = a100.per_row.set_index("id").loc["m152"]
    assert row["predicted_time_s"] == pytest.approx(expect.time_s)
    assert row["bound"] == "interconnect"


def _one_layer(phase: str, **kw):
    cfg = load_model("gpt3-175b")
    cfg = cfg.model_copy(update={"num_hidden_layers": 1, "max_position_embeddings": 4096})
    g = build(cfg, phase, batch=8, tp=4, dtype="fp16", attention="unfused", **kw)
    cm = ChipModel(load_system("a100x4-nvlink"))
    return [(o.role, op_cost(cm, o).time_s) for o in g.ops() if o.layer == 0]


def test_layer_op_and_layer_rows_sum_the_unfused_layer(a100):
    rows = a100.per_row.set_index("id")
    prefill = _one_layer("prefill", seq_len=2048)
    decode = _one_layer("decode", context_len=3072)
    by_role = dict(prefill)
    assert rows.loc["m115", "predicted_time_s"] == pytest.approx(by_role["qkv_proj"])
    assert rows.loc["m117", "predicted_time_s"] == pytest.approx(by_role["attn_score"])  # unfused attention
    assert rows.loc["m121", "predicted_time_s"] == pytest.approx(by_role["attn_softmax"])
    assert rows.loc["m125", "predicted_time_s"] == pytest.approx(by_role["allreduce_attn"])  # the TP all-reduce
    assert rows.loc["m113", "predicted_time_s"] == pytest.approx(sum(t for _, t in prefill))
    assert rows.loc["m114", "predicted_time_s"] == pytest.approx(sum(t for _, t in decode))
    assert {"attn_score", "attn_softmax", "attn_context", "kv_append", "residual_mlp"} <= {r for r, _ in decode}


def test_model_rows_match_evaluate():
    common = {"system": "a100-sxm-80gb", "model": "tiny", "dtype": "bf16", "batch": 2}
    df = frame({"id": "p", "kind": "model", "phase": "prefill", "seq_len": 128, "measured_time_s": 1e-4, **common},
               {"id": "d", "kind": "model", "phase": "decode", "context_len": 256, "measured_time_s": 1e-4, **common},
               {"id": "t", "kind": "model", "phase": "train", "seq_len": 128, "tp": 2, "dp": 2, "chips": 4,
                "compression": "fsdp", "measured_time_s": 1e-2, **{**common, "system": "dgx-a100", "batch": 8}})
    res = correlate(df).per_row.set_index("id")
    assert not res["skipped"].any()
    p = evaluate("a100-sxm-80gb", "tiny", phase="prefill", batch=2, seq_len=128)
    d = evaluate("a100-sxm-80gb", "tiny", phase="decode", batch=2, context_len=256)
    t = evaluate_train("dgx-a100", "tiny", 8, 128, tp=2, dp=2, zero=3)
    assert res.loc["p", "predicted_time_s"] == pytest.approx(p.summary["latency_s"])
    assert res.loc["d", "predicted_time_s"] == pytest.approx(d.summary["latency_s"])
    assert res.loc["t", "predicted_time_s"] == pytest.approx(t.summary["step_time_s"])


def test_unpredictable_rows_are_skipped_with_a_reason_not_dropped():
    common = {"system": "a100-sxm-80gb", "model": "tiny", "dtype": "bf16", "batch": 1}
    df = frame({"id": "q", "kind": "model", "phase": "decode", "context_len": 64, "compression": "awq-magic",
                "measured_time_s": 1e-4, **common},
               {"id": "pp", "kind": "model", "phase": "decode", "context_len": 64, "pp": 2, "measured_time_s": 1e-4,
                **common},
               {"id": "ar", "kind": "allreduce", "system": "a100x4-nvlink", "bytes": 1e6, "ranks": 8,
                "measured_time_s": 1e-4},
               {"id": "ok", "kind": "gemm", "system": "a100-sxm-80gb", "m": 64, "n": 64, "k": 64, "dtype": "bf16",
                "measured_time_s": 1e-5})
    res = correlate(df)
    rows = res.per_row.set_index("id")
    assert len(rows) == 4 and res.overall["skipped"] == 3 and res.overall["predicted"] == 1
    assert "awq-magic" in rows.loc["q", "reason"] and "compression" in rows.loc["q", "reason"]
    assert "pipeline" in rows.loc["pp", "reason"]
    assert "scale_out" in rows.loc["ar", "reason"]  # 8 ranks on a 4-chip node with no scale-out network
    assert math.isnan(rows.loc["q", "predicted_time_s"])
    assert {s["id"] for s in res.skipped} == {"q", "pp", "ar"}
    assert json.loads(res.to_json())["skipped"] == 3


def test_collectives_scale_out_beyond_a_node():
    df = frame({"id": "a2a", "kind": "alltoall", "system": "dgx-h100", "bytes": 64 * 2**20, "ranks": 32,
                "measured_time_s": 1e-3},
               {"id": "ag", "kind": "allgather", "system": "dgx-h100", "bytes": 2**20, "ranks": 8,
                "measured_time_s": 1e-4})
    rows = correlate(df).per_row.set_index("id")
    assert not rows["skipped"].any()
    assert rows.loc["a2a", "predicted_time_s"] > rows.loc["ag", "predicted_time_s"]


def test_event_fidelity():
    df = frame({"id": "g", "kind": "gemm", "system": "a100-sxm-80gb", "m": 2048, "n": 2048, "k": 2048,
                "dtype": "fp16", "measured_time_s": 1e-4},
               {"id": "ar", "kind": "allreduce", "system": "a100x4-nvlink", "bytes": 2**24, "ranks": 4,
                "measured_time_s": 1e-4})
    ana = correlate(df, mode="ideal").per_row.set_index("id")
    ev = correlate(df, fidelity="event", mode="ideal").per_row.set_index("id")
    assert (ev["fidelity"] == "event").all()
    for i in ("g", "ar"):
        assert ev.loc[i, "predicted_time_s"] == pytest.approx(ana.loc[i, "predicted_time_s"], rel=0.3)
    with pytest.raises(MeasurementError, match="fidelity"):
        correlate(df, fidelity="cycle")


def test_calibration_applies_to_its_chip_only(tmp_path):
    cal = write(tmp_path, "format: 2\nchip: a100-sxm4-80gb\nstack: null\nstack_costs:\n  tensor_launch_overhead_s: 1.0e-3\n",
                "cal.yaml")
    df = frame({"id": "a", "kind": "gemm", "system": "a100-sxm-80gb", "m": 64, "n": 64, "k": 64, "dtype": "bf16",
                "measured_time_s": 1e-3},
               {"id": "h", "kind": "gemm", "system": "h100-sxm-80gb", "m": 64, "n": 64, "k": 64, "dtype": "bf16",
                "measured_time_s": 1e-3})
    base = correlate(df, mode="ideal").per_row.set_index("id")
    calib = correlate(df, calibration=cal, mode="ideal").per_row.set_index("id")
    assert calib.loc["a", "predicted_time_s"] == pytest.approx(base.loc["a", "predicted_time_s"] + 1e-3)
    assert calib.loc["h", "predicted_time_s"] == pytest.approx(base.loc["h", "predicted_time_s"])
    # realistic: the H100 row keeps its priors, the A100 row runs the file as written (stack: null)
    real = correlate(df).per_row.set_index("id")
    assert correlate(df, calibration=cal).per_row.set_index("id").loc["h", "predicted_time_s"] == \
        pytest.approx(real.loc["h", "predicted_time_s"])
    bad = write(tmp_path, "calibration:\n  tensor_efficiency: 1.5\n", "bad.yaml")
    with pytest.raises(Exception, match="tensor_efficiency"):
        correlate(df, calibration=bad)


def test_predictor_caches_graphs_and_chip_models():
    pr = Predictor()
    rows = rows_of(load_measurements(A100))
    layer_rows = [r for r in rows if r.kind in ("layer", "layer_op")]
    for r in layer_rows:
        pr.predict(r)
    assert len(pr._layer_ops) == 2  # one prefill and one decode layer serve all 14 rows
    pr.predict(rows[0], calibration={"tensor_efficiency": 0.9})
    assert any(k[2] for k in pr._chips)


# ------------------------------------------------------------------------------------------
# schema errors


def test_parquet_and_csv_agree(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.concat([pd.read_csv(p) for p in A100], ignore_index=True)
    p = tmp_path / "a100.parquet"
    df.to_parquet(p)
    loaded = load_measurements(p)
    assert len(loaded) == 56 and loaded["m"].dropna().astype(int).tolist() == df["m"].dropna().astype(int).tolist()


def test_missing_column_is_refused(tmp_path):
    p = write(tmp_path, "id,kind,system,m,n,k,dtype\nx,gemm,a100-sxm-80gb,1,2,3,fp16\n")
    with pytest.raises(MeasurementError, match=r"m\.csv: missing required column 'measured_time_s'"):
        load_measurements(p)


@pytest.mark.parametrize("cells, column, text", [
    ("x1,gemm,a100-sxm-80gb,64,64,64,fp16,-1e-5,,", "measured_time_s", "greater than 0"),
    ("x1,gemm,a100-sxm-80gb,64,64,64,fp16,0,,", "measured_time_s", "greater than 0"),
    ("x1,gemm,a100-sxm-80gx,64,64,64,fp16,1e-5,,", "system", "unknown system preset 'a100-sxm-80gx'. Did you mean a100-sxm-80gb"),
    ("x1,layer,a100-sxm-80gb,,,,fp16,1e-3,llama-3-8c,prefill,1,128", "model",
     "unknown model preset 'llama-3-8c'. Did you mean llama-3-8b"),
    ("x1,layer,a100-sxm-80gb,,,,fp16,1e-3,tiny,prefill,1,", "seq_len", "missing (a prefill layer row needs seq_len)"),
    ("x1,gemm,a100-sxm-80gb,64,,64,fp16,1e-5,,", "n", "missing (a gemm row needs m, n, k, dtype)"),
    ("x1,gemmm,a100-sxm-80gb,64,64,64,fp16,1e-5,,", "kind", "unknown kind 'gemmm'. Did you mean gemm"),
    ("x1,gemm,a100-sxm-80gb,64,64,64,fp9,1e-5,,", "dtype", "fp9"),
    ("x1,layer,a100-sxm-80gb,,,,fp16,1e-3,tiny,prefill,,128", "batch", "missing"),
    ("x1,layer,a100-sxm-80gb,,,,fp16,1e-3,tiny,warmup", "phase", "warmup"),
])
def test_bad_rows_name_file_line_row_and_column(tmp_path, cells, column, text):
    p = write(tmp_path, "id,kind,system,m,n,k,dtype,measured_time_s,model,phase,batch,seq_len\n" + cells + "\n")
    with pytest.raises(MeasurementError) as e:
        load_measurements(p)
    msg = str(e.value)
    assert f"{p}: line 2, row x1, column {column}: " in msg
    assert text in msg


def test_all_problems_of_a_file_in_one_message(tmp_path):
    p = write(tmp_path, "id,kind,system,m,n,k,dtype,measured_time_s\n"
                        "a,gemm,a100-sxm-80gb,64,64,64,fp16,1e-5\n"
                        "b,gemm,nope,64,64,64,fp16,1e-5\n"
                        "c,gemm,a100-sxm-80gb,64,64,64,fp16,abc\n")
    with pytest.raises(MeasurementError) as e:
        load_measurements(p)
    msg = str(e.value)
    assert "2 problems" in msg and "line 3, row b, column system" in msg and "line 4, row c, column measured_time_s" in msg


def test_layer_rows_need_their_shape(tmp_path):
    p = write(tmp_path, "id,kind,system,model,op,phase,batch,dtype,tp,measured_time_s\n"
                        "d,layer_op,a100x4-nvlink,gpt3-175b,qkv_proj,decode,8,fp16,4,1e-4\n")
    with pytest.raises(MeasurementError, match="row d, column context_len: missing"):
        load_measurements(p)


def test_duplicate_ids_and_unknown_columns(tmp_path):
    a = write(tmp_path, "id,kind,system,m,n,k,dtype,measured_time_s\nx,gemm,a100-sxm-80gb,64,64,64,fp16,1e-5\n", "a.csv")
    with pytest.raises(MeasurementError, match="duplicate row id 'x'"):
        load_measurements([a, a])
    b = write(tmp_path, "id,kind,system,m,n,k,dtpye,measured_time_s\nx,gemm,a100-sxm-80gb,64,64,64,fp16,1e-5\n", "b.csv")
    with pytest.raises(MeasurementError, match="unknown column 'dtpye'. Did you mean dtype"):
        load_measurements(b)


def test_yaml_system_relative_to_the_file(tmp_path):
    sysfile = tmp_path / "mychip.yaml"
    sysfile.write_text((preset_dir() / "a100-sxm-80gb.yaml").read_text())
    p = write(tmp_path, "id,kind,system,m,n,k,dtype,measured_time_s\nx,gemm,mychip.yaml,64,64,64,fp16,1e-5\n")
    assert correlate(p).overall["predicted"] == 1


# ------------------------------------------------------------------------------------------
# CLI


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_correlate_table_json_and_out(tmp_path):
    r = cli("correlate", *A100)
    assert r.exit_code == 0, r.output
    assert "56 rows: 56 predicted, 0 skipped" in r.output
    for word in ("MAPE", "median", "worst", "bias", "gemm", "layer_op", "all"):
        assert word in r.output
    out = json.loads(cli("correlate", *A100, "--json").output)
    assert out["rows"] == 56 and "gemm" in out["by_kind"]
    r = cli("correlate", *A100, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    per_row = pd.read_csv(tmp_path / "o" / "per_row.csv")
    assert list(per_row.columns[:7]) == ["id", "kind", "system", "predicted_time_s", "measured_time_s", "ape", "bound"]
    for png in ("predicted_vs_measured.png", "error_by_kind.png"):
        assert (tmp_path / "o" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("header, cells, expect", [
    ("id,kind,system,m,n,k,dtype", "x,gemm,a100-sxm-80gb,64,64,64,fp16", "missing required column 'measured_time_s'"),
    ("id,kind,system,m,n,k,dtype,measured_time_s", "x,gemm,a100-sxm-80gb,64,64,64,fp16,-2e-6",
     "line 2, row x, column measured_time_s"),
    ("id,kind,system,m,n,k,dtype,measured_time_s", "x,gemm,tpu-v9,64,64,64,fp16,2e-6",
     "line 2, row x, column system: unknown system preset 'tpu-v9'"),
    ("id,kind,system,model,phase,batch,seq_len,dtype,measured_time_s", "x,model,a100-sxm-80gb,gpt-5,prefill,1,128,bf16,1",
     "line 2, row x, column model: unknown model preset 'gpt-5'"),
])
def test_cli_bad_files_one_message_each(tmp_path, header, cells, expect):
    p = write(tmp_path, header + "\n" + cells + "\n")
    r = cli("correlate", p)
    assert r.exit_code != 0
    assert expect in r.output and str(p) in r.output
    assert "Traceback" not in r.output and r.output.count("error:") == 1


def test_cli_missing_file(tmp_path):
    r = cli("correlate", tmp_path / "nope.csv")
    assert r.exit_code == 2 and "no such file" in r.output


def test_kinds_cover_the_schema():
    schema = (Path(__file__).resolve().parents[2] / "shared" / "data" / "measurements" / "SCHEMA.md")
    if schema.exists():
        text = schema.read_text()
        for k in KINDS:
            assert f"`{k}`" in text


def test_cli_system_is_for_profiler_traces_only():
    """--system with measurement files (which name their systems) was dropped silently."""
    from accelsim.cli import main

    f = str(Path(__file__).resolve().parents[1] / "workloads" / "measurements" / "parts" / "nvidia_accelsim_h200.csv")
    r = CliRunner().invoke(main, ["correlate", f, "--system", "h100-sxm-80gb"])
    assert r.exit_code == 2 and "--system names the system of profiler traces" in r.output


def test_breakdown_by_a_column_by_hand():
    """``breakdown`` groups the predicted rows by a measurement column: per group n, MAPE, the
    geometric-mean bias and the share within 15 % (figures derived by hand below), groups with
    the most rows beyond 15 % first, rows without a value as "-", skipped rows left out."""
    from accelsim.correlate.compare import breakdown, breakdown_table

    per_row = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "skipped": [False, False, False, False, True],
                            "predicted_time_s": [1.1, 0.7, 1.0, 2.0, np.nan],
                            "measured_time_s": [1.0, 1.0, 1.0, 1.0, 1.0]})
    per_row["ape"] = (per_row["predicted_time_s"] - 1.0).abs()
    frame = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "stack": ["x", "x", None, "y", "x"],
                          "origin": ["p/one.csv:2", "p/one.csv:3", "q/two.csv:2", "q/two.csv:3", "q/two.csv:4"]})
    t = breakdown(per_row, frame, "stack").set_index("group")
    assert list(t.index) == ["x", "y", "-"]  # x and y each one row beyond 15 %; x first by name
    assert t.loc["x", "n"] == 2 and t.loc["x", "mape"] == pytest.approx(0.2)  # |1.1 - 1| and |0.7 - 1|
    assert t.loc["x", "bias"] == pytest.approx((1.1 * 0.7) ** 0.5) and t.loc["x", "within_15"] == 0.5
    assert t.loc["y", "within_15"] == 0.0 and t.loc["-", "within_15"] == 1.0
    files = breakdown(per_row, frame, "file").set_index("group")
    assert files.loc["one.csv", "n"] == 2 and files.loc["two.csv", "n"] == 2  # e is skipped
    assert "within 15 %" in breakdown_table(t.reset_index(), "stack")
    with pytest.raises(MeasurementError, match="cannot group by"):
        breakdown(per_row, frame, "colour")


def test_cli_breaks_the_error_down_by_file():
    from accelsim.cli.correlate import BY
    from accelsim.correlate.compare import GROUPS

    assert BY == GROUPS
    r = CliRunner().invoke(main, ["correlate", *map(str, A100), "--by", "file"])
    assert r.exit_code == 0, r.output
    assert "within 15 %" in r.output and "a100_llmcompass.csv" in r.output and "a100_llmcompass_gpt3.csv" in r.output
    r = CliRunner().invoke(main, ["correlate", str(A100_PARTS), "--by", "system", "--json"])
    assert r.exit_code == 0, r.output
    groups = json.loads(r.output)["by"]["system"]
    assert {g["group"] for g in groups} == {"a100-sxm-80gb", "a100x4-nvlink"}  # kernels, collectives
    assert sum(g["n"] for g in groups) == json.loads(r.output)["predicted"]
    r = CliRunner().invoke(main, ["correlate", str(A100_PARTS), "--by", "colour"])
    assert r.exit_code == 2 and "colour" in r.output
