"""Offline maximum-throughput rows whose batch the engine sets: trtllm-bench's limits, the
requests a KV cache admits at their full length, and the predictor's use of both."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from accelsim.correlate import correlate
from accelsim.correlate.schema import COLUMNS
from accelsim.stack.admission import GIB, kv_admitted, trtllm_bench_limits


def test_trtllm_bench_limits_by_hand():
    # 80 GiB GPU, 16 GiB of weights: 64 GiB x 0.95 = 60.8 GiB for requests of 2,048 tokens at
    # 128 KiB a token (0.25 GiB each): 243.2 requests -> rounded up to 32s: 256; tokens a step
    # 243.2 x (1 + 1024 / 1024) = 486 -> at least 2,048
    assert trtllm_bench_limits(16 * GIB, 128 * 1024, 80 * GIB, 1, 1024, 1024) == (256, 2048)
    # no weights, 64 GiB: 60.8 GiB / (256 tokens x 16 KiB) = 15,565 requests, capped at 4,096
    # (a multiple of 256); tokens 4,096 x 2 = 8,192 -> a multiple of 1,024
    assert trtllm_bench_limits(0, 16 * 1024, 64 * GIB, 1, 128, 128) == (4096, 8192)
    # between 256 and 1,024 requests the batch rounds up to 128s, tokens between 4,096 and 8,192
    # to 512s: 60.8 GiB / (2,176 x 64 KiB) = 457.8 -> 512; 457.8 x (1 + 2048 / 128) = 7,782 -> 8,192
    assert trtllm_bench_limits(16 * GIB, 64 * 1024, 80 * GIB, 1, 2048, 128) == (512, 8192)


def test_a_request_holds_whole_blocks_of_its_full_length():
    # 10 GiB x 0.9 at 64 KiB a token: 147,456 tokens = 4,608 blocks of 32
    free, per_token = 10 * GIB, 64 * 1024
    assert kv_admitted(free, per_token, 2050, 0.9) == 147456 // 2050 == 71
    assert kv_admitted(free, per_token, 2050, 0.9, block_tokens=32) == 4608 // math.ceil(2050 / 32) == 70
    assert kv_admitted(0, per_token, 2050, 0.9) == 0


def _row(stack: str, **kw) -> pd.DataFrame:
    row = dict(id="t1", kind="model", system="h100-sxm-80gb", chips=1, dtype="fp8", model="llama-3-8b",
               phase="decode", metric="throughput", input_len=128, output_len=2048, tp=1, compression="fp8",
               stack=stack, measured_time_s=4.4e-5, source="test")
    row.update(kw)
    return pd.DataFrame([{c: row.get(c) for c in COLUMNS}])


def test_an_engine_that_admits_by_kv_capacity_sets_the_batch_of_an_offline_row():
    res = correlate(_row("trtllm")).per_row.iloc[0]
    assert not res["skipped"]
    m = re.match(r"batch (\d+) set by the engine \(KV-cache capacity", res["note"])
    assert m, res["note"]
    batch = int(m.group(1))
    # 80 GiB less 8 GB of FP8 weights holds a few hundred requests of 2,176 tokens at 64 KiB a
    # token (32 layers x 8 KV heads x 128 x K and V, one byte each): fewer than 1,100
    assert 200 < batch < 80 * GIB / (2176 * 65536)
    same = correlate(_row("trtllm", batch=batch)).per_row.iloc[0]  # as if the row had said so
    assert same["predicted_time_s"] == pytest.approx(res["predicted_time_s"])
    # the same row under an engine whose batch is the measurement's: no load, no prediction
    other = correlate(_row("vllm")).per_row.iloc[0]
    assert other["skipped"] and "no batch or concurrency" in other["reason"]


def test_the_throughput_command_prints_the_engine_batch_or_asks_for_one():
    from click.testing import CliRunner

    from accelsim.cli import main
    from accelsim.correlate.throughput import offline_throughput

    args = ["throughput", "h100-sxm-80gb", "llama-3-8b", "--input-len", "128", "--output-len", "2048", "--dtype", "fp8",
            "--compression", "fp8"]
    out = CliRunner().invoke(main, args + ["--stack", "trtllm"])
    assert out.exit_code == 0, out.output
    assert "set by the engine" in out.output and "output tokens/s" in out.output
    r = offline_throughput("h100-sxm-80gb", "llama-3-8b", 128, 2048, dtype="fp8", stack="trtllm", compression="fp8")
    row = correlate(_row("trtllm")).per_row.iloc[0]  # the same case as a measurement row
    assert r["seconds_per_output_token"] == pytest.approx(row["predicted_time_s"])
    assert r["output_tokens_per_s"] == pytest.approx(1 / row["predicted_time_s"])
    refused = CliRunner().invoke(main, args + ["--stack", "vllm"])
    assert refused.exit_code == 2 and "give a batch" in refused.output
    given = CliRunner().invoke(main, args + ["--stack", "vllm", "--batch", "64"])
    assert given.exit_code == 0 and "batch 64 (given)" in given.output
