"""Pipeline schedules: the bubble emerges from the event schedule."""

import pytest

from accelsim.sim.pipeline import StageTimes, simulate_pipeline, stage_order


@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
@pytest.mark.parametrize("p, m", [(2, 1), (4, 8), (8, 32), (4, 3), (16, 64)])
def test_bubble_fraction_matches_closed_form(schedule, p, m):
    # equal stages, forward 1 s, backward 2 s, free communication: the step takes
    # (m + p - 1)(f + b) and each stage idles (p - 1)(f + b) of it: bubble (p-1)/(m+p-1)
    run = simulate_pipeline([StageTimes(1.0, 0.0, 2.0, 0.0)] * p, m, schedule)
    assert run.step_time_s == pytest.approx((m + p - 1) * 3.0)
    assert run.bubble_fraction == pytest.approx((p - 1) / (m + p - 1), rel=0.02)


def test_1f1b_order():
    # stage 0 of 4 with 6 microbatches: 3 warm-up forwards, then alternate, then drain
    assert stage_order(0, 4, 6, "1f1b") == [("F", 0), ("F", 1), ("F", 2), ("F", 3), ("B", 0), ("F", 4), ("B", 1),
                                           ("F", 5), ("B", 2), ("B", 3), ("B", 4), ("B", 5)]
    assert stage_order(3, 4, 2, "1f1b") == [("F", 0), ("B", 0), ("F", 1), ("B", 1)]


def test_p2p_and_grad_sync_on_the_critical_path():
    # 2 stages, 1 microbatch: F0(1) -> send(0.5) -> F1(1) -> B1(2) -> send(0.5) -> B0(2) -> sync(3)
    # -> optimizer(1): 11 s; 4 s of it is communication (0.5 + 0.5 + 3)
    st = StageTimes(1.0, 0.0, 2.0, 0.0, grad_sync_s=3.0, optimizer_s=1.0, p2p_s=0.5)
    run = simulate_pipeline([st, st], 1)
    assert run.step_time_s == pytest.approx(11.0)
    assert run.comm_exposed_s == pytest.approx(4.0)


@pytest.mark.parametrize("sync, expected", [
    # backward 4 s in 4 buckets of 1 s; reduction 2 s -> 0.5 s buckets, each behind its piece:
    # only the last bucket is exposed: F 1 + B 4 + 0.5 + optimizer 1
    (2.0, 1.0 + 4.0 + 0.5 + 1.0),
    # reduction 8 s -> 2 s buckets: the link is the bottleneck after the first piece:
    # F 1 + B/4 1 + 8 + optimizer 1
    (8.0, 1.0 + 1.0 + 8.0 + 1.0),
])
def test_gradient_buckets_overlap_the_last_backward(sync, expected):
    st = StageTimes(1.0, 0.0, 4.0, 0.0, grad_sync_s=sync, optimizer_s=1.0, grad_buckets=4)
    assert simulate_pipeline([st], 1).step_time_s == pytest.approx(expected)
    # the ZeRO weight all-gather follows the optimizer
    gathered = StageTimes(1.0, 0.0, 4.0, 0.0, grad_sync_s=sync, optimizer_s=1.0, grad_buckets=4, param_gather_s=3.0)
    assert simulate_pipeline([gathered], 1).step_time_s == pytest.approx(expected + 3.0)
    # one bucket: nothing overlaps
    one = StageTimes(1.0, 0.0, 4.0, 0.0, grad_sync_s=sync, optimizer_s=1.0)
    assert simulate_pipeline([one], 1).step_time_s == pytest.approx(1.0 + 4.0 + sync + 1.0)


def test_gradient_buckets_hold_cores_from_the_backward_beside_them():
    # held fraction 0.2: a bucket's kernels take 0.2 of the compute while they run. Buckets of
    # 0.5 s behind 1 s pieces: the first three each put 0.1 s into the backward that follows
    # (the last runs after it, beside an idle compute): 6.5 s + 3 x 0.1
    st = StageTimes(1.0, 0.0, 4.0, 0.0, grad_sync_s=2.0, optimizer_s=1.0, grad_buckets=4, held_fraction=0.2)
    assert simulate_pipeline([st], 1).step_time_s == pytest.approx(1.0 + 4.0 + 0.5 + 1.0 + 3 * 0.2 * 0.5)
    # link-bound buckets of 2 s: the held time fits where the compute waits for the link
    bound = StageTimes(1.0, 0.0, 4.0, 0.0, grad_sync_s=8.0, optimizer_s=1.0, grad_buckets=4, held_fraction=0.2)
    assert simulate_pipeline([bound], 1).step_time_s == pytest.approx(1.0 + 1.0 + 8.0 + 1.0)
