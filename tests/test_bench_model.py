"""accelsim bench-model: the plain-PyTorch decoder behind the whole-step silicon rows (CPU)."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from accelsim.bench import BenchError
from accelsim.cli import main

torch = pytest.importorskip("torch")  # CI installs the bench extra, so these run there

from accelsim.bench.model import (MODEL_COLUMNS, Point, build_model, kv_cache, parse_points,  # noqa: E402
                                  tokens_flops, train_step)
from accelsim.workload.loaders import load_model  # noqa: E402

LLAMA = {**load_model("tiny").model_dump(), "num_key_value_heads": 2}  # grouped KV heads
GPT = {**load_model("gpt3-5b").model_dump(), "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
       "num_key_value_heads": 4, "head_dim": 16, "vocab_size": 100}  # layernorm, gelu, learned positions, tied


@pytest.mark.parametrize("cfg", [LLAMA, GPT], ids=["llama", "gpt"])
def test_prefill_then_decode_equals_one_full_forward(cfg):
    """A KV-cached step must compute what a forward over the whole sequence does: positions
    (RoPE or learned) offset by the cache, K/V written where the next step reads them."""
    torch.manual_seed(1)
    m = build_model(cfg, "cpu", torch.float64, layers=2).eval()
    t = torch.randint(0, cfg["vocab_size"], (2, 9))
    with torch.no_grad():
        full = m(t, last_only=False)
        cache = kv_cache(cfg, 2, 9, "cpu", torch.float64, layers=2)
        first = m(t[:, :8], cache, 0)
        step = m(t[:, 8:], cache, 8)
    torch.testing.assert_close(first, full[:, 7], rtol=0, atol=1e-10)
    torch.testing.assert_close(step, full[:, 8], rtol=0, atol=1e-10)


def test_parameter_count_is_the_models():
    """Llama-3-8B's published 8,030,261,248 parameters, built at one layer and scaled by hand:
    embed + head 2 x 128256 x 4096; a layer 4096 x (6144 + 4096 + 2 x 14336) + 14336 x 4096 + 2 x 4096."""
    cfg = load_model("llama-3-8b").model_dump()
    with torch.device("meta"):
        m = build_model(cfg, "meta", torch.bfloat16, layers=1)
    layer = 4096 * (6144 + 4096 + 2 * 14336) + 14336 * 4096 + 2 * 4096
    assert sum(p.numel() for p in m.parameters()) == 2 * 128256 * 4096 + 4096 + layer
    assert 2 * 128256 * 4096 + 4096 + 32 * layer == 8_030_261_248


def test_training_step_updates_the_weights_from_fp32_master():
    torch.manual_seed(0)
    m = build_model(LLAMA, "cpu", torch.float32, layers=1).train()
    step = train_step(m, torch.float32)
    t = torch.randint(0, LLAMA["vocab_size"], (2, 17))
    before = m.blocks[0].qkv.weight.detach().clone()
    losses = [step(t).item() for _ in range(4)]
    assert losses[-1] < losses[0]  # the same batch, so AdamW must lower it
    assert not torch.equal(before, m.blocks[0].qkv.weight)
    assert all(p.grad is None for p in m.parameters())  # gradients released every step


def test_points_parse_and_refuse_clearly():
    assert parse_points("prefill:1x512, decode:8x1024,train:2x2048") == [
        Point("prefill", 1, 512), Point("decode", 8, 0, 1024), Point("train", 2, 2048)]
    for bad in ("prefill:1", "infer:1x2", "decode:0x5", "decode:8x"):
        with pytest.raises(BenchError, match="--points"):
            parse_points(bad)


def test_flops_figure_is_two_per_parameter_per_token_plus_attention():
    cfg = load_model("llama-3-8b").model_dump()
    # decode, batch 1, context 0: 2 x (non-embedding params + LM head) + attention over 1 key
    layer = 4096 * (6144 + 4096 + 3 * 14336)
    att = 2 * 2 * 32 * 128
    assert tokens_flops(cfg, Point("decode", 1, 0, 0)) == 32 * (2 * layer + att) + 2 * 4096 * 128256


def test_cli_writes_validation_rows(tmp_path):
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(main, ["bench-model", "tiny", "--device", "cpu", "-o", str(out), "--layers", "1",
                                  "--points", "prefill:2x16,decode:2x16,train:1x16", "--warmup", "0",
                                  "--repeats", "2", "--system", "h100-sxm-80gb"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.columns) == MODEL_COLUMNS and len(df) == 3
    assert list(df["phase"]) == ["prefill", "decode", "train"] and (df["model"] == "tiny@1L").all()
    assert list(df["metric"].fillna("")) == ["ttft", "tpot", ""] and (df["measured_time_s"] > 0).all()
    assert df.loc[2, "global_batch"] == 1 and df.loc[1, "context_len"] == 16
    r = CliRunner().invoke(main, ["bench-model", "tiny", "--device", "cpu", "-o", str(out), "--points", "x:1"])
    assert r.exit_code != 0 and "--points" in r.output and "Traceback" not in r.output


def test_shipped_h200_rows_are_predicted():
    """accelsim's own H200 rows (benchmarks/silicon/h200.sh): every row predicted, eager and
    graph rows of the same decode step both there."""
    from pathlib import Path

    from accelsim.correlate import correlate

    f = Path(__file__).resolve().parents[1] / "workloads/measurements/validation/h200_accelsim_bench.csv"
    rows = correlate([f]).per_row
    assert len(rows) == 45 and not rows["skipped"].any()
    df = pd.read_csv(f)
    eager = df[(df["phase"] == "decode") & (df["stack"] == "cuda-eager")].set_index(["model", "batch", "context_len"])
    graphs = df[(df["phase"] == "decode") & (df["stack"] == "cuda-eager-graphs")].set_index(["model", "batch", "context_len"])
    assert len(eager) == len(graphs) == 15
    # the graph replay is never slower than eager dispatch of the same step
    assert (graphs["measured_time_s"] <= eager.loc[graphs.index, "measured_time_s"]).all()


def test_models_it_cannot_build_are_refused_by_name():
    for name in ("mixtral-8x7b", "resnet50", "deepseek-moe-16b"):
        r = CliRunner().invoke(main, ["bench-model", name, "--device", "cpu", "-o", "x.csv", "--layers", "1"])
        assert r.exit_code != 0 and name in r.output and "only dense decoder" in r.output
        assert "Traceback" not in r.output


def test_the_decoder_follows_the_spec_and_refuses_what_it_cannot_build():
    # Qwen-style bias on q, k, v only; a GeGLU MLP runs GELU on the gate
    cfg = {**LLAMA, "qkv_bias": True, "activation": "gelu"}
    m = build_model(cfg, "cpu", torch.float32, layers=1)
    assert m.blocks[0].qkv.bias is not None and m.blocks[0].o.bias is None
    with pytest.raises(BenchError, match="sliding-window"):
        build_model({**LLAMA, "sliding_window": 4096}, "cpu", torch.float32, layers=1)
