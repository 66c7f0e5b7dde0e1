"""Attention as a graph compiler runs it without a fused kernel (transformers-neuronx before
0.11): the score matrix in HBM, each KV head's keys and values read once for its group of query
heads. Expected values by hand from the shapes."""

from __future__ import annotations

import pytest

from accelsim.api import evaluate
from accelsim.stack.presets import load_stack
from accelsim.stack.realize import attention_of
from accelsim.workload import build, load_model


def _ops(graph, role):
    return [o for o in graph.ops() if o.role == role]


def test_grouped_products_by_hand():
    m = load_model("tiny")  # 4 query heads, 2 KV heads, head_dim 16
    b, s, hd, hq, kvl = 2, 64, 16, 4, 2
    g = build(m, "prefill", batch=b, seq_len=s, attention="unfused_grouped")
    e = build(m, "prefill", batch=b, seq_len=s, attention="unfused")
    score, eager = _ops(g, "attn_score")[0], _ops(e, "attn_score")[0]
    # one product per (sequence, KV head), the group's 2 query heads stacked as rows
    assert (score.batch, score.m, score.n, score.k) == (b * kvl, s * hq // kvl, s, hd)
    assert score.flops() == eager.flops() == 2 * b * hq * s * s * hd  # the whole (masked) matrix either way
    # K read once per KV head rather than once per query head: (hq - kvl) x b x s x hd x 2 bytes less
    assert eager.bytes() - score.bytes() == (hq - kvl) * b * s * hd * 2
    ctx, ectx = _ops(g, "attn_context")[0], _ops(e, "attn_context")[0]
    assert (ctx.batch, ctx.m, ctx.n, ctx.k) == (b * kvl, s * hq // kvl, hd, s)
    assert ectx.bytes() - ctx.bytes() == (hq - kvl) * b * s * hd * 2  # V likewise
    # the softmax is over every query head's row of scores, as before
    assert _ops(g, "attn_softmax")[0] == _ops(e, "attn_softmax")[0]


def test_without_grouped_heads_it_is_the_eager_form():
    mha = load_model("tiny").model_copy(update={"num_key_value_heads": 4})
    g = build(mha, "decode", batch=3, context_len=100, attention="unfused_grouped")
    e = build(mha, "decode", batch=3, context_len=100, attention="unfused")
    assert [o for o in g.ops() if o.role.startswith("attn")] == [o for o in e.ops() if o.role.startswith("attn")]


def test_the_stack_says_which_attention_runs():
    tnx, neuron = load_stack("transformers-neuronx"), load_stack("neuron")
    assert tnx.attention is not None and tnx.attention.fused is False
    assert attention_of(tnx) == "unfused_grouped" and attention_of(neuron) == "flash" and attention_of(None) == "flash"
    assert attention_of(tnx, "flash") == "flash"  # asked for, it runs


def test_evaluate_runs_the_stack_s_attention():
    kw = dict(phase="prefill", batch=1, seq_len=256, tp=2, stack="transformers-neuronx")
    default = evaluate("trn1-32xl", "tiny", **kw)
    grouped = evaluate("trn1-32xl", "tiny", attention="unfused_grouped", **kw)
    flash = evaluate("trn1-32xl", "tiny", attention="flash", **kw)
    assert default.summary["attention"] == "unfused_grouped"
    assert default.summary["latency_s"] == grouped.summary["latency_s"] > flash.summary["latency_s"]
    assert evaluate("trn1-32xl", "tiny", phase="prefill", seq_len=256, tp=2, stack="neuron").summary["attention"] == "flash"


def test_the_cli_says_which_attention_ran():
    from click.testing import CliRunner

    from accelsim.cli import main

    r = CliRunner().invoke(main, ["run", "trn1-32xl", "tiny", "--phase", "prefill", "--seq", "256", "--tp", "2",
                                  "--stack", "transformers-neuronx"])
    assert r.exit_code == 0, r.output
    assert "unfused_grouped attention" in r.output
    r = CliRunner().invoke(main, ["run", "trn1-32xl", "tiny", "--attention", "fused"])
    assert r.exit_code != 0 and "--attention" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("bad", ["grouped", "FLASH", ""])
def test_an_unknown_attention_is_refused(bad):
    with pytest.raises(Exception, match="unknown attention"):
        build(load_model("tiny"), "prefill", batch=1, seq_len=8, attention=bad)
