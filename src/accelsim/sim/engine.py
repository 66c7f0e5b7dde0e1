"""Event-driven list scheduler for a Schedule, compiled with numba.

Coarse events only: a task starting or ending, a transfer finishing its latency phase. At each
event time the engine (1) completes the tasks that end now, in (priority, index) order, freeing
resource servers and SRAM slots and releasing successors, (2) starts ready tasks resource by
resource, each resource serving its queue strictly in (priority, index) order (an in-order
queue: a head task waiting for an SRAM slot blocks the tasks behind it), and (3) re-divides the
bandwidth of each server whose set of transfers changed by max-min fairness (water-filling over
the transfers' own caps). Ties are broken by (time, priority, index), so identical inputs give
identical outputs. The transfers of a resource that has a bandwidth of its own (a core's DMA
queues together) form one flow capped by it; flows are water-filled on their server (HBM), and
the cores' flows together take at most the server's load-path bound (``srv_path_Bps``: a core
may pull up to its own path's peak while others idle, never more than every core's even share
all together); a flow's rate goes to its transfers in (priority, index) order (descriptors are
served in order, so an early small copy is not slowed by later prefetches), a core's loads and
its stores as two such chains with half the flow each while both move (a DMA's read and write
channels: a group of stores does not hold the next loads). The cores' flows of
one op divide what they get together (of the server, and of the load-path bound) in proportion
to the bytes each core has left of that op (a transfer's bytes count as done when it ends),
each up to its own bandwidth: cores with more of the op left, such as those
running a GEMM's last wave, are not held back by cores that are nearly done (an even split
lengthened the op's tail, and more SRAM, letting the nearly-done cores queue their last loads
sooner, made it longer still).

Rates are constant between re-divisions, so a transfer's remaining bytes and its end time are
computed when its server's rates are re-divided, not at every event (``sharing``): each event
costs the tasks it touches and the servers that changed, not every transfer in flight.

``run`` is the numba kernel; ``reference.run`` is an independently written pure-Python engine
with the same semantics, used by the tests.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ..errors import LoweringError
from ..lower.schedule import CAT_DMA_OUT, Schedule
from .result import SimResult
from .sharing import (ACT_H, ACT_KEY, ACT_PK, CAP, CAPPED, DIR, END, GRP, HEAD_H, HEAD_KEY, HEAD_PK, HEAD_SRV,
                      HEAD_TASK, LEFT, OPH, RATE, RES_BW, SINCE, WEIGHT, flow_of, merge_new, rebased, server_rates)

BUSY, XFER, DELAY = 0, 1, 2
EV_END, EV_LAT = 0, 1
BLOCK_NONE, BLOCK_DEP, BLOCK_RESOURCE, BLOCK_SLOT = 0, 1, 2, 3


@njit(cache=True, _nrt=False)
def _before(a, b, priority):
    """Task ``a`` goes before task ``b``: lower priority first, then the lower index."""
    return priority[a] < priority[b] or (priority[a] == priority[b] and a < b)


@njit(cache=True, _nrt=False)
def _heap_push(heap, off, size, t, priority):
    i = size
    heap[off + i] = t
    while i > 0:
        p = (i - 1) // 2
        if not _before(heap[off + i], heap[off + p], priority):
            break
        heap[off + p], heap[off + i] = heap[off + i], heap[off + p]
        i = p
    return size + 1


@njit(cache=True, _nrt=False)
def _heap_pop(heap, off, size, priority):
    top = heap[off]
    size -= 1
    heap[off] = heap[off + size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        c = left
        if left + 1 < size and _before(heap[off + left + 1], heap[off + left], priority):
            c = left + 1
        if not _before(heap[off + c], heap[off + i], priority):
            break
        heap[off + i], heap[off + c] = heap[off + c], heap[off + i]
        i = c
    return top, size


@njit(cache=True, _nrt=False)
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


@njit(cache=True, _nrt=False)
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
def core_op_groups(kind, resource, res_bw, op, cls, table, O):
    """Each transfer on a resource with a bandwidth of its own (a core's DMA queues): its group,
    the (resource, op) pair, numbered resource by resource (-1 for every other task); and each
    group's bytes. ``O``: the number of ops. Without such transfers the group array is empty."""
    T = kind.size
    R = res_bw.size
    per_res = np.zeros(R + 1, dtype=np.int64)
    for t in range(T):
        r = resource[t]
        if kind[t] == XFER and r >= 0 and res_bw[r] > 0.0:
            per_res[r + 1] += 1
    for r in range(R):
        per_res[r + 1] += per_res[r]
    if per_res[R] == 0:  # no such transfer (links only): no group array
        return np.empty(0, dtype=np.int32), np.zeros(0)
    grp = np.full(T, -1, dtype=np.int32)
    order = np.empty(per_res[R], dtype=np.int32)  # the transfers of each resource, in index order
    fill = per_res[:R].copy()
    for t in range(T):
        r = resource[t]
        if kind[t] == XFER and r >= 0 and res_bw[r] > 0.0:
            order[fill[r]] = t
            fill[r] += 1
    seen = np.full(O + 1, -1, dtype=np.int64)  # the resource an op was last seen on, and its group
    gid = np.empty(O + 1, dtype=np.int32)
    n = 0
    for r in range(R):
        for i in range(per_res[r], per_res[r + 1]):
            o = op[order[i]] + 1
            if seen[o] != r:
                seen[o] = r
                gid[o] = n
                n += 1
            grp[order[i]] = gid[o]
    left = np.zeros(n)
    for t in range(T):
        if grp[t] >= 0:
            left[grp[t]] += table[cls[t], 1]
    return grp, left


@njit(cache=True)
def run(kind, resource, server, cls, table, priority, acquire, release,
        dep_ptr, dep_idx, res_capacity, res_bw, srv_bw, pool_slots, op, srv_by_op, lane, indeg, srv_path, category):
    """Simulate; returns (start, end, wait, xfer_delay, capped, lane, blocker, block_kind):
    ``wait`` (from ready to start), ``xfer_delay`` (a transfer's latency phase, from its start
    to its bandwidth phase) and ``capped`` in float32, start and end in float64. A ready task's
    ready time is held in ``start`` until it starts. ``blocker`` holds each task's last
    dependency from when it becomes ready until it starts (then what let it start). ``lane``
    (filled with -1) and ``indeg`` (scratch) are the caller's: 16-bit where the capacities and
    the dependency counts allow. ``srv_path``: each server's bound on its cores' flows together (inf:
    none)."""
    T = kind.size
    R = res_capacity.size
    S = srv_bw.size
    P = pool_slots.size
    # the (core, op) groups first: their scratch is freed before the engine's arrays are made
    grp, grp_left = core_op_groups(kind, resource, res_bw, op, cls, table, op.max() + 1 if T else 0)
    start = np.full(T, np.nan)
    end = np.full(T, np.nan)
    wait = np.zeros(T, dtype=np.float32)
    xdelay = np.zeros(T, dtype=np.float32)
    capped = np.zeros(T, dtype=np.float32)
    blocker = np.full(T, -1, dtype=np.int32)
    bkind = np.zeros(T, dtype=np.int8)
    if T == 0:
        return start, end, wait, xdelay, capped, lane, blocker, bkind

    # successors (CSR) and indegrees
    for t in range(T):
        indeg[t] = dep_ptr[t + 1] - dep_ptr[t]
    succ_ptr = np.zeros(T + 1, dtype=np.int32)  # dependencies < 2^31 (ScheduleBuilder.build)
    for e in range(dep_idx.size):
        succ_ptr[dep_idx[e] + 1] += 1
    for t in range(T):
        succ_ptr[t + 1] += succ_ptr[t]
    succ = np.empty(dep_idx.size, dtype=np.int32)
    for t in range(T - 1, -1, -1):  # fill each list from its end, so it runs in task order
        for e in range(dep_ptr[t], dep_ptr[t + 1]):
            d = dep_idx[e]
            succ_ptr[d + 1] -= 1
            succ[succ_ptr[d + 1]] = t
    for t in range(T):  # succ_ptr[d + 1] now holds d's start
        succ_ptr[t] = succ_ptr[t + 1]
    succ_ptr[T] = dep_idx.size

    # per-resource ready heaps in one flat array
    heap_off = np.zeros(R + 1, dtype=np.int64)
    for t in range(T):
        if resource[t] >= 0:
            heap_off[resource[t] + 1] += 1
    for r in range(R):
        heap_off[r + 1] += heap_off[r]
    heap = np.empty(heap_off[R], dtype=np.int32)  # per-resource heaps of ready task ids, (priority, id) order
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

    # timers: (time, seq) -> item = task * 2 + event type. A task on a resource has a timer only
    # while it holds one of its servers; a task on none has one until it ends.
    n_free = 0
    for t in range(T):
        if resource[t] < 0:
            n_free += 1
    tt = np.empty(lane_off[R] + n_free + 1)
    ts = np.empty(tt.size, dtype=np.int64)
    ti = np.empty(tt.size, dtype=np.int64)
    n_timers = 0
    seq = 0

    # active transfers: a transfer is active only while it holds a resource server, so no more
    # than sum(res_capacity) are active at once. Each has a handle (h) into small arrays: its
    # task, bytes remaining at h_since, rate since then, whether its own DMA limits it, and the
    # time it ends at that rate. Remaining bytes are brought up to date when its server's rates
    # are re-divided (when a transfer joins or leaves it).
    act_width = min(T, lane_off[R]) if R > 0 else 0
    h_task = np.empty(act_width, dtype=np.int64)
    hf = np.zeros((10, act_width))  # rows sharing.CAP .. DIR; the names below are its rows
    h_cap = hf[CAP]  # the task's cap and weight, copied here (few, close together)
    h_weight = hf[WEIGHT]
    h_capped = hf[CAPPED]
    h_left = hf[LEFT]
    h_since = hf[SINCE]
    h_rate = hf[RATE]
    h_limited = np.zeros(act_width, dtype=np.bool_)
    h_end = hf[END]
    h_end[:] = np.inf
    h_free = np.arange(act_width)[::-1].copy()  # a stack of free handles
    n_free_h = act_width
    srv_next = np.full(S, np.inf)  # earliest end of a transfer on each server
    h_on = np.zeros(act_width, dtype=np.bool_)  # handle in use
    # per resource: the uncapped transfer leading its flow at the last re-division (-1: none)
    head = np.full((5, max(R, 1)), -1, dtype=np.int64)  # rows sharing.HEAD_H .. HEAD_KEY
    head_h = head[HEAD_H]
    head_task = head[HEAD_TASK]
    head_srv = head[HEAD_SRV]
    head_pk = head[HEAD_PK]
    head_key = head[HEAD_KEY]
    # each server's transfers in a row of its own, as wide as the servers of the resources whose
    # transfers use it (an upper bound: a resource switching servers is counted at each switch)
    srv_off = np.zeros(S + 1, dtype=np.int64)
    last_srv = np.full(max(R, 1), -1, dtype=np.int64)
    for t in range(T):
        r = resource[t]
        if kind[t] == XFER and r >= 0 and server[t] != last_srv[r]:
            last_srv[r] = server[t]
            srv_off[server[t] + 1] += res_capacity[r]
    for s in range(S):
        srv_off[s + 1] = srv_off[s] + min(srv_off[s + 1], act_width)
    act = np.empty((3, srv_off[S]), dtype=np.int64)  # rows sharing.ACT_H .. ACT_KEY
    active = act[ACT_H]
    act_pk = act[ACT_PK]  # sort key: class x width + flow group
    act_k = act[ACT_KEY]  # then the task key
    n_active = np.zeros(S, dtype=np.int64)
    n_sorted = np.zeros(S, dtype=np.int64)  # a row's first n_sorted[s] are sorted; the rest arrived since
    merge_buf = np.empty((3, act_width), dtype=np.int64)
    width = np.int64(R) + np.int64(T)
    fs = np.empty((9, act_width + 1))  # scratch of the re-division
    fstart = np.empty(act_width + 1, dtype=np.int64)
    fixed = np.empty(act_width + 1, dtype=np.bool_)
    path_lim = np.empty(act_width + 1, dtype=np.bool_)
    dirty = np.zeros(S, dtype=np.bool_)
    res = np.zeros((2, R))  # rows sharing.RES_BW, RES_USED
    res[RES_BW] = res_bw
    # what ends at one time: timers (at most tt.size) and transfers in flight (at most act_width)
    done_buf = np.empty(tt.size + act_width, dtype=np.int32)

    now = 0.0
    n_done = 0
    mult = np.int64(T)
    for t in range(T):
        if indeg[t] == 0:
            start[t] = 0.0  # its ready time, until it starts
            if resource[t] >= 0:
                r = resource[t]
                heap_size[r] = _heap_push(heap, heap_off[r], heap_size[r], t, priority)
            else:
                start[t] = 0.0
                n_timers = _timer_push(tt, ts, ti, n_timers, table[cls[t], 0], seq, t * 2 + EV_END)
                seq += 1

    while n_done < T:
        # ---- start what can start (resources in index order, queues in key order)
        for r in range(R):
            hol = -1  # the slot release that let this round's queue head start (those behind it waited on it too)
            while free_lanes[r] > 0 and heap_size[r] > 0:
                t = heap[heap_off[r]]
                p = acquire[t]
                if p >= 0 and slots[p] == 0:
                    break
                t, heap_size[r] = _heap_pop(heap, heap_off[r], heap_size[r], priority)
                if p >= 0:
                    slots[p] -= 1
                k = 0
                while lane_busy[lane_off[r] + k]:
                    k += 1
                lane_busy[lane_off[r] + k] = True
                free_lanes[r] -= 1
                lane[t] = k
                ready_t = start[t]
                wait[t] = now - ready_t
                start[t] = now
                if ready_t == now and blocker[t] >= 0:  # blocker: its last dependency, so far
                    bkind[t] = BLOCK_DEP
                elif ready_t < now:
                    if p >= 0 and last_pool_time[p] == now and last_res_time[r] < now:
                        blocker[t] = last_pool_free[p]
                        bkind[t] = BLOCK_SLOT
                        if hol < 0:
                            hol = blocker[t]
                    elif hol >= 0 and last_res_time[r] < now:
                        blocker[t] = hol
                        bkind[t] = BLOCK_SLOT
                    else:
                        blocker[t] = last_res_free[r]
                        bkind[t] = BLOCK_RESOURCE
                evt = EV_LAT if kind[t] == XFER else EV_END
                n_timers = _timer_push(tt, ts, ti, n_timers, now + table[cls[t], 0], seq, t * 2 + evt)
                seq += 1
        # ---- bandwidth shares
        for s in range(S):
            if dirty[s] and n_active[s] == 1:  # one transfer (a link's usual load): its rate directly
                o = srv_off[s]
                n_sorted[s] = 1
                h = active[o]
                c = h_cap[h]
                g = act_pk[o] % width
                fc = max(0.0, min(res_bw[g], c)) if g < res_bw.size else c
                level = np.inf
                if h_weight[h] > 0.0:
                    level = max(0.0, srv_bw[s]) / h_weight[h]
                    if fc <= level:
                        level = np.inf
                f = fc if fc < level else level
                held = g < res_bw.size and f > srv_path[s]  # the load paths' bound holds it
                if held:
                    f = max(0.0, srv_path[s])
                r = min(c, f)
                lim = f >= fc or held or r >= c
                if r != h_rate[h] or lim != h_limited[h]:
                    h_left[h], h_capped[h], h_end[h] = rebased(h_left[h], h_since[h], h_rate[h], h_limited[h],
                                                                h_capped[h], now, r)
                    h_since[h], h_rate[h], h_limited[h] = now, r, lim
                srv_next[s] = h_end[h]
                dirty[s] = False
            elif dirty[s]:
                o = srv_off[s]
                merge_new(act, o, n_sorted[s], n_active[s], merge_buf)
                n_sorted[s] = n_active[s]
                srv_next[s] = server_rates(act, o, n_active[s], hf, h_task, h_limited, head, res, fs, fstart,
                                            fixed, path_lim, srv_bw[s], width, now, s, srv_path[s], grp_left)
                dirty[s] = False
        # ---- next event
        t_next = np.inf
        if n_timers > 0:
            t_next = tt[0]
        for s in range(S):
            t_next = min(t_next, srv_next[s])
        if t_next == np.inf:
            break  # nothing can progress (should not happen for a valid schedule)
        n_fin = 0
        for s in range(S):
            if srv_next[s] > t_next:
                continue
            kept = 0
            kept_sorted = 0
            o = srv_off[s]
            for j in range(n_active[s]):
                h = active[o + j]
                if h_end[h] <= t_next:
                    capped[h_task[h]] = h_capped[h] + (t_next - h_since[h] if h_limited[h] else 0.0)
                    done_buf[n_fin] = h_task[h]
                    n_fin += 1
                    h_on[h] = False
                    h_free[n_free_h] = h
                    n_free_h += 1
                    dirty[s] = True
                else:
                    active[o + kept] = h
                    act_pk[o + kept] = act_pk[o + j]
                    act_k[o + kept] = act_k[o + j]
                    kept += 1
                    if j < n_sorted[s]:
                        kept_sorted += 1
            n_active[s] = kept
            n_sorted[s] = kept_sorted
        now = t_next
        while n_timers > 0 and tt[0] == now:
            item, n_timers = _timer_pop(tt, ts, ti, n_timers)
            t = item // 2
            if item % 2 == EV_LAT:
                xdelay[t] = now - start[t]
                if table[cls[t], 1] > 0:
                    s = server[t]
                    pc = op[t] * width if srv_by_op[s] else 0
                    n_free_h -= 1
                    h = h_free[n_free_h]
                    h_task[h] = t
                    h_cap[h] = table[cls[t], 2]
                    hf[GRP, h] = grp[t] if grp.size else -1
                    hf[OPH, h] = op[t]
                    hf[DIR, h] = 1.0 if category[t] == CAT_DMA_OUT else 0.0
                    h_weight[h] = table[cls[t], 3]
                    h_capped[h] = 0.0
                    h_left[h] = table[cls[t], 1]
                    h_since[h] = now
                    h_rate[h] = 0.0
                    h_end[h] = np.inf
                    h_limited[h] = False
                    h_on[h] = True
                    j = srv_off[s] + n_active[s]
                    active[j] = h
                    g = flow_of(t, resource, res_bw, R)
                    act_pk[j] = pc + g
                    act_k[j] = priority[t] * mult + t
                    n_active[s] += 1
                    lead = head_h[g] if g < R else -1
                    if (not dirty[s] and lead >= 0 and h_on[lead] and h_task[lead] == head_task[g]
                            and head_srv[g] == s and head_pk[g] == act_pk[j] and head_key[g] < act_k[j]
                            and hf[DIR, lead] == hf[DIR, h]):
                        # behind an uncapped lead of its flow: rate 0, limited as the flow is
                        h_limited[h] = h_limited[lead] or h_cap[h] <= 0.0
                    else:
                        dirty[s] = True
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
            n_done += 1
            if grp.size and grp[t] >= 0:
                grp_left[grp[t]] -= table[cls[t], 1]
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
                    start[u] = now  # its ready time (a task on no resource starts now)
                    blocker[u] = t
                    if resource[u] >= 0:
                        ru = resource[u]
                        heap_size[ru] = _heap_push(heap, heap_off[ru], heap_size[ru], u, priority)
                    else:
                        bkind[u] = BLOCK_DEP
                        n_timers = _timer_push(tt, ts, ti, n_timers, now + table[cls[u], 0], seq, u * 2 + EV_END)
                        seq += 1
    return start, end, wait, xdelay, capped, lane, blocker, bkind


TRIM_TASKS = 100_000
"""Schedules above this many tasks return the heap's free pages before the engine runs."""


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere): hands the C heap's free pages back to the
    system. Lowering frees its blocks and Python objects in the middle of the heap, which the
    allocator keeps, and the engine's arrays would otherwise come on top of them."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def simulate_schedule(schedule: Schedule) -> SimResult:
    """Run the numba engine on ``schedule``."""
    s = schedule
    T = s.num_tasks
    if s.cls_table.size and (np.isnan(s.cls_table).any() or (s.cls_table[:, 0] < 0).any()):
        raise LoweringError("schedule has a task with a NaN value or a negative duration (it would never end); "
                            "its inputs carry a non-finite time or size")
    trim = _malloc_trim() if T > TRIM_TASKS else None
    if trim is not None:
        trim(0)
    narrow = lambda n: np.int16 if n < 2**15 else np.int32  # noqa: E731
    lanes = np.full(T, -1, dtype=narrow(int(s.res_capacity.max(initial=0))))
    most_deps = int(np.diff(s.dep_ptr).max(initial=0)) if T else 0
    out = run(s.kind, s.resource, s.server, s.cls, s.cls_table, s.priority, s.acquire,
              s.release, s.dep_ptr, s.dep_idx, s.res_capacity, s.res_bandwidth_Bps, s.srv_bandwidth_Bps, s.pool_slots,
              s.op, s.srv_by_op, lanes, np.empty(T, dtype=narrow(most_deps)), s.srv_path_Bps, s.category)
    start, end, wait, xdelay, capped, lane, blocker, bkind = out
    if s.num_tasks and np.isnan(end).any():
        stuck = int(np.flatnonzero(np.isnan(end))[0])
        raise RuntimeError(f"schedule deadlocked: task {stuck} ({s.task_name(stuck)}) never ran")
    return SimResult(schedule=s, start_s=start, end_s=end, wait_s=wait, xfer_delay_s=xdelay,
                     capped_s=capped, lane=lane, blocker=blocker, block_kind=bkind)
