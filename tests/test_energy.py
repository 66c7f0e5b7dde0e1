"""Energy model: hand-derived energies on a toy chip with an explicit energy table, the default
tables, and the regimes compression should show (FP8 MACs cheaper, int4 weights cut decode energy)."""

from __future__ import annotations

import pytest
from conftest import make_system

from accelsim import evaluate, evaluate_train
from accelsim.analysis.energy import (ENERGY_CONSTANTS, default_energy, energy_table, mac_pJ_45nm,
                                      sram_pJ_per_byte_45nm)
from accelsim.arch.presets import load_system
from accelsim.workload.graph import WorkloadGraph, WorkloadMeta
from accelsim.workload.ops import MatMul

TABLE = {"mac_pJ": {"bf16": 1.0, "fp32": 4.0, "fp8": 0.5}, "vector_op_pJ": 2.0, "sram_pJ_per_byte": 3.0,
         "hbm_pJ_per_byte": 10.0, "link_pJ_per_byte": 7.0, "static_W": 5.0}


def toy(**chip):
    return make_system({"energy": TABLE, **chip})


def gemm_graph(m, n, k, **kw):
    g = WorkloadGraph(WorkloadMeta(model="gemm", phase="prefill", batch=1))
    g.add(MatMul(name="gemm", role="gemm", m=m, n=n, k=k, b_shared=True, **kw))
    return g


def test_gemm_energy_by_hand():
    m = n = k = 1024
    r = evaluate(toy(), gemm_graph(m, n, k))
    s, br = r.summary, r.summary["energy_breakdown_J"]
    macs = m * n * k
    assert br["mac"] == pytest.approx(macs * 1.0e-12)
    hbm = s["hbm_bytes_per_chip"]
    assert hbm >= 3 * 1024 * 1024 * 2  # A, B and C at least once
    assert br["hbm"] == pytest.approx(hbm * 10.0e-12)
    # core SRAM: operands and result in and out once (2 x max(compulsory bytes, HBM bytes))
    assert br["sram"] == pytest.approx(2 * max(3 * 1024 * 1024 * 2, hbm) * 3.0e-12)
    assert br["vector"] == 0.0 and br["link"] == 0.0
    assert br["static"] == pytest.approx(5.0 * s["latency_s"])
    assert s["energy_J"] == pytest.approx(sum(br.values()))
    assert r.ops["energy_J"].sum() == pytest.approx(s["energy_J"] - br["static"])


def test_fp8_macs_cheaper_than_bf16():
    sys = toy(core={"tensor": {"macs_per_cycle": {"bf16": 16384, "fp32": 4096, "fp8": 32768}}})
    bf = evaluate(sys, gemm_graph(512, 512, 512)).summary["energy_breakdown_J"]["mac"]
    f8 = evaluate(sys, gemm_graph(512, 512, 512, dtype_a="fp8", dtype_b="fp8")).summary["energy_breakdown_J"]["mac"]
    assert f8 == pytest.approx(bf * 0.5)
    # the defaults order the MAC energies by operand width too
    d = mac_pJ_45nm()
    assert d["fp4"] < d["fp8"] < d["bf16"] < d["fp16"] < d["fp32"] and d["int4"] < d["int8"] < d["fp8"]


def test_int4_weights_cut_decode_energy_per_token():
    for system in ("trn2", "h100-sxm-80gb"):
        base = evaluate(system, "llama-3-8b", phase="decode", batch=8).summary
        w4 = evaluate(system, "llama-3-8b", phase="decode", batch=8, compression="int4-g128").summary
        assert w4["energy_per_token_J"] < 0.6 * base["energy_per_token_J"]
        assert w4["energy_breakdown_J"]["hbm"] < 0.5 * base["energy_breakdown_J"]["hbm"]
        assert w4["energy_breakdown_J"]["vector"] > base["energy_breakdown_J"]["vector"]  # dequantization


def test_defaults_and_override():
    trn2 = load_system("trn2")
    assert all(v == 0 for v in trn2.chip.energy.model_dump().values() if not isinstance(v, dict))
    d = default_energy(trn2)
    assert d.hbm_pJ_per_byte == pytest.approx(ENERGY_CONSTANTS["hbm_pJ_per_bit"]["value"] * 8)
    assert 0 < d.mac_pJ["bf16"] < mac_pJ_45nm()["bf16"]  # scaled down from 45 nm
    # Horowitz's points are reproduced exactly
    assert sram_pJ_per_byte_45nm(32 * 1024) == pytest.approx(20 / 8)
    assert sram_pJ_per_byte_45nm(1 << 30) == pytest.approx(100 / 8)
    over = load_system("trn2", ["chip.energy.hbm_pJ_per_byte=20", "chip.energy.mac_pJ.bf16=0.3"])
    t = energy_table(over)
    assert t.hbm_pJ_per_byte == 20 and t.mac_pJ["bf16"] == 0.3 and t.mac_pJ["fp8"] == d.mac_pJ["fp8"]


def test_train_energy_per_step():
    s = evaluate_train("trn2", "llama-3-8b", global_batch=4, seq_len=512).summary
    br = s["energy_breakdown_J"]
    assert s["energy_J"] == pytest.approx(sum(br.values())) and br["mac"] > 0
    t = energy_table(load_system("trn2"))
    assert br["hbm"] == pytest.approx(s["hbm_bytes_per_chip"] * s["chips"] * t.hbm_pJ_per_byte * 1e-12, rel=1e-6)
    assert s["energy_per_token_J"] == pytest.approx(s["energy_J"] / (4 * 512))


def test_recipe_table_and_pareto_plot():
    from accelsim.codesign.recipes import recipe_pareto_plot, recipe_table

    df = recipe_table(["tiny"], ["trn2"], {"bf16": None, "w4a16": "w4a16-g64"}, phases=("decode",), batch=1)
    assert len(df) == 2 and {"latency_s", "energy_per_token_J", "sqnr_db", "memory_bytes_per_chip"} <= set(df.columns)
    base, w4 = df.set_index("recipe").loc["bf16"], df.set_index("recipe").loc["w4a16"]
    # int4 weights store fewer bytes and lose accuracy relative to the uncompressed baseline
    assert w4["memory_bytes_per_chip"] < base["memory_bytes_per_chip"]
    assert w4["sqnr_db"] < base["sqnr_db"]
    fig = recipe_pareto_plot(df, "sqnr_db", "energy_per_token_J")
    assert fig is not None
