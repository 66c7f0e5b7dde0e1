"""Collective algorithms on the system's topology: analytical (alpha-beta) time with link
contention.

Every algorithm is a **plan**: a sequence of steps; a step is a set of concurrent point-to-point
transfers (src chip, dst chip, bytes), each routed on the topology (``arch.topology``). The
analytical time of a step is the time its busiest link drains: a link whose transfers' bytes
W_j reach it after latencies e_j (the route latency up to and including that link) finishes at

    t_link = max_k ( e_k + sum_{j: e_j >= e_k} W_j / bandwidth ),   t_step = max over links t_link

(with one latency class this is ``route latency + bytes on the busiest link / bandwidth``) and
a collective costs ``T = sum of its steps + o`` (plus, under a library, its protocol's ``base_latency_s``
once per call). The event tier (``collective_schedule``)
simulates the same plans link by link; the two agree within 1% on rings, tori, meshes,
switches and fully connected nodes (tests/test_collectives.py).

Notation: ``n`` = bytes_per_rank, ``p`` = ranks, ``B`` = one-direction bandwidth between two
neighbours (link bandwidth x links per neighbour x ``link_efficiency``), ``a`` = link latency
(chip-switch-chip counts one ``a``), ``B_o``, ``a_o`` = the same for a chip's scale-out NICs,
``o`` = ``collective_overhead_s`` (once per call). ``n`` is the all-reduce buffer, the
reduce-scatter input, the all-gather contribution (output ``p n``), the all-to-all send buffer
(``n/p`` to each peer), the broadcast / send-recv message.

| algorithm            | all-reduce on one node, contiguous group (closed forms)          |
|----------------------|------------------------------------------------------------------|
| `ring`               | 2(p-1) (n/(pB) + h a); h = 1 on a closed ring, a torus box, a    |
|                      | switch, fully connected; h = g-1 on an open line (mesh, part of a |
|                      | torus dim: the closing edge goes back over the reverse links)    |
| `bidirectional_ring` | 2(p-1) (n/(2pB) + a): two rings, opposite directions, disjoint    |
|                      | links (not on a switch, whose ports a single ring already fills) |
| `multidim_ring`      | box g_1 x .. x g_q (q >= 2): q parts of n/q run at once, part j   |
|                      | reduce-scatters over the dims in the rotated order j, j+1, ..    |
|                      | then all-gathers in reverse, so each phase of the parts uses     |
|                      | different dims' links. Cube g^q: 2 sum_t (g-1)(n/(q g^t w B) + a),|
|                      | w = 2 on closed bidirectional dims, else 1                       |
| `direct`             | RS + AG, every rank sends n/p to every peer at once: fully       |
|                      | connected 2(n/(pB) + a); switch 2((p-1)n/(pB) + a)               |
| `in_switch`          | n/B + a (NVLink SHARP: every chip pushes n and pulls n at once)  |
| `halving_doubling`   | p = 2^k: RS sends n/2, n/4, .. n/p to partners at rank distance   |
|                      | 1, 2, .. p/2, AG mirrors it: switch / FC 2(p-1)n/(pB) + 2 k a     |
| `recursive_doubling` | p = 2^k: k exchanges of n: k (n/B + a) (small messages)          |
| `hierarchical`       | groups over m chips in each of K nodes: intra RS(n) + inter      |
|                      | AR(n/m) over the NICs (m rails at once) + intra AG(n/m), each    |
|                      | part chosen by the rule below; e.g. ring inter part:             |
|                      | 2(K-1)(n/(mK B_o) + a_o)                                         |

Reduce-scatter and all-gather are the two halves of the all-reduce (ring: (p-1)(n/(pB) + a)
and (p-1)(n/B + a)). All-to-all: `direct` ((p-1) n/(pB) + a through a switch, n/(pB) + a fully
connected; on tori the routes' link loads give the bisection-bound time). Broadcast: `direct`
(root sends n to each peer), `tree` (binomial, ceil(log2 p) (n/B + a)), `ring` (pipelined in p
chunks: (2p-2)(n/(pB) + a)). Send/recv: n/B_path + route latency.

**Choice rule**: with ``algorithm=None`` the predicted time is computed for every applicable
algorithm and the smallest wins; ties (within 1e-9 relative) go to the earlier name in
``ALGORITHMS``. ``direct`` is a candidate for all-reduce / reduce-scatter / all-gather only
on a switch, fully connected node or a group of at most 16 chips; `halving_doubling` and
`recursive_doubling` need a power-of-two group. Groups larger than the system are refused.

The network as the costs read it (calibrated rates, the library's protocols and fractions, its
point-to-point rules) is ``cost.collective_net``; the plans are ``cost.collective_plans``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ..arch.spec import SystemSpec
from ..arch.topology import SCALE_OUT, SCALE_UP, Topology, box, by_node, topology
from ..errors import WorkloadError
from ..limits import check_chips
from ..stack.spec import CollectiveLibrary
from ..workload.ops import Collective
from .collective_net import (IDEAL, P2P_KINDS, Net, Proto, net_of, p2p_fill, p2p_host_s, protocols_for,
                             rate_and_step)
from .collective_plans import ALGORITHMS, Plan, Step, flat_plan, size_units, zip_steps

KINDS = ("allreduce", "allgather", "reducescatter", "alltoall", "broadcast", "sendrecv")
BUSBW_FACTOR = {"allreduce": lambda p: 2 * (p - 1) / p, "allgather": lambda p: (p - 1) / p,
                "reducescatter": lambda p: (p - 1) / p, "alltoall": lambda p: (p - 1) / p,
                "broadcast": lambda p: 1.0, "sendrecv": lambda p: 1.0}
"""nccl-tests' bus-bandwidth factor: busbw = S/t * factor(p)."""
DIRECT_MAX_RANKS = 16


@dataclass(frozen=True)
class CollectiveResult:
    """Predicted cost of one collective call."""

    kind: str
    algorithm: str
    ranks: int
    bytes_per_rank: float
    time_s: float
    """bandwidth_s + latency_s."""
    bandwidth_s: float
    """Data time: the sum over steps of the busiest link's bytes / bandwidth."""
    latency_s: float
    """Route latencies of the steps plus the collective's software overhead."""
    bytes_sent_per_chip: float
    """Bytes the busiest sender injects (forwarding by intermediate hops not counted)."""
    busbw_Bps: float
    """nccl-tests bus bandwidth: S/t * factor (all-reduce 2(p-1)/p, all-gather / reduce-scatter /
    all-to-all (p-1)/p, broadcast / send-recv 1), S the nccl-tests size (p n for all-gather)."""
    algbw_Bps: float
    """S / t."""
    detail: str = ""
    protocol: str = ""
    """Protocol of the collective library that runs it ("" without a library: ideal mode)."""


@dataclass(frozen=True)
class _StepCost:
    repeat: int
    profiles: tuple[tuple[int, tuple[tuple[int, int, float], ...]], ...]
    """Distinct link profiles of the step: (link class, ((scale-up hops, scale-out hops) of
    latency before the bytes reach the link, bytes / bytes_per_rank arriving then), ...))."""


def _summary(topo: Topology, steps: tuple[Step, ...]) -> tuple[tuple[_StepCost, ...], float]:
    """Per step: the arrival profile of every link (deduplicated); and the busiest sender's
    bytes (in units of bytes_per_rank)."""
    out = []
    sent: dict[int, float] = {}
    seen: dict[tuple, tuple] = {}  # steps alike (a ring's steps move the same chunks) profiled once
    traits: dict = {}
    for st in steps:
        for src, _, frac in st.transfers:
            sent[src] = sent.get(src, 0.0) + frac * st.repeat
        hit = seen.get(st.transfers)
        if hit is not None:
            out.append(_StepCost(st.repeat, hit))
            continue
        links: dict = {}
        for src, dst, frac in st.transfers:
            hu = ho = 0
            for link in topo.route(src, dst):
                kind = traits.get(link)
                if kind is None:  # (latency units, class) of each link, looked up once
                    kind = traits[link] = (topo.link_latency_units(link), topo.link_class(link))
                if kind[0]:
                    if kind[1] == SCALE_OUT:
                        ho += 1
                    else:
                        hu += 1
                prof = links.setdefault(link, {})
                prof[(hu, ho)] = prof.get((hu, ho), 0.0) + frac
        profiles = {(traits[link][1], tuple(sorted((hu, ho, f) for (hu, ho), f in prof.items())))
                    for link, prof in links.items()}
        seen[st.transfers] = tuple(sorted(profiles))
        out.append(_StepCost(st.repeat, seen[st.transfers]))
    return tuple(out), max(sent.values(), default=0.0)


@lru_cache(maxsize=4096)
def _flat_summary(topo: Topology, kind: str, algorithm: str, group: tuple[int, ...]):
    return _summary(topo, flat_plan(topo, kind, algorithm, group))


@lru_cache(maxsize=1024)
def _chain(topo: Topology, group: tuple[int, ...]) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
    """Edges of the broadcast chain: (links of each class on the route, latency hops per class)."""
    steps = flat_plan(topo, "broadcast", "ring", group)
    edges = dict.fromkeys((a, b) for st in steps for a, b, _ in st.transfers)
    out = []
    for a, b in edges:
        route = topo.route(a, b)
        cls = [topo.link_class(x) for x in route]
        lat = [topo.link_latency_units(x) for x in route]
        out.append(((cls.count(SCALE_UP), cls.count(SCALE_OUT)),
                    (sum(u for u, c in zip(lat, cls) if c == SCALE_UP), sum(u for u, c in zip(lat, cls) if c == SCALE_OUT))))
    return tuple(out)


def _pipeline(net: Net, group: tuple[int, ...], n: float) -> tuple[float, float, float]:
    """Pipelined chain broadcast in p chunks: a flow shop, sum of the stage times plus
    (chunks - 1) times the slowest stage (stage = chunk / route bottleneck + route latency)."""
    chunk = n / len(group)
    stages = []
    for (cu, co), (hu, ho) in _chain(net.topo, group):
        bw = min(net.bw_up if cu else math.inf, net.bw_out if co else math.inf)
        stages.append((chunk / bw, hu * net.lat_up + ho * net.lat_out))
    slow = max(stages, key=lambda s: s[0] + s[1])
    extra = len(group) - 1
    return (sum(s[0] for s in stages) + extra * slow[0], sum(s[1] for s in stages) + extra * slow[1], n)


def _evaluate(net: Net, kind: str, algorithm: str, group: tuple[int, ...], n: float,
              proto: Proto = IDEAL[0]) -> tuple[float, float, float]:
    """(bandwidth seconds, latency seconds, bytes sent by the busiest chip) under ``proto``. A
    step ends when its last link drains: a link whose bytes W_j arrive after latencies e_j
    (route latency up to and including the link) finishes at max_k (e_k + sum_{e_j >= e_k} W_j /
    bandwidth); every step also pays the protocol's step latency (the library's scale-out step
    latency when it crosses the scale-out network; an in-switch reduction's step, the library's
    in-switch step latency where it sets one). Data moves at the protocol's fraction of the link
    rate; an in-switch reduction at the library's in-switch fraction instead."""
    if kind == "broadcast" and algorithm == "ring":
        bw, lat, sent = _pipeline(net, group, n)
        return bw / proto.bw_fraction, lat + (2 * len(group) - 2) * proto.step_latency_s + proto.base_latency_s, sent
    steps, sent = _step_terms(net, kind, algorithm, group)
    frac, own = rate_and_step(net, algorithm, proto)
    bws = (net.bw_up * frac, net.bw_out * frac)
    bw, lat = 0.0, proto.base_latency_s * p2p_fill(net, kind, n, group)
    for repeat, crosses, cands in steps:
        be = bt = 0.0
        for cls, e, f in cands:
            t = f * n / bws[cls]
            if e + t > be + bt:
                be, bt = e, t
        step = max(own, net.step_latency_out_s) if crosses else own
        lat += repeat * (be + step)
        bw += repeat * bt
    return bw, lat, sent * n


@lru_cache(maxsize=4096)
def _step_terms(net: Net, kind: str, algorithm: str, group: tuple[int, ...]
                ) -> tuple[tuple[tuple[int, bool, tuple[tuple[int, float, float], ...]], ...], float]:
    """The plan's steps as ``_evaluate`` prices them, whatever the size and protocol: per step
    (repeat, whether it crosses the scale-out network, its candidate finishing terms (link
    class, latency e_k in seconds, bytes arriving at or after e_k in units of bytes_per_rank)));
    and the busiest sender's bytes in those units."""
    costs, sent = _flat_summary(net.topo, kind, algorithm, group)
    out = []
    for c in costs:
        cands = []
        for cls, prof in c.profiles:
            arr = [(hu * net.lat_up + ho * net.lat_out, f) for hu, ho, f in prof]
            cands += [(cls, e, sum(f for e2, f in arr if e2 >= e)) for e, _ in arr]
        out.append((c.repeat, any(cls == SCALE_OUT for cls, _ in c.profiles), tuple(cands)))
    return tuple(out), sent


def _floor_s(net: Net, kind: str, algorithm: str, group: tuple[int, ...], n: float, proto: Proto) -> float:
    """A lower bound on ``_evaluate``'s bandwidth + latency seconds from the plan alone (no
    routes): a step lasts at least as long as its largest transfer takes on the faster link
    class, plus its own step latency. 0 where the cost is not a flat plan's."""
    if kind == "broadcast" and algorithm == "ring":
        return 0.0
    base, largest, rate, steps_s = _floor_terms(net, kind, algorithm, group, proto)
    if rate <= 0:
        return 0.0
    return base * p2p_fill(net, kind, n, group) + largest * n / rate + steps_s


@lru_cache(maxsize=8192)
def _floor_terms(net: Net, kind: str, algorithm: str, group: tuple[int, ...], proto: Proto
                 ) -> tuple[float, float, float, float]:
    """``_floor_s``' terms that do not depend on the size: the protocol's base latency, the plan's
    largest transfers (units of bytes_per_rank), the faster link class's rate and the steps'
    own latencies."""
    frac, own = rate_and_step(net, algorithm, proto)
    rate = max(net.bw_up, net.bw_out) * frac
    if rate <= 0:
        return 0.0, 0.0, rate, 0.0
    largest, steps = _plan_steps(net.topo, kind, algorithm, group)
    return proto.base_latency_s, largest, rate, steps * own


@lru_cache(maxsize=4096)
def _plan_steps(topo: Topology, kind: str, algorithm: str, group: tuple[int, ...]) -> tuple[float, int]:
    """Over the steps of a flat plan: the sum of each step's largest transfer (in units of
    bytes_per_rank, times its repeat) and the number of steps (repeats included)."""
    plan = flat_plan(topo, kind, algorithm, group)
    return (sum(st.repeat * max((f for _, _, f in st.transfers), default=0.0) for st in plan),
            sum(st.repeat for st in plan))


# ------------------------------------------------------------------------------------------
# Choice

def _levels(topo: Topology, group: tuple[int, ...]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]] | None:
    """(per-node subgroups, per-rail groups) of a group spread evenly over several nodes."""
    nodes = by_node(topo, group)
    sizes = {len(v) for v in nodes.values()}
    if len(nodes) < 2 or len(sizes) != 1 or sizes == {1}:
        return None
    intra = [tuple(v) for v in nodes.values()]
    return intra, [tuple(sub[j] for sub in intra) for j in range(len(intra[0]))]


def applicable(system: SystemSpec, kind: str, group: tuple[int, ...]) -> list[str]:
    """Algorithms that can run ``kind`` on ``group`` (chip ids), in preference order."""
    return list(_applicable(net_of(system), kind, tuple(group)))


@lru_cache(maxsize=4096)
def _applicable(net: Net, kind: str, group: tuple[int, ...]) -> tuple[str, ...]:
    topo = net.topo
    p = len(group)
    single = len({topo.node_of(c) for c in group}) == 1
    switch = single and topo.kind == "switch"
    if kind in ("sendrecv", "alltoall"):
        return ("direct",)
    if kind == "broadcast":
        return ("direct", "tree", "ring")
    out = []
    if kind == "allreduce" and switch and net.sharp:
        out.append("in_switch")
    if _levels(topo, group) is not None:
        out.append("hierarchical")
    if single and topo.dims:
        sets = box(topo, group)
        if sets is not None and sum(len(s) > 1 for s in sets) >= 2:
            out.append("multidim_ring")
    per_node = {len(v) for v in by_node(topo, group).values()}
    if topo.kind != "switch" and p > 2 and per_node != {1}:  # a switch / fabric port already works both ways
        out.append("bidirectional_ring")
    out += ["ring", "direct"]
    if p & (p - 1) == 0:
        out.append("halving_doubling")
        if kind == "allreduce":
            out.append("recursive_doubling")
    return tuple(out)


def _group(system: SystemSpec, ranks: int, chips) -> tuple[int, ...]:
    if chips is None:
        if ranks > system.num_chips:
            hint = (" (arch.topology.scale_out_system replicates it over its scale-out network)"
                    if system.scale_out is not None else "")
            raise WorkloadError(f"a collective over {ranks} chips needs a system with at least {ranks} chips; "
                                f"{system.name} has {system.num_chips}{hint}")
        return tuple(range(ranks))
    group = tuple(int(c) for c in chips)
    if len(group) != ranks:
        raise WorkloadError(f"chips lists {len(group)} chips for {ranks} ranks")
    if len(set(group)) != ranks or not all(0 <= c < system.num_chips for c in group):
        raise WorkloadError(f"chips must be {ranks} distinct chips of 0..{system.num_chips - 1}")
    return group


def _hier_parts(kind: str, m: int, k: int) -> list[tuple[str, str, float]]:
    """(level, kind, bytes per rank as a fraction of n) of a hierarchical collective."""
    if kind == "allreduce":
        return [("intra", "reducescatter", 1.0), ("inter", "allreduce", 1.0 / m), ("intra", "allgather", 1.0 / m)]
    if kind == "reducescatter":
        return [("intra", "reducescatter", 1.0), ("inter", "reducescatter", 1.0 / m)]
    return [("inter", "allgather", 1.0), ("intra", "allgather", float(k))]


@lru_cache(maxsize=4096)
def _candidates(net: Net, kind: str, group: tuple[int, ...], algorithm: str | None) -> tuple[str, ...]:
    """The algorithms ``_cost`` prices for ``kind`` over ``group`` (``algorithm`` alone when
    given, checked), in preference order; worked out once per network, kind and group."""
    topo = net.topo
    names = _applicable(net, kind, group)
    if algorithm is not None:
        if algorithm not in ALGORITHMS:
            raise WorkloadError(f"unknown collective algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
        if algorithm not in names:
            raise WorkloadError(f"algorithm {algorithm!r} does not apply to {kind} over {len(group)} chips of "
                                f"{net.name}; applicable: {', '.join(names)}")
        return (algorithm,)
    if len(group) > DIRECT_MAX_RANKS and not (topo.kind in ("switch", "fully_connected") and
                                               len({topo.node_of(c) for c in group}) == 1):
        names = tuple(a for a in names if a != "direct" or kind in ("alltoall", "broadcast", "sendrecv"))
    if net.algorithms:
        # on a fully connected node a library's rings run as several channels over all the links
        # (NCCL builds one ring per channel), which the ``direct`` plan's bandwidth models
        allowed = set(net.algorithms) | ({"direct"} if topo.kind == "fully_connected" else set())
        names = tuple(a for a in names if a in allowed) or names
    return names


@lru_cache(maxsize=8192)
def _cost(net: Net, kind: str, n: float, group: tuple[int, ...], algorithm: str | None
          ) -> tuple[float, float, float, str, str, tuple, str]:
    """(bandwidth s, latency s, sent bytes, algorithm, detail, hierarchical parts, protocol)
    without the per-call costs; cached."""
    topo = net.topo
    names = _candidates(net, kind, group, algorithm)
    top = max((p.bw_fraction for p in net.protocols), default=0.0)
    best = None
    for name in names:
        if name == "hierarchical":
            intra, rails = _levels(topo, group)
            bw = lat = sent = 0.0
            subs = []
            for level, sub_kind, frac in _hier_parts(kind, len(intra[0]), len(intra)):
                g = intra[0] if level == "intra" else rails[0]
                b, la, s, a, _, _, pr = _cost(net, sub_kind, n * frac, g, None)
                bw, lat, sent = bw + b, lat + la, sent + s
                subs.append((level, sub_kind, frac, a, pr))
            cand = (bw, lat, sent, name, " + ".join(f"{lv} {k} {a}" + (f" {pr}" if pr else "")
                                                    for lv, k, _, a, pr in subs),
                    tuple(s[:4] for s in subs), "/".join(dict.fromkeys(pr for *_, pr in subs if pr)))
            if best is None or cand[0] + cand[1] < (best[0] + best[1]) * (1 - 1e-9):
                best = cand
            continue
        for proto in protocols_for(net, kind, n, len(group)):
            if n > proto.max_bytes or (name == "in_switch" and proto.bw_fraction < top):
                continue  # an in-switch reduction runs the bulk protocol (NCCL's NVLS uses Simple)
            if best is not None and _floor_s(net, kind, name, group, n, proto) >= (best[0] + best[1]) * (1 - 1e-9):
                continue  # cannot win: not worth routing its steps
            bw, lat, sent = _evaluate(net, kind, name, group, n, proto)
            cand = (bw, lat, sent, name, "", (), proto.name)
            if best is None or cand[0] + cand[1] < (best[0] + best[1]) * (1 - 1e-9):
                best = cand
    return best


def collective_cost(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int,
                    algorithm: str | None = None, chips=None, library: CollectiveLibrary | None = None
                    ) -> CollectiveResult:
    """Predicted time of one collective (analytical tier). ``chips``: the chip of each rank
    (default: chips 0..ranks-1, i.e. contiguous within a node along the first torus dims).
    ``library``: the stack's collective library (protocols, step and call latencies, achieved
    bandwidth fractions); None is the ideal bound (peak links, no software latency)."""
    if kind not in KINDS:
        raise WorkloadError(f"unknown collective {kind!r}; known: {', '.join(KINDS)}")
    n, p = float(bytes_per_rank), int(ranks)
    if not (math.isfinite(n) and n >= 0):
        raise WorkloadError(f"{kind}: bytes per rank must be a finite number >= 0, got {bytes_per_rank!r}")
    if p < 1:
        raise WorkloadError(f"{kind}: ranks must be >= 1, got {ranks!r}")
    if kind == "sendrecv" and p != 2:
        raise WorkloadError(f"sendrecv needs 2 ranks, got {p}")
    check_chips(p, f"{kind} over {p:,} ranks")
    if p <= 1 or n <= 0:
        return CollectiveResult(kind, "none", p, n, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    bw, lat, sent, name, detail, proto = _terms(system, kind, n, p, algorithm, chips, library)
    t = bw + lat
    size = n * size_units(kind, p)
    algbw = size / t if t > 0 else math.inf
    return CollectiveResult(kind, name, p, n, t, bw, lat, sent, algbw * BUSBW_FACTOR[kind](p), algbw, detail, proto)


def collective_terms(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int,
                     library: CollectiveLibrary | None = None) -> tuple[float, float, float, str]:
    """(bandwidth seconds, latency seconds, bytes sent per chip, algorithm) of ``collective_cost``
    over chips 0..ranks-1, without its result record (the analytical tier's ops need no more)."""
    n, p = float(bytes_per_rank), int(ranks)
    if kind not in KINDS or not (math.isfinite(n) and n >= 0) or p < 1 or (kind == "sendrecv" and p != 2):
        r = collective_cost(system, kind, bytes_per_rank, ranks, library=library)  # its message
        return r.bandwidth_s, r.latency_s, r.bytes_sent_per_chip, r.algorithm
    check_chips(p, f"{kind} over {p:,} ranks")
    if p <= 1 or n <= 0:
        return 0.0, 0.0, 0.0, "none"
    bw, lat, sent, name, _, _ = _terms(system, kind, n, p, None, None, library)
    return bw, lat, sent, name


def _terms(system: SystemSpec, kind: str, n: float, p: int, algorithm: str | None, chips,
           library: CollectiveLibrary | None) -> tuple[float, float, float, str, str, str]:
    """``collective_cost``'s (bandwidth s, latency s, sent bytes, algorithm, detail, protocol) of
    ``n`` bytes per rank over ``p`` > 1 ranks, the per-call costs included."""
    bw, lat, sent, name, detail, _, proto = _cost(net_of(system, library), kind, n, _group(system, p, chips),
                                                  algorithm)
    lat += system.chip.calibration.collective_overhead_s + (library.call_latency_s if library else 0.0)
    lat += p2p_host_s(kind, p, library)
    return bw, lat, sent, name, detail, proto


@dataclass(frozen=True)
class LinkTerms:
    """What the event tier needs to run a collective's plan as ``collective_cost`` prices it."""

    algorithm: str
    bandwidth_Bps: dict[int, float]
    """Link class (``SCALE_UP``, ``SCALE_OUT``) -> the rate data moves at on one link of it."""
    step_latency_s: float
    """Latency every transfer of a step pays (the protocol's)."""
    step_latency_out_s: float
    """The same in a step that crosses the scale-out network."""
    call_latency_s: float
    """The library's per-call latency and its protocol's base latency (0 without one)."""


def link_terms(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int, algorithm: str | None = None,
               chips=None, library: CollectiveLibrary | None = None) -> LinkTerms:
    """The algorithm, per-link rates and step latencies ``collective_cost`` uses (a hierarchical
    collective: its first part's protocol, where the analytical tier lets each part pick)."""
    net = net_of(system, library)
    n, p = float(bytes_per_rank), int(ranks)
    name, proto, fill = algorithm or "none", IDEAL[0], 1.0
    if p > 1 and n > 0:
        group = _group(system, p, chips)
        fill = p2p_fill(net, kind, n, group)
        c = _cost(net, kind, n, group, algorithm)
        name, proto_name = c[3], c[6]
        proto = next((x for x in net.protocols if x.name == proto_name.split("/")[0]), proto)
    frac, step = rate_and_step(net, name, proto)
    return LinkTerms(name, {SCALE_UP: net.bw_up * frac, SCALE_OUT: net.bw_out * frac}, step,
                     max(step, net.step_latency_out_s),
                     library.call_latency_s + proto.base_latency_s * fill + p2p_host_s(kind, p, library) if library
                     else 0.0)


def collective_plan(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int,
                    algorithm: str | None = None, chips=None, library: CollectiveLibrary | None = None) -> Plan:
    """The steps of the algorithm ``collective_cost`` picks (or ``algorithm``)."""
    if kind not in KINDS:
        raise WorkloadError(f"unknown collective {kind!r}; known: {', '.join(KINDS)}")
    n, p = float(bytes_per_rank), int(ranks)
    if p <= 1 or n <= 0:
        return Plan("none", ())
    group = _group(system, p, chips)
    topo = topology(system)
    _, _, _, name, detail, subs, _ = _cost(net_of(system, library), kind, n, group, algorithm)
    if name != "hierarchical":
        return Plan(name, flat_plan(topo, kind, name, group), detail)
    intra, rails = _levels(topo, group)
    steps: list[Step] = []
    for level, sub_kind, frac, sub_algo in subs:
        groups = intra if level == "intra" else rails
        parts = []
        for g in groups:
            sub = collective_plan(system, sub_kind, n * frac, len(g), sub_algo, g, library)
            parts.append(tuple(Step(tuple((a, b, f * frac) for a, b, f in st.transfers), st.repeat)
                               for st in sub.steps))
        steps += zip_steps(parts)
    return Plan(name, tuple(steps), detail)


def collective_time(system: SystemSpec, op: Collective, library: CollectiveLibrary | None = None
                    ) -> tuple[float, float, float, str]:
    """(bandwidth time, latency + software overhead, bytes sent per chip, algorithm name) of
    ``op`` over chips 0..group-1 (the analytical tier's view of a Collective op)."""
    r = collective_cost(system, op.op, op.bytes_per_rank, op.group, library=library)
    return r.bandwidth_s, r.latency_s, r.bytes_sent_per_chip, r.algorithm


__all__ = ["KINDS", "ALGORITHMS", "BUSBW_FACTOR", "CollectiveResult", "LinkTerms", "P2P_KINDS", "applicable",
           "collective_cost", "collective_plan", "collective_terms", "collective_time", "link_terms", "p2p_host_s"]
