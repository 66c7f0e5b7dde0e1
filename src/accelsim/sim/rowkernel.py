"""The fast path's per-point kernel: a phase's table of rows (``workload.rows.phase_table``)
costed, priced and summed in one compiled call (``sim.fast.evaluate_point``).

A row's cost is what the op cost functions give for the op (``cost.op_cost``: ``gemm_cost``,
``vector_cost``, ``flash_cost``, a collective's ``collective_terms``), priced as
``analysis.energy`` prices it, to the last bit: the same operations in the same order
(``tests/test_fast_path.py`` holds the result to the graph path's). A GEMM shape not seen before
is mapped here (``cost.mapping.gemm_search``, its winner handed back for the caller to keep); a
row the kernel does not cover (a per-query-head decode kernel, a hierarchical collective) is
costed in Python before the call (``sim.fast.cost_row``) and copied in. The step's sums follow in
stored-row order, as ``sim.analytical.step_totals`` and ``analysis.energy`` add them.

``cost_rows`` is a ``jit.Kernel``: plain Python for its first calls in a process, then compiled;
``cost_rows.py_func`` is its pure-Python twin (``tests/test_fast_path.py`` holds the two equal).
"""

from __future__ import annotations

import math

import numpy as np

from ..cost.collective_table import table_terms
from ..cost.mapping import dims_aligned, search_with
from ..cost.systolic import pass_cycles
from ..jit import kernel
from ..workload.ops import score_elements
from ..workload.rows import COLL, EMBED, EW, FLASH, GIVEN, LAYERNORM, MM, ROWWISE, SOFTMAX

OUT_FIELDS = 23
"""Columns of ``out``: the 11 numbers of ``sim.fast.NUMERIC``, the 5 joules (mac, vector, sram,
HBM, link), their sum, the bound code, the active cores of a vector op, 1 where a GEMM's
memory time is the chip-shared level's, and a fused attention's units, K/V split and waves."""
NOT_NEW, NO_HINT = -2, -1
"""``todo`` of a GEMM row whose winner is in the store already, and of a new one without a hint."""
FLASH_TERMS = ("speedup", "eff", "p_mac")
"""``cost_rows``' ``flash``: the tensor engine's streaming speed-up in the rows' element type, its
achievable fraction times the stack's attention efficiency, and the joules per MAC of it."""
CONSTS = ("cores", "hbm_bw", "core_peak", "core_bw", "vec_rate", "trans_rate", "reduction_eff", "vector_overhead",
          "tensor_overhead", "chunk", "el", "b_el", "out_el", "p_mac", "p_vec", "p_sram", "p_hbm", "p_link")
"""``consts``, in order: the chip model's numbers for the rows' element type (``chunk``: lanes x
elements per lane a vector op's unit covers), the energy prices (per MAC of the GEMMs' compute
type, per vector operation, per byte of SRAM, HBM and link)."""


@kernel(None)
def _flash(f, c, s, fl, o):
    """``cost.op_cost.flash_cost`` of the fused attention of fields ``f`` (K / V in the rows'
    element type, values as wide as keys, forward) into ``o``, priced as ``sim.fast.cost_row``
    prices it; ``c``: ``CONSTS``, ``s``: ``cost.mapping.SEARCH``, ``fl``: ``FLASH_TERMS``."""
    batch, heads, kvh, q, kv, hd, w = f[0], f[1], f[2], f[3], f[4], f[5], f[6]
    causal = f[7] != 0 and q > 1
    cores, hbm_bw, core_peak, core_bw, vrate, trate, el = c[0], c[1], c[2], c[3], c[4], c[5], c[10]
    kv_read = min(kv, w + q - 1) if w else kv
    se = score_elements(batch, heads, q, kv, w, causal)
    group = max(1, heads // kvh)
    rows = group * q
    mt = min(rows, 128)
    q_tiles = math.ceil(rows / mt)
    units = batch * kvh * q_tiles
    split = 1
    if units < cores:
        split = max(1, min(math.ceil(cores / units), math.ceil(kv_read / 128)))
    kv_eff = se / (batch * heads * q)
    kv_chunk = math.ceil(kv_eff / split)
    R, C, count, df, overlap, min_pass = int(s[0]), int(s[1]), int(s[2]), int(s[3]), s[5] != 0, s[6]
    cyc = (pass_cycles(float(mt), float(kv_chunk), float(hd), R, C, count, df, fl[0], overlap, min_pass)
           + pass_cycles(float(mt), float(hd), float(kv_chunk), R, C, count, df, fl[0], overlap, min_pass))
    work = units * split
    waves = math.ceil(work / cores)
    compute = waves * cyc / s[7] / fl[1]
    active = min(cores, float(work))
    kv_bytes = float(batch * kvh * kv_read * (hd + hd)) * el
    shared_cap = s[14]
    if shared_cap == 0:
        rereads = q_tiles * kv_eff / kv_read
    elif kv_bytes / (batch * kvh) > shared_cap / 2:
        rereads = float(math.ceil(q_tiles / cores))
    else:
        rereads = 1.0
    q_o = batch * heads * q * (hd + hd) * el
    hbm = q_o + kv_bytes * rereads + (batch * heads * q * split * (hd + 2) * 4.0 * 2 if split > 1 else 0.0)
    vops = 5.0 * se
    vec = vops / (active * vrate)
    trans = se / (active * trate)
    mem = hbm / min(hbm_bw, min(active * core_peak, cores * core_bw))
    vector, over = max(vec, trans), c[8]
    fl_ = 2.0 * se * (hd + hd)
    nbytes = el * (batch * heads * q * (hd + hd)) + el * float(batch * kvh * kv_read * (hd + hd))
    o[0], o[1], o[2], o[3], o[4] = compute, vector, mem, 0.0, over
    o[5] = max(compute, vector, mem, 0.0) + over
    o[6], o[7], o[8], o[9], o[10] = hbm, 0.0, fl_, nbytes, 0.0
    o[11] = fl_ / 2.0 / 1.0 * fl[2] * 1e-12 if fl_ else 0.0
    o[12] = (vops + se) * c[14]
    o[13] = 2.0 * max(nbytes, hbm) * c[15] if nbytes > 0 else 0.0
    o[14] = hbm * c[16]
    o[15] = 0.0 * c[17]
    o[17] = bound_code(compute, vector, mem, 0.0, over)
    o[18], o[19], o[20], o[21], o[22] = active, 0.0, units, split, waves


@kernel(None)
def _coll(f, el_bytes, c, cand, step, term, coll_s, o):
    """``sim.fast.cost_row`` of a collective of ``f[0]`` elements of ``el_bytes`` bytes per rank
    over ``f[1]`` ranks (``f[2]``: a reduction) into ``o``; ``c``: ``CONSTS``."""
    n, group = f[0] * el_bytes, f[1]
    r = np.empty(4)
    table_terms(cand, step, term, coll_s, n, r)
    link_s, over, sent = r[0], r[1], r[2]
    local = 2.0 * n
    vops = n / c[10] * (group - 1) / group if f[2] != 0 and group > 1 else 0.0
    mem = local / c[1]
    o[0], o[1], o[2], o[3], o[4] = 0.0, 0.0, mem, link_s, over
    o[5] = max(0.0, 0.0, mem, link_s) + over
    o[6], o[7], o[8], o[9], o[10] = local, sent, 0.0, local, 0.0
    o[11] = 0.0
    o[12] = (vops + 0.0) * c[14]
    o[13] = 0.0
    o[14] = local * c[16]
    o[15] = sent * c[17]
    o[17] = bound_code(0.0, 0.0, mem, link_s, over)
    o[18], o[19], o[20], o[21], o[22] = 0.0, 0.0, r[3], 0.0, 0.0


@kernel(None)
def bound_code(compute, vector, memory, link, overhead):
    """``cost.op_cost.bound_label`` as its place in ``sim.analytical.BOUNDS``: the largest term,
    ties to the earlier rule (interconnect, compute, memory, vector); overhead when it exceeds
    them all."""
    top = max(compute, vector, memory, link)
    if overhead > top:
        return 4
    if link == top:
        return 3
    if compute == top:
        return 0
    if memory == top:
        return 1
    if vector == top:
        return 2
    return 4


@kernel()
def cost_rows(kind, coef, sel, var, par, pre, store, src, todo, count, consts, search, flash, cand, step, term, coll_s,
              step_s, out, sums):
    """Cost the rows into ``out`` (``OUT_FIELDS`` per row) and their step's sums into ``sums``:
    latency, the time by bound (``sim.analytical.BOUNDS``' five), FLOPs, HBM bytes and the joules by
    component (5), each row weighted by its ``count``, the step's fixed cost ``step_s`` added.

    A row's integer fields are ``coef[i, j] * var[sel[i, j]]`` (``var``: the point's variables,
    ``workload.rows.VARS``), and with ``par`` (numbers) they are, per kind: a GEMM (m, n, k,
    batch, B shared), its search's fields (``cost.mapping.RESULT_FIELDS``) in row ``src[i]`` of
    ``store``; an elementwise op (elements,
    inputs, 1 for a reduction) and (vector ops, transcendentals per element); a row-wise op
    (rows, cols, ``SOFTMAX`` / ``LAYERNORM`` / ``RMSNORM``); an embedding (tokens, hidden); a
    K/V append (batch, tokens, K/V heads, head dim); a given row its ``out`` row in ``pre``.
    A GEMM row whose ``todo[i]`` is not ``NOT_NEW`` runs its mapping search here
    (``cost.mapping.search_with``, with the chip's and element types' terms ``search``, laid out
    as ``cost.mapping.SEARCH``, and as its hint the tiling of store row ``todo[i]``, a winner
    written before it; ``NO_HINT``: none), its winner written to its store row (an infinite
    time: no tile fits). A fused
    attention (batch, heads, K/V heads, query length, K/V length, head dim, window, 1 for a
    decoder) is ``cost.op_cost.flash_cost`` with the terms ``flash`` (``FLASH_TERMS``). A
    collective (elements, ranks, 1 for a reduction; its bytes per element in ``par``) is priced by
    ``cost.collective_table.table_terms`` from the table ``cand``, ``step``, ``term``, ``coll_s``,
    the winning algorithm's place in its names in ``out[i, 20]``."""
    cores, hbm_bw, core_peak, core_bw, vrate, trate, red_eff, v_over, t_over, chunk = consts[:10]
    el, b_el, out_el, p_mac, p_vec, p_sram, p_hbm, p_link = consts[10:18]
    shp = np.empty_like(coef)
    for i in range(coef.shape[0]):
        for j in range(coef.shape[1]):
            shp[i, j] = coef[i, j] * var[sel[i, j]]
    for i in range(kind.shape[0]):
        o = out[i]
        k = kind[i]
        if k == GIVEN:
            for j in range(OUT_FIELDS):
                o[j] = pre[i, j]
            continue
        if k == MM:
            f = store[src[i]]
            m, n, kk, batch, shared = shp[i, 0], shp[i, 1], shp[i, 2], shp[i, 3], shp[i, 4]
            h = todo[i]
            if h != NOT_NEW:
                hm, hn, hs = (store[h, 6], store[h, 7], store[h, 8]) if h >= 0 else (0.0, 0.0, 0.0)
                r = search_with(float(m), float(n), float(kk), float(batch), shared != 0, el, search,
                                dims_aligned(float(kk), float(n), el, el, search[9]), hm, hn, hs)
                for j in range(r.shape[0]):
                    f[j] = r[j]
            fl = 2.0 * batch * m * n * kk
            nbytes = batch * m * kk * el + (1 if shared else batch) * kk * n * b_el + batch * m * n * out_el
            compute, vector, memory, over, hbm = f[1], f[19], max(f[2], f[3]), t_over + f[12], f[4]
            o[0], o[1], o[2], o[3], o[4] = compute, vector, memory, 0.0, over
            o[5] = max(compute, vector, memory, 0.0) + over
            o[6], o[7], o[8], o[9], o[10] = hbm, 0.0, fl, nbytes, 0.0
            o[11] = fl / 2.0 / 1.0 * p_mac * 1e-12 if fl else 0.0
            o[12] = 0.0 * p_vec
            o[13] = 2.0 * max(nbytes, hbm) * p_sram if nbytes > 0 else 0.0
            o[14] = hbm * p_hbm
            o[15] = 0.0 * p_link
            o[17] = bound_code(compute, vector, memory, 0.0, over)
            o[18] = 0.0
            o[19] = 1.0 if f[3] > f[2] else 0.0
        elif k == FLASH:
            _flash(shp[i], consts, search, flash, o)
        elif k == COLL:
            _coll(shp[i], par[i, 0], consts, cand, step, term, coll_s, o)
        else:
            reduction = True
            if k == EW:
                n = shp[i, 0]
                nbytes = shp[i, 1] * n * el + n * el
                vops, trans = par[i, 0] * n, par[i, 1] * n
                units = float(math.ceil(n / chunk))
                reduction = shp[i, 2] == 1
            elif k == ROWWISE:
                rows, cols, code = shp[i, 0], shp[i, 1], shp[i, 2]
                if code == SOFTMAX:
                    nbytes, vops, trans = 2.0 * rows * cols * el, 4.0 * rows * cols, float(rows * cols)
                elif code == LAYERNORM:
                    nbytes, vops, trans = 2.0 * rows * cols * el + 2.0 * cols * el, 7.0 * rows * cols, float(rows)
                else:
                    nbytes, vops, trans = 2.0 * rows * cols * el + cols * el, 4.0 * rows * cols, float(rows)
                units = float(rows)
            elif k == EMBED:
                nbytes = 2.0 * shp[i, 0] * shp[i, 1] * el + 4.0 * shp[i, 0]
                vops, trans, units, reduction = 0.0, 0.0, float(shp[i, 0]), False
            else:  # a K/V append
                nbytes = 2.0 * (2.0 * shp[i, 0] * shp[i, 1] * shp[i, 2] * shp[i, 3] * el)
                vops, trans, units, reduction = 0.0, 0.0, float(shp[i, 0] * shp[i, 1]), False
            # ``cost.op_cost.vector_terms`` (no unvectorized loop: the fast path's stacks run none)
            active = max(1.0, min(cores, units))
            vec = vops / (active * vrate)
            tr = trans / (active * trate)
            mem = nbytes / min(hbm_bw, min(active * core_peak, cores * core_bw))
            if reduction:
                mem /= red_eff
            vec = max(vec, 0.0 / active)
            vector = max(vec, tr)
            o[0], o[1], o[2], o[3], o[4] = 0.0, vector, mem, 0.0, v_over
            o[5] = max(0.0, vector, mem, 0.0) + v_over
            o[6], o[7], o[8], o[9], o[10] = nbytes, 0.0, 0.0, nbytes, 0.0
            v = vops + trans
            o[11] = 0.0
            o[12] = v * p_vec
            o[13] = 2.0 * max(nbytes, nbytes) * p_sram if nbytes > 0 else 0.0
            o[14] = nbytes * p_hbm
            o[15] = 0.0 * p_link
            o[17] = bound_code(0.0, vector, mem, 0.0, v_over)
            o[18] = active
            o[19] = 0.0
        o[16] = o[11] + o[12] + o[13] + o[14] + o[15]
    for j in range(13):
        sums[j] = 0.0
    for i in range(kind.shape[0]):
        o = out[i]
        c = count[i]
        t = o[5] * c
        sums[0] += t
        sums[1 + int(o[17])] += t
        sums[6] += o[8] * c
        sums[7] += o[6] * c
        for j in range(5):
            sums[8 + j] += o[11 + j] * c
    sums[5] += step_s
    sums[0] += step_s
