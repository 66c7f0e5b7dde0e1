"""Event-driven list scheduler for a Schedule, compiled with numba.

Coarse events only: a task starting or ending, a transfer finishing its latency phase. At each
event time the engine (1) moves every active transfer forward at its current rate, (2) completes
the tasks that end now, in (priority, index) order, freeing resource servers and SRAM slots and
releasing successors, (3) starts ready tasks resource by resource, each resource serving its
queue strictly in (priority, index) order (an in-order queue: a head task waiting for an SRAM
slot blocks the tasks behind it), and (4) re-divides each bandwidth server among its active
transfers by max-min fairness (water-filling over the transfers' own caps). Ties are broken by
(time, priority, index), so identical inputs give identical outputs. The transfers of a
resource that has a bandwidth of its own (a core's DMA queues together) form one flow capped by
it; flows are water-filled on their server (HBM); a flow's rate goes to its transfers in
(priority, index) order (descriptors are served in order, so an early small copy is not slowed
by later prefetches).

``run`` is the numba kernel; ``reference.run`` is an independently written pure-Python engine
with the same semantics, used by the tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..lower.schedule import Schedule
from .result import SimResult

BUSY, XFER, DELAY = 0, 1, 2
EV_END, EV_LAT = 0, 1
BLOCK_NONE, BLOCK_DEP, BLOCK_RESOURCE, BLOCK_SLOT = 0, 1, 2, 3


@njit(cache=True)
def _heap_push(keys, off, size, key):
    i = size
    keys[off + i] = key
    while i > 0:
        p = (i - 1) // 2
        if keys[off + p] <= keys[off + i]:
            break
        keys[off + p], keys[off + i] = keys[off + i], keys[off + p]
        i = p
    return size + 1


@njit(cache=True)
def _heap_pop(keys, off, size):
    top = keys[off]
    size -= 1
    keys[off] = keys[off + size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        c = left
        if left + 1 < size and keys[off + left + 1] < keys[off + left]:
            c = left + 1
        if keys[off + i] <= keys[off + c]:
            break
        keys[off + i], keys[off + c] = keys[off + c], keys[off + i]
        i = c
    return top, size


@njit(cache=True)
def _timer_push(tt, ts, ti, n, time, seq, item):
    i = n
    tt[i] = time
    ts[i] = seq
    ti[i] = item
    while i > 0:
        p = (i - 1) // 2
        if tt[p] < tt[i] or (tt[p] == tt[i] and ts[p] <= ts[i]):
            break
        tt[p], tt[i] = tt[i], tt[p]
        ts[p], ts[i] = ts[i], ts[p]
        ti[p], ti[i] = ti[i], ti[p]
        i = p
    return n + 1


@njit(cache=True)
def _timer_pop(tt, ts, ti, n):
    item = ti[0]
    n -= 1
    tt[0] = tt[n]
    ts[0] = ts[n]
    ti[0] = ti[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        c = left
        r = left + 1
        if r < n and (tt[r] < tt[left] or (tt[r] == tt[left] and ts[r] < ts[left])):
            c = r
        if tt[i] < tt[c] or (tt[i] == tt[c] and ts[i] <= ts[c]):
            break
        tt[i], tt[c] = tt[c], tt[i]
        ts[i], ts[c] = ts[c], ts[i]
        ti[i], ti[c] = ti[c], ti[i]
        i = c
    return item, n


@njit(cache=True)
def _waterfill(caps, weights, bw):
    """Max-min fair rates of flows with ``caps`` on a server of ``bw``: raise a common level;
    a flow stops at its cap; a flow at rate r loads the server with ``weight * r``."""
    n = caps.size
    rates = np.empty(n)
    wsum = 0.0
    for j in range(n):
        wsum += weights[j]
    order = np.argsort(caps, kind="mergesort")
    left = bw
    level = np.inf
    for j in range(n):
        c = caps[order[j]]
        if wsum <= 0.0:
            break
        if wsum * c <= left:
            left -= weights[order[j]] * c
            wsum -= weights[order[j]]
        else:
            level = left / wsum
            break
    for j in range(n):
        rates[j] = caps[j] if caps[j] < level else level
    return rates


@njit(cache=True)
def _server_rates(active, n, resource, res_bw, cap, weight, keys, rate, dma_limited, bw, cls, res_used):
    """Rates of the ``n`` transfers in ``active`` on one server. Transfers of a resource that
    has a bandwidth of its own (a core's DMA queues) form one flow capped by it; flows are
    water-filled on the server; a flow's rate goes to its transfers in key order.

    ``cls`` is each task's priority class (all equal: one max-min fair class). Classes are
    served in ascending order: each water-fills what the earlier classes left of the server and
    of its resources' bandwidth (``res_used``: scratch, zero on entry and on return)."""
    if n == 0:
        return
    group = np.empty(n, dtype=np.int64)
    k = np.empty(n, dtype=np.int64)
    c = np.empty(n, dtype=np.int64)
    sort_key = np.empty(n, dtype=np.int64)
    width = res_bw.size + n  # a resource's flow, or a transfer of its own (res_bw.size + j)
    for j in range(n):
        x = active[j]
        r = resource[x]
        group[j] = r if (r >= 0 and res_bw[r] > 0.0) else -1 - x
        k[j] = keys[x]
        c[j] = cls[x]
        sort_key[j] = c[j] * width + (group[j] if group[j] >= 0 else res_bw.size + j)
    o1 = np.argsort(k, kind="mergesort")
    o2 = np.argsort(sort_key[o1], kind="mergesort")
    order = o1[o2]
    fstart = np.empty(n + 1, dtype=np.int64)
    fcap = np.empty(n)
    fw = np.empty(n)
    left_bw = bw
    j = 0
    while j < n:
        # one class: its flows, water-filled on what is left
        cj = c[order[j]]
        nf = 0
        while j < n and c[order[j]] == cj:
            g = group[order[j]]
            fstart[nf] = j
            total = 0.0
            e = j
            while e < n and group[order[e]] == g and c[order[e]] == cj:
                total += cap[active[order[e]]]
                e += 1
            lead = active[order[j]]
            if g >= 0:
                fcap[nf] = max(0.0, min(res_bw[g] - res_used[g], total))
            else:
                fcap[nf] = cap[lead]
            fw[nf] = weight[lead]
            nf += 1
            j = e
        fstart[nf] = j
        frate = _waterfill(fcap[:nf], fw[:nf], max(0.0, left_bw))
        for f in range(nf):
            left = frate[f]
            at_limit = frate[f] >= fcap[f]
            lead = active[order[fstart[f]]]
            g = resource[lead]
            if g >= 0 and res_bw[g] > 0.0:
                res_used[g] += frate[f]
            left_bw -= fw[f] * frate[f]
            for q in range(fstart[f], fstart[f + 1]):
                x = active[order[q]]
                r = min(cap[x], left)
                left -= r
                rate[x] = r
                dma_limited[x] = at_limit or r >= cap[x]
    for j in range(n):
        r = resource[active[j]]
        if r >= 0:
            res_used[r] = 0.0


@njit(cache=True)
def run(kind, resource, server, duration, nbytes, cap, weight, priority, acquire, release,
        dep_ptr, dep_idx, res_capacity, res_bw, srv_bw, pool_slots, op, srv_by_op):
    """Simulate; returns (start, end, ready, xfer_start, capped, lane, blocker, block_kind)."""
    T = kind.size
    R = res_capacity.size
    S = srv_bw.size
    P = pool_slots.size
    start = np.full(T, np.nan)
    end = np.full(T, np.nan)
    ready = np.full(T, np.nan)
    xstart = np.full(T, np.nan)
    capped = np.zeros(T)
    lane = np.full(T, -1, dtype=np.int32)
    blocker = np.full(T, -1, dtype=np.int32)
    bkind = np.zeros(T, dtype=np.int8)
    if T == 0:
        return start, end, ready, xstart, capped, lane, blocker, bkind

    # successors (CSR) and indegrees
    indeg = np.zeros(T, dtype=np.int64)
    for t in range(T):
        indeg[t] = dep_ptr[t + 1] - dep_ptr[t]
    succ_ptr = np.zeros(T + 1, dtype=np.int64)
    for e in range(dep_idx.size):
        succ_ptr[dep_idx[e] + 1] += 1
    for t in range(T):
        succ_ptr[t + 1] += succ_ptr[t]
    fill = succ_ptr[:-1].copy()
    succ = np.empty(dep_idx.size, dtype=np.int64)
    for t in range(T):
        for e in range(dep_ptr[t], dep_ptr[t + 1]):
            d = dep_idx[e]
            succ[fill[d]] = t
            fill[d] += 1

    # per-resource ready heaps in one flat array
    keys = np.empty(T, dtype=np.int64)
    heap_off = np.zeros(R + 1, dtype=np.int64)
    for t in range(T):
        if resource[t] >= 0:
            heap_off[resource[t] + 1] += 1
    for r in range(R):
        heap_off[r + 1] += heap_off[r]
    heap_size = np.zeros(R, dtype=np.int64)
    lane_off = np.zeros(R + 1, dtype=np.int64)
    for r in range(R):
        lane_off[r + 1] = lane_off[r] + res_capacity[r]
    lane_busy = np.zeros(lane_off[R], dtype=np.bool_)
    free_lanes = res_capacity.astype(np.int64).copy()
    last_res_free = np.full(R, -1, dtype=np.int64)
    last_res_time = np.full(R, -np.inf)
    slots = pool_slots.astype(np.int64).copy()
    last_pool_free = np.full(max(P, 1), -1, dtype=np.int64)
    last_pool_time = np.full(max(P, 1), -np.inf)
    last_dep = np.full(T, -1, dtype=np.int64)

    # timers: (time, seq) -> item = task * 2 + event type
    tt = np.empty(2 * T + 1)
    ts = np.empty(2 * T + 1, dtype=np.int64)
    ti = np.empty(2 * T + 1, dtype=np.int64)
    n_timers = 0
    seq = 0

    # active transfers per server: a transfer is active only while it holds a resource server,
    # so no server ever has more than sum(res_capacity) of them
    act_width = min(T, lane_off[R]) if R > 0 else 0
    active = np.empty((S, act_width), dtype=np.int64)
    n_active = np.zeros(S, dtype=np.int64)
    dirty = np.zeros(S, dtype=np.bool_)
    remaining = np.zeros(T)
    rate = np.zeros(T)
    dma_limited = np.zeros(T, dtype=np.bool_)
    task_key = priority * np.int64(T) + np.arange(T)
    no_class = np.zeros(T, dtype=np.int64)
    op_class = op.astype(np.int64)
    res_used = np.zeros(max(R, 1))
    done_buf = np.empty(T, dtype=np.int64)

    now = 0.0
    n_done = 0
    mult = np.int64(T)
    for t in range(T):
        if indeg[t] == 0:
            ready[t] = 0.0
            if resource[t] >= 0:
                r = resource[t]
                heap_size[r] = _heap_push(keys, heap_off[r], heap_size[r], priority[t] * mult + t)
            else:
                start[t] = 0.0
                n_timers = _timer_push(tt, ts, ti, n_timers, duration[t], seq, t * 2 + EV_END)
                seq += 1

    while n_done < T:
        # ---- start what can start (resources in index order, queues in key order)
        for r in range(R):
            while free_lanes[r] > 0 and heap_size[r] > 0:
                t = keys[heap_off[r]] % mult
                p = acquire[t]
                if p >= 0 and slots[p] == 0:
                    break
                key, heap_size[r] = _heap_pop(keys, heap_off[r], heap_size[r])
                if p >= 0:
                    slots[p] -= 1
                k = 0
                while lane_busy[lane_off[r] + k]:
                    k += 1
                lane_busy[lane_off[r] + k] = True
                free_lanes[r] -= 1
                lane[t] = k
                start[t] = now
                if ready[t] == now and last_dep[t] >= 0:
                    blocker[t] = last_dep[t]
                    bkind[t] = BLOCK_DEP
                elif ready[t] < now:
                    if p >= 0 and last_pool_time[p] == now and last_res_time[r] < now:
                        blocker[t] = last_pool_free[p]
                        bkind[t] = BLOCK_SLOT
                    else:
                        blocker[t] = last_res_free[r]
                        bkind[t] = BLOCK_RESOURCE
                evt = EV_LAT if kind[t] == XFER else EV_END
                n_timers = _timer_push(tt, ts, ti, n_timers, now + duration[t], seq, t * 2 + evt)
                seq += 1
        # ---- bandwidth shares
        for s in range(S):
            if dirty[s]:
                _server_rates(active[s], n_active[s], resource, res_bw, cap, weight, task_key, rate,
                              dma_limited, srv_bw[s], op_class if srv_by_op[s] else no_class, res_used)
                dirty[s] = False
        # ---- next event
        t_next = np.inf
        if n_timers > 0:
            t_next = tt[0]
        for s in range(S):
            for j in range(n_active[s]):
                x = active[s, j]
                if rate[x] > 0.0:
                    f = now + remaining[x] / rate[x]
                    if f < t_next:
                        t_next = f
        if t_next == np.inf:
            break  # nothing can progress (should not happen for a valid schedule)
        dt = t_next - now
        n_fin = 0
        for s in range(S):
            j = 0
            while j < n_active[s]:
                x = active[s, j]
                f = now + remaining[x] / rate[x] if rate[x] > 0.0 else np.inf
                if dma_limited[x]:
                    capped[x] += dt
                if f <= t_next:
                    remaining[x] = 0.0
                    done_buf[n_fin] = x
                    n_fin += 1
                    n_active[s] -= 1
                    active[s, j] = active[s, n_active[s]]
                    dirty[s] = True

                else:
                    remaining[x] -= rate[x] * dt
                    j += 1
        now = t_next
        while n_timers > 0 and tt[0] == now:
            item, n_timers = _timer_pop(tt, ts, ti, n_timers)
            t = item // 2
            if item % 2 == EV_LAT:
                xstart[t] = now
                if nbytes[t] > 0:
                    s = server[t]
                    active[s, n_active[s]] = t
                    n_active[s] += 1
                    dirty[s] = True

                    remaining[t] = nbytes[t]
                else:
                    done_buf[n_fin] = t
                    n_fin += 1
            else:
                done_buf[n_fin] = t
                n_fin += 1
        if n_fin == 0:
            continue
        # ---- complete, in (priority, index) order
        fin = done_buf[:n_fin].copy()
        fkeys = np.empty(n_fin, dtype=np.int64)
        for j in range(n_fin):
            fkeys[j] = priority[fin[j]] * mult + fin[j]
        for j in np.argsort(fkeys, kind="mergesort"):
            t = fin[j]
            end[t] = now
            if xstart[t] != xstart[t]:
                xstart[t] = start[t]
            n_done += 1
            r = resource[t]
            if r >= 0:
                lane_busy[lane_off[r] + lane[t]] = False
                free_lanes[r] += 1
                last_res_free[r] = t
                last_res_time[r] = now
            p = release[t]
            if p >= 0:
                slots[p] += 1
                last_pool_free[p] = t
                last_pool_time[p] = now
            for e in range(succ_ptr[t], succ_ptr[t + 1]):
                u = succ[e]
                indeg[u] -= 1
                if indeg[u] == 0:
                    ready[u] = now
                    last_dep[u] = t
                    if resource[u] >= 0:
                        ru = resource[u]
                        heap_size[ru] = _heap_push(keys, heap_off[ru], heap_size[ru], priority[u] * mult + u)
                    else:
                        start[u] = now
                        blocker[u] = t
                        bkind[u] = BLOCK_DEP
                        n_timers = _timer_push(tt, ts, ti, n_timers, now + duration[u], seq, u * 2 + EV_END)
                        seq += 1
    return start, end, ready, xstart, capped, lane, blocker, bkind


def simulate_schedule(schedule: Schedule) -> SimResult:
    """Run the numba engine on ``schedule``."""
    s = schedule
    out = run(s.kind, s.resource, s.server, s.duration_s, s.nbytes, s.cap_Bps, s.weight, s.priority, s.acquire,
              s.release, s.dep_ptr, s.dep_idx, s.res_capacity, s.res_bandwidth_Bps, s.srv_bandwidth_Bps, s.pool_slots,
              s.op, s.srv_by_op)
    start, end, ready, xstart, capped, lane, blocker, bkind = out
    if s.num_tasks and np.isnan(end).any():
        stuck = int(np.flatnonzero(np.isnan(end))[0])
        raise RuntimeError(f"schedule deadlocked: task {stuck} ({s.task_name(stuck)}) never ran")
    return SimResult(schedule=s, start_s=start, end_s=end, ready_s=ready, xfer_start_s=xstart,
                     capped_s=capped, lane=lane, blocker=blocker, block_kind=bkind)
