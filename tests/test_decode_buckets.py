"""Decode buckets (issue 12): an engine that compiles its decode program per context bucket
(transformers-neuronx: powers of two from 128 up to the maximum length) runs every step with
the program of the smallest bucket that holds the sequence, whose attention reads the bucket's
whole length."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from accelsim.api import evaluate
from accelsim.correlate import correlate
from accelsim.correlate.schema import COLUMNS
from accelsim.stack.presets import load_stack
from accelsim.stack.realize import bucket_tokens, decode_context, read_context
from accelsim.stack.spec import ServingEngine


def test_a_bucket_is_the_smallest_doubling_that_holds_the_positions():
    assert [bucket_tokens(n, 128) for n in (1, 128, 129, 256, 257, 4097)] == [128, 128, 256, 256, 512, 8192]
    # the longest program is the engine's maximum length, a power of two or not
    assert bucket_tokens(5000, 128, 6000) == 6000 and bucket_tokens(3000, 128, 6000) == 4096
    assert bucket_tokens(300, 0) == 300  # an engine without buckets


def test_mean_bucket_of_a_generation_by_hand():
    tnx = load_stack("transformers-neuronx")
    assert tnx.serving.decode_bucket_tokens == 128
    # a 128-token prompt and 8,064 new tokens (n_positions 8,192): the steps' positions 129 .. 8,192
    # run in the buckets 256 (128 steps), 512 (256), 1,024 (512), 2,048 (1,024), 4,096 (2,048), 8,192 (4,096)
    total = 128 * 256 + 256 * 512 + 512 * 1024 + 1024 * 2048 + 2048 * 4096 + 4096 * 8192
    assert decode_context(tnx, 128, 8064, 8192) == pytest.approx(total / 8064 - 1)
    assert read_context(tnx, 200) == 255 and read_context(tnx, 127) == 127 and read_context(tnx, 128) == 255
    neuron = load_stack("neuron")  # no serving engine: each step reads its own context
    assert decode_context(neuron, 128, 65) == pytest.approx(160) and read_context(neuron, 200) == 200


def test_a_decode_step_reads_its_bucket_and_says_so():
    kw = dict(phase="decode", batch=2, tp=2)
    a = evaluate("trn1-32xl", "tiny", context_len=200, stack="transformers-neuronx", **kw)
    # the same runtime and attention (transformers-neuronx's unfused HLO attention), no buckets
    b = evaluate("trn1-32xl", "tiny", context_len=255, stack="neuron", attention="unfused_grouped", **kw)
    assert a.summary["latency_s"] == pytest.approx(b.summary["latency_s"], rel=1e-12)
    assert a.summary["context_len"] == 200 and a.summary["decode_bucket_tokens"] == 256
    assert "decode_bucket_tokens" not in b.summary
    with pytest.raises(Exception, match="context_len"):  # 0 cached tokens is refused, not run as a bucket
        evaluate("trn1-32xl", "tiny", context_len=0, stack="transformers-neuronx", **kw)


def test_a_tpot_row_runs_the_mean_bucket_of_its_generation(tmp_path):
    base = {"kind": "model", "system": "trn1-32xl", "model": "tiny", "dtype": "bf16", "batch": 8, "tp": 2,
            "phase": "decode", "measured_time_s": 1e-3}
    plain = tmp_path / "neuron-hlo-attention.yaml"  # transformers-neuronx's attention, without its buckets
    plain.write_text("name: neuron-hlo-attention\nbase: neuron\ndescription: test\n"
                     "attention:\n  name: HLO attention\n  fused: false\n")
    rows = [{"id": "tpot", "metric": "tpot", "input_len": 128, "output_len": 8064, "stack": "transformers-neuronx"},
            {"id": "at", "context_len": 5546, "stack": str(plain)},  # round(5,545.67): the hand-derived mean above
            {"id": "plain", "metric": "tpot", "input_len": 128, "output_len": 8064, "stack": "neuron"},
            {"id": "mean", "context_len": 128 + 8064 // 2, "stack": "neuron"}]
    df = pd.DataFrame([{c: {**base, **r}.get(c) for c in COLUMNS} for r in rows])
    r = correlate(df).per_row.set_index("id")["predicted_time_s"]
    assert r["tpot"] == pytest.approx(r["at"], rel=1e-12)
    assert r["plain"] == pytest.approx(r["mean"], rel=1e-12)  # without buckets: the mean context, as before
    assert r["tpot"] > r["plain"]


def test_decode_buckets_are_checked():
    with pytest.raises(ValidationError, match="decode_bucket_tokens"):
        ServingEngine(name="x", decode_bucket_tokens=-1)
    with pytest.raises(ValidationError, match="decode_bucket_tokens"):
        ServingEngine(name="x", decode_bucket_tokens=True)


def test_a_sweep_reads_the_bucket_as_evaluate_does():
    from accelsim.sweep import DesignSpace, sweep
    from accelsim.workload import load_model

    s = DesignSpace.load({"system": "trn1-32xl", "workload": {"model": "tiny", "phase": "decode", "tp": 2},
                          "axes": {"workload.context_len": [200, 255]}})
    df = sweep(s, progress=False, workers=1, stack="transformers-neuronx")
    lat = df.set_index("workload.context_len")["latency_s"]
    assert lat[200] == pytest.approx(lat[255], rel=1e-12)  # one bucket: 256 positions
    ref = evaluate("trn1-32xl", load_model("tiny"), phase="decode", context_len=200, tp=2,
                   stack="transformers-neuronx")
    assert lat[200] == pytest.approx(ref.summary["latency_s"], rel=1e-12)


def test_no_bucket_is_longer_than_the_model_s_context_window():
    from accelsim.workload import load_model

    short = load_model("tiny").model_copy(update={"max_position_embeddings": 300})
    r = evaluate("trn1-32xl", short, phase="decode", context_len=280, tp=2, stack="transformers-neuronx")
    assert r.summary["decode_bucket_tokens"] == 300  # 512 would hold 281, but the window ends at 300
    assert read_context(load_stack("transformers-neuronx"), 280, 300) == 299
