"""Mapping search for GEMM-like ops: tile shape, K split and loop order per core.

For C[M,N] = A[M,K] @ B[K,N] (``batch`` independent copies) the search enumerates output tiles
(Mt x Nt), a split of K over cores (split-K, whose fp32 partials cost extra traffic) and a loop
order, keeps the candidates whose working set fits one core's SRAM (operands double-buffered,
fp32 accumulators in the accumulator buffer or in SRAM), and returns the fastest (within
rounding: the least HBM traffic, then the least compute time):

- a tile narrower than the output columns the core's arrays compute in one pass (C x count, or
  the whole dimension) costs a full pass (the idle columns included) for fewer outputs; its one
  gain is more tiles to spread a small GEMM over the cores, so it is a candidate only while its
  tiles do not fill them (beyond, it only adds tiles, each with its own loads, stores and
  split-K partials, for a finer last wave; the event tier ran such mappings, e.g. 16 x 8 tiles
  over 249 waves, up to 30 % slower than the closed form rated them);
- tiles are spread over the cores; ``waves = ceil(tiles / cores)`` (wave quantization: a GPU
  with 108 SMs running 109 tiles pays two waves), each wave costs one tile's ``pass_cycles``
  (systolic folds and fill/drain, tile quantization included);
- core-level operand traffic: with order 0 a tile loads its A panel (Mt x K) and B panel
  (K x Nt); order 1 keeps the A panel resident in the core while it walks a row of tiles,
  order 2 keeps the B panel resident while it walks a column;
- a chip-shared SRAM (GPU L2, TPU CMEM) lets the tiles of one wave share panels, and holds a
  whole operand that fits in half of it, so HBM traffic can be far below core traffic;
- a split-K GEMM's partials are reduced after its last wave, over every core (each output
  tile's partials come from cores that reach it at different points of their runs, so the
  reduction is a tail, as a parallel split-K kernel's separate reduction pass is);
- the pipeline's fill and drain by what bounds it: compute-bound, the first K step's operands
  must arrive before the first pass and the last result must leave after the last pass (under
  split-K the tile's fp32 partial, which the reduction then reads), which penalises a few huge
  tiles on a small GEMM; memory-bound, the first load is part of the memory stream and what
  follows the last load is the last (fine) K step's pass and the last store (never more than
  the compute-bound fill): ``max(compute + fill, memory + tail)``;
- a resident panel is loaded while the first tile of its walk runs, so a core's time is at least
  its walks' ``max(pass, (panel + streamed) / core rate) + (L - 1) max(pass, streamed / core
  rate)`` (``L`` tiles a walk; the core rate its share of what its path traffic moves at): the
  panel's traffic is not spread over the walk's other tiles, as the event tier runs it;
- with load multicast (Hopper clusters) one operand load from the shared SRAM feeds several
  cores, dividing the operand traffic through the shared level and the cores' load paths (HBM
  traffic is unchanged: the shared SRAM would have served the repeat reads anyway);
- HBM time uses the bandwidth the active cores can pull (``min(HBM, load_path_bw(active))``: each
  core up to its load path's peak, all of them no more than every core's even share), so a
  small GEMM that occupies few cores cannot reach peak bandwidth; a partial last wave's share of
  the traffic moves at what that wave's cores pull, as the event tier runs it on them alone.

``gemm_search`` is a ``jit.Kernel``: plain Python for its first calls in a process, then
compiled with numba; ``gemm_search.py_func`` is its pure-Python twin.
"""

from __future__ import annotations

import math

import numpy as np
from ..jit import kernel

from .systolic import col_folds, pass_fill, pass_time

TILE_SIZES = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], dtype=np.int64)
"""Candidate tile edges (clamped to the GEMM's own extent)."""
SPLITS = np.array([1, 2, 4, 8, 16, 32], dtype=np.int64)
"""Candidate split-K factors."""
K_CHUNK = 512
"""Largest K slice of an operand panel that one double-buffered load brings in at a time."""
STEP_BYTES = 16 * 1024
"""Operand bytes one K step of a tile loads at most in the event tier (A slice + B slice),
whatever the SRAM: a GEMM kernel's pipeline stage is a fixed slice of its tile (16 KiB: a
128 x 128 bf16 tile with a K depth of 32; GPU tensor-op kernels run several stages of a K depth
of 32-64; modelling assumption), and a larger step only lengthens the pipeline's fill and drain,
so a larger SRAM must not grow it. The mapping search's ``k_chunk`` still sizes the SRAM slots,
and the event tier holds proportionally more of the smaller steps in them."""
MAX_K_STEPS = 8
"""The event tier folds a tile's K loop into at most this many pipelined steps."""
MAX_TILE_GROUPS = 8
"""The event tier runs a core's tiles of a GEMM (and its units of a fused attention) in at most
this many groups (consecutive tiles are merged beyond it)."""
DMA_PIECE_BYTES = 64 * 1024
"""A transfer is cut into descriptors of at least this size, spread over a core's DMA queues
(as a DMA compiler splits a large copy over engines)."""
K_CHUNK_MIN = 16
"""Smallest K slice worth a load (a GPU pipeline stage of 16-64, a Neuron 128-row slice)."""


@kernel()
def load_path_bw(n, cores, core_bw, core_peak):
    """What the load paths of ``n`` of the ``cores`` cores move together: each at most
    ``core_peak`` (its own path's limit; 0: its even share ``core_bw``), all together at most
    the ``cores x core_bw`` the chip's load paths move when every core loads."""
    return min(n * max(core_bw, core_peak), cores * core_bw)


def event_k_chunk(kc: int, ks: int, tile_bytes_per_k: float) -> int:
    """The K extent of the event tier's steps for a mapping's chunk ``kc`` over a K range of
    ``ks``: halved while a step would load more than ``STEP_BYTES`` (``tile_bytes_per_k``: the
    A and B slice bytes per unit of K), but still at most ``MAX_K_STEPS`` steps."""
    while kc > K_CHUNK_MIN and kc * tile_bytes_per_k > STEP_BYTES:
        kc //= 2
    return max(kc, -(-ks // MAX_K_STEPS))


TIME_TOLERANCE = 5e-4
"""Candidates within this fraction of the fastest count as equally fast; among them the
least HBM traffic, then the least compute wins, as a kernel library prefers the tile that
keeps the tensor engine least busy when the memory bound ties. (Those tiles differ in the
event tier: when an op's weights were prefetched during the previous op, what is left is its
compute.) The band applies only when the fastest candidate is memory-bound (its HBM or
shared-level traffic at the rate its cores can pull takes at least its compute time): a
compute-bound GEMM's near-ties differ in their pipeline fill, which the event tier runs
several times longer than the closed form rates it, so the fastest wins (with twice the SRAM a
Trainium2 mlp_down had moved to a tiling 0.04 % slower in closed form, 0.5 % in the event
tier, for 19 % less HBM traffic it did not need). The band bounds how much more hardware can
slow the analytical tier: the chosen time never exceeds the fastest by more than this
fraction, and the fastest never rises."""

RESULT_FIELDS = ("time_s", "compute_s", "hbm_s", "shared_s", "hbm_bytes", "core_bytes",
                 "tile_m", "tile_n", "split_k", "order", "waves", "active_cores", "fill_s",
                 "k_chunk", "slots", "in_flight", "a_hbm_bytes", "b_hbm_bytes", "partials_shared", "vector_s")
"""``a_hbm_bytes`` / ``b_hbm_bytes``: each operand's HBM traffic (the rest of its core-level
loads hit the chip-shared SRAM), which the event tier spreads over that operand's DMAs;
``partials_shared``: 1 when the split-K partials stay in the chip-shared SRAM; ``vector_s``:
the vector engine's dequantization time; ``fill_s``: what the pipeline's fill and drain add to
the busiest of compute and memory (``time_s`` less that), split-K reduction tail included."""
N_FIELDS = len(RESULT_FIELDS)


@kernel(None)
def _loop_order(order, mt, nt, ks, nm, nn, a_bytes, b_bytes, ba, bb, kc_floor, acc_in_sram, cores_per_row,
                cores_per_col):
    """A loop order's smallest working set (the K slices double-buffered at the minimum chunk,
    plus a resident panel) and its core-level operand traffic (A, B): order 0 loads both
    panels per tile; order 1 keeps the A panel resident while a core walks a row of tiles
    (a row's tiles spread over ``cores_per_row`` cores each load it), order 2 the B panel."""
    if order == 0:
        return 2.0 * (mt * kc_floor * ba + kc_floor * nt * bb) + acc_in_sram, a_bytes * nn, b_bytes * nm
    if order == 1:
        return (mt * ks * ba + 2.0 * kc_floor * nt * bb + acc_in_sram,
                a_bytes * max(1.0, min(nn, math.ceil(cores_per_row))), b_bytes * nm)
    return (ks * nt * bb + 2.0 * mt * kc_floor * ba + acc_in_sram, a_bytes * nn,
            b_bytes * max(1.0, min(nm, math.ceil(cores_per_col))))


@kernel()
def _groups(M, N, K, batch, ba, bb, bo, R, C, count, df, speedup, overlap, min_pass, freq, teff,
            cores, acc, shared_bw, hbm_bw, core_bw, compulsory, core_peak=0.0):
    """The (tile, split) groups of the search in enumeration order, one row each: mt, nt,
    split, ks, tiles, waves, active, compute_s, fill_s, a lower bound on the time of any loop
    order of the group (its compute plus its fill, or the compulsory HBM traffic at the bandwidth
    its active cores can pull plus its tail; ``_path_bound`` is a second), and the tail (what a
    memory-bound tile runs after its last load: the last fine K step's pass and its store)."""
    out = np.empty(((TILE_SIZES.size + 1) ** 2 * SPLITS.size, 11))
    ng = 0
    # the output columns (rows when input-stationary) the core's arrays compute in one pass
    w = min(N if df != 2 else M, C * count)
    # what a group's pass (``pass_cycles``) and fill take from its split alone, its M tile alone
    # and its N tile alone, worked out once each rather than per group
    ns = 0
    ks_of = np.empty(SPLITS.size)
    k_folds = np.empty(SPLITS.size)
    kf_of = np.empty(SPLITS.size)
    kf_frac = np.empty(SPLITS.size)
    for si in range(SPLITS.size):
        split = SPLITS[si]
        if split > 1 and K / split < min(R, K):
            break
        ks = math.ceil(K / split)
        ks_of[si] = ks
        k_folds[si] = math.ceil(ks / R)
        kf_of[si] = min(ks, max(K_CHUNK_MIN, R))
        kf_frac[si] = kf_of[si] / ks
        ns += 1
    s_per_cycle = 1.0 / (freq * teff)  # seconds per pass cycle
    fill_c = pass_fill(df, R, C)
    # what depends on the active cores alone (the load path, a core's share, the compulsory
    # traffic's time), worked out again only when they change (large GEMMs: all cores, always)
    last_active, path, rate, floor_s = -1.0, 0.0, 0.0, 0.0
    prev_mt = -1.0
    for mi in range(TILE_SIZES.size + 1):
        mt = M if mi == TILE_SIZES.size else min(M, TILE_SIZES[mi])
        if mt == prev_mt:  # a clamped tile edge seen already: the same candidates again
            continue
        prev_mt = mt
        m_per_fold = max(mt / speedup, min_pass)
        m_row_folds = math.ceil(mt / R)
        m_col_folds = col_folds(mt, C, count)
        prev_nt = -1.0
        for ni in range(TILE_SIZES.size + 1):
            nt = N if ni == TILE_SIZES.size else min(N, TILE_SIZES[ni])
            if nt == prev_nt:
                continue
            prev_nt = nt
            if acc > 0 and mt * nt * 4.0 > acc:
                continue
            # a tile narrower than the output columns the core's arrays compute in one pass
            # (C x count, or the whole dimension) costs a full pass for fewer outputs: it serves
            # to spread a small GEMM over more cores, so it is a candidate only while its tiles
            # do not fill the cores (or when the accumulator cannot hold a full-width tile)
            narrow = ((nt < w and (acc == 0 or mt * w * 4.0 <= acc)) if df != 2
                      else (mt < w and (acc == 0 or w * nt * 4.0 <= acc)))
            nm = math.ceil(M / mt)
            nn = math.ceil(N / nt)
            if narrow and batch * nm * nn >= cores:
                continue
            n_col_folds = col_folds(nt, C, count)
            n_per_fold = max(nt / speedup, min_pass)
            for si in range(ns):
                split = SPLITS[si]
                ks = ks_of[si]
                # the tile's pass, as ``pass_cycles(mt, nt, ks, ...)`` computes it
                if df == 0:
                    p = pass_time(k_folds[si] * n_col_folds, m_per_fold, fill_c, overlap)
                elif df == 1:
                    p = pass_time(m_row_folds * n_col_folds, max(ks / speedup, min_pass), fill_c, overlap)
                else:
                    p = pass_time(k_folds[si] * m_col_folds, n_per_fold, fill_c, overlap)
                tiles = batch * nm * nn * split
                waves = math.ceil(tiles / cores)
                active = min(cores, tiles)
                compute = waves * p / freq / teff
                # pipeline fill and drain: the first K step's operands arrive before the first
                # pass can start; the last tile's result leaves after the last pass (under
                # split-K that result is the tile's fp32 partial, stored before the reduction)
                kf = kf_of[si]
                out_b = mt * nt * (4.0 if split > 1 else bo)
                if active != last_active:
                    last_active = active
                    path = load_path_bw(active, cores, core_bw, core_peak)
                    rate = min(path / active, hbm_bw / active)  # a core's share
                    floor_s = compulsory / min(hbm_bw, path)
                fill = (mt * kf * ba + kf * nt * bb + out_b) / rate
                # a memory-bound pipeline's first load is in its memory time: after its last
                # load come the last (fine) K step's pass and the last store
                tail = min(fill, p * s_per_cycle * kf_frac[si] + out_b / rate)
                out[ng, 0] = mt
                out[ng, 1] = nt
                out[ng, 2] = split
                out[ng, 3] = ks
                out[ng, 4] = tiles
                out[ng, 5] = waves
                out[ng, 6] = active
                out[ng, 7] = compute
                out[ng, 8] = fill
                out[ng, 9] = max(compute + fill, floor_s + tail)
                out[ng, 10] = tail
                ng += 1
    return out[:ng]


@kernel(nrt=False)
def _path_bound(grp, gi, M, N, K, batch, ba, bb, bo, cores, sram, acc, shared_bw, core_bw, multicast, core_peak=0.0):
    """A second lower bound on the time of group ``gi`` (a row of ``grp``): the least core-level
    traffic of its loop orders that fit (``_loop_order``) through the shared level at the
    bandwidth its active cores can pull, plus its tail (infinite when no order fits)."""
    mt, nt, split, ks, active = grp[gi, 0], grp[gi, 1], grp[gi, 2], grp[gi, 3], grp[gi, 6]
    nm, nn = math.ceil(M / mt), math.ceil(N / nt)
    opnd = np.inf
    for order in range(3):
        need, traf_a, traf_b = _loop_order(order, mt, nt, ks, nm, nn, M * K * ba, K * N * bb, ba, bb,
                                           min(ks, K_CHUNK_MIN), 0.0 if acc > 0 else mt * nt * 4.0,
                                           cores / (batch * nm * split), cores / (batch * nn * split))
        if need <= sram:
            opnd = min(opnd, batch * (traf_a + traf_b))
    path = opnd / multicast + batch * M * N * bo + (batch * M * N * 8.0 * split if split > 1 else 0.0)
    return path / min(shared_bw, load_path_bw(active, cores, core_bw, core_peak)) + grp[gi, 10]


@kernel(nrt=False)
def _orders(grp, gi, cand, nc, M, N, K, batch, b_shared, ba, bb, bo, R, cores, sram, acc, shared_cap,
            shared_bw, hbm_bw, core_bw, queues, multicast, dq_b, dq_a, core_peak=0.0):
    """Append the fitting loop orders of group ``gi`` to ``cand`` (rows laid out as
    ``RESULT_FIELDS`` plus the candidate's enumeration rank); returns the new count."""
    mt, nt, split, ks = grp[gi, 0], grp[gi, 1], grp[gi, 2], grp[gi, 3]
    tiles, waves, active, compute, fill = grp[gi, 4], grp[gi, 5], grp[gi, 6], grp[gi, 7], grp[gi, 8]
    nm = math.ceil(M / mt)
    nn = math.ceil(N / nt)
    a_bytes = M * K * ba
    b_bytes = K * N * bb
    o_bytes = M * N * bo
    b_copies = 1.0 if b_shared else batch
    acc_in_sram = 0.0 if acc > 0 else mt * nt * 4.0
    kc_floor = min(ks, K_CHUNK_MIN)
    partials = batch * M * N * 4.0 * split * 2.0 if split > 1 else 0.0
    rows = batch * nm * split
    cols = batch * nn * split
    for order in range(3):
        need, traf_a, traf_b = _loop_order(order, mt, nt, ks, nm, nn, a_bytes, b_bytes, ba, bb, kc_floor,
                                           acc_in_sram, cores / rows, cores / cols)
        if need > sram:
            continue
        # the K pipeline: the chunk that fits twice in the SRAM left (but at most MAX_K_STEPS
        # per K range), its buffer slots, and how many transfers a core keeps in flight (each
        # queue moves one at a time)
        resident = mt * ks * ba if order == 1 else (ks * nt * bb if order == 2 else 0.0)
        budget = sram - acc_in_sram - resident
        kc = min(ks, K_CHUNK)
        while kc > K_CHUNK_MIN and 2.0 * (mt * kc * ba + kc * nt * bb) > budget:
            kc = kc // 2
        kc = max(kc, math.ceil(ks / MAX_K_STEPS))
        step = mt * kc * ba + kc * nt * bb
        slots = max(2.0, math.floor(0.5 * budget / step))
        pieces = 0.0
        if order != 1:
            pieces += min(queues, max(1.0, math.ceil(mt * kc * ba / DMA_PIECE_BYTES)))
        if order != 2:
            pieces += min(queues, max(1.0, math.ceil(kc * nt * bb / DMA_PIECE_BYTES)))
        in_flight = min(queues, slots * pieces)
        path_bw = load_path_bw(active, cores, core_bw, core_peak) * in_flight / queues
        core_traffic = batch * (traf_a + traf_b + o_bytes) + partials
        hbm = core_traffic
        hbm_a = batch * traf_a
        hbm_b = batch * traf_b
        # split-K partials are reduced wave by wave: when one wave's partials fit in half the
        # chip-shared SRAM they are written and read back there (a serial or in-cache
        # reduction), never reaching HBM
        part_shared = shared_cap > 0 and partials / 2.0 / waves <= shared_cap / 2.0
        part_hbm = 0.0 if part_shared else partials
        if shared_cap > 0:
            gm = min(nm, math.ceil(math.sqrt(active)))
            gn = min(nn, math.ceil(active / gm))
            ha = a_bytes if a_bytes * batch <= shared_cap / 2 else a_bytes * math.ceil(nn / gn)
            hb = b_bytes if b_bytes * b_copies <= shared_cap / 2 else b_bytes * math.ceil(nm / gm)
            cached = batch * ha + b_copies * hb + batch * o_bytes + part_hbm
            if cached < core_traffic:
                hbm = cached
                hbm_a = batch * min(ha, traf_a)
                hbm_b = b_copies * min(hb, traf_b)
            else:
                part_shared = False
        # operand loads shared by a multicast cluster cross the shared level once
        path_traffic = (core_traffic - batch * o_bytes - partials) / multicast + batch * o_bytes + partials
        shared_s = path_traffic / min(shared_bw, path_bw)
        hbm_s = hbm / min(hbm_bw, path_bw)
        last = tiles - (waves - 1) * active  # tiles of the last wave
        if last < active:
            # a partial last wave runs on its own cores: its share of the traffic moves at what
            # their load paths pull, not at the whole chip's rate
            f_last = last / tiles
            last_bw = load_path_bw(last, cores, core_bw, core_peak) * in_flight / queues
            shared_s = path_traffic * ((1.0 - f_last) / min(shared_bw, path_bw) + f_last / min(shared_bw, last_bw))
            hbm_s = hbm * ((1.0 - f_last) / min(hbm_bw, path_bw) + f_last / min(hbm_bw, last_bw))
        if order != 0:
            # a resident panel is loaded while the first tile of its walk runs: that tile
            # carries the panel's traffic, the walk's other tiles only their streamed operand
            panel = (mt * ks * ba if order == 1 else ks * nt * bb) / multicast
            panels = batch * (traf_a if order == 1 else traf_b) / multicast
            walks = min(waves, panels / panel / active)  # panel loads of the busiest core
            per_tile = (path_traffic - panels) / tiles
            # a core's share of the rate its path traffic moves at (HBM supplies hbm / path_traffic of it)
            pbw = min(path_bw, shared_bw, hbm_bw * path_traffic / hbm if hbm > 0 else np.inf) / active
            c = compute / waves
            # a walk's first tile: every active core loads its panel at once, at the panel
            # operand's own share of HBM bytes (the rest of the tile at the others')
            hbm_panel = hbm_a if order == 1 else hbm_b
            f_panel = hbm_panel / panels if panels > 0 else 0.0
            f_rest = (hbm - hbm_panel) / (path_traffic - panels) if path_traffic > panels else 0.0
            first_s = max((panel + per_tile) / pbw,
                          active * (panel * f_panel + per_tile * f_rest) / hbm_bw if hbm_bw > 0 else 0.0)
            walk_s = (walks * max(c, first_s) + (waves - walks) * max(c, per_tile / pbw))
            if walk_s > max(hbm_s, shared_s):  # charged to the level that binds
                if hbm_s >= shared_s:
                    hbm_s = walk_s
                else:
                    shared_s = walk_s
        f = fill
        if split > 1:
            # the split-K partials are reduced after the tensor passes, over every core: each
            # core walks tiles of one K range, so an output tile's last partial lands late in
            # some core's run and the reduction follows the last wave (as a parallel split-K
            # kernel's separate reduction kernel does: CUTLASS GemmSplitKParallel, then
            # reduction::kernel::ReduceSplitK): all partials read back, the outputs written
            part_bw = min(shared_bw if part_shared else hbm_bw, cores * core_bw)
            f += batch * M * N * (4.0 * split / part_bw + bo / min(hbm_bw, cores * core_bw))
        vec = (dq_b * batch * K * N * nm + dq_a * batch * M * K * nn) / active
        # a compute-bound pipeline waits for its first load and ends with its last store; a
        # memory-bound one's first load is in its memory time, its tail the last pass and store
        busy, mem = max(compute, vec), max(hbm_s, shared_s)
        t = max(busy + fill, mem + grp[gi, 10]) + (f - fill)
        cand[nc, 0] = t
        cand[nc, 1] = compute
        cand[nc, 2] = hbm_s
        cand[nc, 3] = shared_s
        cand[nc, 4] = hbm
        cand[nc, 5] = core_traffic
        cand[nc, 6] = mt
        cand[nc, 7] = nt
        cand[nc, 8] = split
        cand[nc, 9] = order
        cand[nc, 10] = waves
        cand[nc, 11] = active
        cand[nc, 12] = t - max(busy, mem)  # the fill and drain the pipeline exposes
        cand[nc, 13] = kc
        cand[nc, 14] = slots
        cand[nc, 15] = in_flight
        cand[nc, 16] = hbm_a
        cand[nc, 17] = hbm_b
        cand[nc, 18] = 1.0 if part_shared else 0.0
        cand[nc, 19] = vec
        cand[nc, N_FIELDS] = gi * 3 + order
        nc += 1
    return nc


@kernel()
def gemm_search(M, N, K, batch, b_shared, ba, bb, bo,
                R, C, count, df, speedup, overlap, min_pass, freq, teff,
                cores, sram, acc, shared_cap, shared_bw, hbm_bw, core_bw, queues, multicast=1.0,
                dq_b=0.0, dq_a=0.0, hint_m=0.0, hint_n=0.0, hint_split=0.0, core_peak=0.0):
    """Best mapping of one GEMM; returns an array laid out as ``RESULT_FIELDS``.

    The winner is the fastest candidate, ties (within ``TIME_TOLERANCE``) going to the least
    HBM traffic, then the least compute time, then the earliest in enumeration order (tile
    edges ascending, then splits, then loop orders). The group with the lowest time bound is
    costed first, and a group whose bound (either of two) exceeds the fastest time so far by
    more than the tolerance is skipped: none of its candidates could win. ``dq_b`` / ``dq_a``:
    vector-engine seconds to dequantize one element of B (A) each time a core stages it (B once
    per row of output tiles, A once per column; 0: no dequantization), spread over the active
    cores and bounding the time like the other engines.

    ``hint_m`` / ``hint_n`` / ``hint_split``: a tiling that won a similar search (the same GEMM
    at another M, or on another chip; 0: none). The group of that split nearest to it is costed
    first too, so the fastest time so far starts near the winner's and more groups are skipped.
    The winner is the same whatever the hint: a skipped group's bound exceeds a time some
    candidate reaches, so none of its candidates is within the tolerance of the fastest."""
    compulsory = batch * M * K * ba + (1.0 if b_shared else batch) * K * N * bb + batch * M * N * bo
    grp = _groups(M, N, K, batch, ba, bb, bo, R, C, count, df, speedup, overlap, min_pass, freq, teff,
                  cores, acc, shared_bw, hbm_bw, core_bw, compulsory, core_peak)
    best = np.full(N_FIELDS, np.inf)
    ng = grp.shape[0]
    if ng == 0:
        return best
    cand = np.empty((3 * ng, N_FIELDS + 1))
    seed = 0
    for gi in range(ng):
        if grp[gi, 9] < grp[seed, 9]:
            seed = gi
    args = (M, N, K, batch, b_shared, ba, bb, bo, R, cores, sram, acc, shared_cap, shared_bw, hbm_bw,
            core_bw, queues, multicast, dq_b, dq_a, core_peak)
    hinted = -1
    if hint_m > 0.0 and hint_n > 0.0:
        hm, hn = min(M, hint_m), min(N, hint_n)
        near = np.inf
        for gi in range(ng):
            if grp[gi, 2] == hint_split:
                d = abs(grp[gi, 0] - hm) / hm + abs(grp[gi, 1] - hn) / hn
                if d < near:
                    near = d
                    hinted = gi
                    if d == 0.0:
                        break
    nc = 0
    if hinted >= 0 and hinted != seed:
        nc = _orders(grp, hinted, cand, nc, *args)
    nc = _orders(grp, seed, cand, nc, *args)
    fastest = np.inf
    for i in range(nc):
        fastest = min(fastest, cand[i, 0])
    for gi in range(ng):
        if gi == seed or gi == hinted or grp[gi, 9] * (1.0 - 1e-12) > fastest * (1.0 + TIME_TOLERANCE):
            continue
        if (_path_bound(grp, gi, M, N, K, batch, ba, bb, bo, cores, sram, acc, shared_bw, core_bw,
                        multicast, core_peak) * (1.0 - 1e-12) > fastest * (1.0 + TIME_TOLERANCE)):
            continue
        n0 = nc
        nc = _orders(grp, gi, cand, nc, *args)
        for i in range(n0, nc):
            fastest = min(fastest, cand[i, 0])
    # the band is for memory-bound near-ties (their times are the same memory floor and differ in
    # their tail only): when the fastest candidate's compute exceeds its memory time, the fastest wins
    # (the fastest candidate earliest in enumeration order, whichever order they were costed in)
    first = -1
    for i in range(nc):
        if cand[i, 0] == fastest and (first < 0 or cand[i, N_FIELDS] < cand[first, N_FIELDS]):
            first = i
    band = 0.0
    if first >= 0:
        path = load_path_bw(cand[first, 11], cores, core_bw, core_peak) * cand[first, 15] / queues
        mem = max(cand[first, 4] / min(hbm_bw, path), cand[first, 5] / min(shared_bw, path))
        if mem >= cand[first, 1] * (1.0 - 1e-9):
            band = TIME_TOLERANCE
    pick = -1
    for i in range(nc):
        if cand[i, 0] <= fastest * (1.0 + band):
            if (pick < 0 or cand[i, 4] < cand[pick, 4]
                    or (cand[i, 4] == cand[pick, 4] and (cand[i, 1] < cand[pick, 1]
                        or (cand[i, 1] == cand[pick, 1] and cand[i, N_FIELDS] < cand[pick, N_FIELDS])))):
                pick = i
    if pick < 0:
        return best
    return cand[pick, :N_FIELDS].copy()


SEARCH = ("R", "C", "count", "df", "speed", "overlap", "min_pass", "f_tensor", "teff", "align", "unaligned_eff",
          "cores", "sram", "acc", "shared_cap", "shared_bw", "hbm_bw", "core_bw", "queues", "multicast", "dq_b", "dq_a",
          "core_peak", "b_el", "out_el")
"""``search_with``'s ``s``, in order: what the mapping search takes from the chip and from a GEMM's
element types besides its shape and hint (``cost.op_cost.search_terms``)."""


@kernel(None)
def dims_aligned(k, n, a_el, out_el, align):
    """Whether a GEMM's stored rows (K of A at ``a_el`` bytes, N of the output at ``out_el``) are
    multiples of the tensor engine's ``align`` bytes (0: no such rule), as its fast kernels need."""
    return align == 0 or ((k * a_el) % align == 0 and (n * out_el) % align == 0)


@kernel(None)
def search_with(m, n, k, batch, b_shared, ba, s, is_aligned, hint_m, hint_n, hint_split):
    """``gemm_search`` of an m x n x k GEMM (``batch`` copies, A at ``ba`` bytes per element) with
    the chip's and element types' terms ``s`` (``SEARCH``): the tensor rate's misaligned fraction
    applies unless ``is_aligned``."""
    teff = s[8] if is_aligned else s[8] * s[10]
    return gemm_search(m, n, k, batch, b_shared, ba, s[23], s[24], int(s[0]), int(s[1]), int(s[2]), int(s[3]), s[4],
                       s[5] != 0, s[6], s[7], teff, s[11], s[12], s[13], s[14], s[15], s[16], s[17], s[18], s[19],
                       s[20], s[21], hint_m, hint_n, hint_split, s[22])
