"""Time to first token under a closed-loop load (``sim.queueing``): mean value analysis checked
against its closed forms at one and two users and against the saturation asymptote."""

import pytest

from accelsim.sim.queueing import closed_loop_ttft


def test_one_user_waits_for_nothing():
    # a lone client's prompt finds the engine idle: TTFT is its prefill iteration alone
    assert closed_loop_ttft(0.35, 0.03, 1, 500) == 0.35


def test_two_users_match_the_mva_recursion_by_hand():
    s, t, out = 0.2, 0.01, 101
    z = (out - 1) * t                      # the other request's decode: 1 s
    r1 = s                                  # n = 1
    q1 = r1 / (r1 + z)
    r2 = s * (1 + q1)                       # n = 2: the other prompt is queued with probability q1
    x2 = 2 / (r2 + z)
    expected = r2 + (1 - x2 * s) * t / 2    # plus the residual of a running decode iteration
    assert closed_loop_ttft(s, t, 2, out) == pytest.approx(expected, rel=1e-12)


def test_many_users_saturate_the_prefill():
    # past saturation every prompt waits for the others: R(n) -> n S - Z (throughput 1 / S)
    s, t, out, n = 0.1, 0.002, 51, 400
    z = (out - 1) * t
    assert closed_loop_ttft(s, t, n, out) == pytest.approx(n * s - z, rel=0.01)


def test_a_huge_load_is_answered_at_once_on_the_saturation_line():
    # a row (or a hostile file) naming a billion clients: the recursion stops where the prefill
    # saturates and each further client adds one prefill, R(n) = n S - Z
    s, t, out, n = 0.1, 0.002, 51, 10**9
    assert closed_loop_ttft(s, t, n, out) == pytest.approx(n * s - (out - 1) * t, rel=1e-9)


def test_more_users_never_lower_ttft():
    times = [closed_loop_ttft(0.35, 0.03, n, 500) for n in range(1, 60)]
    assert all(b >= a for a, b in zip(times, times[1:]))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        closed_loop_ttft(0.1, 0.01, 0, 10)
    with pytest.raises(ValueError):
        closed_loop_ttft(-0.1, 0.01, 2, 10)
