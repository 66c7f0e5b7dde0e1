"""Compression co-design: recipes applied by the builders, mixed-operand GEMM pricing, sparsity,
both fidelity tiers, training and correlation rows. Expectations are derived by hand from the
presets' published numbers (see the comments), not from the code's own output."""

from __future__ import annotations

import pandas as pd
import pytest

from accelsim.api import evaluate, evaluate_train
from accelsim.arch import load_system
from accelsim.correlate import correlate
from accelsim.correlate.schema import COLUMNS
from accelsim.cost.op_cost import ChipModel, gemm_cost
from accelsim.workload import build, load_model
from accelsim.compress.recipes import Compression
from accelsim.workload.ops import MatMul

W4 = "int4-g128"  # 4 + 16/128 = 4.125 bits per weight


def lat(system, phase, comp=None, model="llama-3-8b", **kw):
    kw.setdefault("batch", 1)
    kw.setdefault("seq_len" if phase == "prefill" else "context_len", 1024)
    return evaluate(system, model, phase=phase, compression=comp, **{"mode": "ideal", **kw}).summary["latency_s"]


def test_w4a16_speeds_up_batch1_decode_not_compute_bound_prefill():
    # H100 and Trainium2 have no int4 math: W4A16 computes in bf16 after dequantization
    for system in ("h100-sxm-80gb", "trn2"):
        assert "int4" not in load_system(system).chip.core.tensor.macs_per_cycle
    d = lat("h100-sxm-80gb", "decode") / lat("h100-sxm-80gb", "decode", W4)
    # decode reads every weight once: at most 16 / 4.125 = 3.88x (KV cache and activations stay bf16)
    assert 2.5 < d < 16 / 4.125
    # Trainium2 prefill of 1024 tokens is compute-bound: the same bf16 math, no gain
    p = lat("trn2", "prefill") / lat("trn2", "prefill", W4)
    assert p == pytest.approx(1.0, abs=0.02)
    assert lat("trn2", "decode") / lat("trn2", "decode", W4) > 1.1


def test_weight_only_crossover_batch_emerges():
    # with dequantization fused (no vector cost) the only effect is fewer weight bytes; the
    # bf16 GEMM turns compute-bound at B* = peak * (16/8) / (2 * HBM bandwidth): past it W4A16
    # stops helping
    s = load_system("trn2", ["chip.core.tensor.fused_dequant=true"])
    cm = ChipModel(s)
    b_star = s.chip.peak_flops("bf16") * (16 / 8) / (2 * s.chip.hbm.bandwidth_Bps)

    def gain(b):
        base = MatMul(m=b, n=8192, k=8192, b_shared=True)
        w4 = MatMul(m=b, n=8192, k=8192, b_shared=True, dtype_b=W4, emulate=True)
        return gemm_cost(cm, base).time_s / gemm_cost(cm, w4).time_s

    assert gain(max(1, int(b_star / 8))) > 2.5
    assert gain(int(2 * b_star)) < 1.05
    crossover = next(b for b in range(8, 4096, 8) if gain(b) < 1.05)
    assert b_star / 2 <= crossover <= 2 * b_star


def test_fp8_prefill_speedup_close_to_rate_ratio_on_native_fp8():
    # trn2: fp8 32768 vs bf16 16384 MACs/cycle -> 2x on the GEMMs
    cm = ChipModel(load_system("trn2"))
    big = dict(m=4096, n=8192, k=8192, b_shared=True)
    g = gemm_cost(cm, MatMul(**big)).time_s / gemm_cost(
        cm, MatMul(**big, dtype_a="fp8", dtype_b="fp8", emulate=True)).time_s
    assert 1.8 < g <= 2.0
    fp8 = {"weights": "fp8", "activations": "fp8"}
    p = lat("trn2", "prefill", seq_len=2048) / lat("trn2", "prefill", fp8, seq_len=2048)
    assert 1.5 < p <= 2.0  # attention, norms and activations stay bf16
    # A100 has no fp8: the recipe is emulated in bf16 (plus dequantization); only the halved
    # bytes help, far from the 2x rate ratio
    assert lat("a100-sxm-80gb", "prefill") / lat("a100-sxm-80gb", "prefill", fp8) < 1.1


def test_sparsity_gain_below_2x_with_metadata_and_non_gemm_time():
    mm = MatMul(m=1, n=4096, k=4096, b_shared=True, sparsity="2:4")
    assert mm.b_el_bytes() == 2 * 2 / 4 + 2 * 2 / 4 / 8  # values + a 2-bit index per kept value = 1.125
    sp = {"sparsity": "2:4"}
    for system in ("h100-sxm-80gb", "trn2"):
        d = lat(system, "decode") / lat(system, "decode", sp)
        p = lat(system, "prefill", seq_len=2048) / lat(system, "prefill", sp, seq_len=2048)
        assert 1.0 < d < 2 / 1.125 and 1.0 < p < 2.0
    # trn2 lists 2:4 at sparsity_speedup 4, but 2:4 can skip at most half: capped at M/N = 2
    cm = ChipModel(load_system("trn2"))
    dense = MatMul(m=8192, n=8192, k=8192, b_shared=True)
    assert gemm_cost(cm, dense).compute_s / gemm_cost(cm, MatMul(m=8192, n=8192, k=8192, b_shared=True,
                                                               sparsity="2:4")).compute_s <= 2.0 + 1e-9


def test_both_fidelity_tiers_run_compressed():
    for comp in (W4, {"weights": "fp8", "activations": "fp8", "kv_cache": "fp8"}, {"sparsity": "2:4"}):
        a = evaluate("trn2", "tiny", phase="decode", batch=2, context_len=256, compression=comp)
        e = evaluate("trn2", "tiny", phase="decode", batch=2, context_len=256, compression=comp, fidelity="event")
        assert e.summary["latency_s"] > 0 and a.summary["latency_s"] > 0
    base = evaluate("trn2", "tiny", phase="decode", batch=2, context_len=256, fidelity="event")
    e8 = evaluate("trn2", "tiny", phase="decode", batch=2, context_len=256, fidelity="event",
                  compression={"weights": "fp8", "activations": "fp8", "kv_cache": "fp8"})
    assert e8.graph.meta.weight_bytes_per_chip < base.graph.meta.weight_bytes_per_chip


def test_fp8_training_step():
    base = evaluate_train("trn2", "tiny", 4, 256)
    fp8 = evaluate_train("trn2", "tiny", 4, 256, compression={"weights": "fp8", "activations": "fp8"})
    assert fp8.summary["step_time_s"] < base.summary["step_time_s"]
    assert 0 < fp8.summary["mfu"] <= 1.0  # against the fp8 peak
    step = build(load_model("tiny"), "prefill", 1, seq_len=16)  # recipes leave the plain builder alone
    assert all(o.dtype_b == "bf16" for o in step.ops() if o.kind == "matmul")


def test_recipe_overrides_keep_first_last_and_head():
    c = Compression(weights="int4-g64", keep_first=1, keep_last=1)
    g = build("llama-3-8b", "decode", 1, context_len=128, compression=c)
    by = {(o.layer, o.role): o for o in g.ops() if o.kind == "matmul"}
    assert by[(0, "qkv_proj")].dtype_b == "bf16" and by[(31, "mlp_up")].dtype_b == "bf16"
    assert by[(1, "qkv_proj")].dtype_b == "int4-g64" and by[(-1, "lm_head")].dtype_b == "bf16"


def test_pruning_transforms_the_config(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("compression:\n  weights: int4-g128\n  prune: {heads_fraction: 0.5, mlp_fraction: 0.5, layers: 8}\n")
    c = Compression.load(p)
    m = c.apply_model(load_model("llama-3-8b"))
    # 32 heads in 8 GQA groups of 4 -> 4 groups kept; 14336 / 2 = 7168; 32 - 8 layers
    assert (m.num_attention_heads, m.num_key_value_heads, m.intermediate_size, m.num_hidden_layers) == (16, 4, 7168, 24)
    assert m.head_dim == 128
    g = build("llama-3-8b", "decode", 1, context_len=128, compression=c)
    assert max(o.layer for o in g.ops()) == 23


def test_tags():
    assert Compression.from_tag("w8a16").weights == "int8"
    t = Compression.from_tag("w4a16-g64+sparse2:4")
    assert (t.weights, t.activations, t.sparsity) == ("int4-g64", None, "2:4")
    assert Compression.from_tag("w8a8").activations == "int8"


def test_correlate_predicts_compressed_rows():
    common = {"system": "h100-sxm-80gb", "model": "tiny", "dtype": "bf16", "batch": 1, "kind": "model",
              "phase": "decode", "context_len": 256, "measured_time_s": 1e-4}
    tags = ["w8a16", "w4a16-g64", "w4a16-g64+sparse2:4"]
    df = pd.DataFrame([{c: {**common, "id": t, "compression": t}.get(c) for c in COLUMNS} for t in tags]
                      + [{c: {"id": "g", "kind": "gemm", "system": "h100-sxm-80gb", "m": 16, "n": 4096, "k": 4096,
                               "dtype": "bf16", "compression": "w4a16-g64", "measured_time_s": 1e-5}.get(c)
                          for c in COLUMNS}])
    res = correlate(df).per_row.set_index("id")
    assert not res["skipped"].any()
    for t in tags:
        want = evaluate("h100-sxm-80gb", "tiny", phase="decode", batch=1, context_len=256,
                        compression=Compression.from_tag(t)).summary["latency_s"]
        assert res.loc[t, "predicted_time_s"] == pytest.approx(want)
    assert res.loc["w4a16-g64", "predicted_time_s"] < res.loc["w8a16", "predicted_time_s"]


def test_cli_formats_sqnr_and_run_flags():
    import json

    from click.testing import CliRunner

    from accelsim.cli import main

    r = CliRunner()
    out = r.invoke(main, ["formats", "--json"])
    assert out.exit_code == 0
    assert {f["name"]: f["bits_per_element"] for f in json.loads(out.output)}["mxfp4"] == 4.25
    out = r.invoke(main, ["sqnr", "--format", "int4", "--group", "128", "--format", "nvfp4", "--outliers", "2",
                          "--rows", "32", "--cols", "256", "--json"])
    assert out.exit_code == 0
    rows = json.loads(out.output)
    assert [x["format"] for x in rows] == ["int4-g128", "nvfp4"] and all(x["proxy"] for x in rows)
    out = r.invoke(main, ["run", "trn2", "tiny", "--weights", "int4-g128", "--kv", "fp8", "--sparsity", "2:4",
                          "--context", "64", "--json"])
    assert out.exit_code == 0, out.output
    out = r.invoke(main, ["run", "trn2", "tiny", "--weights", "fp5"])
    assert out.exit_code == 2 and "fp5" in out.output


def test_sqnr_refuses_options_that_would_change_nothing(tmp_path):
    """--group on formats that are not bare integer ones, and the synthetic tensor's shape options
    beside --npy, were dropped silently."""
    import numpy as np
    from click.testing import CliRunner

    from accelsim.cli import main

    r = CliRunner()
    out = r.invoke(main, ["sqnr", "--format", "fp8", "--group", "128"])
    assert out.exit_code == 2 and "--group sets the group of a bare integer format" in out.output
    f = tmp_path / "t.npy"
    np.save(f, np.random.default_rng(0).standard_normal((16, 64)))
    out = r.invoke(main, ["sqnr", "--format", "int8", "--npy", str(f), "--rows", "8"])
    assert out.exit_code == 2 and "--rows shape the synthetic tensor, which --npy replaces" in out.output
    assert r.invoke(main, ["sqnr", "--format", "int8", "--npy", str(f), "--seed", "3"]).exit_code == 0
