"""Training steps as frameworks and chips run them: JAX rematerialisation and MaxText's named
remat policies (what a recomputed layer reruns and what it keeps), and FP8 casts on a chip whose
FP8 GEMMs take one operand layout; FLOPs and bytes derived by hand from the layer's shapes (not
from the code)."""

import json

import pytest
from click.testing import CliRunner

from accelsim.cli import main
from accelsim.correlate.schema import load_measurements
from accelsim.errors import MeasurementError
from accelsim.stack.presets import load_stack, resolve
from accelsim.stack.realize import plan_defaults
from accelsim.workload import load_model
from accelsim.workload.memory import activation_bytes_per_layer, train_memory
from accelsim.workload.parallel import ParallelPlan
from accelsim.workload.train import build_train

L8 = load_model("llama-3-8b")  # d 4096, 32 heads of 128, 8 kv heads, MLP 14336 (gated)
T, D, F, KV = 4096, 4096, 14336, 8 * 128


def _recomputed(plan: ParallelPlan) -> dict:
    step = build_train(L8, 8, 4096, plan.model_copy(update={"dp": 8, "microbatch": 1}), dtype="bf16")
    return {o.role: o for o in step.bwd[0].ops() if o.role.startswith("recompute.") and o.layer == 0}


def test_jax_recomputes_only_what_the_backward_reads():
    torch = _recomputed(ParallelPlan(recompute="full"))
    jax = _recomputed(ParallelPlan(recompute="full", recompute_scope="needed"))
    # PyTorch reruns the layer's whole forward, the down projection (T x d x f) included
    assert torch["recompute.mlp_down"].flops() == pytest.approx(2 * T * D * F)
    assert "recompute.residual_mlp" in torch
    # JAX stops after the activation: the down projection's output only feeds the residual add
    assert set(torch) - set(jax) == {"recompute.mlp_down", "recompute.residual_mlp"}
    assert sum(o.flops() for o in torch.values()) - sum(o.flops() for o in jax.values()) == \
        pytest.approx(2 * T * D * F)


def test_maxtext_policies_keep_qkv_or_the_attention_output():
    qkv = _recomputed(ParallelPlan(recompute="selective", selective="qkv_proj", recompute_scope="needed"))
    ctx = _recomputed(ParallelPlan(recompute="selective", selective="context_offload", recompute_scope="needed"))
    # save_qkv_proj: no q / k / v projection, the attention core and the rest up to the activation rerun
    assert "recompute.qkv_proj" not in qkv and "recompute.attn" in qkv and "recompute.mlp_down" not in qkv
    assert qkv["recompute.out_proj"].flops() == pytest.approx(2 * T * D * D)
    assert qkv["recompute.mlp_up"].flops() == pytest.approx(2 * T * 2 * F * D)
    # context offloaded: the projections rerun (q, k, v: d + 2 kv wide), the attention core does not
    assert ctx["recompute.qkv_proj"].flops() == pytest.approx(2 * T * (D + 2 * KV) * D)
    assert "recompute.attn" not in ctx and "recompute.mlp_down" not in ctx


def test_maxtext_policy_memory_by_hand():
    s, b, h = 8192, 2, 4096
    qkv = ParallelPlan(dp=8, microbatch=b, recompute="selective", selective="qkv_proj")
    # layer input 2 + q, k, v (4096 + 2 x 1024 wide: 1.5 h) x 2 bytes = 5 bytes per s*b*h
    assert activation_bytes_per_layer(L8, s, qkv) == pytest.approx(5 * s * b * h)
    tp2 = qkv.model_copy(update={"tp": 2, "dp": 4})
    # under TP the projections split: (2048 + 2 x 512) / 4096 = 0.75 h, the input whole without sp
    assert activation_bytes_per_layer(L8, s, tp2) == pytest.approx((2 + 1.5) * s * b * h)
    off = ParallelPlan(dp=8, microbatch=b, recompute="selective", selective="context_offload")
    assert activation_bytes_per_layer(L8, s, off) == pytest.approx(2 * s * b * h)  # the layer input only
    mem = train_memory(L8, 16, s, off)
    # the attention output of every layer (s x b x h, 2 bytes) in host memory, not on the chip
    assert mem.host_bytes == pytest.approx(32 * s * b * h * 2)
    full = train_memory(L8, 16, s, ParallelPlan(dp=8, microbatch=b, recompute="full"))
    assert mem.total_bytes == pytest.approx(full.total_bytes) and full.host_bytes == 0


def test_maxtext_stacks_run_jax_rematerialisation():
    cuda = plan_defaults(resolve("maxtext-cuda", None, "realistic"))
    assert (cuda["recompute"], cuda["selective"], cuda["recompute_scope"]) == ("selective", "qkv_proj", "needed")
    assert plan_defaults(resolve("maxtext-tpu", None, "realistic"))["recompute_scope"] == "needed"
    assert plan_defaults(resolve("megatron-cuda", None, "realistic"))["recompute_scope"] == "layer"


def test_cli_selective_flag_and_host_bytes():
    r = CliRunner().invoke(main, ["run", "dgx-h100", "llama-3-8b", "--phase", "train", "--batch", "16",
                                  "--seq", "4096", "--dp", "8", "--microbatch", "2", "--zero", "3",
                                  "--recompute", "selective", "--selective", "context_offload", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["selective"] == "context_offload"
    assert s["host_offload_bytes_per_chip"] == pytest.approx(32 * 4096 * 2 * 4096 * 2)
    from typing import get_args

    from accelsim.cli.run import run
    from accelsim.workload.parallel import Selective

    # the CLI keeps its own list (no model import at start-up): it must be the plan's
    assert tuple(next(p for p in run.params if p.name == "selective").type.choices) == get_args(Selective)
    bad = CliRunner().invoke(main, ["run", "dgx-h100", "llama-3-8b", "--selective", "op"])
    assert bad.exit_code != 0 and "--phase train" in bad.output


def test_selective_column(tmp_path):
    p = tmp_path / "rows.csv"
    head = "id,kind,system,dtype,model,phase,seq_len,dp,global_batch,recompute,selective,measured_time_s\n"
    p.write_text(head + "a,model,dgx-h100,bf16,llama-3-8b,train,4096,8,16,selective,qkv_proj,1.0\n")
    assert load_measurements(p)["selective"].iloc[0] == "qkv_proj"
    p.write_text(head + "a,model,dgx-h100,bf16,llama-3-8b,train,4096,8,16,selective,some,1.0\n")
    with pytest.raises(MeasurementError, match="column selective"):
        load_measurements(p)


def test_fp8_casts_write_both_layouts_on_a_tn_only_chip():
    # FP8 GEMMs on Hopper take one layout only: each activation cast writes the operand and its
    # transpose (bf16 read once: 2 bytes, fp8 written twice: 2 x 1 byte)
    plan = ParallelPlan(dp=8, microbatch=1)
    one = build_train(L8, 8, 4096, plan, dtype="fp8", fp8_scope="gemm")
    two = build_train(L8, 8, 4096, plan, dtype="fp8", fp8_scope="gemm", fp8_transposes=True)
    c1 = {o.role: o for o in one.fwd[0].ops() if o.role.endswith("_cast") and o.layer == 0}
    c2 = {o.role: o for o in two.fwd[0].ops() if o.role.endswith("_cast") and o.layer == 0}
    x = T * D  # the input of the q / k / v projection: 4096 tokens x 4096
    assert c1["fwd.qkv_proj_cast"].bytes() == pytest.approx(3 * x)
    assert c2["fwd.qkv_proj_cast"].bytes() == pytest.approx(4 * x)
    from accelsim.arch import load_system

    assert load_system("dgx-h100").chip.core.tensor.fp8_tn_only
    assert not load_system("mi300x").chip.core.tensor.fp8_tn_only
    from accelsim.api import evaluate_train

    ops = evaluate_train("dgx-h100", L8, 8, 4096, plan=plan, dtype="fp8").ops
    cast = ops[(ops["role"] == "fwd.qkv_proj_cast") & (ops["layer"] == 0)]
    assert float(cast["hbm_bytes"].iloc[0]) == pytest.approx(4 * x)


def test_an_eager_fp32_loss_runs_its_kernels_over_every_logit():
    """``loss: eager_fp32`` (torchtitan, accelsim's own bench loop: ``cross_entropy(logits.float())``):
    forward, the widening copy (2 + 4 bytes a logit) and log-softmax in fp32 (4 + 4); backward,
    nll_loss's zero-filled gradient (4), the log-softmax backward (4 + 4 read, 4 written) and the
    narrowing copy (4 + 2): 14 and 22 bytes a logit, against the fused loss's 4 (a bf16 softmax
    pass) and 6 (a bf16 gradient pass: two reads, one write)."""
    from accelsim.workload.parallel import ParallelPlan
    from accelsim.workload.train import build_train

    logits = 4 * 2048 * 128256  # one microbatch of 4 x 2048 tokens over Llama-3's vocabulary
    for loss, fwd, bwd in (("fused", 4, 6), ("eager_fp32", 14, 22)):
        step = build_train("llama-3-8b", 4, 2048, ParallelPlan(microbatch=4, loss=loss))
        by = {p: sum(o.bytes() for o in g.ops() if o.role == f"{p}.loss")
              for p, g in (("fwd", step.fwd[0]), ("bwd", step.bwd[0]))}
        assert by == {"fwd": fwd * logits, "bwd": bwd * logits}, loss
    assert ParallelPlan().loss == "fused"


def test_fsdp_reduces_gradients_in_the_reduce_dtype():
    """FSDP2 under MixedPrecisionPolicy(reduce_dtype=fp32) (torchtitan's default) reduce-scatters
    fp32 gradients of bf16 parameters. By hand, Llama-3-8B's layer 0 on 8 ranks: its weights are
    4096 x (4096 + 2 x 1024) (q, k, v) + 4096 x 4096 (o) + 3 x 4096 x 14336 (gate, up, down) =
    218,103,808 parameters plus two 4096-wide norms = 218,112,000; a reduce-scatter's input is
    the layer's whole gradient: 4 B each in fp32 (872,448,000 B), 2 B in bf16."""
    m = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 2})

    def layer0_rs(**kw):
        step = build_train(m, 8, 512, ParallelPlan(dp=8, zero=3, **kw))
        rs = [o for o in step.bwd[0].ops() if o.role == "dp.reducescatter" and o.layer == 0]
        assert len(rs) == 1
        return rs[0]

    fp32, plain = layer0_rs(reduce_dtype="fp32"), layer0_rs()
    assert fp32.bytes_per_rank == 218_112_000 * 4 and fp32.dtype == "fp32"
    assert plain.bytes_per_rank == 218_112_000 * 2 and plain.dtype == "bf16"
    assert plan_defaults(load_stack("torchtitan-compile-cuda"))["reduce_dtype"] == "fp32"
    assert plan_defaults(load_stack("megatron-cuda"))["reduce_dtype"] is None


def test_fsdp2_copies_each_gather_into_the_parameters():
    """FSDP2 gathers a layer's weights into one buffer and copies them into the parameters on the
    compute stream before the layer runs, in the forward and in the backward's re-gather. By hand,
    Llama-3-8B's layer 0 (218,112,000 parameters, see above) on one TP rank: the copy reads and
    writes 2 bytes each, 872,448,000 bytes a pass; FSDP1-style flat parameters copy nothing."""
    m = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 2})

    def copies(**kw):
        step = build_train(m, 8, 512, ParallelPlan(dp=8, zero=3, **kw))
        return [o for g in (step.fwd[0], step.bwd[0]) for o in g.ops()
                if o.role.endswith("zero_copy_out") and o.layer == 0]

    two = copies(zero3_copies=True)
    assert [o.role for o in two] == ["fwd.zero_copy_out", "bwd.zero_copy_out"]
    assert all(o.bytes() == 218_112_000 * 4 for o in two)
    assert copies() == []
    assert plan_defaults(load_stack("torchtitan-cuda"))["zero3_copies"] is True
