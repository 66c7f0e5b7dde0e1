"""The network a collective runs on, as its costs see it: the topology's calibrated rates and
latencies under a collective library (its protocols, bandwidth fractions, step latencies) and the
library's rules for point-to-point kinds (the protocols they may run, the pipeline fill of a part
smaller than a step, the host cost of each grouped send and receive). ``IDEAL`` (no library) is
the peak-rate bound."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..arch.spec import SystemSpec
from ..arch.topology import Topology, topology
from ..errors import WorkloadError
from ..memo import IdentityCache
from ..stack.spec import CollectiveLibrary
from .collective_plans import ALGORITHMS


@dataclass(frozen=True)
class Proto:
    """A protocol as the cost needs it (``IDEAL``: no library, peak rates, no step latency)."""

    name: str
    bw_fraction: float
    step_latency_s: float
    max_bytes: float
    base_latency_s: float = 0.0


IDEAL = (Proto("", 1.0, 0.0, math.inf),)


@dataclass(frozen=True)
class Net:
    """What costs depend on: the structure, the calibrated rates, SHARP, the name (messages),
    and the collective library's protocols and fractions (``IDEAL`` without one)."""

    topo: Topology
    bw_up: float
    bw_out: float
    lat_up: float
    lat_out: float
    sharp: bool
    name: str
    protocols: tuple[Proto, ...] = IDEAL
    step_latency_out_s: float = 0.0
    in_switch_fraction: float = 1.0
    algorithms: tuple[str, ...] = ()
    p2p_protocols: tuple[str, ...] = ()
    p2p_ll_max: float = math.inf
    in_switch_latency_s: float = 0.0
    """Step latency of an in-switch reduction (the library's, else its bulk protocol's)."""
    p2p_channels: int = 0
    p2p_per_peer: int = 0
    p2p_step: float = 0.0
    """The library's point-to-point channels, channels per peer and step bytes (0: not given)."""

    def __hash__(self) -> int:  # the costs' caches hash it on every lookup: hash the fields once
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(tuple(getattr(self, f) for f in self.__dataclass_fields__))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> dict:  # string hashes differ between processes: never ship one
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}


_NETS = IdentityCache(64)


def net_of(system: SystemSpec, library: CollectiveLibrary | None = None) -> Net:
    """The network of ``system`` under ``library`` (built once per pair of objects)."""
    return _NETS.get((system, library), lambda: _make_net(system, library))


def _make_net(system: SystemSpec, library: CollectiveLibrary | None) -> Net:
    eff = system.chip.calibration.link_efficiency
    ic, so = system.interconnect, system.scale_out
    unknown = [a for a in (library.algorithms if library else ()) if a not in ALGORITHMS]
    if unknown:
        raise WorkloadError(f"collective library {library.name!r}: algorithms: unknown {unknown[0]!r}; "
                            f"known: {', '.join(ALGORITHMS)}")
    up, out = (library.bandwidth_fraction, library.scale_out_bandwidth_fraction) if library else (1.0, 1.0)
    protos = IDEAL if library is None else tuple(
        Proto(p.name, p.bandwidth_fraction, p.step_latency_s, math.inf if p.max_bytes is None else p.max_bytes,
               p.base_latency_s)
        for p in library.protocols)
    return Net(topology(system),
                ic.link_bandwidth_Bps * ic.links_per_neighbour * eff * up if ic is not None else math.inf,
                so.nic_bandwidth_Bps * eff * out if so is not None else math.inf,
                ic.link_latency_s if ic is not None else 0.0, so.nic_latency_s if so is not None else 0.0,
                bool(ic is not None and ic.in_switch_reduction), system.name, protos,
                library.scale_out_step_latency_s if library else 0.0,
                library.in_switch_bandwidth_fraction / up if library else 1.0,
                tuple(library.algorithms) if library else (),
                tuple(library.p2p_protocols) if library else (),
                float(library.p2p_ll_max_bytes) if library and library.p2p_ll_max_bytes else math.inf,
                library.in_switch_step_s if library else 0.0,
                library.p2p_channels if library else 0, library.p2p_channels_per_peer if library else 0,
                float(library.p2p_step_bytes or 0.0) if library else 0.0)


P2P_KINDS = ("alltoall", "sendrecv")
"""Kinds a library runs as grouped point-to-point sends and receives."""


def protocols_for(net: Net, kind: str, n: float, p: int) -> tuple[Proto, ...]:
    """The protocols ``kind`` may run under: for a point-to-point kind, the library's
    ``p2p_protocols``, LL only while the message to one peer is within ``p2p_ll_max_bytes``."""
    if kind not in P2P_KINDS or not net.p2p_protocols:
        return net.protocols
    per_peer = n / p if kind == "alltoall" else n
    return tuple(x for x in net.protocols if x.name in net.p2p_protocols
                 and not (x.name == "LL" and per_peer > net.p2p_ll_max))


def p2p_host_s(kind: str, ranks: int, library: CollectiveLibrary | None) -> float:
    """Host cost of the point-to-point operations a grouped call enqueues on each device
    (``CollectiveLibrary.p2p_op_host_s``): an all-to-all's ranks - 1 sends and ranks - 1
    receives; 0 for any other kind."""
    if library is None or kind != "alltoall":
        return 0.0
    return 2 * (ranks - 1) * library.p2p_op_host_s


def p2p_fill(net: Net, kind: str, n: float, group: tuple[int, ...]) -> float:
    """The fraction of its bulk protocol's base latency (the pipeline's fill) a point-to-point
    transfer pays: one part's share of a pipeline step. NCCL splits each peer's message over
    ``c`` channels, ``c`` the library's channels per peer halved until ``c * ranks`` fits its
    point-to-point channels, in parts of ``max(step / 8, message / c)`` bytes (a message under
    an eighth of a step is one part); a part under a step fills that fraction of it
    (NVIDIA/nccl ``scheduleP2pTasksToPlan``: ``minSize = stepSize / 8``). 1 for other kinds, for
    a library that gives no channels, and across nodes (the network's chunking is not
    modelled)."""
    if kind not in P2P_KINDS or not net.p2p_step or len({net.topo.node_of(c) for c in group}) > 1:
        return 1.0
    p = len(group)
    per_peer = n / p if kind == "alltoall" else n
    c = net.p2p_per_peer
    while c * p > net.p2p_channels and c > 1:
        c //= 2
    part = min(per_peer, max(net.p2p_step / 8, per_peer / c))
    return min(1.0, part / net.p2p_step)


def rate_and_step(net: Net, algorithm: str, proto: Proto) -> tuple[float, float]:
    """(fraction of the link rate data moves at, latency of one step) of ``algorithm`` under
    ``proto``: an in-switch reduction has the library's in-switch ones."""
    if algorithm == "in_switch":
        return net.in_switch_fraction, net.in_switch_latency_s
    return proto.bw_fraction, proto.step_latency_s


__all__ = ["Proto", "IDEAL", "Net", "net_of", "P2P_KINDS", "protocols_for", "p2p_host_s", "p2p_fill",
           "rate_and_step"]
