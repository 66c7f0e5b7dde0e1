"""Accuracy evidence (accelsim.compress.evidence) joined with predicted serving performance
(accelsim.codesign.accuracy). The lm-evaluation-harness fixtures' numbers are synthetic (see
tests/data/lm_eval/README.md)."""

from pathlib import Path

import pandas as pd
import pytest

from accelsim.codesign.accuracy import accuracy_vs_serving, pareto, pareto_figure
from accelsim.compress.evidence import load_lm_eval, with_deltas
from accelsim.errors import ConfigError

DATA = Path(__file__).parent / "data" / "lm_eval"
TAGS = ("bf16", "w4a16-g128", "w8a8")


def evidence():
    return pd.concat([load_lm_eval(DATA / f"llama-3-8b_{t}.json", t, model="llama-3-8b") for t in TAGS],
                     ignore_index=True)


def test_lm_eval_results_load_in_points_with_filters():
    ev = load_lm_eval(DATA / "llama-3-8b_w8a8.json", "w8a8")
    assert set(ev["model"]) == {"meta-llama-3-8b-w8a8"}  # from model_args when not given
    mmlu = ev[ev["task"] == "mmlu"].iloc[0]
    assert mmlu["metric"] == "acc" and mmlu["value"] == pytest.approx(64.88) and mmlu["shots"] == 5
    assert set(ev.loc[ev["task"] == "gsm8k", "metric"]) == {"exact_match (strict-match)",
                                                             "exact_match (flexible-extract)"}


def test_deltas_against_the_same_campaigns_baseline():
    d = with_deltas(evidence()).set_index(["recipe", "task", "metric"])["delta"]
    assert d[("w4a16-g128", "mmlu", "acc")] == pytest.approx(64.02 - 65.21)
    assert d[("w8a8", "gsm8k", "exact_match (strict-match)")] == pytest.approx(48.52 - 49.20)
    assert d[("bf16", "mmlu", "acc")] == 0.0


def test_joined_with_predicted_serving_and_pareto(tmp_path):
    df = accuracy_vs_serving(evidence(), "h100-sxm-80gb", "llama-3-8b", "mmlu").set_index("recipe")
    # weight-only int4 streams a quarter of the weight bytes of BF16: decode is faster
    assert df.loc["w4a16-g128", "tokens_per_s"] > df.loc["w8a8", "tokens_per_s"] > df.loc["bf16", "tokens_per_s"]
    front = pareto(df.reset_index())
    assert front.all()  # each recipe trades accuracy for speed: none dominates another
    worse = df.reset_index().assign(delta=lambda d: d["delta"].where(d["recipe"] != "w8a8", -5.0))
    assert pareto(worse).tolist() == [True, True, False]  # slower than w4 and less accurate
    fig = pareto_figure(df.reset_index(), "MMLU, Llama-3-8B decode on H100")
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_bad_results_files(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text('{"results": {}}')
    with pytest.raises(ConfigError, match="no 'results'"):
        load_lm_eval(bad, "bf16")
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_lm_eval(bad, "bf16")


def test_the_shipped_table_cites_every_row_and_has_baselines():
    from accelsim.compress.evidence import published

    df = published()
    assert len(df) >= 30
    assert df["source"].str.match(r"https?://").all()
    d = with_deltas(df)
    assert d["delta"].notna().all()  # every row carries its source's own baseline
    # GPTQ / AWQ-class weight-only int4 costs at most a few points of MMLU in these sources
    w4 = d[(d["recipe"] == "w4a16-g128") & (d["task"] == "mmlu")]
    assert len(w4) and (w4["delta"] > -5).all()
    joined = accuracy_vs_serving(df, "h100-sxm-80gb", "llama-3-8b", "mmlu")
    assert joined["tokens_per_s"].notna().any() and joined["delta"].notna().all()
