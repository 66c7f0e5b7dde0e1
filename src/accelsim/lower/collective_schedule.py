"""Event tier for collectives: an algorithm's plan (``collectives.collective_plan``) as link
transfers on the event engine.

Decomposition:

- **Links.** One resource (class "link") and one bandwidth server per directed link of the
  topology; concurrent transfers over a link hold servers of its resource at once and share its
  bandwidth max-min fairly (the engine re-divides it at every start and finish). The resource
  has as many servers as transfers may overlap on it (on very large systems fewer, to bound
  the engine's memory: the extra transfers then wait for a server).
- **Transfers, cut-through.** A transfer from chip A to chip B along a route of h links is h
  hop tasks released together, one per link, each moving all the bytes through its link's
  server; hop k's latency phase is the route latency up to and including link k. The
  transfer is done when all its hops are done, so an uncontended transfer costs
  ``route latency + bytes / bandwidth`` and a contended one the bottleneck link's share.
  (Switch: chip -> switch and switch -> chip hops; the latency sits on the chip -> switch link.)
- **Steps.** A plan is a list of steps of concurrent transfers. A rank's sends in step k wait
  for everything it received in its last receiving step and for its own sends of its last
  sending step (a ring rank forwards a chunk once it has arrived, one chunk at a time), so ring
  reduce-scatter / all-gather pipeline exactly as the algorithm does.
- **Overhead.** ``collective_overhead_s`` is one delay before the first step.
- **Library.** Under a stack's collective library the algorithm and protocol are the ones the
  analytical tier picks (``collective_cost``); the call latency joins the first delay, links
  move data at the library's fraction times the protocol's (the in-switch fraction for
  ``in_switch``; the scale-out fraction on NICs), and every transfer of a step pays the
  protocol's step latency (the library's scale-out step latency, if larger, in a step that
  crosses the scale-out network). A hierarchical plan runs every part with the first part's
  protocol (the analytical tier lets each part pick its own).

Reduction arithmetic is not modelled (the analytical tier counts it as vector work).
"""

from __future__ import annotations

from ..arch.spec import SystemSpec
from ..cost.collectives import KINDS, collective_plan, link_terms
from ..arch.topology import SCALE_OUT, topology
from ..errors import WorkloadError
from .schedule import CAT_LINK, CAT_OVERHEAD, DELAY, XFER, Schedule, ScheduleBuilder


ENGINE_TABLE_ENTRIES = 20_000_000
"""Bound on links x link servers (the event engine keeps one row of active transfers per
bandwidth server, as wide as all servers together)."""


def _link_name(u, v) -> str:
    def name(x):
        return f"chip{x}" if isinstance(x, int) else "/".join(str(p) for p in x)
    return f"link {name(u)}->{name(v)}"


def _ensure_link(b: ScheduleBuilder, name: str, bw: float, chip: int, servers: int) -> tuple[int, int]:
    """The link's resource and bandwidth server; a link that already exists in the builder
    (another collective's) gets ``servers`` more servers, so the two share it, never queue."""
    if name in b._res_index:
        r = b._res_index[name]
        old = b.res[r]
        b.res[r] = (old[0], old[1], old[2] + servers, old[3], old[4])
    else:
        r = b.resource(name, "link", capacity=servers, chip=chip)
    return r, b.bandwidth_server(name, bw, chip)


def collective_schedule(system: SystemSpec, kind: str, bytes_per_rank: float, ranks: int,
                        algorithm: str | None = None, chips=None, builder: ScheduleBuilder | None = None,
                        deps=None, name: str | None = None, library=None) -> Schedule | list[int]:
    """Lower one collective to link transfers (under ``library``, a stack's collective library;
    None: the ideal bound). Without ``builder``: a Schedule of its own. With ``builder``: the
    tasks are added to it after ``deps`` (task ids) and the ids of the tasks that finish the
    collective are returned."""
    if kind not in KINDS:
        raise WorkloadError(f"unknown collective {kind!r}; known: {', '.join(KINDS)}")
    n = float(bytes_per_rank)
    terms = link_terms(system, kind, n, ranks, algorithm, chips, library)
    plan = collective_plan(system, kind, n, ranks, None if terms.algorithm == "none" else terms.algorithm, chips,
                           library)
    topo = topology(system)
    own = builder is None
    b = ScheduleBuilder() if own else builder
    op = b.op(name or f"{kind} {plan.algorithm} x{ranks}", "collective", kind)
    cal = system.chip.calibration
    ic, so = system.interconnect, system.scale_out
    bw = terms.bandwidth_Bps
    lat = {0: ic.link_latency_s if ic else 0.0, SCALE_OUT: so.nic_latency_s if so else 0.0}
    call = terms.call_latency_s

    # servers per link: the most hop tasks one step puts on it, doubled (neighbouring steps may
    # overlap), at most the link's total; and at most what keeps the engine's table of active
    # transfers (links x servers of all links) under ENGINE_TABLE_ENTRIES
    per_step: dict = {}
    total: dict = {}
    for st in plan.steps:
        seen: dict = {}
        for src, dst, _ in st.transfers:
            for link in topo.route(src, dst):
                seen[link] = seen.get(link, 0) + 1
        for link, c in seen.items():
            per_step[link] = max(per_step.get(link, 0), c)
            total[link] = total.get(link, 0) + c * st.repeat
    cap = max(4, ENGINE_TABLE_ENTRIES // max(1, len(per_step)) ** 2)
    links = {}
    for link in per_step:
        u, v = link
        cls = topo.link_class(link)
        chip = u if isinstance(u, int) else v
        links[link] = (*_ensure_link(b, _link_name(u, v), bw[cls], chip, min(total[link], 2 * per_step[link], cap)),
                       lat[cls] * topo.link_latency_units(link))

    start = [d for d in (deps or ()) if d is not None and d >= 0]
    if cal.collective_overhead_s + call > 0 or not start:
        start = [b.task(DELAY, CAT_OVERHEAD, op, start, duration_s=cal.collective_overhead_s + call)]
    last_recv: dict[int, list[int]] = {}
    last_send: dict[int, list[int]] = {}
    k = 0
    for st in plan.steps:
        crosses = any(topo.link_class(link) == SCALE_OUT for a, c, _ in st.transfers for link in topo.route(a, c))
        sl = terms.step_latency_out_s if crosses else terms.step_latency_s
        for _ in range(st.repeat):
            recv: dict[int, list[int]] = {}
            send: dict[int, list[int]] = {}
            for src, dst, frac in st.transfers:
                after = last_recv.get(src, []) + last_send.get(src, []) or start
                acc = sl
                hops = []
                for link in topo.route(src, dst):
                    res, srv, l_s = links[link]
                    acc += l_s
                    hops.append(b.task(XFER, CAT_LINK, op, after, resource=res, server=srv, duration_s=acc,
                                       nbytes=frac * n, priority=k))
                recv.setdefault(dst, []).extend(hops)
                send.setdefault(src, []).extend(hops)
            last_recv.update(recv)
            last_send.update(send)
            k += 1
    ends = sorted({t for ts in last_recv.values() for t in ts} | {t for ts in last_send.values() for t in ts}) or start
    return b.build() if own else ends
