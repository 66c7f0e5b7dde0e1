"""Training step, parallel plans and memory per chip: expected values derived by hand."""

from __future__ import annotations

import math
import re

import pytest

from accelsim.errors import WorkloadError
from accelsim.sim.analytical import cost_ops
from accelsim.workload import (AdamW, Collective, FlashAttention, MatMul, ModelConfig, ParallelPlan, build_train,
                               fit_message, inference_memory, load_model, prefill, train_memory)
from accelsim.workload.memory import in_flight
from accelsim.workload.parallel import stage_params
from accelsim.workload.train import GROUPS, PASSES, active_params
from conftest import make_system

GiB = 2.0**30

TINY_MOE = ModelConfig(name="tiny-moe", family="decoder", hidden_size=64, intermediate_size=128,
                       num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=3, vocab_size=256,
                       activation="silu", gated_mlp=True, norm="rmsnorm", position_embedding="rope",
                       num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, num_shared_experts=1,
                       first_dense_layers=1)


def roles(graph, prefix=None):
    return [o.role for o in graph.ops() if prefix is None or o.role.startswith(prefix)]


def flops(graph, pred=lambda o: True):
    return sum(o.flops() for o in graph.ops() if pred(o))


# --- the DeepSeek-MoE 16B preset -------------------------------------------------------------

def test_deepseek_moe_16b_params():
    m = load_model("deepseek-moe-16b")
    d, L, v = 2048, 28, 102400
    swiglu = lambda f: 3 * d * f  # noqa: E731  gate, up, down
    expected = (L * 4 * d * d                       # q, k, v, o (16 heads of 128, no GQA)
                + L * 2 * d + d                     # two RMSNorms per layer + the final one
                + swiglu(10944)                     # layer 0: dense MLP
                + 27 * (d * 64 + 66 * swiglu(1408))  # 27 MoE layers: router, 64 routed + 2 shared experts
                + 2 * v * d)                        # untied embedding and LM head
    assert expected == 16_375_728_128 == m.params()
    assert abs(m.params() - 16.4e9) / 16.4e9 < 0.01  # DeepSeekMoE paper: 16.4B
    # active: 2 shared + 6 routed experts per token = 2.8B in the paper
    assert active_params(m) == m.params() - 27 * 58 * swiglu(1408)
    assert abs(active_params(m) - 2.8e9) / 2.8e9 < 0.02


# --- plans -----------------------------------------------------------------------------------

def test_plan_derived_sizes():
    p = ParallelPlan(tp=8, pp=4, dp=2, cp=2)
    assert (p.chips, p.chips_per_stage, p.dp_group, p.grad_accumulation(64)) == (128, 32, 4, 32)
    # tp counted in NeuronCores: 32 cores of 8-core chips = 4 chips
    n = ParallelPlan(tp=32, dp=4, cores_per_chip=8)
    assert (n.tp_chips, n.chips) == (4, 16)
    assert ParallelPlan(tp=4, cores_per_chip=8).tp_chips == 1
    step = build_train("llama-3-70b", 4, 128, n)
    qkv = next(o for o in step.fwd[0].ops() if o.role == "fwd.qkv_proj")
    assert qkv.n == (64 // 4 + 2 * (8 // 4)) * 128  # sharded over 4 chips, not 32 cores
    # expert-parallel layout: ep ranks come out of tp*dp, expert data parallelism is the rest
    e = ParallelPlan(tp=2, dp=8, ep=4, sp=True)
    assert (e.chips, e.expert_dp_group, e.dp_group) == (16, 4, 8)


@pytest.mark.parametrize("kw, model, batch, seq, message", [
    (dict(tp=3), "llama-3-8b", 8, 128, "tp=3 does not divide num_attention_heads=32"),
    (dict(pp=40), "llama-3-8b", 8, 128, "pp=40 exceeds the 32 layers"),
    (dict(dp=4, microbatch=3), "llama-3-8b", 8, 128, "global batch 8 is not divisible by dp*microbatch = 4*3 = 12"),
    (dict(ep=2, dp=2), "llama-3-8b", 8, 128, "ep=2 needs a mixture-of-experts model"),
    (dict(ep=16, dp=16), "mixtral-8x7b", 16, 128, "ep=16 does not divide num_experts=8"),
    (dict(cp=3), "llama-3-8b", 8, 128, "cp=3 needs seq_len divisible by 2*cp = 6"),
    (dict(pp=2, layers_per_stage=(10, 20)), "llama-3-8b", 8, 128, "sums to 30, but 'llama-3-8b' has 32 layers"),
    # 32 layers over pp=3: stages of 11, 11 and 10 layers, so at most 10 model chunks each
    (dict(pp=3, vpp=11), "llama-3-8b", 12, 128, "vpp=11 model chunks per stage, but a stage of 'llama-3-8b' has 10"),
    (dict(), "vit-b16", 8, 197, "training is modelled for decoder LMs"),
])
def test_plan_checked_against_model(kw, model, batch, seq, message):
    with pytest.raises(WorkloadError, match=re.escape(message)):
        build_train(model, batch, seq, ParallelPlan(**kw))


@pytest.mark.parametrize("kw, message", [
    (dict(tp=0), "tp: Input should be greater than or equal to 1"),
    (dict(zero=4), "zero: Input should be 0, 1, 2 or 3"),
    (dict(recompute="some"), "recompute: Input should be 'none', 'selective' or 'full'"),
    (dict(tpp=2), "tpp: unknown field"),
    (dict(ep=3, dp=4), "ep=3 must divide tp_chips*dp = 1*4 = 4"),
    (dict(ep=2, tp=2), "needs sequence parallelism (sp=True)"),
    (dict(tp=12, cores_per_chip=8), "tp=12 cores does not fill whole chips of 8 cores"),
    (dict(pp=2, layers_per_stage=(3,)), "layers_per_stage has 1 entries but pp=2"),
    (dict(vpp=2), "vpp=2 needs pp > 1"),
])
def test_plan_validation_messages(kw, message):
    with pytest.raises(WorkloadError, match=re.escape(message)):
        ParallelPlan(**kw)


def test_stage_layer_split():
    m = load_model("llama-3-70b")
    assert [len(r) for r in ParallelPlan(pp=4).stage_layers(80)] == [20, 20, 20, 20]
    # 80 = 3*26 + 2: the two extra layers go to the first stages, the last (with the LM head) is lightest
    split = ParallelPlan(pp=3).stage_layers(80)
    assert [len(r) for r in split] == [27, 27, 26] and split[1] == range(27, 54)
    assert [len(r) for r in ParallelPlan(pp=2, layers_per_stage=(30, 50)).stage_layers(80)] == [30, 50]
    step = build_train(m, 3, 64, ParallelPlan(pp=3))
    for s, graph in enumerate(step.fwd):
        layers = {o.layer for o in graph.ops() if o.layer >= 0}
        assert layers == set(split[s])
        assert ("fwd.embed" in roles(graph)) == (s == 0)
        assert ("fwd.lm_head" in roles(graph)) == (s == 2)
        assert ("bwd.lm_head_wgrad" in roles(step.bwd[s])) == (s == 2)
    assert step.microbatches == 3


# --- FLOPs -----------------------------------------------------------------------------------

def test_backward_is_twice_forward_and_recompute_adds_forward():
    # unfused attention is all GEMMs: every forward GEMM has a dgrad and a wgrad of equal FLOPs,
    # attention's 2 GEMMs become 4 (dprobs, dv, dq, dk): backward = 2x forward exactly
    for plan in (ParallelPlan(), ParallelPlan(tp=2, sp=True), ParallelPlan(pp=2)):
        st = build_train("tiny", 4, 64, plan, attention="unfused")
        for s in range(plan.pp):
            f, b = st.fwd[s].flops(), st.bwd[s].flops()
            assert b == pytest.approx(2 * f, rel=1e-12)
    full = build_train("tiny", 4, 64, ParallelPlan(recompute="full"), attention="unfused")
    head = flops(full.fwd[0], lambda o: o.layer < 0)  # the LM head is not recomputed
    assert head > 0
    assert full.stage_flops(0) == pytest.approx(4 * full.fwd[0].flops() - head, rel=1e-12)  # fwd, recompute, 2x
    # selective recomputes only the attention core (score and context GEMMs)
    sel = build_train("tiny", 4, 64, ParallelPlan(recompute="selective"), attention="unfused")
    core = flops(sel.fwd[0], lambda o: o.role in ("fwd.attn_score", "fwd.attn_context"))
    assert core > 0 and sel.bwd[0].flops() == pytest.approx(2 * sel.fwd[0].flops() + core, rel=1e-12)
    # flash: GEMMs 2x, attention backward 2.5x its forward
    fl = build_train("tiny", 4, 64, ParallelPlan())
    attn = flops(fl.fwd[0], lambda o: isinstance(o, FlashAttention))
    gemm = fl.fwd[0].flops() - attn
    assert fl.bwd[0].flops() == pytest.approx(2 * gemm + 2.5 * attn, rel=1e-12)


def test_model_flops_by_hand():
    m = load_model("llama-3-8b")
    st = build_train(m, 16, 2048, ParallelPlan(tp=2, dp=8))
    tokens = 16 * 2048
    n = 8_030_261_248 - 128256 * 4096  # without the input embedding (the LM head stays)
    expected = 6 * n * tokens + 6 * 32 * 4096 * 2048 * tokens  # + 12*L*d*s per token, halved (causal)
    assert st.tokens == tokens and st.model_flops == pytest.approx(expected, rel=1e-12)
    # what the chips execute: flash backward (2.5x) and the causal diagonal add a little
    assert 1.0 < st.hardware_flops() / st.model_flops < 1.03
    # MoE counts active parameters
    ds = build_train("deepseek-moe-16b", 8, 1024, ParallelPlan())
    assert ds.model_flops < 6 * 3.0e9 * 8 * 1024 * 1.2


@pytest.mark.parametrize("attention", ["flash", "unfused"])
def test_flops_conserved_over_chips_and_stages(attention):
    # the tiny model's vocabulary (256) and widths divide evenly, so sharding loses nothing; with
    # load-balanced context parallelism each rank does exactly 1/cp of the causal attention
    one = build_train("tiny", 8, 64, ParallelPlan(), attention=attention).hardware_flops()
    for kw in (dict(tp=2), dict(tp=2, sp=True), dict(pp=2), dict(dp=2), dict(cp=2), dict(dp=4, microbatch=2),
               dict(tp=2, pp=2, dp=2, cp=2, sp=True, zero=3, recompute="none")):
        st = build_train("tiny", 8, 64, ParallelPlan(**kw), attention=attention)
        assert st.hardware_flops() == pytest.approx(one, rel=1e-12), kw
    moe = build_train(TINY_MOE, 8, 64, ParallelPlan()).hardware_flops()
    for kw in (dict(dp=4, ep=4), dict(tp=2, dp=2, ep=4, sp=True), dict(tp=2, dp=2, ep=2, sp=True, pp=3)):
        assert build_train(TINY_MOE, 8, 64, ParallelPlan(**kw)).hardware_flops() == pytest.approx(moe, rel=1e-12)


# --- collectives -----------------------------------------------------------------------------

def test_tp_collectives_mirror_forward():
    d, T = 64, 2 * 64  # tiny: hidden 64; microbatch 2 of 64 tokens
    plain = build_train("tiny", 2, 64, ParallelPlan(tp=2, microbatch=2))
    L0 = lambda g: [o for o in g.ops() if o.layer == 0 and isinstance(o, Collective)]  # noqa: E731
    # forward: all-reduce after out_proj and mlp_down; backward: after the qkv and mlp_up dgrads
    for g in (plain.fwd[0], plain.bwd[0]):
        assert [(o.role, o.bytes_per_rank, o.group) for o in L0(g)] == [("tp.allreduce", T * d * 2, 2)] * 2
    sp = build_train("tiny", 2, 64, ParallelPlan(tp=2, sp=True, microbatch=2))
    assert [o.role for o in L0(sp.fwd[0])] == ["tp.allgather", "tp.reducescatter"] * 2
    # backward: all-gather dy, re-gather the input for the wgrad, reduce-scatter dx; per block
    assert [o.role for o in L0(sp.bwd[0])] == ["tp.allgather", "tp.allgather", "tp.reducescatter"] * 2
    ag = next(o for o in L0(sp.fwd[0]) if o.op == "allgather")
    assert ag.bytes_per_rank == T // 2 * d * 2  # each rank contributes its half of the sequence
    norm = next(o for o in sp.fwd[0].ops() if o.role == "fwd.norm_attn")
    assert norm.rows == T // 2
    # p2p: activations of a microbatch, split by tp under sp
    p2p = build_train("tiny", 2, 64, ParallelPlan(tp=2, sp=True, pp=2, microbatch=2)).p2p_bytes
    assert p2p == 2 * 64 / 2 * 64 * 2
    assert plain.p2p_bytes == 0  # one stage: nothing to send


def test_context_parallel_kv_allgather():
    # llama-3-8b, cp=4, seq 8192: each rank holds 2048 tokens and gathers everyone's K and V
    st = build_train("llama-3-8b", 1, 8192, ParallelPlan(cp=4))
    f = st.fwd[0]
    ag = next(o for o in f.ops() if o.role == "cp.allgather" and o.layer == 0)
    assert (ag.group, ag.bytes_per_rank) == (4, 2 * 2048 * 8 * 128 * 2)  # K and V, 8 KV heads of 128, bf16
    attn = next(o for o in f.ops() if o.role == "fwd.attn")
    full = FlashAttention(heads=32, kv_heads=8, q_len=8192, kv_len=8192, head_dim=128, causal=True)
    assert 4 * attn.flops() == pytest.approx(full.flops(), rel=1e-12)
    rs = next(o for o in st.bwd[0].ops() if o.role == "cp.reducescatter" and o.layer == 0)
    assert rs.bytes_per_rank == 2 * 8192 * 8 * 128 * 2  # the full dK, dV buffer


def test_moe_expert_parallel_alltoall_by_hand():
    # DeepSeek-MoE 16B, tp=2 with sp, dp=4, ep=4, one sequence of 4096 per microbatch: each rank
    # routes its 4096/2 = 2048 tokens to 6 experts: 2048*6 slots of 2048 bf16 values
    plan = ParallelPlan(tp=2, dp=4, ep=4, sp=True)
    st = build_train("deepseek-moe-16b", 4, 4096, plan)
    f = st.fwd[0]
    a2a = [o for o in f.ops() if o.role == "ep.alltoall" and o.layer == 1]
    assert [o.name for o in a2a] == ["L1.fwd.ep_alltoall_dispatch", "L1.fwd.ep_alltoall_combine"]
    assert all((o.group, o.bytes_per_rank) == (4, 2048 * 6 * 2048 * 2) for o in a2a)
    assert not [o for o in f.ops() if o.role == "ep.alltoall" and o.layer == 0]  # layer 0 is dense
    up = next(o for o in f.ops() if o.role == "fwd.moe_up" and o.layer == 1)
    # 64/4 = 16 whole experts per rank, 2048*6*4 slots arrive from the 4 ranks: 768 per expert
    assert (up.batch, up.m, up.n, up.k) == (16, 768, 2 * 1408, 2048)
    assert len([o for o in st.bwd[0].ops() if o.role == "ep.alltoall" and o.layer == 1]) == 2
    # a capacity factor of 1.25 pads buffers and GEMMs to 1.25x the mean load
    cap = build_train("deepseek-moe-16b", 4, 4096, plan.model_copy(update={"moe_capacity_factor": 1.25}))
    a = next(o for o in cap.fwd[0].ops() if o.role == "ep.alltoall")
    up = next(o for o in cap.fwd[0].ops() if o.role == "fwd.moe_up")
    assert a.bytes_per_rank == 1.25 * 2048 * 6 * 2048 * 2 and up.m == 960
    # dropless with a 1.5x hot rank
    hot = build_train("deepseek-moe-16b", 4, 4096, ParallelPlan(tp=2, dp=4, ep=4, sp=True, moe_load_imbalance=1.5))
    assert next(o for o in hot.fwd[0].ops() if o.role == "fwd.moe_up").m == 1152


def test_zero_collectives_by_hand():
    m = load_model("tiny")
    # tiny: per layer 4*64*16 (q) + 2*64*2*16 (k, v) + 4*16*64 (o) + 3*64*128 (MLP) + 2*64 (norms)
    layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128 + 2 * 64
    total = 2 * layer + 2 * 256 * 64 + 64  # + embedding, LM head, final norm
    assert total == m.params()
    step = lambda z: build_train(m, 4, 32, ParallelPlan(dp=4, zero=z))  # noqa: E731
    s0, s1, s2, s3 = (step(z) for z in range(4))
    assert [(c.op, c.bytes_per_rank, c.group) for c in s0.grad_sync[0]] == [("allreduce", 2 * total, 4)]
    assert [(c.op, c.bytes_per_rank) for c in s1.grad_sync[0]] == [("reducescatter", 2 * total),
                                                                   ("allgather", 2 * total / 4)]
    assert [c.op for c in s2.grad_sync[0]] == ["allgather"] and s3.grad_sync[0] == []
    # ZeRO-2/3 reduce-scatter each layer's gradients in the backward; ZeRO-3 gathers weights
    rs = [o for o in s2.bwd[0].ops() if o.role == "dp.reducescatter"]
    assert sorted(o.bytes_per_rank for o in rs) == sorted([2 * layer] * 2 + [2 * (256 * 64 + 64), 2 * 256 * 64])
    assert not roles(s2.fwd[0], "dp.")
    ag = [o for o in s3.fwd[0].ops() if o.role == "dp.allgather" and o.layer == 1]
    assert [o.bytes_per_rank for o in ag] == [2 * layer / 4]
    assert len(roles(s3.bwd[0], "dp.allgather")) == 2 + 1  # each layer again, and the LM head
    # AdamW: 30 bytes per parameter of the chip's shard (bf16 grads read twice; fp32 m, v and
    # master read and written; bf16 copy written)
    opt0 = s0.optimizer[0].ops()[0]
    assert isinstance(opt0, AdamW) and opt0.elements == total and opt0.bytes() == 30 * total
    assert s1.optimizer[0].ops()[0].elements == total // 4


def test_roles_follow_the_naming_convention():
    for st in (build_train("tiny", 4, 64, ParallelPlan(tp=2, pp=2, cp=2, sp=True, zero=3, recompute="full")),
               build_train(TINY_MOE, 8, 64, ParallelPlan(tp=2, dp=2, ep=4, sp=True, recompute="selective"))):
        for graphs in (st.fwd, st.bwd, st.optimizer):
            for g in graphs:
                for o in g.ops():
                    head, _, tail = o.role.partition(".")
                    assert tail and head in (GROUPS if isinstance(o, Collective) else PASSES), o.role
        assert {"bwd.qkv_proj_dgrad", "bwd.qkv_proj_wgrad", "fwd.qkv_proj"} <= set(roles(st.bwd[0]) + roles(st.fwd[0]))
        wgrads = [o for o in st.bwd[0].ops() if o.role.endswith("_wgrad")]
        assert all(isinstance(o, MatMul) for o in wgrads)


def test_graphs_cost_on_the_analytical_tier():
    sysm = make_system(num_chips=4, interconnect={"kind": "ring", "dims": [4], "link_bandwidth_Bps": "100 GB/s"})
    st = build_train(TINY_MOE, 8, 64, ParallelPlan(tp=2, dp=2, ep=2, sp=True, zero=1, pp=1))
    for g in (st.fwd[0], st.bwd[0], st.optimizer[0]):
        costs = cost_ops(g.ops(), sysm)
        assert all(c.time_s > 0 for c in costs)
    assert all(c.time_s > 0 for c in cost_ops(st.grad_sync[0], sysm))


# --- memory ----------------------------------------------------------------------------------

N70 = 70_553_706_496  # Llama-3-70B, published
R70 = 80 * 2 * 8192 + 8192  # RMSNorm weights: replicated on every TP rank, not split


def test_llama3_70b_memory_zero1_vs_zero3():
    m = load_model("llama-3-70b")
    assert m.params() == N70
    # per chip under tp=8: everything but the norms is split 8 ways (128256 = 8*16032 vocabulary)
    per_chip = (N70 - R70) // 8 + R70
    assert per_chip == 8_820_367_360
    z1 = train_memory(m, 64, 4096, ParallelPlan(tp=8, dp=8, zero=1))
    assert z1.weights_bytes == 2 * per_chip           # bf16 weights: ~2*N/tp = 17.6 GB
    assert z1.gradients_bytes == 2 * per_chip         # bf16 grads:   ~2*N/tp
    assert z1.optimizer_bytes == 12 * per_chip / 8    # fp32 master, m, v: 12*N/(tp*dp) = 13.2 GB
    assert z1.weights_bytes == pytest.approx(2 * N70 / 8, rel=1e-3)
    assert z1.optimizer_bytes == pytest.approx(12 * N70 / 64, rel=1e-3)
    # activations (Korthikanti et al., tp without sp, flash): s*b*h*(10 + 24/t) per layer, 80 layers,
    # one microbatch in flight (pp=1); plus the fp32 logits 4*s*b*vocab/t of the last stage
    act = 4096 * 1 * 8192 * (10 + 24 / 8) * 80 + 4 * 4096 * 128256 / 8
    assert z1.activations_bytes == act and z1.kv_cache_bytes == 0
    z3 = train_memory(m, 64, 4096, ParallelPlan(tp=8, dp=8, zero=3))
    assert z3.weights_bytes == 2 * per_chip / 8
    assert z3.gradients_bytes == 2 * per_chip / 8
    assert z3.optimizer_bytes == 12 * per_chip / 8
    # ZeRO-3 gathers two layers at a time: (q 8192x1024, k/v 8192x128 each, o 1024x8192, MLP 3x8192x3584, norms)
    layer = 2 * 8192 * 1024 + 2 * 8192 * 128 + 3 * 8192 * 3584 + 2 * 8192
    assert z3.buffers_bytes == 2 * 2 * layer
    assert z3.total_bytes < z1.total_bytes


def test_activation_memory_variants():
    m = load_model("llama-3-70b")
    s, h, a, t = 4096, 8192, 64, 8
    logits = 4 * s * 128256 / t
    sp = train_memory(m, 8, s, ParallelPlan(tp=t, sp=True))
    assert sp.activations_bytes == s * h / t * 34 * 80 + logits
    unfused = train_memory(m, 8, s, ParallelPlan(tp=t, sp=True), attention="unfused")
    assert unfused.activations_bytes == s * h / t * (34 + 5 * a * s / h) * 80 + logits
    full = train_memory(m, 8, s, ParallelPlan(tp=t, sp=True, recompute="full"))
    assert full.activations_bytes == 2 * s * h / t * 80 + s * h / t * 34 + logits  # inputs + one layer
    # 1F1B keeps pp microbatches on stage 0; GPipe all of them
    p1 = ParallelPlan(tp=8, pp=4, microbatch=1)
    assert [in_flight(p1, st, 16) for st in range(4)] == [4, 3, 2, 1]
    assert in_flight(p1.model_copy(update={"schedule": "gpipe"}), 0, 16) == 16
    st0 = train_memory(m, 16, s, p1, stage=0)
    assert st0.activations_bytes == s * h * (10 + 24 / 8) * 20 * 4


def test_inference_memory_matches_meta():
    g = prefill("llama-3-8b", 4, seq_len=512, tp=2)
    mem = inference_memory(g)
    assert (mem.weights_bytes, mem.kv_cache_bytes, mem.activations_bytes) == (
        g.meta.weight_bytes_per_chip, g.meta.kv_cache_bytes_per_chip, g.meta.activation_bytes_per_chip)
    assert mem.phase == "prefill" and mem.gradients_bytes == mem.optimizer_bytes == 0


def _apply(plan: ParallelPlan, suggestion: str) -> ParallelPlan:
    key, value = suggestion.split("=")
    value = value if key == "recompute" else int(value)
    return ParallelPlan(**{**plan.model_dump(), key: value, **({"layers_per_stage": ()} if key == "pp" else {})})


@pytest.mark.parametrize("model, batch, seq, plan, capacity, change", [
    # optimizer states dominate: ZeRO-1 divides them by dp=8
    ("llama-3-70b", 64, 4096, ParallelPlan(tp=8, dp=8, sp=True), 80 * GiB, "zero=1"),
    # dp=1, so ZeRO cannot help; the 8K-token activations can go
    ("llama-3-8b", 1, 8192, ParallelPlan(tp=8), 24 * GiB, "recompute=full"),
    # a single chip: nothing but more tensor parallelism helps
    ("llama-3-8b", 1, 1024, ParallelPlan(recompute="full"), 80 * GiB, "tp=2"),
])
def test_fit_message_suggests_a_change_that_fits(model, batch, seq, plan, capacity, change):
    mem = train_memory(model, batch, seq, plan)
    assert mem.total_bytes > capacity
    msg = fit_message(mem, capacity, plan)
    assert msg.startswith("does not fit") and "largest:" in msg
    got = re.search(r"Smallest change that fits: (\S+)", msg).group(1)
    assert got == change, msg
    fixed = train_memory(model, batch, seq, _apply(plan, got))
    assert fixed.total_bytes <= capacity
    assert fit_message(fixed, capacity).startswith("fits")


def test_train_step_memory_and_meta():
    st = build_train("llama-3-8b", 8, 1024, ParallelPlan(tp=2, pp=2, dp=2, zero=1))
    assert st.memory().total_bytes == train_memory("llama-3-8b", 8, 1024, st.plan).total_bytes
    meta = st.fwd[1].meta
    assert (meta.phase, meta.tp, meta.batch, meta.tokens) == ("train.fwd", 2, 1, 1024)
    assert math.isclose(sum(m.weight_bytes_per_chip for m in (st.fwd[0].meta, st.fwd[1].meta)) / 2,
                        sum(load_model("llama-3-8b").param_breakdown(2).values()), rel_tol=1e-12)


@pytest.mark.parametrize("name", ["gpt3-175b", "llama-3-70b", "mixtral-8x7b", "deepseek-moe-16b"])
@pytest.mark.parametrize("tp", [1, 2, 8])
def test_stage_params_agree_with_param_breakdown(name, tp):
    m = load_model(name)
    whole = sum(m.param_breakdown(tp).values())
    assert sum(stage_params(m, ParallelPlan(tp=tp), 0)) == whole
    per_stage = [sum(stage_params(m, ParallelPlan(tp=tp, pp=4), s)) for s in range(4)]
    extra = 0 if not m.tied_embeddings else -(-m.vocab_size // tp) * m.hidden_size  # the last stage's copy
    assert sum(per_stage) == whole + extra
    if m.is_moe:  # ep ranks hold disjoint whole experts: together, the experts of tp=1
        plan = ParallelPlan(tp=tp, dp=8, ep=8, sp=tp > 1)
        dense, expert = stage_params(m, plan, 0)
        g = 3 * m.hidden_size * m.moe_intermediate_size
        n_moe = m.num_hidden_layers - m.first_dense_layers
        assert 8 * expert == n_moe * m.num_experts * g


def test_tied_embeddings_and_fp32_training():
    st = build_train("gpt3-175b", 4, 256, ParallelPlan(tp=8, pp=2, dp=2, zero=1))
    # the LM head on the last stage reuses the embedding: their gradients are summed
    for s in (0, 1):
        ar = [c for c in st.grad_sync[s] if c.role == "pp.allreduce"]
        assert [(c.group, c.bytes_per_rank) for c in ar] == [(2, 2 * (50257 + 7) // 8 * 12288)]
    assert "fwd.pos_embed" in roles(st.fwd[0])
    # fp32 training: no master copy, Adam moments only: 8 bytes of optimizer state per parameter
    m = load_model("tiny")
    mem = train_memory(m, 4, 32, ParallelPlan(), dtype="fp32")
    assert (mem.weights_bytes, mem.gradients_bytes, mem.optimizer_bytes) == (4 * m.params(), 4 * m.params(),
                                                                             8 * m.params())
    opt = build_train(m, 4, 32, ParallelPlan(), dtype="fp32").optimizer[0].ops()[0]
    assert not opt.master_weights and opt.bytes() == (2 * 4 + 4 * 4 + 2 * 4) * m.params()
    # fp32 gradients with bf16 training (Megatron's accumulate_allreduce_grads_in_fp32)
    g32 = build_train(m, 4, 32, ParallelPlan(dp=2, grad_dtype="fp32"))
    assert g32.grad_sync[0][0].bytes_per_rank == 4 * m.params()
    assert all(o.dtype_out == "fp32" for o in g32.bwd[0].ops() if o.role.endswith("_wgrad"))


def test_fit_message_search_is_bounded_for_deep_models():
    """A 100,000-layer model (the largest a model file may declare) once made ``fit_message``
    try 100,000 pipeline depths: each knob now tries its 16 nearest values, then doubles."""
    from accelsim.workload.memory import _candidates

    deep = load_model("tiny").model_copy(update={"num_hidden_layers": 100_000})
    plan = ParallelPlan(microbatch=64, zero=3, recompute="full")
    pps = [c["pp"] for _, c in _candidates(plan, deep) if "pp" in c]
    assert pps[:16] == list(range(2, 18)) and pps[-1] == 100_000
    assert len(pps) == 16 + 12 + 1  # then 33, 65, ..., 65537 (12 doublings) and the last
    assert all(b - 1 >= 2 * (a - 1) for a, b in zip(pps[16:], pps[17:-1]))
    mbs = [c["microbatch"] for _, c in _candidates(plan, deep) if "microbatch" in c]
    assert mbs[:16] == list(range(63, 47, -1)) and mbs[-1] == 1 and len(mbs) < 20
    mem = train_memory(deep, 64, 64, plan)
    msg = fit_message(mem, mem.total_bytes / 40, plan)
    got = re.search(r"Smallest change that fits: (\S+)", msg).group(1)
    assert got.startswith("pp=") and train_memory(deep, 64, 64, _apply(plan, got)).total_bytes <= mem.total_bytes / 40
