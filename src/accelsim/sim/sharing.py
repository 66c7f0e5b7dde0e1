"""Bandwidth sharing for the event engine (``engine.run``), compiled with numba: the max-min
fair division of a bandwidth server among its transfers, and the sorted rows of transfers it
works on.

A server's transfers sit in a row sorted by (class, flow group, task key): the class orders
ops when the server serves them in program order, the flow group is a resource with a
bandwidth of its own (a core's DMA queues) or the transfer alone. Transfers that arrive since
the row was last sorted wait at its end and are merged in at the next division. A transfer's
bytes left and end time change only when its rate or DMA limit does (``rebased``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def waterfill(caps, weights, nf, bw, rates, fixed):
    """Max-min fair rates of the first ``nf`` flows with ``caps`` on a server of ``bw``: raise a
    common level; a flow stops at its cap; a flow at rate r loads the server with
    ``weight * r``. The level is found by rounds: every flow whose cap is under the level the
    unfixed flows would share is fixed at its cap (which only raises that level), until none is.
    Writes ``rates``; ``fixed`` is scratch."""
    wsum = 0.0
    for j in range(nf):
        wsum += weights[j]
        fixed[j] = False
    left = bw
    level = np.inf
    while wsum > 0.0:
        level = left / wsum
        changed = False
        for j in range(nf):
            if not fixed[j] and caps[j] <= level:
                fixed[j] = True
                left -= weights[j] * caps[j]
                wsum -= weights[j]
                changed = True
        if not changed:
            break
        level = np.inf
    for j in range(nf):
        rates[j] = caps[j] if caps[j] < level else level


@njit(cache=True)
def flow_of(x, resource, res_bw, R):
    """Flow group of transfer ``x``: its resource when that has a bandwidth of its own (a
    core's DMA queues), else a flow of its own (R + x)."""
    r = resource[x]
    return r if (r >= 0 and res_bw[r] > 0.0) else R + x


@njit(cache=True)
def rebased(left, since, rate, limited, capped, now, new_rate):
    """A transfer's (bytes left, DMA-limited seconds, end time) when its rate changes to
    ``new_rate`` at ``now``: what it moved at ``rate`` since ``since`` is taken off."""
    el = now - since
    if el > 0.0:
        left -= rate * el
        if limited:
            capped += el
    return left, capped, (now + left / new_rate if new_rate > 0.0 else np.inf)


@njit(cache=True)
def server_rates(active, pk, n, h_cap, h_weight, res_bw, rate, dma_limited, bw, width, res_used,
                  fcap, fw, fstart, frate, fixed, now, h_left, h_since, h_end, h_capped, kk, h_task, srv,
                  head_h, head_task, head_srv, head_pk, head_key, path_bw):
    """Rates of the ``n`` transfers in ``active`` (handles into the ``h_`` arrays, ``rate``
    and ``dma_limited``) on one server, kept sorted by ``pk`` (class x ``width`` + flow group)
    and then key. Transfers of a resource that has a bandwidth of its own
    (a core's DMA queues) form one flow capped by it; flows are water-filled on the server; a
    flow's rate goes to its transfers in key order. The flows of such resources together move
    at most ``path_bw`` (inf: no bound), max-min fairly among them, each at most what the server
    gave it (what they give back of the server is not handed on; a flow held by this bound
    counts as limited by its DMA; its scratch is made only on a server that has the bound: most
    have none, and the engine's call stays as short as before the bound existed).

    Classes (``pk // width``; all equal: one max-min fair class) are served in ascending order:
    each water-fills what the earlier classes left of the server and of its resources'
    bandwidth (``res_used``: scratch, zero on entry and on return). ``fcap`` .. ``fixed`` are
    scratch of at least ``n + 1`` entries.

    A transfer whose rate or DMA limit changes is brought up to ``now`` (bytes left, seconds
    limited by its DMA in ``h_capped``) and gets a new end time; the others keep theirs. Returns
    the earliest end.

    A resource's flow led by a transfer without a cap of its own takes the whole flow rate for
    it, so a later transfer joining that flow changes no rate: ``head_*`` record such leads
    (handle, task, server) per resource for ``run`` to skip the re-division."""
    first_end = np.inf
    if n == 0:
        return first_end
    left_bw = bw
    left_path = path_bw
    if path_bw < np.inf:
        scratch = np.empty((3, n + 1))
        path_lim = np.empty(n + 1, dtype=np.bool_)
    else:
        scratch = np.empty((3, 0))
        path_lim = np.empty(0, dtype=np.bool_)
    j = 0
    while j < n:
        # one class: its flows (runs of equal pk), water-filled on what is left
        cj = pk[j] // width
        nf = 0
        while j < n and pk[j] // width == cj:
            e = j
            total = 0.0
            while e < n and pk[e] == pk[j]:
                total += h_cap[active[e]]
                e += 1
            lead = active[j]
            g = pk[j] - cj * width
            fstart[nf] = j
            if g < res_bw.size:
                fcap[nf] = max(0.0, min(res_bw[g] - res_used[g], total))
            else:
                fcap[nf] = h_cap[lead]
            fw[nf] = h_weight[lead]
            nf += 1
            j = e
        fstart[nf] = j
        waterfill(fcap, fw, nf, max(0.0, left_bw), frate, fixed)
        bounded = left_path < np.inf
        if bounded:
            # the cores' flows share what is left of the load paths
            for f in range(nf):
                path_lim[f] = False
            m = 0
            tot = 0.0
            for f in range(nf):
                if pk[fstart[f]] - cj * width < res_bw.size:
                    scratch[0, m] = frate[f]
                    scratch[1, m] = 1.0
                    tot += frate[f]
                    m += 1
            if tot > left_path:
                waterfill(scratch[0], scratch[1], m, max(0.0, left_path), scratch[2], fixed)
                m = 0
                for f in range(nf):
                    if pk[fstart[f]] - cj * width < res_bw.size:
                        if scratch[2, m] < frate[f]:
                            frate[f] = scratch[2, m]
                            path_lim[f] = True
                        m += 1
        for f in range(nf):
            left = frate[f]
            at_limit = frate[f] >= fcap[f] or (bounded and path_lim[f])
            g = pk[fstart[f]] - cj * width
            if g < res_bw.size:
                res_used[g] += frate[f]
                left_path -= frate[f]
            left_bw -= fw[f] * frate[f]
            if g < res_bw.size:
                lead = active[fstart[f]]
                if h_cap[lead] == np.inf:
                    head_h[g] = lead
                    head_task[g] = h_task[lead]
                    head_srv[g] = srv
                    head_pk[g] = pk[fstart[f]]
                    head_key[g] = kk[fstart[f]]
                else:
                    head_h[g] = -1
            for q in range(fstart[f], fstart[f + 1]):
                h = active[q]
                c = h_cap[h]
                r = min(c, left)
                left -= r
                lim = at_limit or r >= c
                if r != rate[h] or lim != dma_limited[h]:
                    h_left[h], h_capped[h], h_end[h] = rebased(h_left[h], h_since[h], rate[h], dma_limited[h],
                                                                h_capped[h], now, r)
                    h_since[h], rate[h], dma_limited[h] = now, r, lim
                first_end = min(first_end, h_end[h])
    for j in range(n):
        g = pk[j] % width
        if g < res_bw.size:
            res_used[g] = 0.0
    return first_end


@njit(cache=True)
def before(pa, ka, pb, kb):
    return pa < pb or (pa == pb and ka < kb)


@njit(cache=True)
def merge_new(active, pk, kk, n_sorted, n, buf):
    """Entries ``n_sorted`` .. ``n`` of (``active``, ``pk``, ``kk``) arrived since the list was
    last sorted by (pk, kk): sort them (few: insertion sort) and merge them into the sorted
    prefix (``buf``: scratch of 3 x n int64)."""
    if n_sorted == n:
        return
    for i in range(n_sorted + 1, n):
        x, p, k = active[i], pk[i], kk[i]
        j = i
        while j > n_sorted and before(p, k, pk[j - 1], kk[j - 1]):
            active[j], pk[j], kk[j] = active[j - 1], pk[j - 1], kk[j - 1]
            j -= 1
        active[j], pk[j], kk[j] = x, p, k
    if n_sorted == 0:
        return
    i, j = 0, n_sorted
    for o in range(n):
        if j >= n or (i < n_sorted and before(pk[i], kk[i], pk[j], kk[j])):
            src = i
            i += 1
        else:
            src = j
            j += 1
        buf[0, o] = active[src]
        buf[1, o] = pk[src]
        buf[2, o] = kk[src]
    active[:n] = buf[0, :n]
    pk[:n] = buf[1, :n]
    kk[:n] = buf[2, :n]
