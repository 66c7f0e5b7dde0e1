"""The physical links of a system as shared resources of one schedule, and collectives lowered
onto them in bulk: the event tier of a whole training step, where every parallel group's
traffic crosses the same links.

A collective here is one delay (the analytical tier's latency: library call, protocol steps,
routes, software overhead) followed by one transfer per directed link its algorithm uses,
carrying every byte the plan moves over that link in all its steps. Alone, a collective takes
exactly the analytical tier's time: each transfer is capped at the link's rate scaled so that
the busiest link finishes in ``collective_cost``'s bandwidth time. Together, the transfers of
all collectives on a link share its bandwidth max-min fairly (the event engine), so tensor-,
data- and pipeline-parallel traffic that crosses one NIC or one NVLink port slows each other
down, and groups on disjoint links do not. The per-step detail of an algorithm (a ring's
chunks, pipelining between steps) is ``collective_schedule``'s, not this module's.

``private=True`` gives every group its own copy of each link (no sharing): the comparison the
tests make.
"""

from __future__ import annotations

from ..arch.spec import SystemSpec
from ..arch.topology import topology
from ..cost.collectives import collective_cost, collective_plan, link_terms
from .collective_schedule import _link_name
from .schedule import CAT_LINK, CAT_OVERHEAD, DELAY, XFER, ScheduleBuilder

LINK_SERVERS = 16
"""Transfers that may share one link at once (more wait for a server)."""


class Fabric:
    """Links of ``system`` in ``builder``; collectives and point-to-point sends on them."""

    def __init__(self, builder: ScheduleBuilder, system: SystemSpec, library=None, private: bool = False):
        self.b, self.system, self.library, self.private = builder, system, library, private
        self.topo = topology(system)
        self.raw = link_terms(system, "allreduce", 1.0, 2).bandwidth_Bps if system.num_chips > 1 else {}
        """Link class -> a link's full rate (no protocol or library derating); none on one chip."""
        self.links: dict[tuple, tuple[int, int]] = {}
        self.plans: dict[tuple, tuple[float, list[tuple[tuple, float, float]]]] = {}

    def _link(self, link, owner: tuple) -> tuple[int, int]:
        key = (link, owner) if self.private else (link,)
        got = self.links.get(key)
        if got is None:
            u, v = link
            cls = self.topo.link_class(link)
            chip = u if isinstance(u, int) else v
            name = _link_name(u, v) + (f" [{'.'.join(map(str, owner))}]" if self.private else "")
            got = self.links[key] = (self.b.resource(name, "link", capacity=LINK_SERVERS, chip=chip),
                                     self.b.bandwidth_server(name, self.raw[cls], chip))
        return got

    def _route_bytes(self, pairs) -> dict[tuple, float]:
        out: dict[tuple, float] = {}
        for src, dst, nbytes in pairs:
            for link in self.topo.route(src, dst):
                out[link] = out.get(link, 0.0) + nbytes
        return out

    def _plan(self, kind: str, nbytes: float, chips: tuple[int, ...]):
        """(latency_s, [(link, bytes, cap_Bps)]) of one collective, cached."""
        key = (kind, nbytes, chips)
        got = self.plans.get(key)
        if got is None:
            p, lib = len(chips), self.library
            r = collective_cost(self.system, kind, nbytes, p, chips=chips, library=lib)
            if kind == "sendrecv":
                pairs = [(chips[0], chips[1], nbytes)]
            else:
                plan = collective_plan(self.system, kind, nbytes, p, chips=chips, library=lib)
                pairs = [(a, c, f * nbytes * st.repeat) for st in plan.steps for a, c, f in st.transfers]
            per_link = self._route_bytes(pairs)
            rate = {link: self.raw[self.topo.link_class(link)] for link in per_link}
            alone = max((by / rate[link] for link, by in per_link.items()), default=0.0)
            scale = alone / r.bandwidth_s if r.bandwidth_s > 0 and alone > 0 else 1.0
            got = self.plans[key] = (r.latency_s, [(link, by, rate[link] * scale) for link, by in per_link.items()])
        return got

    def collective(self, op: int, kind: str, nbytes: float, chips: tuple[int, ...], deps, priority: int,
                   owner: tuple = ()) -> list[int]:
        """Lower one collective over ``chips`` after ``deps``; the ids of its final tasks."""
        latency, links = self._plan(kind, float(nbytes), tuple(chips))
        start = self.b.task(DELAY, CAT_OVERHEAD, op, deps, duration_s=latency, priority=priority)
        if not links:
            return [start]
        return [self.b.task(XFER, CAT_LINK, op, (start,), resource=res, server=srv, nbytes=by, cap_Bps=cap,
                            priority=priority)
                for link, by, cap in links for res, srv in (self._link(link, owner or chips),)]

    def sends(self, op: int, pairs, deps, priority: int, owner: tuple = ()) -> list[int]:
        """Point-to-point sends ``(src, dst, bytes)`` started together after ``deps`` (pipeline
        activations: one per tensor-parallel rank), each at the library's send-recv cost alone."""
        ends: list[int] = []
        for src, dst, nbytes in pairs:
            ends += self.collective(op, "sendrecv", nbytes, (src, dst), deps, priority, owner)
        return ends
