"""Training steps end to end: the CLI, the summary keys, scale-out and the pipeline bubble."""

import json
import time

import pytest
from click.testing import CliRunner

from accelsim.api import evaluate_train
from accelsim.workload.parallel import ParallelPlan
from accelsim.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_dgx_h100_llama3_70b_train_json():
    r = run("run", "dgx-h100", "llama-3-70b", "--phase", "train", "--batch", "128", "--seq", "4096",
            "--tp", "4", "--pp", "4", "--dp", "4", "--chips", "64", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert {"step_time_s", "mfu", "comm_exposed_s", "memory_bytes_per_chip", "memory_breakdown_bytes"} <= s.keys()
    assert s["chips"] == 64 and s["microbatches"] == 128 // 4
    # tokens/s is the whole step's tokens over its time
    assert s["tokens_per_s"] == pytest.approx(128 * 4096 / s["step_time_s"])
    assert 0.05 < s["mfu"] < 0.8
    # 4 stages, 32 microbatches: the bubble is about (p-1)/(m+p-1) = 3/35 (stages are not equal:
    # the first carries the embedding, the last the LM head and loss)
    assert 0.05 < s["bubble_fraction"] < 0.2
    assert set(s["memory_breakdown_bytes"]) >= {"weights", "gradients", "optimizer", "activations"}
    assert sum(s["memory_breakdown_bytes"].values()) == pytest.approx(s["memory_bytes_per_chip"])


def test_trn1_llama2_7b_on_256_chips_counts_neuroncores():
    r = run("run", "trn1-32xl", "llama-2-7b", "--phase", "train", "--batch", "1024", "--seq", "4096",
            "--tp", "8", "--dp", "64", "--chips", "256", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["chips"] == 256 and s["system"].startswith("trn1-32xl")


def test_chips_must_match_plan():
    r = run("run", "dgx-h100", "llama-3-70b", "--phase", "train", "--batch", "128", "--tp", "4", "--pp", "4",
            "--dp", "4", "--chips", "32")
    assert r.exit_code == 2 and "tp x pp x dp x cp" in r.output


def test_train_flags_rejected_for_inference():
    r = run("run", "dgx-h100", "llama-3-8b", "--phase", "decode", "--pp", "2")
    assert r.exit_code != 0 and "--phase train" in r.output


def test_analytical_training_steps_are_fast():
    evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, tp=4, pp=4, dp=4)  # warm-up (JIT, caches)
    t = time.perf_counter()
    evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, tp=4, pp=4, dp=4)
    evaluate_train("trn1-32xl", "llama-2-7b", 1024, 4096, tp=8, dp=64, cores_per_chip=2)
    assert time.perf_counter() - t < 2.0  # the issue asks < 1 s each; generous for CI noise


def test_zero_and_recompute_trade_memory_for_time():
    base = evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, tp=4, pp=4, dp=4).summary
    z3 = evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, tp=4, pp=4, dp=4, zero=3,
                        zero3_pipeline="microbatch").summary
    rc = evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, tp=4, pp=4, dp=4, recompute="full").summary
    assert z3["memory_bytes_per_chip"] < base["memory_bytes_per_chip"]
    assert z3["step_time_s"] > base["step_time_s"]  # per-layer all-gathers and reduce-scatters
    assert rc["memory_breakdown_bytes"]["activations"] < base["memory_breakdown_bytes"]["activations"]
    assert rc["step_time_s"] > base["step_time_s"] and rc["hfu"] > rc["mfu"]
    assert base["fits_in_hbm"] is False and "zero" in base["warnings"][0]


def test_moe_models_run_in_every_phase():
    from accelsim.api import evaluate

    for model in ("mixtral-8x7b", "deepseek-moe-16b"):
        for phase in ("prefill", "decode"):
            assert evaluate("dgx-h100", model, phase=phase, batch=4, seq_len=512, context_len=512, tp=8).summary["latency_s"] > 0
        s = evaluate_train("dgx-h100", model, 64, 2048, tp=2, dp=8, ep=8, sp=True, zero=1).summary
        assert s["step_time_s"] > 0 and s["chips"] == 16 and s["comm_exposed_s"] > 0


def test_inference_tp_beyond_one_node_scales_out():
    from accelsim.api import evaluate

    s = evaluate("dgx-h100", "llama-3-70b", phase="decode", batch=8, tp=16).summary
    assert s["system"] != "dgx-h100" and s["tp"] == 16


def test_a_plan_and_plan_fields_together_are_refused():
    """evaluate_train(plan=..., dp=4) ran the plan and dropped dp silently."""
    from accelsim.api import evaluate_train
    from accelsim.errors import WorkloadError
    from accelsim.workload.parallel import ParallelPlan

    with pytest.raises(WorkloadError, match="dp would be ignored"):
        evaluate_train("dgx-h100", "tiny", 8, 64, plan=ParallelPlan(tp=2), dp=4)
    assert evaluate_train("dgx-h100", "tiny", 8, 64, plan=ParallelPlan(tp=2, dp=4)).summary["chips"] == 8


def test_selective_without_selective_recomputation_is_refused():
    """--selective op under a step that recomputes nothing was dropped silently; under a framework
    whose default is selective recomputation (torchtitan) it applies."""
    from accelsim.errors import WorkloadError

    with pytest.raises(WorkloadError, match="add recompute='selective'"):
        evaluate_train("dgx-h100", "tiny", 8, 64, selective="op")
    s = evaluate_train("dgx-h100", "tiny", 8, 64, recompute="selective", selective="op").summary
    assert s["recompute"] == "selective" and s["selective"] == "op"
    r = CliRunner().invoke(main, ["run", "dgx-h100", "tiny", "--phase", "train", "--batch", "8", "--seq", "64",
                                  "--selective", "op"])
    assert r.exit_code == 2 and "add --recompute selective" in r.output
    r = CliRunner().invoke(main, ["run", "grand-teton-h100", "tiny", "--phase", "train", "--batch", "16", "--seq",
                                  "64", "--dp", "8", "--stack", "torchtitan", "--selective", "op"])
    assert r.exit_code == 0 and "recompute selective (op)" in r.output


def test_zero3_collectives_beside_the_compute_count_as_hidden():
    """An FSDP step's weight gathers and gradient reduce-scatters run beside the compute; the
    summary reported their exposed part and "0 s hidden". Exposed + hidden is every collective
    of the passes (per microbatch, from the step's own op table) plus the step's gradient sync."""
    # gradients reduced in bf16 (torchtitan's own fp32 reduce exposes more: 0.29 s of 0.54 s)
    r = evaluate_train("dgx-a100", "llama-3-8b", 64, 1024, dp=64, zero=3, stack="torchtitan-cuda",
                       reduce_dtype="bf16")
    s, ops = r.summary, r.ops
    passes = ops[(ops["kind"] == "collective") & ops["pass"].isin(["fwd", "bwd"])]["time_s"].sum()
    sync = ops[ops["pass"] == "grad_sync"]["time_s"].sum()
    total = s["microbatches"] * passes + sync
    assert s["comm_hidden_s"] > 0.5 * total
    assert s["comm_exposed_s"] + s["comm_hidden_s"] == pytest.approx(total, rel=1e-9)


def test_zero3_under_pipelining_gathers_and_reduces_once_a_step():
    """Under PyTorch's pipeline schedules FSDP reduce-scatters only in a stage's last backward
    and (torchtitan's default under pipelining) keeps the gathered weights through the step: no
    collectives in the passes, one gradient reduce-scatter and one weight gather per stage, and
    the memory of unsharded weights and gradients (the latter in the reduction's dtype)."""
    from accelsim.workload.train import build_train

    kw = dict(tp=4, pp=4, dp=4, zero=3)
    step = build_train("llama-3-70b", 128, 4096, ParallelPlan(**kw, reduce_dtype="fp32"))
    for s in range(4):
        in_passes = [o for g in (step.fwd[s], step.bwd[s]) for o in g.ops() if o.role.startswith("dp.")]
        assert in_passes == []
        sync = {o.op: o for o in step.grad_sync[s]}
        assert set(sync) == {"reducescatter", "allgather"}
        # the whole stage's gradients in fp32, its weights' shards in bf16
        assert sync["reducescatter"].bytes_per_rank == pytest.approx(2.0 * 4 * sync["allgather"].bytes_per_rank)
    once = evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, **kw, reduce_dtype="fp32").summary
    each = evaluate_train("dgx-h100", "llama-3-70b", 128, 4096, **kw, zero3_pipeline="microbatch").summary
    mb, me = once["memory_breakdown_bytes"], each["memory_breakdown_bytes"]
    assert mb["weights"] == pytest.approx(4 * me["weights"])  # unsharded over the 4 data-parallel ranks
    assert mb["gradients"] == pytest.approx(2 * mb["weights"])  # fp32 against bf16 weights
    assert mb["buffers"] == 0 and me["buffers"] > 0
    assert once["step_time_s"] < each["step_time_s"]
