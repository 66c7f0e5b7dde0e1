"""Context parallelism as PyTorch's ring attention runs it (``cp_attention="ring_sdpa"``,
torchtitan's default): the ops of one layer and the overlap rule of the gathers and exchanges.

Expected shapes and bytes are hand-derived for Llama-3-8B (32 query heads of 128, 8 KV heads),
cp 4 over 4,096 tokens: ``sc = 1,024`` tokens a rank, ``n = 1,024 x 32 x 128 = 4,194,304``
output elements."""

import pytest

from accelsim.arch import load_system
from accelsim.sim.training import simulate_train
from accelsim.stack.presets import load_stack
from accelsim.stack.realize import plan_defaults
from accelsim.workload import Collective, FlashAttention, ParallelPlan, build_train

N = 1024 * 32 * 128


def _layer0(step, pass_idx):
    g = (step.fwd, step.bwd)[pass_idx][0]
    return [o for o in g.ops() if o.layer == 0]


def _ring(mode="ring_sdpa", **kw):
    return build_train("llama-3-8b", 1, 4096, ParallelPlan(cp=4, cp_attention=mode, **kw))


def _steps(fwd, kv_heads):
    """A ring's forward calls: the local causal block, then the full query block against half of
    each of the 3 peers' keys; together one rank's share of the causal work, 4096^2 / 2 / 4
    query-key pairs a head (the diagonal block's own diagonal aside)."""
    attn = [o for o in fwd if isinstance(o, FlashAttention)]
    assert [(o.q_len, o.kv_len, o.causal) for o in attn] == [(1024, 1024, True)] + [(1024, 512, False)] * 3
    assert all(o.heads == 32 and o.kv_heads == kv_heads for o in attn)
    assert sum(o.score_elements() for o in attn) == pytest.approx(32 * 4096 ** 2 / 8, rel=2e-3)


def test_ring_forward_runs_one_sdpa_call_per_step_over_the_query_heads_kv():
    fwd = _layer0(_ring(), 0)
    _steps(fwd, 32)  # K / V expanded to the query heads (repeat_kv)
    gather = [o for o in fwd if isinstance(o, Collective)]
    assert [(o.role, o.op, o.group, o.hidden_by) for o in gather] == [("cp.allgather", "allgather", 4, "L0.fwd.attn")]
    assert gather[0].bytes_per_rank == 1024 * 2 * 32 * 128 * 2  # this rank's K and V, bf16
    merges = [o for o in fwd if o.role == "fwd.attn_merge_diff"]
    assert len(merges) == 3 and all(o.elements == N and o.dtype == "fp32" for o in merges)


def test_ring_backward_passes_fp32_kv_gradients_to_the_neighbour_after_every_step():
    bwd = _layer0(_ring(), 1)
    sends = [o for o in bwd if isinstance(o, Collective) and o.op == "sendrecv"]
    assert len(sends) == 4 and all(o.bytes_per_rank == 2 * N * 4 and o.group == 2 for o in sends)
    # each exchange runs beside the next step's SDPA backward; the last one is waited for
    assert [o.hidden_by for o in sends] == ["L0.bwd.attn_ring1", "L0.bwd.attn_ring2", "L0.bwd.attn_ring3", ""]
    assert not [o for o in bwd if o.role == "cp.reducescatter"]
    attn = [o for o in bwd if isinstance(o, FlashAttention)]
    assert len(attn) == 4 and all(o.backward for o in attn)


def test_fused_context_parallelism_is_unchanged_by_default():
    step = build_train("llama-3-8b", 1, 4096, ParallelPlan(cp=4))
    attn = [o for o in _layer0(step, 0) if isinstance(o, FlashAttention)]
    assert [(o.q_len, o.kv_len, o.kv_heads) for o in attn] == [(1024, (4096 + 1024) // 2, 8)]
    assert [o.role for o in _layer0(step, 1) if isinstance(o, Collective)] == ["cp.allgather", "cp.reducescatter"]


def test_a_collective_beside_an_op_is_charged_only_what_outlasts_it():
    system = load_system("dgx-h100")
    step = _ring()
    run = simulate_train(system, step)
    ops = run.ops.set_index(["pass", "name"])["time_s"]
    fwd = sum(max(0.0, ops["fwd", f"L{i}.fwd.cp_allgather_kv"] - ops["fwd", f"L{i}.fwd.attn"]) for i in range(32))
    assert run.stage_times[0].fwd_comm_s == pytest.approx(fwd, rel=1e-9)
    bwd = 0.0
    for i in range(32):
        bwd += max(0.0, ops["bwd", f"L{i}.bwd.cp_allgather_kv"] - ops["bwd", f"L{i}.bwd.attn"])
        for r in range(3):
            bwd += max(0.0, ops["bwd", f"L{i}.bwd.r{r}.cp_sendrecv_dkv"] - ops["bwd", f"L{i}.bwd.attn_ring{r + 1}"])
        bwd += ops["bwd", f"L{i}.bwd.r3.cp_sendrecv_dkv"]
    assert run.stage_times[0].bwd_comm_s == pytest.approx(bwd, rel=1e-9)
    assert bwd > 0 and run.stage_times[0].zero_hidden_s > 0


def test_torchtitan_runs_pytorchs_ring_and_megatron_transformer_engines():
    assert plan_defaults(load_stack("torchtitan-cuda"))["cp_attention"] == "ring_sdpa"
    assert plan_defaults(load_stack("torchtitan-compile-cuda"))["cp_attention"] == "ring_sdpa"
    assert plan_defaults(load_stack("megatron-cuda"))["cp_attention"] == "te_p2p"


def test_ring_backward_holds_the_gathered_kv_fp32_accumulators_and_exchange_buffers():
    """Beside a layer's recompute working set: the gathered K / V of the 32 query heads over all
    4,096 tokens in bf16 (2 x 4096 x 4096 x 2 bytes), dQ / dK / dV in fp32 (3 x 4 n), the fp32
    K / V gradients sent and received (2 x 2 n x 4) and one step's bf16 gradients (2 n x 2)."""
    from accelsim.workload.memory import train_memory

    def stage0(mode):
        plan = ParallelPlan(cp=4, pp=2, cp_attention=mode, recompute="full", microbatch=1)
        return train_memory("llama-3-8b", 2, 4096, plan, stage=0).activations_bytes

    assert stage0("ring_sdpa") - stage0("fused") == 2 * 4096 * 4096 * 2 + 12 * N + 16 * N + 4 * N


def test_a_training_run_says_how_its_context_parallelism_runs():
    from click.testing import CliRunner

    from accelsim.api import evaluate_train
    from accelsim.cli import main

    def summary(stack):
        return evaluate_train("dgx-h100", "llama-3-8b", 2, 4096, cp=4, dp=2, stack=stack).summary

    assert summary("torchtitan")["cp_attention"] == "ring_sdpa"
    assert summary("megatron")["cp_attention"] == "te_p2p"
    out = CliRunner().invoke(main, ["run", "dgx-h100", "llama-3-8b", "--phase", "train", "--seq", "4096", "--cp", "4",
                                    "--dp", "2", "--batch", "2", "--stack", "torchtitan"]).output
    assert "cp=4 (ring attention)" in out


# --- Transformer Engine's ring (cp_attention="te_p2p", Megatron / NeMo) -------------------------------------
KVN = 1024 * 8 * 128  # a rank's K (and V) elements over its 8 KV heads


def test_te_forward_passes_the_kv_heads_kv_beside_each_step():
    fwd = _layer0(_ring("te_p2p"), 0)
    _steps(fwd, 8)  # GQA kept: no repetition
    recv = [o for o in fwd if isinstance(o, Collective)]
    # each step's K / V (bf16, KV heads) received beside the step before; no all-gather
    assert [(o.op, o.group, o.bytes_per_rank) for o in recv] == [("sendrecv", 2, 2 * KVN * 2)] * 3
    assert [o.hidden_by for o in recv] == ["L0.fwd.attn", "L0.fwd.attn_ring1", "L0.fwd.attn_ring2"]
    roles = [o.role for o in fwd]
    assert roles.count("fwd.attn_cp_half_kv") == 3 and roles.count("fwd.attn_cp_correct") == 4
    corr = [o for o in fwd if o.role == "fwd.attn_cp_correct"]
    assert all(o.elements == N and o.dtype == "bf16" for o in corr)  # merged in the activation dtype


def test_te_backward_exchanges_kv_and_their_gradients_and_waits_for_the_last():
    bwd = _layer0(_ring("te_p2p"), 1)
    sends = [o for o in bwd if isinstance(o, Collective)]
    assert len(sends) == 4 and all(o.bytes_per_rank == 4 * KVN * 2 for o in sends)  # K, V, dK, dV in bf16
    # reverse order: the last peer block first, the local causal block last
    assert [o.hidden_by for o in sends] == ["L0.bwd.attn_ring2", "L0.bwd.attn_ring1", "L0.bwd.attn", ""]
    attn = [o for o in bwd if isinstance(o, FlashAttention)]
    assert [o.causal for o in attn] == [False, False, False, True] and all(o.backward for o in attn)


def test_te_backward_holds_its_buffers():
    """dQ and one step's dQ (2 n), two K / V + dK / dV exchange buffers (8 KVN) and one step's
    dK / dV (2 KVN), all bf16, beside the layer's working set instead of the fused model's."""
    from accelsim.workload.memory import train_memory

    def stage0(mode):
        plan = ParallelPlan(cp=4, pp=2, cp_attention=mode, recompute="full", microbatch=1)
        return train_memory("llama-3-8b", 2, 4096, plan, stage=0).activations_bytes

    assert stage0("te_p2p") - stage0("fused") == (2 * N + 8 * KVN + 2 * KVN) * 2
