"""Training steps in the event tier: op granularity, every parallel group on the shared links.

Expected values come from the analytical tier's closed forms (a collective alone on the fabric
takes ``collective_cost``'s time; with private links the op-by-op pipeline equals the
stage-level pipeline) and from max-min sharing (two transfers on one link each get half)."""

import gzip
import json

import pytest
from click.testing import CliRunner

from accelsim.api import evaluate_train
from accelsim.arch import load_system
from accelsim.arch.topology import scale_out_system
from accelsim.cli import main
from accelsim.cost.collectives import collective_cost
from accelsim.errors import WorkloadError
from accelsim.lower.fabric import Fabric
from accelsim.lower.schedule import ScheduleBuilder
from accelsim.sim.engine import simulate_schedule
from accelsim.sim.train_event import _chunks, simulate_train_event
from accelsim.sim.training import simulate_train
from accelsim.stack.presets import resolve
from accelsim.stack.realize import realize
from accelsim.workload import load_model
from accelsim.workload.parallel import ParallelPlan
from accelsim.workload.train import build_train

H100 = load_system("dgx-h100")
STACK = resolve("megatron-cuda", H100.stack, "realistic")
SPEC, LIB = realize(H100, STACK), STACK.collectives
SMALL = load_model("llama-2-7b").model_copy(update={"num_hidden_layers": 4})


def _fabric_time(groups, private=False, nbytes=64 * 2**20, system=SPEC):
    """Makespan of all-gathers on ``groups`` started together, and each one's end."""
    b = ScheduleBuilder()
    fab = Fabric(b, system, LIB, private=private)
    ends = [fab.collective(b.op(f"ag{i}", "tp.allgather", "collective"), "allgather", nbytes, g, [], 0)
            for i, g in enumerate(groups)]
    res = simulate_schedule(b.build())
    return res.makespan_s, [float(res.end_s[e].max()) for e in ends]


def test_collective_alone_takes_the_analytical_time():
    for g in [(0, 1, 2, 3), (0, 1, 2, 3, 4, 5, 6, 7)]:
        t, _ = _fabric_time([g])
        assert t == pytest.approx(collective_cost(SPEC, "allgather", 64 * 2**20, len(g), chips=g, library=LIB).time_s,
                                  rel=1e-9)


def test_groups_on_disjoint_links_do_not_slow_each_other():
    alone, _ = _fabric_time([(0, 1, 2, 3)])
    both, ends = _fabric_time([(0, 1, 2, 3), (4, 5, 6, 7)])
    assert ends == pytest.approx([alone, alone], rel=1e-12)


def test_groups_sharing_a_link_are_slower_than_on_private_links():
    groups = [(0, 1, 2, 3), (0, 4)]  # both use chip 0's NVLink port to the switch
    shared, _ = _fabric_time(groups)
    private, ends = _fabric_time(groups, private=True)
    alone = [_fabric_time([g])[0] for g in groups]
    assert ends == pytest.approx(alone, rel=1e-12)
    assert shared > private * 1.05
    # at most every byte of both on one link at its full rate: sharing cannot cost more than that
    assert shared < sum(alone)


def test_private_links_reproduce_the_stage_level_pipeline():
    """With no link shared, the op-by-op step runs every stage's ops back to back: its pipeline
    phase equals the analytical tier's (same op costs, same 1F1B order)."""
    step = build_train(SMALL, 16, 2048, ParallelPlan(tp=4, pp=2, dp=2, sp=True, zero=1), dtype="bf16")
    free = LIB.model_copy(update={"compute_cores": 0})  # no cores held by the gradient buckets
    assert simulate_train_event(SPEC, step, free, private_links=True).pipeline_time_s == pytest.approx(
        simulate_train(SPEC, step, free).pipeline.pipeline_time_s, rel=1e-9)
    # with NCCL's held cores the buckets' held time lands in the last backward at layer
    # boundaries in one tier, between equal pieces in the other
    ana = simulate_train(SPEC, step, LIB).pipeline
    ev = simulate_train_event(SPEC, step, LIB, private_links=True)
    assert ev.pipeline_time_s == pytest.approx(ana.pipeline_time_s, rel=0.01)
    # both tiers overlap gradient buckets with the last backward (the stage level in equal
    # pieces, the op level behind each layer's last op): they agree closely, and both end
    # before a step that reduced its gradients only after the last backward
    stages = simulate_train(SPEC, step, LIB).stage_times
    serial = ana.pipeline_time_s + max(st.grad_sync_s + st.optimizer_s + st.param_gather_s for st in stages)
    assert ev.makespan_s == pytest.approx(ana.step_time_s, rel=0.02)
    assert max(ev.makespan_s, ana.step_time_s) < serial


def test_tensor_parallel_only_step_is_the_sum_of_its_ops():
    step = build_train(SMALL, 4, 2048, ParallelPlan(tp=8, sp=True), dtype="bf16")
    run = simulate_train(SPEC, step, LIB)
    ev = simulate_train_event(SPEC, step, LIB)
    ops = run.ops
    per_mb = ops[ops["pass"].isin(["fwd", "bwd"])]["time_s"].sum()
    expected = step.microbatches * per_mb + ops[ops["pass"] == "opt"]["time_s"].sum()
    assert ev.makespan_s == pytest.approx(expected, rel=1e-9)


def test_shared_links_slow_a_step_that_private_links_do_not():
    """Two nodes: data-parallel gradient buckets and pipeline sends cross the same NICs, and
    tensor-parallel collectives the same NVLink ports as the data-parallel ones."""
    step = build_train(SMALL, 32, 2048, ParallelPlan(tp=4, pp=2, dp=2, sp=True, zero=1), dtype="bf16")
    sys16 = scale_out_system(SPEC, 16)
    shared = simulate_train_event(sys16, step, LIB)
    private = simulate_train_event(sys16, step, LIB, private_links=True)
    assert shared.makespan_s > private.makespan_s
    assert shared.schedule.num_tasks == private.schedule.num_tasks


def test_interleaved_and_zero3_steps_run():
    step = build_train(SMALL, 16, 2048, ParallelPlan(tp=2, pp=2, dp=2, vpp=2, zero=1), dtype="bf16")
    ana = simulate_train(SPEC, step, LIB).pipeline
    ev = simulate_train_event(SPEC, step, LIB)
    assert ev.pipeline_time_s == pytest.approx(ana.pipeline_time_s, rel=0.1)
    # FSDP: weight gathers prefetched a layer ahead, gradient reduce-scatters behind the compute,
    # in both tiers; both well under the step that waits for every collective
    fsdp = build_train(SMALL, 8, 2048, ParallelPlan(dp=8, zero=3), dtype="bf16")
    run = simulate_train(SPEC, fsdp, LIB)
    a3 = run.pipeline.step_time_s
    e3 = simulate_train_event(SPEC, fsdp, LIB).makespan_s
    serial = run.ops[run.ops["pass"].isin(["fwd", "bwd"])]["time_s"].sum() * fsdp.microbatches + \
        run.ops[~run.ops["pass"].isin(["fwd", "bwd"])]["time_s"].sum()
    assert e3 == pytest.approx(a3, rel=0.05)
    assert max(a3, e3) < 0.8 * serial


def test_zero3_collectives_hide_behind_the_previous_layer():
    from accelsim.sim.training import zero_exposed_s

    # first gather exposed (0.5); the second exceeds the first layer's 1 s by 1; the third hides
    assert zero_exposed_s([(1.0, 0.5, 0), (1.0, 2.0, 1), (1.0, 0.5, 2)]) == pytest.approx(1.5)
    assert zero_exposed_s([(2.0, 0.0, -1), (1.0, 1.0, 0)]) == 0.0


def test_chunks_split_layers_with_embedding_first_and_head_last():
    step = build_train(SMALL, 4, 2048, ParallelPlan(tp=1, pp=1), dtype="bf16")
    ops = step.fwd[0].ops()
    parts = _chunks(ops, 2, False)
    assert sum(len(p) for p in parts) == len(ops)
    assert {o.layer for o in parts[0] if o.layer is not None and o.layer >= 0} == {0, 1}
    assert ops[0] in parts[0] and ops[-1] in parts[1]


def test_context_parallel_is_refused_with_the_reason():
    step = build_train(SMALL, 8, 4096, ParallelPlan(tp=2, cp=2, dp=2), dtype="bf16")
    with pytest.raises(WorkloadError, match="context or expert"):
        simulate_train_event(SPEC, step, LIB)


def test_cli_event_training_with_a_trace_window(tmp_path):
    out = tmp_path / "t.json.gz"
    r = CliRunner().invoke(main, ["run", "dgx-h100", "llama-2-7b", "--phase", "train", "--batch", "16", "--seq",
                                  "2048", "--tp", "4", "--pp", "2", "--stack", "megatron-cuda", "--fidelity", "event",
                                  "--trace", str(out), "--trace-window", "0:50 ms"])
    assert r.exit_code == 0, r.output
    assert "event tier" in r.output and "tasks; analytical" in r.output
    d = json.load(gzip.open(out))
    xs = [e for e in d["traceEvents"] if e.get("ph") == "X"]
    assert xs and all(e["ts"] <= 50_000 for e in xs)
    assert d["otherData"]["window_us"] == [0, 50_000] and d["otherData"]["truncated"]
    bad = CliRunner().invoke(main, ["run", "dgx-h100", "llama-2-7b", "--phase", "train", "--fidelity", "event",
                                    "--trace", str(out), "--trace-window", "5:1"])
    assert bad.exit_code != 0 and "END must be after START" in bad.output


def test_event_fidelity_in_the_api_keeps_the_analytical_time():
    res = evaluate_train("dgx-h100", SMALL, 16, 2048, tp=4, pp=2, stack="megatron-cuda", fidelity="event")
    s = res.summary
    assert s["fidelity"] == "event" and s["num_tasks"] > 1000
    assert s["step_time_s"] == pytest.approx(s["analytical_step_time_s"], rel=0.05)
    assert s["tokens_per_s"] == pytest.approx(16 * 2048 / s["step_time_s"])
    assert sum(s["time_by_bound_s"].values()) == pytest.approx(s["step_time_s"], rel=1e-6)


def test_collectives_overlapping_compute_hold_cores_in_both_tiers():
    """An FSDP step on 8 H100s: NCCL's kernels hold ``compute_cores`` (24) of the 132 SMs while
    they run, so each second of gather / reduce-scatter hidden behind compute costs 24/132 s more
    compute (analytical: exactly that; event tier: the held time runs on the compute track, and
    it grows by about as much). A library with engines of its own (0 cores held) costs none."""
    from accelsim.sim.training import interference_s, zero_exposed_s

    assert LIB.compute_cores == 24
    assert interference_s(1.0, SPEC, LIB) == pytest.approx(24 / 132)
    assert interference_s(1.0, SPEC, LIB.model_copy(update={"compute_cores": 0})) == 0.0
    assert interference_s(1.0, SPEC, None) == 0.0
    fsdp = build_train(SMALL, 8, 2048, ParallelPlan(dp=8, zero=3), dtype="bf16")
    free = LIB.model_copy(update={"compute_cores": 0})
    held, bare = simulate_train(SPEC, fsdp, LIB), simulate_train(SPEC, fsdp, free)
    ops = bare.ops[bare.ops["pass"].isin(["fwd", "bwd"])]
    hidden = 0.0
    for _, g in ops.groupby("pass", sort=False):  # per pass: ZeRO time minus what is exposed
        segs = []
        for r in g.itertuples():
            if not segs or segs[-1][2] != r.layer:
                segs.append([0.0, 0.0, r.layer])
            if r.role.startswith("dp."):
                segs[-1][1] += r.time_s
            else:
                segs[-1][0] += r.time_s
        hidden += sum(d for _, d, _ in segs) - zero_exposed_s(segs)
    assert hidden > 0
    extra = held.pipeline.step_time_s - bare.pipeline.step_time_s
    assert extra == pytest.approx(hidden * fsdp.microbatches * 24 / 132, rel=0.02)
    ev_extra = simulate_train_event(SPEC, fsdp, LIB).makespan_s - simulate_train_event(SPEC, fsdp, free).makespan_s
    assert 0.5 * extra < ev_extra < 1.5 * extra


def test_a_single_chip_step_runs_in_the_event_tier():
    """On a one-chip system (no links) the event tier failed before it started ("a collective over 2
    chips needs a system with at least 2 chips"): it sized its link rates with a two-chip
    all-reduce. With nothing to communicate it runs the analytical tier's step."""
    from accelsim.api import evaluate_train

    for system in ("trn2", "h100-sxm-80gb"):
        a = evaluate_train(system, "tiny", 16, 256).summary["step_time_s"]
        e = evaluate_train(system, "tiny", 16, 256, fidelity="event").summary["step_time_s"]
        assert e == pytest.approx(a, rel=1e-9)
