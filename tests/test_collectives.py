"""Collectives: analytical closed forms (derived by hand from the algorithm, not from the code),
the choice rule, calibration, errors, the event tier (ring pipeline, bandwidth lower bound,
contention, agreement with the analytical tier) and the ``accelsim collective`` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.arch import load_system
from accelsim.arch.topology import scale_out_system
from accelsim.cli import main
from accelsim.errors import WorkloadError
from accelsim.lower.collective_schedule import collective_schedule
from accelsim.sim.collective import simulate_collective
from accelsim.cost.collectives import ALGORITHMS, applicable, collective_cost, collective_time
from accelsim.lower.schedule import CAT_OVERHEAD, DELAY, ScheduleBuilder
from accelsim.sim.engine import simulate_schedule
from accelsim.workload.ops import Collective
from conftest import make_system

GiB, MiB = 2**30, 2**20
B = 100e9   # link bandwidth of the toy networks, per direction
A = 1e-6    # link latency of the toy networks


def ring(n=8, bw="100 GB/s", lat="1 us", **kw):
    return make_system(num_chips=n, interconnect={"kind": "ring", "dims": [n], "link_bandwidth_Bps": bw,
                                                  "link_latency_s": lat, **kw})


def torus(dims, bw="100 GB/s", lat="1 us", **kw):
    n = 1
    for d in dims:
        n *= d
    kind = {2: "torus2d", 3: "torus3d"}[len(dims)]
    return make_system(num_chips=n, interconnect={"kind": kind, "dims": list(dims), "link_bandwidth_Bps": bw,
                                                  "link_latency_s": lat, **kw})


def switch(n=8, sharp=False, lat="1 us"):
    return make_system(num_chips=n, interconnect={"kind": "switch", "link_bandwidth_Bps": "450 GB/s",
                                                  "link_latency_s": lat, "in_switch_reduction": sharp})


def fc(n=4, lat="1 us"):
    return make_system(num_chips=n, interconnect={"kind": "fully_connected", "link_bandwidth_Bps": "25 GB/s",
                                                  "links_per_neighbour": 4, "link_latency_s": lat})


# --------------------------------------------------------------------------------------------
# Analytical closed forms

def test_unidirectional_ring():
    s, n = ring(bidirectional=False), GiB
    ar = collective_cost(s, "allreduce", n, 8)
    assert ar.algorithm == "ring"
    assert ar.time_s == pytest.approx(2 * 7 / 8 * n / B + 14 * A)            # 2(p-1)/p n/B + 2(p-1)a
    assert ar.bandwidth_s == pytest.approx(2 * 7 / 8 * n / B) and ar.latency_s == pytest.approx(14 * A)
    assert ar.bytes_sent_per_chip == pytest.approx(14 * n / 8)
    assert ar.busbw_Bps == pytest.approx(n / ar.time_s * 2 * 7 / 8)
    rs = collective_cost(s, "reducescatter", n, 8)
    assert rs.time_s == pytest.approx(7 / 8 * n / B + 7 * A)
    ag = collective_cost(s, "allgather", n / 8, 8)                         # contribution n/8, output n
    assert ag.time_s == pytest.approx(rs.time_s)
    assert ag.busbw_Bps == pytest.approx(n / ag.time_s * 7 / 8)            # nccl-tests: S = output size
    no_latency = collective_cost(ring(bidirectional=False, lat=0), "allgather", n, 8)
    assert no_latency.busbw_Bps == pytest.approx(B)                        # a ring's busbw is its link


def test_bidirectional_ring_halves_the_data_time():
    ar = collective_cost(ring(), "allreduce", GiB, 8)
    assert ar.algorithm == "bidirectional_ring"
    assert ar.time_s == pytest.approx(2 * 7 / 8 * GiB / (2 * B) + 14 * A)


def test_ring_on_an_open_line_closes_over_the_reverse_links():
    line = make_system(num_chips=4, interconnect={"kind": "mesh2d", "dims": [4, 1], "link_bandwidth_Bps": "100 GB/s",
                                                  "link_latency_s": "1 us"})
    r = collective_cost(line, "allreduce", GiB, 4, algorithm="ring")
    # 6 steps; the closing edge 3 -> 0 crosses 3 links: each step is 3a + (n/4)/B
    assert r.time_s == pytest.approx(6 * (3 * A + GiB / 4 / B))


def test_switch():
    n = GiB
    s = switch()
    assert collective_cost(s, "allreduce", n, 8).algorithm == "direct"     # fewer latency steps than the ring
    assert collective_cost(s, "allreduce", n, 8).time_s == pytest.approx(2 * (7 / 8 * n / 450e9 + A))
    assert collective_cost(s, "allreduce", n, 8, algorithm="ring").time_s == pytest.approx(14 * (n / 8 / 450e9 + A))
    assert collective_cost(s, "allgather", n, 8).time_s == pytest.approx(7 * n / 450e9 + A)
    assert collective_cost(s, "alltoall", n, 8).time_s == pytest.approx(7 / 8 * n / 450e9 + A)
    sharp = collective_cost(switch(sharp=True), "allreduce", n, 8)
    assert sharp.algorithm == "in_switch" and sharp.time_s == pytest.approx(n / 450e9 + A)
    assert sharp.busbw_Bps == pytest.approx(n / sharp.time_s * 2 * 7 / 8)
    with pytest.raises(WorkloadError, match="does not apply"):
        collective_cost(s, "allreduce", n, 8, algorithm="in_switch")
    assert "bidirectional_ring" not in applicable(s, "allreduce", tuple(range(8)))


def test_ties_go_to_the_preferred_algorithm():
    # no latency: ring, direct and halving-doubling all move 2(p-1)/p n through each switch port
    r = collective_cost(switch(lat=0), "allreduce", GiB, 8)
    assert r.algorithm == "ring" and r.time_s == pytest.approx(2 * 7 / 8 * GiB / 450e9)


def test_fully_connected():
    n, s = GiB, fc()
    assert collective_cost(s, "allreduce", n, 4).time_s == pytest.approx(2 * (n / 4 / B + A))   # direct
    assert collective_cost(s, "reducescatter", n, 4).time_s == pytest.approx(n / 4 / B + A)
    assert collective_cost(s, "allgather", n, 4).time_s == pytest.approx(n / B + A)
    assert collective_cost(s, "alltoall", n, 4).time_s == pytest.approx(n / 4 / B + A)
    s8 = fc(8)
    # halving-doubling: n/2, n/4, n/8 on one link each, twice (RS + AG), 6 latency steps
    assert collective_cost(s8, "allreduce", n, 8, algorithm="halving_doubling").time_s == \
        pytest.approx(2 * 7 / 8 * n / B + 6 * A)
    assert collective_cost(s8, "allreduce", n, 8, algorithm="recursive_doubling").time_s == \
        pytest.approx(3 * (n / B + A))
    small = collective_cost(s8, "allreduce", 1024, 8)
    assert small.time_s <= 2 * (1024 / 8 / B + A) + 1e-15                   # direct: two latency steps


def test_broadcast_and_sendrecv():
    n, s = GiB, switch()
    assert collective_cost(s, "broadcast", n, 8, algorithm="tree").time_s == pytest.approx(3 * (n / 450e9 + A))
    assert collective_cost(s, "broadcast", n, 8, algorithm="direct").time_s == pytest.approx(7 * n / 450e9 + A)
    # pipelined chain in 8 chunks: 7 stages + 7 more chunk times
    ring_b = collective_cost(s, "broadcast", n, 8)
    assert ring_b.algorithm == "ring" and ring_b.time_s == pytest.approx(14 * (n / 8 / 450e9 + A))
    t4 = torus((4, 4))
    sr = collective_cost(t4, "sendrecv", n, 2, chips=(0, 10))               # (0,0) -> (2,2): 4 hops
    assert sr.time_s == pytest.approx(n / B + 4 * A) and sr.busbw_Bps == pytest.approx(n / sr.time_s)


def test_alltoall_on_a_torus_is_link_load_bound():
    # 4x4 torus, n/16 to each of 15 peers, x then y, ties the + way: a + x-link carries the
    # flows of its chip to offsets +1 and +2 (4 destinations each) and of the chip behind it to
    # offset +2: 12 x n/16 = 0.75 n; same for y links.
    n = 16 * MiB
    r = collective_cost(torus((4, 4), lat=0), "alltoall", n, 16)
    assert r.time_s == pytest.approx(0.75 * n / B)


def test_multidim_ring_reaches_the_torus_injection_bound():
    n = GiB
    # 8x8 torus, 50 GB/s links: half the data X then Y, the other half Y then X:
    # RS = 7 (n/2/8/2)/B + 7 (n/2/64/2)/B = 63 n / (256 B); all-reduce = 2 RS = 2 * 63/64 * n / (4B)
    t8 = torus((8, 8), bw="50 GB/s", lat="1 us")
    r = collective_cost(t8, "allreduce", n, 64)
    assert r.algorithm == "multidim_ring"
    assert r.time_s == pytest.approx(2 * 63 / 64 * n / (4 * 50e9) + 28 * A)
    # TPU v4 4x4x4 cube, 45 GB/s: three parts of n/3; AR = 2 * 63/64 * n / (6 x 45 GB/s)
    v4 = load_system("tpu-v4-64")
    assert collective_cost(v4, "allreduce", n, 64).time_s == pytest.approx(2 * 63 / 64 * n / 270e9)
    ag = collective_cost(v4, "allgather", n / 64, 64)                      # output n
    assert ag.time_s == pytest.approx(63 / 64 * n / 270e9)
    assert ag.busbw_Bps == pytest.approx(270e9)                             # = chip injection bandwidth


def test_scale_out_ring_uses_every_nic():
    # 4 DGX H100 (32 GPUs): 8 rings, each crossing a node boundary on a different GPU's NIC.
    # A step moves n/32/8 through each NIC (50 GB/s), the busiest link: busbw = 8 x 50 GB/s.
    s = scale_out_system(load_system("dgx-h100"), 32)
    r = collective_cost(s, "allreduce", GiB, 32)
    assert r.algorithm == "ring"
    assert r.time_s == pytest.approx(62 * GiB / 256 / 50e9)
    assert r.busbw_Bps == pytest.approx(400e9)
    h = collective_cost(s, "allreduce", GiB, 32, algorithm="hierarchical")
    # intra ring RS of n at 450 GB/s + inter AR of n/8 over 4 NICs + intra AG of n/8
    assert h.time_s == pytest.approx(2 * 7 / 8 * GiB / 450e9 + 2 * 3 / 4 * GiB / 8 / 50e9)


def test_hierarchical_wins_when_the_nics_are_slow():
    # 2 trn1.32xlarge: 4x4 torus nodes (96 GiB/s links) joined by 6.25 GB/s per chip.
    s = scale_out_system(load_system("trn1-32xl"), 32)
    b = 96 * 2**30
    r = collective_cost(s, "allreduce", GiB, 32)
    assert r.algorithm == "hierarchical"
    # intra RS on the 4x4 torus 15n/(64B) + inter AR of n/16 over 2 nodes (n/16 / B_o) + intra AG
    assert r.time_s == pytest.approx(2 * 15 * GiB / (64 * b) + GiB / 16 / 6.25e9)
    assert "multidim_ring" in r.detail


def test_calibration_applies():
    n = GiB
    base = ring(bidirectional=False)
    cal = make_system(num_chips=8, chip={"calibration": {"link_efficiency": 0.5, "collective_overhead_s": 5e-6}},
                      interconnect={"kind": "ring", "dims": [8], "link_bandwidth_Bps": "100 GB/s",
                                    "link_latency_s": "1 us", "bidirectional": False})
    a, c = collective_cost(base, "allreduce", n, 8), collective_cost(cal, "allreduce", n, 8)
    assert c.bandwidth_s == pytest.approx(2 * a.bandwidth_s)
    assert c.latency_s == pytest.approx(a.latency_s + 5e-6)


def test_collective_time_delegates():
    s = torus((4, 4))
    r = collective_cost(s, "allreduce", 64 * MiB, 16)
    assert collective_time(s, Collective(op="allreduce", bytes_per_rank=64 * MiB, group=16)) == \
        (r.bandwidth_s, r.latency_s, r.bytes_sent_per_chip, r.algorithm)
    assert collective_time(s, Collective(op="allreduce", bytes_per_rank=64 * MiB, group=1)) == (0.0, 0.0, 0.0, "none")


def test_errors():
    s = ring()
    with pytest.raises(WorkloadError, match="at least 16 chips"):
        collective_cost(s, "allreduce", MiB, 16)
    with pytest.raises(WorkloadError, match="unknown collective algorithm 'bogus'"):
        collective_cost(s, "allreduce", MiB, 8, algorithm="bogus")
    with pytest.raises(WorkloadError, match="unknown collective 'allsum'"):
        collective_cost(s, "allsum", MiB, 8)
    with pytest.raises(WorkloadError, match="halving_doubling"):
        collective_cost(s, "allreduce", MiB, 6, algorithm="halving_doubling")   # not a power of two
    with pytest.raises(WorkloadError, match="sendrecv needs 2 ranks"):
        collective_cost(s, "sendrecv", MiB, 3)
    with pytest.raises(WorkloadError, match="distinct"):
        collective_cost(s, "allreduce", MiB, 2, chips=(1, 1))
    with pytest.raises(WorkloadError, match="scale_out_system"):
        collective_cost(load_system("dgx-h100"), "allreduce", MiB, 16)


SMALL_SYSTEMS = {"ring8": ring(), "ring8u": ring(bidirectional=False), "torus4x4": torus((4, 4)),
                 "torus2x3x2": torus((2, 3, 2)), "switch8": switch(), "fc4": fc()}


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(SMALL_SYSTEMS)), kind=st.sampled_from(["allreduce", "allgather", "reducescatter"]),
       log_n=st.integers(3, 32), frac=st.floats(0.2, 1.0))
def test_choice_is_the_fastest_and_more_bandwidth_is_never_slower(name, kind, log_n, frac):
    s = SMALL_SYSTEMS[name]
    p = max(2, int(s.num_chips * frac))
    n = float(2**log_n)
    best = collective_cost(s, kind, n, p)
    for algo in applicable(s, kind, tuple(range(p))):
        assert best.time_s <= collective_cost(s, kind, n, p, algorithm=algo).time_s * (1 + 1e-12)
    fast = s.model_copy(update={"interconnect": s.interconnect.model_copy(
        update={"link_bandwidth_Bps": 2 * s.interconnect.link_bandwidth_Bps})})
    assert collective_cost(fast, kind, n, p).time_s <= best.time_s * (1 + 1e-12)


def test_algorithm_names_are_documented():
    import accelsim.cost.collectives as mod
    for name in ALGORITHMS:
        assert f"`{name}`" in mod.__doc__


# --------------------------------------------------------------------------------------------
# Event tier

@pytest.mark.parametrize("n", [1024, MiB, 256 * MiB])
def test_event_ring_allreduce_matches_the_closed_form(n):
    t, res = simulate_collective(ring(bidirectional=False), "allreduce", n, 8, algorithm="ring")
    assert t == pytest.approx(2 * 7 / 8 * n / B + 14 * A, rel=0.01)
    assert res.schedule.num_tasks == 1 + 14 * 8                            # start + 14 steps x 8 sends


TORI = st.one_of(st.tuples(st.integers(2, 5), st.integers(2, 5)),
                 st.tuples(st.integers(2, 3), st.integers(2, 3), st.integers(2, 3)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dims=TORI, log_n=st.integers(10, 30), bw=st.floats(1e9, 1e12), bidir=st.booleans())
def test_event_torus_allreduce_respects_the_injection_bound(dims, log_n, bw, bidir):
    s = torus(dims, bw=bw, lat=0, bidirectional=bidir)
    p, n = s.num_chips, float(2**log_n)
    t, _ = simulate_collective(s, "allreduce", n, p)
    injection = s.interconnect.chip_bandwidth_Bps(p)     # every link a chip drives, one direction
    assert t >= 2 * (p - 1) / p * n / injection * (1 - 1e-9)


def _concurrent(system, n, groups):
    b = ScheduleBuilder()
    for g in groups:
        collective_schedule(system, "allreduce", n, len(g), algorithm="ring", chips=g, builder=b)
    return simulate_schedule(b.build()).makespan_s


def test_event_contention_on_shared_links():
    # bidirectional 8-ring; a ring over chips 0-3 uses + links 0->1->2->3 and closes 3->2->1->0.
    # Over 1-4 it shares 1->2, 2->3 (and 3->2, 2->1); over 4-7 it shares nothing.
    s, n = ring(lat=0), 256 * MiB
    alone = _concurrent(s, n, [(0, 1, 2, 3)])
    assert alone == pytest.approx(6 * n / 4 / B)
    assert _concurrent(s, n, [(0, 1, 2, 3), (4, 5, 6, 7)]) == pytest.approx(alone, rel=1e-9)
    assert _concurrent(s, n, [(0, 1, 2, 3), (1, 2, 3, 4)]) >= 1.5 * alone


def test_event_waits_for_deps_and_pays_the_overhead_once():
    s = make_system(num_chips=8, chip={"calibration": {"collective_overhead_s": 7e-6}},
                    interconnect={"kind": "ring", "dims": [8], "link_bandwidth_Bps": "100 GB/s", "link_latency_s": "1 us"})
    t, _ = simulate_collective(s, "allreduce", 64 * MiB, 8)
    assert t == pytest.approx(collective_cost(s, "allreduce", 64 * MiB, 8).time_s, rel=1e-9)
    b = ScheduleBuilder()
    op = b.op("before", "x", "delay")
    d = b.task(DELAY, CAT_OVERHEAD, op, duration_s=1e-3)
    ends = collective_schedule(s, "allreduce", 64 * MiB, 8, builder=b, deps=[d])
    assert ends and simulate_schedule(b.build()).makespan_s == pytest.approx(1e-3 + t, rel=1e-9)


AGREEMENT = {
    "ring8": ring(), "ring8u": ring(bidirectional=False), "torus4x4": torus((4, 4)),
    "torus8x8": torus((8, 8), bw="50 GB/s", lat="0.5 us"), "mesh4x4": make_system(
        num_chips=16, interconnect={"kind": "mesh2d", "dims": [4, 4], "link_bandwidth_Bps": "100 GB/s",
                                    "link_latency_s": "1 us"}),
    "tpu-v4-64": load_system("tpu-v4-64"), "switch8": switch(sharp=True), "fc4": fc(),
    "2x trn1-32xl": scale_out_system(load_system("trn1-32xl"), 32),
    "4x dgx-a100": scale_out_system(load_system("dgx-a100"), 32),
}


@pytest.mark.parametrize("name", sorted(AGREEMENT))
@pytest.mark.parametrize("kind", ["allreduce", "reducescatter", "allgather", "alltoall"])
def test_event_agrees_with_analytical(name, kind):
    s = AGREEMENT[name]
    for n in (MiB, 256 * MiB):
        c = collective_cost(s, kind, n, s.num_chips)
        t, _ = simulate_collective(s, kind, n, s.num_chips)
        assert t == pytest.approx(c.time_s, rel=0.02), (c.algorithm, n)


@pytest.mark.parametrize("name", ["ring8", "torus4x4", "mesh4x4", "switch8"])
def test_every_algorithm_agrees_when_bandwidth_bound(name):
    s = AGREEMENT[name]
    for algo in applicable(s, "allreduce", tuple(range(s.num_chips))):
        c = collective_cost(s, "allreduce", 256 * MiB, s.num_chips, algorithm=algo)
        t, _ = simulate_collective(s, "allreduce", 256 * MiB, s.num_chips, algorithm=algo)
        assert t == pytest.approx(c.time_s, rel=0.02), algo


# --------------------------------------------------------------------------------------------
# CLI

def cli(*args):
    return CliRunner().invoke(main, ["collective", *args])


def test_cli_json():
    r = cli("allreduce", "--system", "dgx-h100", "--bytes", "64 MiB", "--ranks", "8", "--ideal", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["algorithm"] == "in_switch"
    assert out["time_s"] == pytest.approx(64 * MiB / 450e9)               # SHARP: n / B
    assert out["busbw_Bps"] == pytest.approx(450e9 * 2 * 7 / 8)


def test_cli_readable_event_and_scale_out():
    r = cli("allreduce", "--system", "dgx-h100", "--bytes", "16MiB", "--ranks", "16")
    assert r.exit_code == 0, r.output
    assert "dgx-h100x2" in r.output and "busbw" in r.output
    r = cli("allgather", "--system", "trn2-48xl", "--bytes", "1 MiB", "--ranks", "16", "--fidelity", "event", "--ideal",
            "--json")
    out = json.loads(r.output)
    assert out["fidelity"] == "event" and out["num_tasks"] > 0
    assert out["time_s"] == pytest.approx(out["analytical_time_s"], rel=0.02)


@pytest.mark.parametrize("args,message", [
    (("allreduce", "--system", "tpu-v4-64", "--bytes", "1 MiB", "--ranks", "128"), "at least 128 chips"),
    (("allreduce", "--system", "dgx-h100", "--bytes", "1 MiB", "--ranks", "8", "--algorithm", "foo"),
     "unknown collective algorithm"),
    (("allreduce", "--system", "dgx-h100", "--bytes", "12 parsecs", "--ranks", "8"), "--bytes"),
    (("allreduce", "--system", "dgx-h99", "--bytes", "1 MiB", "--ranks", "8"), "unknown system preset"),
])
def test_cli_errors_are_clean(args, message):
    r = cli(*args)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output


LIBRARY_AGREEMENT = [("dgx-h100", "cuda-native", 8), ("dgx-a100", "cuda-native", 8), ("mi300x-8", "rocm-native", 8),
                     ("trn2-48xl", "neuron", 16)]


@pytest.mark.parametrize("preset,stack,ranks", LIBRARY_AGREEMENT)
@pytest.mark.parametrize("kind", ["allreduce", "reducescatter", "allgather", "alltoall"])
def test_event_agrees_with_analytical_under_a_library(preset, stack, ranks, kind):
    """The event tier runs the algorithm and protocol the analytical tier picks, with the
    library's call and step latencies and bandwidth fractions: the latency plateau (8 B), the
    knee (1 MiB) and the bandwidth plateau (256 MiB) agree within 2 %."""
    from accelsim.stack.presets import load_stack

    s, lib = load_system(preset), load_stack(stack).collectives
    for n in (8.0, MiB, 256 * MiB):
        c = collective_cost(s, kind, n, ranks, library=lib)
        t, _ = simulate_collective(s, kind, n, ranks, c.algorithm, library=lib)
        assert t == pytest.approx(c.time_s, rel=0.02), (c.algorithm, c.protocol, n)


def test_join_tasks_keep_the_schedule_and_cut_its_dependencies(monkeypatch):
    # a 2D-torus all-reduce: each rank sends several hops a step, all waiting on the same list
    # (what it last received and sent); one zero-time join per rank holds that list instead
    import accelsim.lower.collective_schedule as cs
    from accelsim.sim.engine import simulate_schedule

    torus = load_system("tpu-v5e-256", ["num_chips=64", "interconnect.dims=[8, 8]"])
    joined = cs.collective_schedule(torus, "allreduce", 2**26, 64)
    monkeypatch.setattr(cs, "JOIN_DEPS", 10**9)  # never worth a join: every hop lists them itself
    plain = cs.collective_schedule(torus, "allreduce", 2**26, 64)
    assert joined.num_tasks > plain.num_tasks and joined.dep_idx.size < 0.6 * plain.dep_idx.size
    assert simulate_schedule(joined).makespan_s == simulate_schedule(plain).makespan_s


def test_narrow_columns_run_as_the_wide_ones():
    # a torus all-reduce's link indices, pools and step priorities fit 16 bits, so the schedule
    # keeps them so; widened to 32 bits the engine gives the same times to the bit
    import dataclasses

    import numpy as np

    from accelsim.lower.schedule import NARROW_COLUMNS

    torus = load_system("tpu-v5e-256", ["num_chips=64", "interconnect.dims=[8, 8]"])
    s = collective_schedule(torus, "allreduce", 2**26, 64)
    assert all(getattr(s, k).dtype == np.int16 for k in NARROW_COLUMNS)
    wide = dataclasses.replace(s, **{k: getattr(s, k).astype(np.int32) for k in NARROW_COLUMNS})
    a, b = simulate_schedule(s), simulate_schedule(wide)
    for f in ("start_s", "end_s", "wait_s", "xfer_delay_s", "blocker", "block_kind", "lane"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    # ready times: the wait kept in float32 is a duration from the start, so the ready time
    # of a task that waited is within float32 precision of that wait
    assert np.all(a.ready_s <= a.start_s) and np.all(a.wait_s >= 0)


def test_a_priority_past_16_bits_keeps_32():
    import numpy as np

    from accelsim.lower.schedule import NARROW_COLUMNS

    b = ScheduleBuilder()
    op = b.op("x", "x", "x")
    b.task(DELAY, CAT_OVERHEAD, op, duration_s=1e-6)
    b.task(DELAY, CAT_OVERHEAD, op, [0], duration_s=1e-6, priority=40_000)
    s = b.build()
    assert all(getattr(s, k).dtype == np.int32 for k in NARROW_COLUMNS)
    assert simulate_schedule(s).makespan_s == pytest.approx(2e-6)


def test_a_negative_or_infinite_size_is_refused():
    """--bytes -5 printed a -0.00488 KiB all-reduce taking 0 s; sizes below zero, NaN or infinite
    and fewer than one rank are refused (0 bytes is a no-op that costs nothing)."""
    from accelsim.errors import WorkloadError

    s = load_system("dgx-h100")
    for n, p in ((-5.0, 8), (float("nan"), 8), (float("inf"), 8), (1024.0, 0)):
        with pytest.raises(WorkloadError, match="bytes per rank must be|ranks must be"):
            collective_cost(s, "allreduce", n, p)
    assert collective_cost(s, "allreduce", 0.0, 8).time_s == 0.0
    r = CliRunner().invoke(main, ["collective", "allreduce", "--system", "dgx-h100", "--ranks", "8", "--bytes", "-5"])
    assert r.exit_code != 0 and "bytes per rank must be" in r.output
