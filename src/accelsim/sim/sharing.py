"""Bandwidth sharing for the event engine (``engine.run``), compiled with numba: the max-min
fair division of a bandwidth server among its transfers, and the sorted rows of transfers it
works on.

A server's transfers sit in a row sorted by (class, flow group, task key): the class orders
ops when the server serves them in program order, the flow group is a resource with a
bandwidth of its own (a core's DMA queues) or the transfer alone. Transfers that arrive since
the row was last sorted wait at its end and are merged in at the next division. A transfer's
bytes left and end time change only when its rate or DMA limit does (``rebased``).

The engine's hot helpers here and in ``engine`` are compiled with ``_nrt=False``: numba then
counts no references to their array arguments. It otherwise takes and drops a reference to each
array a call passes (two atomic operations apiece), which on a 1,024-chip all-reduce (half a
million re-divisions, thirty arrays each) was two thirds of the engine's time. Such a helper
must never allocate or return an array; the engine's state goes to them as a few 2D arrays
(rows named below), the caller's own.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# Rows of the engine's state arrays.
CAP, WEIGHT, LEFT, SINCE, RATE, END, CAPPED, GRP, OPH, DIR = range(10)  # ``hf``: per transfer handle (GRP:
# its (core, op) group, -1 for none; OPH: its op; DIR: 1 for a store, 0 for a load)
HEAD_H, HEAD_TASK, HEAD_SRV, HEAD_PK, HEAD_KEY = range(5)  # ``head``: per resource
RES_BW, RES_USED = range(2)  # ``res``: per resource
FCAP, FW, FRATE, PCAP, PW, PRATE, FOP, FIDX, FREM = range(9)  # ``fs``: per flow (scratch)
ACT_H, ACT_PK, ACT_KEY = range(3)  # ``act``: per active transfer (handle, sort key, task key)


@njit(cache=True, _nrt=False)
def waterfill(fs, cap, weight, out, nf, bw, fixed):
    """Max-min fair rates of the first ``nf`` flows with caps ``fs[cap]`` on a server of ``bw``:
    raise a common level; a flow stops at its cap; a flow at rate r loads the server with
    ``fs[weight] * r``. The level is found by rounds: every flow whose cap is under the level the
    unfixed flows would share is fixed at its cap (which only raises that level), until none is.
    Writes row ``out`` of ``fs``; ``fixed`` is scratch."""
    wsum = 0.0
    for j in range(nf):
        wsum += fs[weight, j]
        fixed[j] = False
    left = bw
    level = np.inf
    free = nf
    while free > 0 and wsum > 0.0:
        level = max(0.0, left) / wsum
        changed = False
        for j in range(nf):
            if not fixed[j] and fs[cap, j] <= level:
                fixed[j] = True
                left -= fs[weight, j] * fs[cap, j]
                wsum -= fs[weight, j]
                free -= 1
                changed = True
        if not changed:
            break
        level = np.inf
    for j in range(nf):
        fs[out, j] = fs[cap, j] if fs[cap, j] < level else level


@njit(cache=True, _nrt=False)
def by_bytes_left(fs, m, total, fixed):
    """Water-fill ``total`` over ``m`` flows (columns of the rows ``PCAP``: cap, ``PW``: load per
    unit rate, ``FIDX``: the flow's column, whose ``FREM`` is the bytes its group has left) in
    proportion to the bytes each has left: a flow's rate over its bytes left rises to a common
    level. Writes the rates to row ``PRATE``."""
    for q in range(m):
        w = fs[FREM, int(fs[FIDX, q])]
        fs[PCAP, q] /= w
        fs[PW, q] *= w
    waterfill(fs, PCAP, PW, PRATE, m, total, fixed)
    for q in range(m):
        fs[PRATE, q] *= fs[FREM, int(fs[FIDX, q])]


@njit(cache=True, _nrt=False)
def flow_of(x, resource, res_bw, R):
    """Flow group of transfer ``x``: its resource when that has a bandwidth of its own (a
    core's DMA queues), else a flow of its own (R + x)."""
    r = resource[x]
    return r if (r >= 0 and res_bw[r] > 0.0) else R + x


@njit(cache=True, _nrt=False)
def rebased(left, since, rate, limited, capped, now, new_rate):
    """A transfer's (bytes left, DMA-limited seconds, end time) when its rate changes to
    ``new_rate`` at ``now``: what it moved at ``rate`` since ``since`` is taken off."""
    el = now - since
    if el > 0.0:
        left -= rate * el
        if limited:
            capped += el
    return left, capped, (now + left / new_rate if new_rate > 0.0 else np.inf)


@njit(cache=True, _nrt=False)
def server_rates(act, o, n, hf, h_task, limited, head, res, fs, fstart, fixed, path_lim, bw, width, now,
                 srv, path_bw, grp_left):
    """Rates of the ``n`` transfers in columns ``o`` .. ``o + n`` of ``act`` (rows ``ACT_*``:
    handles into ``hf``, ``h_task`` and ``limited``; sort keys) on one server, kept sorted by
    the key ``pk`` (class x ``width`` + flow group) and then the task key. Transfers of a
    resource that has a bandwidth of its own (a core's DMA queues) form one flow capped by it;
    flows are water-filled on the server; a flow's rate goes to its transfers in key order (a
    core's loads and its stores, ``hf[DIR]``, as two chains with half the rate each while both
    move, what one cannot take going to the other). Such
    flows of one op (``hf[OPH]`` of their leads) then divide what they got together in
    proportion to the bytes their (core, op) group has left (``grp_left[hf[GRP]]``, at least 1),
    each up to its cap; unchanged when they all have as much left. The flows of such resources
    together move at most ``path_bw`` (inf: no bound), shared the same way (evenly when all
    have as much left), each at most what the server gave it (what they give back of the server
    is not handed on; a flow held by this bound counts as limited by its DMA).

    Classes (``pk // width``; all equal: one max-min fair class) are served in ascending order:
    each water-fills what the earlier classes left of the server and of its resources'
    bandwidth (``res[RES_USED]``: zero on entry and on return). ``fs``, ``fstart``, ``fixed`` and
    ``path_lim`` are scratch of at least ``n + 1`` columns.

    A transfer whose rate or DMA limit changes is brought up to ``now`` (bytes left, seconds
    limited by its DMA in ``hf[CAPPED]``) and gets a new end time; the others keep theirs.
    Returns the earliest end.

    A resource's flow led by a transfer without a cap of its own takes the whole flow rate for
    it, so a later transfer joining that flow changes no rate: ``head`` records such leads
    (handle, task, server, keys) per resource for ``run`` to skip the re-division."""
    first_end = np.inf
    if n == 0:
        return first_end
    R = res.shape[1]
    left_bw = bw
    left_path = path_bw
    j = o
    stop = o + n
    while j < stop:
        # one class: its flows (runs of equal pk), water-filled on what is left
        cj = act[ACT_PK, j] // width
        nf = 0
        n_core = 0
        op0, rem0 = -1.0, 1.0
        uneven = False  # the cores' flows are of more than one op or have unequal bytes left
        while j < stop and act[ACT_PK, j] // width == cj:
            e = j
            total = 0.0
            while e < stop and act[ACT_PK, e] == act[ACT_PK, j]:
                total += hf[CAP, act[ACT_H, e]]
                e += 1
            lead = act[ACT_H, j]
            g = act[ACT_PK, j] - cj * width
            fstart[nf] = j
            fs[FW, nf] = hf[WEIGHT, lead]
            fs[FOP, nf] = -1.0
            fs[FREM, nf] = 1.0
            if g < R:
                fs[FCAP, nf] = max(0.0, min(res[RES_BW, g] - res[RES_USED, g], total))
                gg = int(hf[GRP, lead])
                fs[FREM, nf] = max(grp_left[gg], 1.0) if gg >= 0 else 1.0
                if fs[FW, nf] > 0.0:
                    fs[FOP, nf] = hf[OPH, lead]
                    if n_core == 0:
                        op0, rem0 = fs[FOP, nf], fs[FREM, nf]
                    elif fs[FOP, nf] != op0 or fs[FREM, nf] != rem0:
                        uneven = True
                    n_core += 1
            else:
                fs[FCAP, nf] = hf[CAP, lead]
            nf += 1
            j = e
        fstart[nf] = j
        waterfill(fs, FCAP, FW, FRATE, nf, max(0.0, left_bw), fixed)
        # the cores' flows of one op: what they got together, re-divided in proportion to the
        # bytes each core has left of that op (unchanged when every core has as much left)
        for f in range(nf if uneven else 0):
            if fs[FOP, f] < 0.0:
                continue
            o_ = fs[FOP, f]
            m = 0
            tot = 0.0
            same = True
            for f2 in range(f, nf):
                if fs[FOP, f2] == o_:
                    same = same and fs[FREM, f2] == fs[FREM, f]
                    fs[PCAP, m] = fs[FCAP, f2]
                    fs[PW, m] = fs[FW, f2]
                    fs[FIDX, m] = f2
                    tot += fs[FW, f2] * fs[FRATE, f2]
                    fs[FOP, f2] = -1.0
                    m += 1
            if m > 1 and not same:
                by_bytes_left(fs, m, tot, fixed)
                for q in range(m):
                    f2 = int(fs[FIDX, q])
                    fs[FRATE, f2] = min(fs[FCAP, f2], fs[PRATE, q])
        bounded = left_path < np.inf
        if bounded:
            # the cores' flows share what is left of the load paths (by bytes left, as above)
            m = 0
            tot = 0.0
            same = True
            w0 = -1.0  # the first core flow's bytes left (every flow's is at least 1)
            for f in range(nf):
                path_lim[f] = False
                if act[ACT_PK, fstart[f]] - cj * width < R:
                    if w0 < 0.0:
                        w0 = fs[FREM, f]
                    same = same and fs[FREM, f] == w0
                    fs[PCAP, m] = fs[FRATE, f]
                    fs[PW, m] = 1.0
                    fs[FIDX, m] = f
                    tot += fs[FRATE, f]
                    m += 1
            if tot > left_path:
                if same:
                    waterfill(fs, PCAP, PW, PRATE, m, max(0.0, left_path), fixed)
                else:
                    by_bytes_left(fs, m, max(0.0, left_path), fixed)
                for q in range(m):
                    f = int(fs[FIDX, q])
                    if fs[PRATE, q] < fs[FRATE, f]:
                        fs[FRATE, f] = fs[PRATE, q]
                        path_lim[f] = True
        for f in range(nf):
            left = fs[FRATE, f]
            at_limit = fs[FRATE, f] >= fs[FCAP, f] or (bounded and path_lim[f])
            q0 = fstart[f]
            g = act[ACT_PK, q0] - cj * width
            if g < R:
                res[RES_USED, g] += fs[FRATE, f]
                left_path -= fs[FRATE, f]
                lead = act[ACT_H, q0]
                if hf[CAP, lead] == np.inf:
                    head[HEAD_H, g] = lead
                    head[HEAD_TASK, g] = h_task[lead]
                    head[HEAD_SRV, g] = srv
                    head[HEAD_PK, g] = act[ACT_PK, q0]
                    head[HEAD_KEY, g] = act[ACT_KEY, q0]
                else:
                    head[HEAD_H, g] = -1
            left_bw -= fs[FW, f] * fs[FRATE, f]
            # a core's loads and its stores are two in-order chains (a DMA's read and write
            # channels): when both move, each gets half the flow's rate, up to what its
            # transfers can take, and what one cannot use goes to the other
            left_st = 0.0
            split = False
            if g < R and fstart[f + 1] - q0 > 1:
                cap_ld = cap_st = 0.0
                n_st = 0
                for q in range(q0, fstart[f + 1]):
                    h = act[ACT_H, q]
                    if hf[DIR, h] > 0.0:
                        cap_st += hf[CAP, h]
                        n_st += 1
                    else:
                        cap_ld += hf[CAP, h]
                if 0 < n_st < fstart[f + 1] - q0:
                    ld = min(cap_ld, 0.5 * left)
                    st = min(cap_st, left - ld)
                    ld = min(cap_ld, left - st)
                    left, left_st = ld, st
                    split = True
            for q in range(q0, fstart[f + 1]):
                h = act[ACT_H, q]
                c = hf[CAP, h]
                if split and hf[DIR, h] > 0.0:
                    r = min(c, left_st)
                    left_st -= r
                else:
                    r = min(c, left)
                    left -= r
                lim = at_limit or r >= c
                if r != hf[RATE, h] or lim != limited[h]:
                    hf[LEFT, h], hf[CAPPED, h], hf[END, h] = rebased(hf[LEFT, h], hf[SINCE, h], hf[RATE, h],
                                                                     limited[h], hf[CAPPED, h], now, r)
                    hf[SINCE, h], hf[RATE, h], limited[h] = now, r, lim
                first_end = min(first_end, hf[END, h])
    for j in range(o, stop):
        g = act[ACT_PK, j] % width
        if g < R:
            res[RES_USED, g] = 0.0
    return first_end


@njit(cache=True, _nrt=False)
def before(pa, ka, pb, kb):
    return pa < pb or (pa == pb and ka < kb)


@njit(cache=True, _nrt=False)
def merge_new(act, o, n_sorted, n, buf):
    """Columns ``o + n_sorted`` .. ``o + n`` of ``act`` arrived since its columns from ``o`` were
    last sorted by (pk, task key): sort them (few: insertion sort) and merge them into the sorted
    prefix (``buf``: scratch of 3 x n int64)."""
    if n_sorted == n:
        return
    for i in range(o + n_sorted + 1, o + n):
        x, p, k = act[ACT_H, i], act[ACT_PK, i], act[ACT_KEY, i]
        j = i
        while j > o + n_sorted and before(p, k, act[ACT_PK, j - 1], act[ACT_KEY, j - 1]):
            act[ACT_H, j], act[ACT_PK, j], act[ACT_KEY, j] = act[ACT_H, j - 1], act[ACT_PK, j - 1], act[ACT_KEY, j - 1]
            j -= 1
        act[ACT_H, j], act[ACT_PK, j], act[ACT_KEY, j] = x, p, k
    if n_sorted == 0:
        return
    i, j = o, o + n_sorted
    mid, stop = o + n_sorted, o + n
    for q in range(n):
        if j >= stop or (i < mid and before(act[ACT_PK, i], act[ACT_KEY, i], act[ACT_PK, j], act[ACT_KEY, j])):
            src = i
            i += 1
        else:
            src = j
            j += 1
        buf[0, q] = act[ACT_H, src]
        buf[1, q] = act[ACT_PK, src]
        buf[2, q] = act[ACT_KEY, src]
    for q in range(n):
        act[ACT_H, o + q] = buf[0, q]
        act[ACT_PK, o + q] = buf[1, q]
        act[ACT_KEY, o + q] = buf[2, q]
