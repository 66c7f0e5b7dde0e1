"""Tensor-parallel communication overlap (Transformer Engine userbuffers, NeMo's
``ub_tp_comm_overlap``): each sequence-parallel all-gather runs beside the GEMM that consumes it,
each reduce-scatter beside the GEMM that produces it; only what outlasts that GEMM is on the path,
and the time it runs beside costs the cores its kernels hold."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from accelsim.api import evaluate_train
from accelsim.arch import load_system
from accelsim.cli import main
from accelsim.sim.training import simulate_train
from accelsim.stack.presets import load_stack
from accelsim.stack.realize import plan_defaults, realize
from accelsim.workload import load_model
from accelsim.workload.ops import Collective, MatMul
from accelsim.workload.parallel import ParallelPlan
from accelsim.workload.train import build_train

STACK = load_stack("megatron-cuda")
SPEC, LIB = realize(load_system("dgx-h100"), STACK), STACK.collectives
SMALL = load_model("llama-2-7b").model_copy(update={"num_hidden_layers": 2})


def _step(overlap: bool, sp: bool = True):
    return build_train(SMALL, 1, 4096, ParallelPlan(tp=4, sp=sp, tp_comm_overlap=overlap), dtype="bf16")


def test_the_pass_pairs_each_tp_collective_with_its_gemm():
    step = _step(True)
    for g in (step.fwd[0], step.bwd[0]):
        ops = {o.name: o for o in g.ops()}
        preds = {}
        for a, b in g.edges():
            preds.setdefault(b, []).append(a)
        tp = [o for o in g.ops() if isinstance(o, Collective) and o.role.startswith("tp.")]
        assert tp
        for o in (o for o in tp if o.hidden_by):
            assert isinstance(ops[o.hidden_by], MatMul), o.name
            if o.role == "tp.allgather":  # the GEMM it feeds
                assert o.name in preds[o.hidden_by], o.name
            else:  # a reduce-scatter: the GEMM that fed it
                assert o.hidden_by in preds[o.name], o.name
        # the layers' collectives all sit beside a GEMM; the embedding's reduce-scatter (after a lookup) does not
        layer = [o for o in tp if o.layer is not None and o.layer >= 0]
        assert all(o.hidden_by for o in layer)
    emb = [o for o in step.fwd[0].ops() if o.role == "tp.reducescatter" and "embed" in o.name]
    assert emb and not emb[0].hidden_by
    # without sequence parallelism the all-reduces stay on the path
    assert not any(getattr(o, "hidden_by", "") for o in _step(True, sp=False).fwd[0].ops())


def test_only_what_outlasts_the_gemm_is_exposed_and_the_rest_holds_cores():
    on, off = simulate_train(SPEC, _step(True), LIB), simulate_train(SPEC, _step(False), LIB)
    ops = off.ops.set_index(["pass", "name"])["time_s"]
    for p, key in (("fwd", "fwd"), ("bwd", "bwd")):
        hidden = [o for o in (_step(True).fwd[0] if p == "fwd" else _step(True).bwd[0]).ops()
                  if isinstance(o, Collective) and o.hidden_by]
        t = sum(ops[(p, o.name)] for o in hidden)
        over = sum(max(0.0, ops[(p, o.name)] - ops[(p, o.hidden_by)]) for o in hidden)
        a, b = on.stage_times[0], off.stage_times[0]
        # comm: the hidden collectives' time replaced by what outlasts their GEMMs
        assert getattr(a, f"{key}_comm_s") == pytest.approx(getattr(b, f"{key}_comm_s") - t + over, rel=1e-9)
        # compute: the overlapped time costs NCCL's 24 of the 132 SMs
        assert getattr(a, f"{key}_compute_s") == pytest.approx(
            getattr(b, f"{key}_compute_s") + (t - over) * 24 / 132, rel=1e-9)
        assert t > 0 and over < t
    assert on.pipeline.step_time_s < off.pipeline.step_time_s


def test_megatron_runs_it_by_default_and_the_tiers_agree():
    assert plan_defaults(STACK)["tp_comm_overlap"] is True
    assert plan_defaults(load_stack("torchtitan-cuda"))["tp_comm_overlap"] is False
    kw = dict(tp=4, pp=2, stack="megatron-cuda")
    on = evaluate_train("dgx-h100", SMALL, 16, 2048, **kw).summary
    off = evaluate_train("dgx-h100", SMALL, 16, 2048, tp_comm_overlap=False, **kw).summary
    assert on["tp_comm_overlap"] and not off["tp_comm_overlap"]
    assert on["step_time_s"] < off["step_time_s"] and on["comm_exposed_s"] < off["comm_exposed_s"]
    ev = evaluate_train("dgx-h100", SMALL, 16, 2048, fidelity="event", **kw).summary
    assert ev["step_time_s"] == pytest.approx(ev["analytical_step_time_s"], rel=0.05)


def test_cli_flag():
    args = ["run", "dgx-h100", "tiny", "--phase", "train", "--batch", "8", "--seq", "128", "--tp", "2", "--dp", "4",
            "--stack", "megatron"]
    assert "sp (tp overlap)" in CliRunner().invoke(main, args).output
    assert "sp (tp overlap)" not in CliRunner().invoke(main, args + ["--no-tp-overlap"]).output
    r = CliRunner().invoke(main, ["run", "dgx-h100", "tiny", "--tp-overlap"])
    assert r.exit_code != 0 and "apply to --phase train" in r.output
