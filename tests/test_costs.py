"""Closed-form cases derived by hand, and properties of the cost model."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accelsim.errors import LoweringError, WorkloadError
from accelsim.cost.collectives import collective_time
from accelsim.cost import mapping
from accelsim.cost.mapping import TIME_TOLERANCE, gemm_search
from accelsim.cost.op_cost import ChipModel, op_cost
from accelsim.workload.ops import Collective, MatMul, Softmax

from conftest import make_system


def test_one_gemm_on_one_core_sequential_folds(toy):
    # 1 core, 128x128 ws, folds strictly sequential, 1 GHz, 1 TB/s.
    # M=256, N=128, K=256: best tile is the whole GEMM: ceil(256/128)*ceil(128/128) = 2 folds,
    # each streams M=256 rows plus fill/drain 2R+C-2 = 382 -> 2*638 = 1276 cycles = 1.276 us.
    # Pipeline fill and drain: the first K chunk (one array height, 128 rows of K) of A and B,
    # 2*(256*128 + 128*128) B = 98304 B, must arrive before the first pass, and the 256x128
    # bf16 result (65536 B) leaves after the last: 163840 B / 1e12 B/s = 163.84 ns.
    c = op_cost(ChipModel(toy), MatMul(m=256, n=128, k=256, b_shared=True))
    assert c.compute_s == pytest.approx(1276e-9)
    assert c.bound == "compute"
    assert c.overhead_s == pytest.approx(163.84e-9)
    assert c.time_s == pytest.approx(1276e-9 + 163.84e-9)
    assert c.hbm_bytes == 2 * (256 * 256 + 256 * 128 + 256 * 128)  # no split-K detour


def test_one_gemm_with_overlapped_preload():
    sys = make_system({"core": {"tensor": {"preload_overlap": True}}})
    c = op_cost(ChipModel(sys), MatMul(m=256, n=128, k=256, b_shared=True))
    assert c.compute_s == pytest.approx((2 * 256 + 382) * 1e-9)


def test_memory_bound_gemv():
    # y[1,4096] = x[1,4096] @ W[4096,4096] in bf16 on 1 TB/s: every byte read once,
    # bytes = 2*(4096 + 4096*4096 + 4096) = 33,570,816 -> 33.570816 us of HBM time; the
    # mapping adds only a small pipeline fill on top (it picks narrow tiles to keep it small).
    sys = make_system({"core": {"tensor": {"preload_overlap": True}}})
    c = op_cost(ChipModel(sys), MatMul(m=1, n=4096, k=4096, b_shared=True))
    assert c.hbm_bytes == 33_570_816
    assert c.memory_s == pytest.approx(33.570816e-6)
    assert 33.570816e-6 < c.time_s < 1.02 * 33.570816e-6
    assert c.bound == "memory"


def test_gemv_with_sequential_folds_is_fill_bound(toy):
    # the same GEMV when every one-row fold pays the full 2R+C-2 = 382 fill/drain (SCALE-Sim):
    # at least 32*32 folds * 383 cycles = 392.192 us: a weight-stationary array is a poor GEMV
    # engine, and the op is compute-bound although it moves only 33.6 MB
    c = op_cost(ChipModel(toy), MatMul(m=1, n=4096, k=4096, b_shared=True))
    assert c.compute_s >= 1024 * 383e-9 * (1 - 1e-12)
    assert c.bound == "compute"


def test_allreduce_on_a_ring():
    # 4 chips on a closed ring, 100 GB/s per direction, 1 us per hop, 64 MiB per rank:
    # bidirectional ring: 2*(p-1)/p * n / (2B) = 0.75 * 67108864 / 1e11 = 503.316 us,
    # plus 2*(p-1) = 6 hops of latency.
    sys = make_system(num_chips=4, interconnect={"kind": "ring", "dims": [4], "link_bandwidth_Bps": "100 GB/s",
                                                 "link_latency_s": "1 us"})
    t, lat, sent, algo = collective_time(sys, Collective(op="allreduce", bytes_per_rank=64 * 2**20, group=4))
    assert t == pytest.approx(0.75 * 67108864 / 1e11)
    assert lat == pytest.approx(6e-6)
    assert sent == pytest.approx(1.5 * 67108864)
    c = op_cost(ChipModel(sys), Collective(op="allreduce", bytes_per_rank=64 * 2**20, group=4))
    assert c.time_s == pytest.approx(509.316e-6, rel=1e-5) and c.bound == "interconnect"


def test_allreduce_switch_and_direct():
    n = 2**30
    sw = make_system(num_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": "25 GB/s",
                                                "links_per_neighbour": 18})
    t, *_ = collective_time(sw, Collective(op="allreduce", bytes_per_rank=n, group=8))
    assert t == pytest.approx(2 * 7 / 8 * n / 450e9)     # ring through the switch at 450 GB/s
    sharp = make_system(num_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": "25 GB/s",
                                                   "links_per_neighbour": 18, "in_switch_reduction": True})
    t2, *_ = collective_time(sharp, Collective(op="allreduce", bytes_per_rank=n, group=8))
    assert t2 == pytest.approx(n / 450e9)                # each GPU sends and receives n once
    fc = make_system(num_chips=4, interconnect={"kind": "fully_connected", "link_bandwidth_Bps": "25 GB/s",
                                                "links_per_neighbour": 4})
    t3, *_ = collective_time(fc, Collective(op="allreduce", bytes_per_rank=n, group=4))
    assert t3 == pytest.approx(2 * (n / 4) / 100e9)      # direct reduce-scatter + all-gather
    rs, *_ = collective_time(fc, Collective(op="reducescatter", bytes_per_rank=n, group=4))
    assert rs == pytest.approx(t3 / 2)


def test_torus_allreduce_two_dims():
    # 4x4 torus, group of 16, multi-dimensional ring with both dims busy at once: half the data
    # reduce-scatters X then Y, the other half Y then X (then all-gathers in reverse), each on
    # closed bidirectional rings (2 x 100 GB/s). Phase 1: 3 steps of (n/2)/4 split over two
    # directions; phase 2: 3 steps of (n/2)/16; all-reduce = 2 x (RS):
    # 2 * (3 * (n/8)/2e11 + 3 * (n/32)/2e11) = 2 * 15n/32 / 2e11 = 0.46875 n / 1e11.
    sys = make_system(num_chips=16, interconnect={"kind": "torus2d", "dims": [4, 4], "link_bandwidth_Bps": "100 GB/s"})
    n = 1e9
    t, lat, sent, algo = collective_time(sys, Collective(op="allreduce", bytes_per_rank=n, group=16))
    assert t == pytest.approx(2 * (3 * (n / 8) / 2e11 + 3 * (n / 32) / 2e11))
    assert algo == "multidim_ring"
    # at the 2D torus injection bound: 2(p-1)/p * n / (4 links x 100 GB/s)
    assert t == pytest.approx(2 * 15 / 16 * n / 4e11)


def test_group_larger_than_system_is_refused(toy):
    with pytest.raises(WorkloadError, match="at least 8 chips"):
        op_cost(ChipModel(toy), Collective(op="allreduce", bytes_per_rank=1e6, group=8))


def test_softmax_vector_bound():
    # 4096 rows x 4096 cols on 1 core: 4 vector ops/element at 128 ops/cycle, 1 GHz
    # -> 4*16.78M/128e9 = 524.3 us; exp on 128 lanes -> 131 us; bytes 2*2*16.78M/1e12 = 67 us.
    sys = make_system()
    c = op_cost(ChipModel(sys), Softmax(rows=4096, cols=4096, dtype="bf16"))
    assert c.vector_s == pytest.approx(4 * 4096 * 4096 / 128e9)
    assert c.bound == "vector"


def test_unsupported_dtype_is_a_clear_error(toy):
    with pytest.raises(LoweringError, match="no tensor-engine rate for fp8"):
        op_cost(ChipModel(toy), MatMul(m=64, n=64, k=64, dtype_a="fp8", dtype_b="fp8"))


def test_tiny_sram_cannot_fit():
    sys = make_system({"core": {"sram": {"capacity_bytes": 64}}})
    with pytest.raises(LoweringError, match="no tile fits"):
        op_cost(ChipModel(sys), MatMul(m=256, n=256, k=256))


# ---------------------------------------------------------------- properties

gemm = st.tuples(st.integers(1, 4096), st.integers(1, 4096), st.integers(1, 4096), st.booleans())
chips = st.fixed_dictionaries({
    "num_cores": st.integers(1, 16),
    "frequency_Hz": st.floats(0.5e9, 3e9),
    "core": st.fixed_dictionaries({
        "tensor": st.fixed_dictionaries({"rows": st.sampled_from([16, 32, 128]), "cols": st.sampled_from([16, 32, 128]),
                                         "dataflow": st.sampled_from(["ws", "os", "is"]),
                                         "preload_overlap": st.booleans()}),
        "sram": st.fixed_dictionaries({"capacity_bytes": st.integers(2**20, 2**26)}),
    }),
    "hbm": st.fixed_dictionaries({"bandwidth_Bps": st.floats(1e11, 5e12)}),
})


def _chip(d):
    t = d["core"]["tensor"]
    t["macs_per_cycle"] = {"bf16": t["rows"] * t["cols"]}
    return make_system(d)


def _scaled(d, path, factor):
    import copy
    d = copy.deepcopy(d)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] *= factor
    return d


@settings(max_examples=40, deadline=None)
@given(chips, gemm, st.sampled_from([("hbm", "bandwidth_Bps"), ("frequency_Hz",), ("core", "sram", "capacity_bytes")]))
def test_more_resources_never_slower(d, shape, path):
    m, n, k, shared = shape
    op = MatMul(m=m, n=n, k=k, b_shared=shared)
    base = _chip(_scaled(d, path, 1.0))
    more = _chip(_scaled(d, path, 2.0))
    try:
        t0 = op_cost(ChipModel(base), op).time_s
    except LoweringError:
        return
    # the mapping search may pick, among mappings within TIME_TOLERANCE of the fastest, one that
    # uses less compute: the chosen time never exceeds the fastest's by more than that band
    assert op_cost(ChipModel(more), op).time_s <= t0 * (1 + TIME_TOLERANCE)


@settings(max_examples=40, deadline=None)
@given(chips, gemm)
def test_time_at_least_roofline(d, shape):
    m, n, k, shared = shape
    sys = _chip(d)
    op = MatMul(m=m, n=n, k=k, b_shared=shared)
    try:
        c = op_cost(ChipModel(sys), op)
    except LoweringError:
        return
    bound = max(op.flops() / sys.chip.peak_flops("bf16"), op.bytes() / sys.chip.hbm.bandwidth_Bps)
    assert c.time_s >= bound * (1 - 1e-9)
    assert c.hbm_bytes >= op.bytes() * (1 - 1e-9)


@settings(max_examples=25, deadline=None)
@given(gemm, st.integers(1, 64), st.floats(1e6, 1e9))
def test_numba_search_equals_python_twin(shape, cores, sram):
    m, n, k, shared = shape
    args = (float(m), float(n), float(k), 1.0, shared, 2.0, 2.0, 2.0, 128, 128, 4, 1, 1.0, True, 0.0,
            1.4e9, 1.0, float(cores), sram, 0.0, 40e6, 5e12, 2e12, 2e12 / cores, 4.0)
    np.testing.assert_array_equal(gemm_search.compiled()(*args), gemm_search.py_func(*args))


def _exhaustive(M, N, K, batch, b_shared, ba, bb, bo, R, C, count, df, speedup, overlap, min_pass, freq, teff,
                cores, sram, acc, shared_cap, shared_bw, hbm_bw, core_bw, queues, multicast, dq_b, dq_a):
    """Every candidate of every group costed (no pruning), each checked against both group
    bounds; the winner by the documented rule: when the fastest (the earliest of them) is
    memory-bound, the candidates within TIME_TOLERANCE of it, else those as fast as it; of
    them the least HBM traffic, least compute, earliest rank."""
    comp = batch * M * K * ba + (1.0 if b_shared else batch) * K * N * bb + batch * M * N * bo
    grp = mapping._groups.py_func(M, N, K, batch, ba, bb, bo, R, C, count, df, speedup, overlap, min_pass, freq,
                                  teff, cores, acc, shared_bw, hbm_bw, core_bw, comp)
    cand = np.empty((3 * max(1, len(grp)), mapping.N_FIELDS + 1))
    nc = 0
    for gi in range(len(grp)):
        n0 = nc
        nc = mapping._orders.py_func(grp, gi, cand, nc, M, N, K, batch, b_shared, ba, bb, bo, R, cores, sram, acc,
                                     shared_cap, shared_bw, hbm_bw, core_bw, queues, multicast, dq_b, dq_a)
        second = mapping._path_bound.py_func(grp, gi, M, N, K, batch, ba, bb, bo, cores, sram, acc, shared_bw,
                                             core_bw, multicast)
        for t in cand[n0:nc, 0]:
            assert grp[gi, 9] <= t * (1 + 1e-9) and second <= t * (1 + 1e-9)
    if nc == 0:
        return np.full(mapping.N_FIELDS, np.inf)
    c = cand[:nc]
    fastest = c[:, 0].min()
    f = min((i for i in range(nc) if c[i, 0] == fastest), key=lambda i: c[i, -1])
    path = c[f, 11] * core_bw * c[f, 15] / queues
    memory_bound = max(c[f, 4] / min(hbm_bw, path), c[f, 5] / min(shared_bw, path)) >= c[f, 1] * (1 - 1e-9)
    near = [i for i in range(nc) if c[i, 0] <= fastest * (1 + (TIME_TOLERANCE if memory_bound else 0.0))]
    return c[min(near, key=lambda i: (c[i, 4], c[i, 1], c[i, -1])), :mapping.N_FIELDS]


@settings(max_examples=60, deadline=None)
@given(gemm, st.sampled_from([1, 4]), st.integers(1, 160), st.floats(2e5, 3e7), st.sampled_from([0.0, 4e7]),
       st.sampled_from([1.0, 2.0]), st.sampled_from([1.0, 4.0]), st.sampled_from([0.0, 2e5]))
def test_pruned_search_picks_what_costing_every_candidate_picks(shape, batch, cores, sram, shared, mc, queues, acc):
    # the search skips groups by two lower bounds on their time; it must still pick exactly
    # what costing every candidate would (and the bounds must be bounds)
    m, n, k, b_shared = shape
    args = (float(m), float(n), float(k), float(batch), b_shared, 2.0, 1.0, 2.0, 128, 128, 4, 0, 1.0, True, 0.0,
            1.6e9, 0.8, float(cores), sram, acc, shared, 6e12 if shared else np.inf, 3e12, 4e12 / cores, queues,
            mc if shared else 1.0, 0.0, 0.0)
    np.testing.assert_array_equal(gemm_search.py_func(*args), _exhaustive(*args))


hints = st.tuples(st.sampled_from([8.0, 16.0, 64.0, 128.0, 300.0, 4096.0]), st.sampled_from([8.0, 32.0, 128.0, 1000.0]),
                  st.sampled_from([1.0, 2.0, 4.0, 32.0]))


@settings(max_examples=60, deadline=None)
@given(gemm, st.sampled_from([1, 4]), st.integers(1, 160), st.floats(2e5, 3e7), st.sampled_from([0.0, 4e7]), hints)
def test_a_hint_changes_which_groups_are_costed_not_the_winner(shape, batch, cores, sram, shared, hint):
    # the search also costs the group nearest a hinted tiling first (a similar search's winner):
    # whatever the hint, it picks what costing every candidate picks
    m, n, k, b_shared = shape
    args = (float(m), float(n), float(k), float(batch), b_shared, 2.0, 1.0, 2.0, 128, 128, 4, 0, 1.0, True, 0.0,
            1.6e9, 0.8, float(cores), sram, 0.0, shared, 6e12 if shared else np.inf, 3e12, 4e12 / cores, 4.0,
            1.0, 0.0, 0.0)
    np.testing.assert_array_equal(gemm_search.py_func(*args, *hint), _exhaustive(*args))
    np.testing.assert_array_equal(gemm_search.compiled()(*args, *hint), gemm_search.py_func(*args))


@settings(max_examples=80, deadline=None)
@given(gemm, st.sampled_from([1, 3]), st.sampled_from([0, 1, 2]), st.booleans(), st.sampled_from([0.25, 1.0, 2.0]),
       st.sampled_from([0.0, 64.0]), st.sampled_from([(16, 16, 1), (128, 128, 4), (128, 64, 2)]))
def test_group_rows_price_each_tile_as_pass_cycles_does(shape, batch, df, overlap, speedup, min_pass, array):
    # _groups works a pass out from pieces of its split, its M tile and its N tile: each row's
    # compute must be waves x pass_cycles(tile) / frequency / efficiency, as for a lone tile
    from accelsim.cost.systolic import pass_cycles

    m, n, k, _ = shape
    R, C, count = array
    freq, teff = 1.3e9, 0.7
    grp = mapping._groups.py_func(float(m), float(n), float(k), float(batch), 2.0, 2.0, 2.0, R, C, count, df, speedup,
                                  overlap, min_pass, freq, teff, 64.0, 0.0, 5e12, 3e12, 5e10, 1e9)
    assert len(grp)
    for mt, nt, split, ks, tiles, waves, *_ in grp:
        assert ks == -(-k // int(split))
        assert grp[0, 7] >= 0
        expect = waves * pass_cycles.py_func(mt, nt, int(ks), R, C, count, df, speedup, overlap, min_pass) / freq / teff
        row = grp[(grp[:, 0] == mt) & (grp[:, 1] == nt) & (grp[:, 2] == split)][0]
        assert row[7] == expect


def test_identical_inputs_identical_outputs(toy):
    op = MatMul(m=333, n=777, k=999)
    a, b = op_cost(ChipModel(toy), op), op_cost(ChipModel(toy), op)
    assert a == b


def test_resident_panel_is_charged_to_the_first_tile_of_its_walk():
    # One core walks a row of 4 output tiles (M=128, N=512, K=1024, bf16, tiles 128 x 128) with
    # its A panel resident: the panel (128 x 1024 x 2 B = 256 KiB) arrives with the first tile's
    # streamed bytes (B slice 1024 x 128 x 2 + output 128 x 128 x 2 = 288 KiB) at the core's
    # 1 GB/s, while a pass takes 0.5 ms. By hand: the first tile max(0.5, 0.557056) ms, the three
    # others max(0.5, 0.294912) ms: 2.057056 ms, above both the compute (2 ms) and the traffic
    # at the core's rate (1,441,792 B: 1.441792 ms) that bounded it before.
    M, N, K, mt, nt = 128.0, 512.0, 1024.0, 128.0, 128.0
    grp = np.array([[mt, nt, 1.0, K, 4.0, 4.0, 1.0, 2e-3, 0.0, 0.0, 0.0]])
    cand = np.empty((3, mapping.N_FIELDS + 1))
    nc = mapping._orders.py_func(grp, 0, cand, 0, M, N, K, 1.0, True, 2.0, 2.0, 2.0, 128.0, 1.0, float(2**20),
                                 1e9, 0.0, np.inf, 1e12, 1e9, 1.0, 1.0, 0.0, 0.0)
    rows = {int(r[9]): r for r in cand[:nc]}
    assert rows[1][0] == pytest.approx(0.5e-3 * 3 + 557056 / 1e9, rel=1e-12)
    assert rows[0][0] == pytest.approx((4 * 2**18 + 2**20 + 2**17) / 1e9, rel=1e-12)  # reload: no walk, traffic-bound


def _one_core_search(hbm_Bps):
    # 128 x 128 x 4096 bf16 (B shared) on one core of a 128 x 128 array at 1 GHz, 16 MiB of SRAM,
    # one DMA queue, the core's path and HBM both at ``hbm_Bps``
    r = gemm_search(128.0, 128.0, 4096.0, 1.0, True, 2.0, 2.0, 2.0, 128, 128, 1, 0, 1.0, False, 0.0, 1e9, 1.0,
                    1.0, float(2**24), 0.0, 0.0, np.inf, hbm_Bps, hbm_Bps, 1.0)
    return dict(zip(mapping.RESULT_FIELDS, r))


def test_a_memory_bound_gemm_ends_with_its_last_pass_and_store():
    # At 1 GB/s the GEMM moves A (1 MiB), B (1 MiB) and its output (32 KiB): 2,129,920 B, 2.12992
    # ms, far above its compute. Its first load is part of that stream; what follows the last
    # load is the last fine K step's pass (one array height of K, 128 of 4096, of a tile's
    # pass) and the last tile's store (tile_m x tile_n x 2 B at 1 GB/s). The first step's load
    # (a tile's A and B slices of K 128) is not added again.
    f = _one_core_search(1e9)
    assert f["hbm_s"] == pytest.approx(2129920 / 1e9, rel=1e-12)
    assert f["compute_s"] < 0.2 * f["hbm_s"]
    tile_pass = f["compute_s"] / f["waves"]  # one core: a wave is one tile
    tail = tile_pass * 128 / 4096 + f["tile_m"] * f["tile_n"] * 2 / 1e9
    assert f["time_s"] == pytest.approx(f["hbm_s"] + tail, rel=1e-12)
    first_load = (f["tile_m"] * 128 * 2 + 128 * f["tile_n"] * 2) / 1e9
    assert f["time_s"] < f["hbm_s"] + first_load


def test_a_compute_bound_gemm_waits_for_its_first_load():
    # With 1 PB/s the same GEMM is compute-bound: its first K step (the tile's A and B slices
    # of one array height of K) arrives before the first pass, its last result leaves after
    # the last pass
    f = _one_core_search(1e15)
    assert f["compute_s"] > f["hbm_s"]
    fill = (f["tile_m"] * 128 * 2 + 128 * f["tile_n"] * 2 + f["tile_m"] * f["tile_n"] * 2) / 1e15
    assert f["time_s"] == pytest.approx(f["compute_s"] + fill, rel=1e-12)


def test_split_k_drain_stores_the_fp32_partial():
    # The pipeline drain of a tiling is its last tile's result leaving after the last pass; under
    # split-K that result is the tile's fp32 partial (4 B an element), stored before the
    # reduction. 128 x 128 x 4096 in bf16 on 4 cores with a 100 GB/s load path each and 1 TB/s
    # of HBM: a 128 x 128 tile whose first K step is one array height (128) of A and B,
    # 2 * 128 * 128 * 2 B = 65,536 B; split 1: 1 tile, one core at min(100 GB/s, 1 TB/s) and a
    # bf16 result of 32,768 B -> 98,304 B / 1e11 = 0.98304 us; split 2: 2 tiles on 2 cores,
    # an fp32 partial of 65,536 B -> 131,072 B / 1e11 = 1.31072 us.
    rows = mapping._groups.py_func(128.0, 128.0, 4096.0, 1.0, 2.0, 2.0, 2.0, 128.0, 128.0, 1.0, 0.0, 1.0, False,
                                   0.0, 1e9, 1.0, 4.0, 0.0, 1e12, 1e12, 1e11, 0.0)
    fill = {int(r[2]): r[8] for r in rows if r[0] == 128 and r[1] == 128}
    assert fill[1] == pytest.approx(0.98304e-6)
    assert fill[2] == pytest.approx(1.31072e-6)
