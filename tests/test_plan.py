"""Planning backward from accuracy targets (accelsim.codesign.plan) on the shipped evidence.
Expected statuses read off workloads/accuracy/published.csv by hand: Llama-3-8B FP8 (AutoFP8)
loses 0.33 MMLU and 1.97 GSM8K points against its card's BF16; 2:4 (SparseGPT) loses 4.85 MMLU;
int4 AutoRound loses 0.80 MMLU and reports no GSM8K."""

from click.testing import CliRunner

from accelsim.cli import main
from accelsim.codesign.plan import candidates, plan

TARGETS = {"mmlu": -1.0, "gsm8k": -2.0}


def test_statuses_from_the_evidence():
    c = candidates("llama-3-8b", TARGETS).set_index(["recipe", "method"])["status"]
    assert c[("bf16", "baseline")] == "meets"
    assert c[("fp8", "AutoFP8")] == "meets"
    assert c[("2:4", "SparseGPT")] == "misses mmlu"
    assert c[("w4a16-g128", "AutoRound")] == "no evidence for gsm8k"
    tight = candidates("llama-3-8b", {"mmlu": -0.3, "gsm8k": -2.0}).set_index(["recipe", "method"])["status"]
    assert tight[("fp8", "AutoFP8")] == "misses mmlu"  # -0.33 < -0.3
    proxy = candidates("llama-3-8b", TARGETS, allow_proxy=True).set_index(["recipe", "method"])["status"]
    assert proxy[("w4a16-g128", "AutoRound")].startswith("proxy")


def test_plan_ranks_what_meets_first_fastest_first():
    df = plan("llama-3-8b", TARGETS, ["h100-sxm-80gb", "trn2"])
    for system, g in df.groupby("system"):
        assert list(g.head(2)["recipe"]) == ["fp8", "bf16"]  # the two that meet; FP8 is faster
        assert g["ok"].sum() == 2 and g.iloc[0]["tokens_per_s"] > g.iloc[1]["tokens_per_s"]
    proxied = plan("llama-3-8b", TARGETS, ["h100-sxm-80gb"], allow_proxy=True)
    assert proxied.iloc[0]["recipe"] in ("w4a16-g128", "w4a4")  # int4 serves fastest once proxies count


def test_cli(tmp_path):
    md = tmp_path / "plan.md"
    res = CliRunner().invoke(main, ["codesign", "plan", "--model", "llama-3-8b", "--target", "mmlu=-1.0", "--target",
                                    "gsm8k=-2.0", "--systems", "trn2,h100-sxm-80gb,mi300x", "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    assert res.output.count("| meets |") == 6 and "mi300x" in res.output and md.read_text().startswith("| system")
    res = CliRunner().invoke(main, ["codesign", "plan", "--model", "llama-3-8b", "--target", "mmlu", "--systems", "trn2"])
    assert res.exit_code != 0 and "TASK=CHANGE" in res.output


def test_architecture_review():
    from accelsim.codesign.plan import FEATURES, architecture_review

    df = architecture_review("llama-3-8b", TARGETS, ["h100-sxm-80gb"]).set_index("feature")
    assert list(df.index) == ["as is", *FEATURES]
    assert (df["best"] == "fp8").all()  # on the evidence only FP8 and BF16 meet both targets
    # a batch-8 decode step is memory-bound: more HBM bandwidth speeds it up, int4 math cannot
    assert df.loc["HBM bandwidth x1.5", "tokens_per_s_change"] > 0.2
    assert df.loc["native int4 math", "tokens_per_s_change"] == 0.0
    proxied = architecture_review("llama-3-8b", TARGETS, ["trn2"], allow_proxy=True).set_index("feature")
    # counting recipes without evidence, int4 math makes W4A4 the fastest on trn2
    assert proxied.loc["as is", "best"] == "fp8" and proxied.loc["native int4 math", "best"] == "w4a4"
    res = CliRunner().invoke(main, ["codesign", "review", "--model", "llama-3-8b", "--target", "mmlu=-1.0",
                                    "--target", "gsm8k=-2.0", "--systems", "mi300x"])
    assert res.exit_code == 0 and "HBM bandwidth x1.5" in res.output


def test_minitron_width_pruning_by_hand():
    from accelsim.codesign.plan import pruned
    from accelsim.workload import load_model

    w = pruned("llama-3.1-8b", "Minitron-Width").apply_model(load_model("llama-3.1-8b"))
    assert (w.hidden_size, w.intermediate_size, w.head_dim, w.num_attention_heads, w.num_hidden_layers) == (
        3072, 9216, 128, 32, 32)
    # embeddings and LM head 2 x 128256 x 3072 = 788,004,864; per layer q and o 2 x 3072 x 4096,
    # k and v 2 x 3072 x 1024, MLP 3 x 3072 x 9216, norms 6,144 = 116,398,080 x 32; final norm
    # 3,072: 4,512,746,496 (Llama-3.1-Minitron-4B-Width's model card: 4.51 B)
    assert w.params() == 4_512_746_496


def test_production_cost_beside_each_plan_row():
    df = plan("llama-3.1-8b", {"mmlu": -8.0, "gsm8k": -10.0}, ["h100-sxm-80gb"])
    df = df.set_index(df["recipe"].where(df["recipe"] != "pruned-distilled", df["method"]))
    assert df.loc["bf16", "produce"] == "-" and df.loc["bf16", "produce_chip_hours"] == 0
    # PTQ: a forward pass of 128 x 2048 calibration tokens, 2 x 8.03e9 FLOPs a token, at the H100's
    # BF16 peak (989 TFLOP/s) times its achievable fraction (0.807) and its sustained-load clock
    # fraction (0.86, a run of the chip flat out): about 6.2 s, 0.0017 chip-hours
    rate = 989e12 * 0.807 * 0.86
    ptq = df.loc["w8a8", "produce_chip_hours"]
    assert "PTQ calibration" in df.loc["w8a8", "produce"]
    assert abs(ptq / (2 * 8.03e9 * 128 * 2048 / rate / 3600) - 1) < 0.15
    # Minitron depth pruning healed by distillation over 94 B tokens: per token a training step of
    # the 16-layer student (6 x 4.54e9 FLOPs) and the teacher's forward (2 x 8.03e9): ~1,660
    # chip-hours at the same rate; attention and the full-vocabulary logits add a little
    pd_row = df.loc["Minitron-Depth"]
    hand = 94e9 * (6 * 4.54e9 + 2 * 8.03e9) / rate / 3600
    assert "94 B tokens" in pd_row["produce"] and 1.0 < pd_row["produce_chip_hours"] / hand < 1.25
    # and the pruned model is served: half the layers decode faster than the BF16 model
    assert pd_row["tokens_per_s"] > df.loc["bf16", "tokens_per_s"]
    # the width variant (4.5 B parameters, 32 layers) meets both targets on the evidence
    assert df.loc["Minitron-Width", "status"] == "meets" and "94 B tokens" in df.loc["Minitron-Width", "produce"]


def test_a_plan_refuses_what_it_could_only_annotate_row_by_row():
    """An unknown model or system, a model without evidence and a misspelt target task are refused
    at once (they filled every row of the table with the same error, or "no evidence")."""
    import pytest

    from accelsim.errors import AccelsimError

    for kw, says in ((dict(model="nope"), "unknown model 'nope'"),
                     (dict(systems=["nosys"]), "unknown system preset 'nosys'"),
                     (dict(model="tiny"), "no accuracy evidence for model 'tiny'"),
                     (dict(targets={"mmlu_": -1.0}), "target task 'mmlu_' has no row in the evidence")):
        args = {**dict(model="llama-3-8b", targets={"mmlu": -1.0}, systems=["trn2"]), **kw}
        with pytest.raises(AccelsimError, match=says):
            plan(args["model"], args["targets"], args["systems"])
    r = CliRunner().invoke(main, ["codesign", "plan", "--model", "llama-3-8b", "--target", "mmlu_=-1",
                                  "--systems", "trn2"])
    assert r.exit_code != 0 and "Did you mean mmlu" in r.output and "Traceback" not in r.output
