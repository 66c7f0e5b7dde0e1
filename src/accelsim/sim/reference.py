"""Pure-Python reference engine: the semantics of ``engine.run`` written plainly with heapq and
Python lists, for tests on small random schedules. Slow; never used for real runs."""

from __future__ import annotations

import heapq
import math

import numpy as np

from ..lower.schedule import CAT_DMA_OUT, Schedule
from .result import SimResult

BUSY, XFER, DELAY = 0, 1, 2


def _waterfill(caps: list[float], weights: list[float], bw: float) -> list[float]:
    """Raise every flow's rate together; a flow stops at its cap; the server's load is the sum
    of weight x rate. The level is found in rounds: the flows whose caps are under the level
    the others would share are fixed at their caps, until none is."""
    wsum = 0.0
    for w in weights:
        wsum += w
    fixed = [False] * len(caps)
    left, level = bw, math.inf
    while not all(fixed) and wsum > 0.0:
        level = max(0.0, left) / wsum
        changed = False
        for j, c in enumerate(caps):
            if not fixed[j] and c <= level:
                fixed[j] = True
                left -= weights[j] * c
                wsum -= weights[j]
                changed = True
        if not changed:
            break
        level = math.inf
    return [c if c < level else level for c in caps]


def _core_op_groups(s: Schedule) -> tuple[list[tuple[int, int] | None], dict[tuple[int, int], float]]:
    """Each transfer on a resource with a bandwidth of its own: its (resource, op) pair (None for
    every other task); and the bytes of each pair."""
    of: list[tuple[int, int] | None] = [None] * s.num_tasks
    total: dict[tuple[int, int], float] = {}
    for t in range(s.num_tasks):
        r = int(s.resource[t])
        if s.kind[t] == XFER and r >= 0 and s.res_bandwidth_Bps[r] > 0:
            of[t] = (r, int(s.op[t]))
            total[of[t]] = total.get(of[t], 0.0) + s.value("nbytes", t)
    return of, total


def _by_remaining(caps: list[float], loads: list[float], rems: list[float], total: float) -> list[float]:
    """Rates of flows sharing ``total`` of load (a flow at rate r loads it with ``loads[i] x r``)
    in proportion to the bytes each has left (``rems``, at least 1), each at most its cap."""
    w = [max(x, 1.0) for x in rems]
    scaled = _waterfill([c / wi for c, wi in zip(caps, w)], [ld * wi for ld, wi in zip(loads, w)], total)
    return [min(c, r * wi) for c, r, wi in zip(caps, scaled, w)]


def _class_rates(s: Schedule, transfers: list[int], key: list[int], bw: float, res_used: dict[int, float],
                 path: float, rem) -> tuple[dict[int, tuple[float, bool]], float, float]:
    """Rates of one priority class: a resource with its own bandwidth (less what earlier classes
    used of it, ``res_used``) makes its transfers one flow; flows are water-filled on ``bw``;
    such flows of one op then share what they got in proportion to the bytes their (resource,
    op) pair has left (``rem(task)``); the resources' flows together take at most ``path``
    (water-filled again on it the same way, each capped at its first rate, when they would take
    more: held so, a flow counts as DMA-limited); a flow's rate is handed out in key order, its
    loads and its stores as two chains. Returns the rates and what is left of ``bw`` and of
    ``path``."""
    n_res = len(s.res_capacity)

    def group(x: int) -> int:  # a resource with a bandwidth of its own, else the transfer alone
        r = int(s.resource[x])
        return r if r >= 0 and s.res_bandwidth_Bps[r] > 0 else n_res + x

    ordered = sorted(transfers, key=lambda x: (group(x), key[x]))
    flows: list[list[int]] = []
    for x in ordered:
        if flows and group(flows[-1][0]) == group(x):
            flows[-1].append(x)
        else:
            flows.append([x])
    caps, weights = [], []
    for members in flows:
        lead = members[0]
        g = group(lead)
        if g < n_res:
            total = 0.0
            for x in members:
                total += s.value("cap_Bps", x)
            caps.append(max(0.0, min(float(s.res_bandwidth_Bps[g]) - res_used.get(g, 0.0), total)))
        else:
            caps.append(s.value("cap_Bps", lead))
        weights.append(s.value("weight", lead))
    out: dict[int, tuple[float, bool]] = {}
    rates = _waterfill(caps, weights, max(0.0, bw))
    # the resources' flows of one op share what they got together by the bytes each has left
    ops: dict[int, list[int]] = {}
    for i, members in enumerate(flows):
        if group(members[0]) < n_res and weights[i] > 0.0:
            ops.setdefault(int(s.op[members[0]]), []).append(i)
    for idx in ops.values():
        if len({max(rem(flows[i][0]), 1.0) for i in idx}) > 1:  # else each already has its share
            total = sum(weights[i] * rates[i] for i in idx)
            new = _by_remaining([caps[i] for i in idx], [weights[i] for i in idx], [rem(flows[i][0]) for i in idx], total)
            for i, r in zip(idx, new):
                rates[i] = r
    held = [False] * len(flows)
    own = [i for i, members in enumerate(flows) if group(members[0]) < n_res]
    if sum(rates[i] for i in own) > path:
        rems = [rem(flows[i][0]) for i in own]
        if len({max(x, 1.0) for x in rems}) > 1:
            new = _by_remaining([rates[i] for i in own], [1.0] * len(own), rems, max(0.0, path))
        else:
            new = _waterfill([rates[i] for i in own], [1.0] * len(own), max(0.0, path))
        for i, r in zip(own, new):
            if r < rates[i]:
                rates[i], held[i] = r, True
    for members, fcap, fw, frate, h in zip(flows, caps, weights, rates, held):
        g = group(members[0])
        if g < n_res:
            res_used[g] = res_used.get(g, 0.0) + frate
            path -= frate
        bw -= fw * frate
        # a core's loads and stores: two in-order chains, half the flow each when both move
        share = {False: frate, True: 0.0}
        split = False
        if g < n_res:
            stores = [x for x in members if s.category[x] == CAT_DMA_OUT]
            if 0 < len(stores) < len(members):
                cap_st = sum(s.value("cap_Bps", x) for x in stores)
                cap_ld = sum(s.value("cap_Bps", x) for x in members if s.category[x] != CAT_DMA_OUT)
                ld = min(cap_ld, 0.5 * frate)
                st = min(cap_st, frate - ld)
                share = {False: min(cap_ld, frate - st), True: st}
                split = True
        for x in members:
            d = bool(split and s.category[x] == CAT_DMA_OUT)
            r = min(s.value("cap_Bps", x), share[d])
            share[d] -= r
            out[x] = (r, frate >= fcap or h or r >= s.value("cap_Bps", x))
    return out, bw, path


def _server_rates(s: Schedule, srv: int, transfers: list[int], key: list[int],
                  rem) -> dict[int, tuple[float, bool]]:
    """(rate, limited by its own DMA) of each transfer on server ``srv``. A server that serves
    ops in program order gives each op's transfers, earliest op first, what the earlier ops
    left (of the server and of each DMA resource); otherwise all transfers form one class."""
    bw, path = float(s.srv_bandwidth_Bps[srv]), float(s.srv_path_Bps[srv])
    if not s.srv_by_op[srv]:
        return _class_rates(s, transfers, key, bw, {}, path, rem)[0]
    out: dict[int, tuple[float, bool]] = {}
    res_used: dict[int, float] = {}
    for o in sorted({int(s.op[x]) for x in transfers}):
        rates, bw, path = _class_rates(s, [x for x in transfers if int(s.op[x]) == o], key, bw, res_used, path, rem)
        out.update(rates)
    return out


def run(s: Schedule) -> SimResult:
    T = s.num_tasks
    start = [math.nan] * T
    end = [math.nan] * T
    ready = [math.nan] * T
    xstart = [math.nan] * T
    capped = [0.0] * T
    lane = [-1] * T
    blocker = [-1] * T
    bkind = [0] * T
    key = [int(s.priority[t]) * T + t for t in range(T)]
    group_of, grp_left = _core_op_groups(s)

    def rem(t: int) -> float:  # bytes the transfer's (core, op) pair has not finished
        return grp_left[group_of[t]] if group_of[t] is not None else 0.0
    deps = [list(map(int, s.deps(t))) for t in range(T)]
    succ: list[list[int]] = [[] for _ in range(T)]
    for t in range(T):
        for d in deps[t]:
            succ[d].append(t)
    indeg = [len(d) for d in deps]
    R, S = len(s.res_capacity), len(s.srv_bandwidth_Bps)
    queues: list[list[int]] = [[] for _ in range(R)]  # heaps of keys
    lanes_busy = [[False] * int(c) for c in s.res_capacity]
    free = [int(c) for c in s.res_capacity]
    slots = [int(x) for x in s.pool_slots]
    last_res = [(-1, -math.inf)] * R
    last_pool = [(-1, -math.inf)] * len(slots)
    last_dep = [-1] * T
    timers: list[tuple[float, int, int, str]] = []
    seq = 0
    active: list[list[int]] = [[] for _ in range(S)]
    # a transfer's bytes left as of ``since``, its rate and DMA limit since then, and its end at
    # that rate: brought up to date only when its rate or limit changes
    rates = [0.0] * T
    limited = [False] * T
    left = [0.0] * T
    since = [0.0] * T
    ends = [math.inf] * T
    now = 0.0

    def make_ready(t: int, by: int) -> None:
        nonlocal seq
        ready[t] = now
        last_dep[t] = by
        if s.resource[t] >= 0:
            heapq.heappush(queues[s.resource[t]], key[t])
        else:
            start[t] = now
            if by >= 0:
                blocker[t], bkind[t] = by, 1
            heapq.heappush(timers, (now + s.value("duration_s", t), seq, t, "end"))
            seq += 1

    for t in range(T):
        if indeg[t] == 0:
            make_ready(t, -1)
    done = 0
    while done < T:
        for r in range(R):
            hol = -1  # the slot release that let this round's queue head start
            while queues[r] and free[r] > 0:
                t = queues[r][0] % T
                p = int(s.acquire[t])
                if p >= 0 and slots[p] == 0:
                    break
                heapq.heappop(queues[r])
                if p >= 0:
                    slots[p] -= 1
                k = lanes_busy[r].index(False)
                lanes_busy[r][k] = True
                free[r] -= 1
                lane[t], start[t] = k, now
                if ready[t] == now and last_dep[t] >= 0:
                    blocker[t], bkind[t] = last_dep[t], 1
                elif ready[t] < now:
                    if p >= 0 and last_pool[p][1] == now and last_res[r][1] < now:
                        blocker[t], bkind[t] = last_pool[p][0], 3
                        hol = blocker[t] if hol < 0 else hol
                    elif hol >= 0 and last_res[r][1] < now:
                        blocker[t], bkind[t] = hol, 3
                    else:
                        blocker[t], bkind[t] = last_res[r][0], 2
                what = "lat" if s.kind[t] == XFER else "end"
                heapq.heappush(timers, (now + s.value("duration_s", t), seq, t, what))
                seq += 1
        for srv in range(S):
            for x, (r, lim) in _server_rates(s, srv, active[srv], key, rem).items():
                if r != rates[x] or lim != limited[x]:
                    el = now - since[x]
                    if el > 0.0:
                        left[x] -= rates[x] * el
                        if limited[x]:
                            capped[x] += el
                    since[x] = now
                    rates[x], limited[x] = r, lim
                    ends[x] = now + left[x] / r if r > 0.0 else math.inf
        t_next = timers[0][0] if timers else math.inf
        for srv in range(S):
            for x in active[srv]:
                t_next = min(t_next, ends[x])
        if t_next == math.inf:
            break
        finished: list[int] = []
        for srv in range(S):
            for x in [x for x in active[srv] if ends[x] <= t_next]:
                if limited[x]:
                    capped[x] += t_next - since[x]
                finished.append(x)
                active[srv].remove(x)
        now = t_next
        while timers and timers[0][0] == now:
            _, _, t, what = heapq.heappop(timers)
            if what == "lat":
                xstart[t] = now
                if s.value("nbytes", t) > 0:
                    active[s.server[t]].append(t)
                    left[t], since[t] = s.value("nbytes", t), now
                    continue
            finished.append(t)
        for t in sorted(finished, key=lambda t: key[t]):
            end[t] = now
            if group_of[t] is not None:
                grp_left[group_of[t]] -= s.value("nbytes", t)
            if math.isnan(xstart[t]):
                xstart[t] = start[t]
            done += 1
            r = int(s.resource[t])
            if r >= 0:
                lanes_busy[r][lane[t]] = False
                free[r] += 1
                last_res[r] = (t, now)
            p = int(s.release[t])
            if p >= 0:
                slots[p] += 1
                last_pool[p] = (t, now)
            for u in succ[t]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    make_ready(u, t)
    f = lambda x, dt=float: np.array(x, dtype=dt)  # noqa: E731
    # the transfer's latency phase and DMA-limited time as the numba engine keeps them (float32)
    delay = [(x if x == x else s0) - s0 for x, s0 in zip(xstart, start)]
    return SimResult(schedule=s, start_s=f(start), end_s=f(end), wait_s=(f(start) - f(ready)).astype(np.float32),
                     xfer_delay_s=f(delay, np.float32),
                     capped_s=f(capped, np.float32), lane=f(lane, np.int32), blocker=f(blocker, np.int32),
                     block_kind=f(bkind, np.int8))
