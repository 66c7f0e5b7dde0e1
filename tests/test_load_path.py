"""A core's load path (``Dma.core_peak_Bps``) and a GEMM's partial last wave, checked by hand.

All cores loading at once share the chip's load paths evenly (``core_bw`` each); a core whose
peers idle pulls up to its own path's peak. Both tiers: the closed form (``mapping``) charges a
partial last wave's traffic at what that wave's cores pull, the event tier bounds the cores'
flows on a server by the paths' total (``Schedule.srv_path_Bps``)."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from accelsim.api import system_with
from accelsim.cost import mapping
from accelsim.cost.op_cost import ChipModel
from accelsim.errors import ConfigError
from accelsim.lower.lowering import Lowerer
from accelsim.lower.schedule import CAT_DMA_IN, XFER, ScheduleBuilder
from accelsim.sim import reference
from accelsim.sim.engine import simulate_schedule

import test_monotone as tm


def test_load_path_of_some_cores():
    # 108 cores with an even share of 50 each (5,400 together) and a peak of 150 a core
    assert mapping.load_path_bw.py_func(20, 108, 50.0, 150.0) == 3000.0  # 20 x 150
    assert mapping.load_path_bw.py_func(100, 108, 50.0, 150.0) == 5400.0  # the paths' total
    assert mapping.load_path_bw.py_func(20, 108, 50.0, 0.0) == 1000.0  # no peak: 20 x 50
    assert mapping.load_path_bw.py_func(20, 108, 50.0, 10.0) == 1000.0  # a peak under the share is the share


def _reload_row(core_peak):
    """The order-0 (reload) candidate of a 320 x 64 x 256 bf16 GEMM in 64 x 64 tiles, split-K 1,
    on 4 cores of 1 GB/s each (one queue, no shared SRAM, HBM far faster): 5 tiles, two waves,
    the last of one tile."""
    M, N, K = 320.0, 64.0, 256.0
    cores, core_bw, hbm_bw = 4.0, 1e9, 1e15
    grp = mapping._groups.py_func(M, N, K, 1.0, 2.0, 2.0, 2.0, 128, 128, 4, 0, 1.0, True, 0.0, 1.4e9, 1.0,
                                  cores, 0.0, math.inf, hbm_bw, core_bw, 0.0, core_peak)
    gi = next(i for i, g in enumerate(grp) if g[0] == 64 and g[1] == 64 and g[2] == 1)
    assert grp[gi, 4] == 5 and grp[gi, 5] == 2 and grp[gi, 6] == 4  # tiles, waves, active cores
    cand = np.empty((3, mapping.N_FIELDS + 1))
    nc = mapping._orders.py_func(grp, gi, cand, 0, M, N, K, 1.0, True, 2.0, 2.0, 2.0, 128, cores, 1e9, 0.0, 0.0,
                                 math.inf, hbm_bw, core_bw, 1.0, 1.0, 0.0, 0.0, core_peak)
    return next(cand[i] for i in range(nc) if cand[i, 9] == 0)


def test_a_partial_last_wave_moves_at_its_own_cores_rate():
    # each tile loads its A panel (64 x 256 x 2 B = 32 KiB) and B panel (32 KiB) and stores
    # 64 x 64 x 2 B = 8 KiB: 72 KiB. Four tiles on four cores at 1 GB/s each, then one tile on
    # one core at 1 GB/s: two tiles' time, 2 x 73,728 B / 1 GB/s (spread over every core it
    # was 5 x 73,728 / 4 GB/s, 1.25 tiles' time)
    row = _reload_row(0.0)
    assert row[4] == pytest.approx(5 * 73728.0)  # HBM bytes (no shared SRAM)
    assert row[2] == pytest.approx(2 * 73728.0 / 1e9)
    # with a peak of 3 GB/s a core, the lone last tile moves at 3 GB/s: 1 + 1/3 tiles' time
    assert _reload_row(3e9)[2] == pytest.approx((1 + 1 / 3) * 73728.0 / 1e9)


def _two_cores(path_Bps):
    b = ScheduleBuilder()
    q0 = b.resource("core0.dma", "dma", capacity=2, bandwidth_Bps=3e9)
    q1 = b.resource("core1.dma", "dma", capacity=2, bandwidth_Bps=3e9)
    hbm = b.bandwidth_server("hbm", 100e9, by_op=True, path_Bps=path_Bps)
    op = b.op("op", "op", "copy")
    b.task(XFER, CAT_DMA_IN, op, resource=q0, server=hbm, nbytes=6e9)
    b.task(XFER, CAT_DMA_IN, op, resource=q1, server=hbm, nbytes=2e9)
    return b.build()


@pytest.mark.parametrize("engine", [simulate_schedule, reference.run])
def test_cores_share_the_load_paths_and_one_alone_pulls_its_peak(engine):
    # two cores of 3 GB/s each whose paths move 4 GB/s together, shared in proportion to the
    # bytes each core has left of the op (6 GB and 2 GB): core 0 would take 3 of the 4 GB/s, its
    # own peak, core 1 the other 1 GB/s; both end at 2 s (an even split, 2 GB/s each, ended core
    # 1 at 1 s and core 0 alone at its 3 GB/s at 1 + 4/3 s). Held by the paths' total (core 1)
    # or at its own peak (core 0) a flow counts as limited by its DMA
    r = engine(_two_cores(4e9))
    assert r.end_s == pytest.approx([2.0, 2.0])
    assert r.capped_s == pytest.approx([2.0, 2.0])
    # without the bound each core moves at its own 3 GB/s
    r = engine(_two_cores(math.inf))
    assert r.end_s[1] == pytest.approx(2.0 / 3.0) and r.end_s[0] == pytest.approx(2.0)


def test_a_gpu_preset_peaks_its_cores_and_bounds_their_sum():
    spec = system_with("a100-sxm-80gb")
    cm, low = ChipModel(spec), Lowerer(spec)
    eff = spec.chip.calibration.hbm_efficiency
    # 180.48 GB/s a core (its shared memory's 128 B a clock at 1.41 GHz); 108 x 4 queues x 16.71 GB/s together
    assert cm.core_peak == pytest.approx(180.48e9 * eff)
    s = low.b.build()
    dma = s.res_names.index("core0.dma")
    assert s.res_bandwidth_Bps[dma] == pytest.approx(180.48e9 * eff)
    assert s.srv_path_Bps[s.srv_names.index("hbm")] == pytest.approx(432 * 16.71e9 * eff)
    assert cm.load_path(20) == pytest.approx(20 * 180.48e9 * eff)
    assert cm.load_path(108) == pytest.approx(432 * 16.71e9 * eff)


def test_a_chip_without_a_peak_keeps_the_even_share():
    spec = system_with("trn2")
    cm = ChipModel(spec)
    assert spec.chip.dma.core_peak_Bps is None and cm.core_peak == cm.core_bw
    s = Lowerer(spec).b.build()
    assert math.isinf(s.srv_path_Bps[s.srv_names.index("hbm")])


def test_a_peak_must_be_a_positive_bandwidth():
    with pytest.raises(ConfigError, match="core_peak_Bps"):
        system_with("a100-sxm-80gb", ["chip.dma.core_peak_Bps=-5 GB/s"])


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1 GB/s", "3 parsecs", "1e999", "true", "1 B/s", "1e30 B/s"])
def test_a_hostile_peak_is_refused_or_gives_finite_steps(value):
    # refused by name, or (a positive finite rate: under the even share it is the share, above the
    # paths' total the total binds) finite decode latencies in both tiers
    try:
        spec = system_with("a100-sxm-80gb", [f"chip.dma.core_peak_Bps={value}"])
    except ConfigError as e:
        assert "core_peak_Bps" in str(e)
        return
    from accelsim.api import evaluate

    for fidelity in ("analytical", "event"):
        t = evaluate(spec, "tiny", phase="decode", batch=2, context_len=64, fidelity=fidelity).summary["latency_s"]
        assert math.isfinite(t) and t > 0


GPUS = ["a100-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "dgx-h100"]


@st.composite
def peak_points(draw):
    system = draw(st.sampled_from(GPUS))
    base = {p: draw(st.floats(*r)) for p, r in tm.BASE.items() if draw(st.booleans())}
    return dict(system=system, knob="chip.dma.core_peak_Bps", factor=draw(st.floats(1.2, 4.0)), base=base,
                model=draw(st.sampled_from(["llama-3-8b", "gpt3-5b", "tiny"])),
                phase=draw(st.sampled_from(["prefill", "decode"])), batch=draw(st.sampled_from([1, 2, 4, 8])),
                tokens=draw(st.sampled_from([64, 128, 256, 512])),
                tp=draw(st.sampled_from([2, 4])) if system == "dgx-h100" else 1)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(peak_points())
def test_a_faster_load_path_is_never_slower(p):
    # more hardware (a core's load path peak) is never slower, in both tiers (issue 13's property)
    tm.check(**p, fidelity="event")
    tm.check(**p, fidelity="analytical")


def test_a_saved_schedule_keeps_its_path_bound_and_an_older_file_has_none(tmp_path):
    from accelsim.lower.schedule import Schedule

    s = _two_cores(4e9)
    s.save(tmp_path / "s.npz")
    assert Schedule.load(tmp_path / "s.npz").srv_path_Bps.tolist() == [4e9]
    # a file written before the bound existed: its servers have none
    with np.load(tmp_path / "s.npz") as z:
        old = {k: z[k] for k in z.files if k != "srv_path_Bps"}
    np.savez_compressed(tmp_path / "old.npz", **old)
    t = Schedule.load(tmp_path / "old.npz")
    assert math.isinf(t.srv_path_Bps[0])
    r = simulate_schedule(t)  # each core at its own 3 GB/s
    assert r.end_s[1] == pytest.approx(2.0 / 3.0) and r.end_s[0] == pytest.approx(2.0)
