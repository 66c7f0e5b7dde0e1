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
