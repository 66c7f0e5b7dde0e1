"""accelsim bench: PyTorch microbenchmarks written in the measurement schema (CPU, --quick)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from accelsim.bench import COLUMNS, BenchError, preset_for, require_torch
from accelsim.cli import main

# the columns of ../shared/data/measurements/SCHEMA.md, in order, written out by hand
SCHEMA_COLUMNS = ["id", "kind", "system", "chips", "dtype", "m", "n", "k", "batch", "rows", "cols", "elements",
                  "bytes", "ranks", "model", "op", "phase", "seq_len", "context_len", "tp", "pp", "dp",
                  "compression", "measured_time_s", "source", "notes"]
SCHEMA_KINDS = {"gemm", "softmax", "layernorm", "rmsnorm", "gelu", "silu_mul", "add", "copy", "allreduce",
                "allgather", "reducescatter", "alltoall", "layer_op", "layer", "model"}
SHIPPED = Path(__file__).parents[1] / "workloads/measurements/validation/a100_llmcompass_gpt3.csv"


def test_columns_are_the_schema():
    # the schema plus the optional stack column after compression (PyTorch eager: cuda-eager) and
    # the cache column (every case re-runs on the same buffers: warm)
    assert COLUMNS == SCHEMA_COLUMNS[:23] + ["stack", "cache"] + SCHEMA_COLUMNS[23:]
    if SHIPPED.exists():  # the project's copy adds the optional stack column after compression
        cols = list(pd.read_csv(SHIPPED, nrows=0).columns)
        assert cols == SCHEMA_COLUMNS[:23] + ["stack"] + SCHEMA_COLUMNS[23:]


def test_preset_for_device_names():
    assert preset_for("NVIDIA H100 80GB HBM3") == "h100-sxm-80gb"
    assert preset_for("NVIDIA H100 80GB HBM3", 8) == "dgx-h100"
    assert preset_for("NVIDIA H100 PCIe") is None
    assert preset_for("NVIDIA A100-SXM4-80GB") == "a100-sxm-80gb"
    assert preset_for("NVIDIA A100-SXM4-80GB", 4) == "a100x4-nvlink"
    assert preset_for("NVIDIA A100-SXM4-40GB") is None
    assert preset_for("NVIDIA H200") == "h200-sxm-141gb"
    assert preset_for("AMD EPYC 7R13") is None
    from accelsim.arch.presets import list_presets

    for _, _, single, multi in __import__("accelsim.bench.runner", fromlist=["_GPU_PRESETS"])._GPU_PRESETS:
        assert {single, multi} <= set(list_presets())


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(BenchError, match=r'pip install -e "\.\[bench\]"'):
        require_torch()
    r = CliRunner().invoke(main, ["bench", "--device", "cpu", "--quick", "-o", "x.csv"])
    assert r.exit_code == 2 and 'pip install -e ".[bench]"' in r.output and "Traceback" not in r.output


def test_bench_cpu_quick(tmp_path):
    pytest.importorskip("torch")  # CI installs the bench extra, so this runs there
    out, att = tmp_path / "m.csv", tmp_path / "att.csv"
    r = CliRunner().invoke(main, ["bench", "--device", "cpu", "--quick", "-o", str(out), "--attention", str(att),
                                  "--system", "h100-sxm-80gb"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.columns) == COLUMNS and df["stack"].isna().all()  # no stack models a CPU
    assert (df["cache"] == "warm").all()
    assert df["id"].is_unique and set(df["kind"]) <= SCHEMA_KINDS
    assert {"gemm", "copy", "softmax", "layernorm", "rmsnorm", "gelu", "silu_mul", "add"} <= set(df["kind"])
    assert (df["measured_time_s"] > 0).all() and df["measured_time_s"].notna().all()
    assert (df["system"] == "h100-sxm-80gb").all() and (df["chips"] == 1).all() and (df["dtype"] == "fp32").all()
    assert df["source"].str.startswith("accelsim bench ").all()
    assert df["notes"].str.contains("torch ").all() and df["notes"].str.contains("median of 5").all()
    g = df[df["kind"] == "gemm"]
    assert g[["m", "n", "k"]].notna().all().all() and {1, 8, 32} <= set(g["m"])
    assert (g["m"] == g["n"]).any()  # a square case
    assert df.loc[df["kind"].isin(["copy", "gelu"]), "elements"].gt(0).all()
    rowwise = df[df["kind"].isin(["softmax", "layernorm", "rmsnorm", "silu_mul", "add"])]
    assert rowwise[["rows", "cols"]].notna().all().all()
    # integers stay integers in the CSV (no "128.0")
    assert "gemm-128x128x128,gemm,h100-sxm-80gb,1,fp32,128,128,128," in out.read_text()
    # the correlate side's loader accepts the file (schema, kinds, shapes per kind)
    from accelsim.correlate.schema import load_measurements

    assert len(load_measurements([out])) == len(df)
    a = pd.read_csv(att)
    assert len(a) == 2 and (a["measured_time_s"] > 0).all() and "kind" not in a.columns


def test_bench_default_system_is_a_placeholder(tmp_path):
    pytest.importorskip("torch")
    from accelsim.bench import run_bench, write_csv
    from accelsim.correlate.schema import load_measurements
    from accelsim.errors import MeasurementError

    df, att = run_bench("cpu", quick=True, repeats=1, warmup=0)
    assert att is None and (df["system"] == "unknown-cpu").all()
    # the placeholder is no preset: correlating needs --system (the CLI warns)
    with pytest.raises(MeasurementError, match="unknown system preset 'unknown-cpu'"):
        load_measurements([write_csv(df, tmp_path / "u.csv")])
    if not __import__("torch").cuda.is_available():
        with pytest.raises(BenchError, match="no CUDA device"):
            run_bench("cuda", quick=True)


def test_allreduce_mechanics_on_gloo():
    """The torch.distributed path (NCCL on GPUs) exercised with gloo on CPU processes."""
    pytest.importorskip("torch")
    from accelsim.bench.allreduce import run_allreduce

    t = run_allreduce(2, [1024], "fp32", warmup=1, repeats=2, backend="gloo", start_method="fork")
    assert list(t) == [1024] and t[1024] > 0


def test_timing_records_spread_and_flags_noise():
    from accelsim.bench.timing import Timing, time_call

    t = time_call(lambda: sum(range(1000)), "cpu", warmup=2, repeats=9)
    assert t.samples == 9 and t.median_s > 0 and t.iqr_s >= 0 and "IQR" in t.note()
    calm, busy = Timing(1e-3, 0.5e-4, 9), Timing(1e-3, 3e-4, 9)
    assert not calm.noisy and busy.noisy and "NOISY" in busy.note()
    assert busy.spread == 0.3


def test_fp8_gemms_are_scaled_mm_with_bf16_output():
    torch = pytest.importorskip("torch")
    from accelsim.bench.runner import _fp8_gemms

    (fields, fn, note), = list(_fp8_gemms(torch, [(16, 32, 64)], "cpu"))
    assert fields == {"id": "gemm-fp8-16x32x64", "kind": "gemm", "m": 16, "n": 32, "k": 64}
    out = fn()
    assert out.dtype == torch.bfloat16 and tuple(out.shape) == (16, 32) and "_scaled_mm" in note
    r = CliRunner().invoke(main, ["bench", "--device", "cpu", "--dtype", "fp8", "-o", "x.csv"])
    assert r.exit_code != 0 and "CUDA" in r.output and "Traceback" not in r.output
