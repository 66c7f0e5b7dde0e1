"""Topology of a system: the chip graph, dimension-order routing, hop counts, diameter,
bisection bandwidth, and the placement of parallel groups onto chips.

Chips are numbered node-major: chip ``c`` is local chip ``c % node_chips`` of node
``c // node_chips``. Inside a node with dims (ring, torus, mesh) local index ``i`` has
coordinates with the first dimension varying fastest (``i = x0 + d0 * (x1 + d1 * x2)``), so
consecutive chips are neighbours along the first dimension and a contiguous block of chips is a
box that fills the first dimensions first.

The graph (networkx ``DiGraph``) has one edge per *directed* link:

| kind              | edges                                                                 |
|-------------------|-----------------------------------------------------------------------|
| ring / torus      | each chip to its +1 and -1 neighbour in every dim, wrapping around     |
|                   | (only +1 when ``bidirectional`` is false; one link when the dim is 2)  |
| mesh              | as a torus without the wrap-around links                              |
| fully connected   | every ordered pair of chips of a node                                 |
| switch            | chip -> ("switch", node) -> chip (a star)                             |
| scale-out         | chip -> ("fabric",) -> chip (fat tree, full bisection) or             |
|                   | chip -> ("rail", local) -> chip of the same local index (rail)         |

Edge attributes: ``bandwidth_Bps`` (one direction, links_per_neighbour included; the NIC rate for
scale-out edges), ``latency_s`` (the link latency on chip-to-chip and chip-to-switch edges, 0 on
switch-to-chip edges, so chip-switch-chip costs one ``link_latency_s``), ``tier`` ("scale_up" or
"scale_out").

Routing is deterministic dimension-order routing: dimension 0 first; on a ring dimension the
shorter way round, ties going the + way (always + on a unidirectional ring); through the switch
on a switch; between nodes through the fabric (fat tree) or, on a rail fabric, first inside the
node to the chip with the destination's local index, then along that rail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Hashable, Mapping, Sequence

from ..errors import ConfigError, WorkloadError
from .spec import SystemSpec

if TYPE_CHECKING:
    import networkx as nx

Link = tuple[Hashable, Hashable]
"""A directed link: (from graph node, to graph node)."""

SCALE_UP, SCALE_OUT = 0, 1
"""Link classes: a scale-up link (interconnect bandwidth and latency) or a NIC (scale-out)."""

FABRIC = ("fabric",)


@dataclass(frozen=True)
class Topology:
    """The structure of a system's network (no bandwidths: those come from the spec). Built
    once per structure by ``topology(system)`` and cached; routes are cached on the object."""

    kind: str | None
    """Scale-up kind (None for one-chip nodes)."""
    dims: tuple[int, ...]
    """Node dims (() for switch / fully connected / one chip)."""
    node_chips: int
    num_chips: int
    wraps: bool
    bidirectional: bool
    fabric: str | None
    """Scale-out kind, None for a single node."""
    _routes: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_nodes(self) -> int:
        return self.num_chips // self.node_chips

    def node_of(self, chip: int) -> int:
        return chip // self.node_chips

    def local_of(self, chip: int) -> int:
        return chip % self.node_chips

    def coords(self, chip: int) -> tuple[int, ...]:
        """Coordinates of ``chip`` inside its node (dims topologies; () otherwise)."""
        i = chip % self.node_chips
        out = []
        for d in self.dims:
            out.append(i % d)
            i //= d
        return tuple(out)

    def chip_at(self, node: int, coords: Sequence[int]) -> int:
        """Chip id of ``coords`` in ``node``."""
        i, stride = 0, 1
        for x, d in zip(coords, self.dims):
            i += (x % d) * stride
            stride *= d
        return node * self.node_chips + i

    def _check(self, chip: int) -> None:
        if not 0 <= chip < self.num_chips:
            raise WorkloadError(f"chip {chip} is not in the system (chips 0..{self.num_chips - 1})")

    def _dim_steps(self, a: int, b: int, d: int) -> tuple[int, int]:
        """(direction, count) of the moves from coordinate a to b along a dim of size d."""
        if a == b:
            return 1, 0
        if not self.wraps:
            return (1, b - a) if b > a else (-1, a - b)
        fwd = (b - a) % d
        if not self.bidirectional:
            return 1, fwd
        back = d - fwd
        return (1, fwd) if fwd <= back else (-1, back)

    def _intra(self, src: int, dst: int) -> list[Link]:
        if src == dst:
            return []
        if self.kind == "switch":
            sw = ("switch", self.node_of(src))
            return [(src, sw), (sw, dst)]
        if self.kind == "fully_connected" or not self.dims:
            return [(src, dst)]
        cur = list(self.coords(src))
        goal = self.coords(dst)
        path: list[Link] = []
        here, stride = src, 1
        for i, d in enumerate(self.dims):  # dimension-ordered: walk each dim in turn
            step, count = self._dim_steps(cur[i], goal[i], d)
            for _ in range(count):
                nxt = (cur[i] + step) % d
                there = here + (nxt - cur[i]) * stride
                path.append((here, there))
                here, cur[i] = there, nxt
            stride *= d
        return path

    def route(self, src: int, dst: int) -> list[Link]:
        """The directed links a message from chip ``src`` to chip ``dst`` crosses, in order."""
        key = (src, dst)
        hit = self._routes.get(key)
        if hit is not None:
            return hit
        self._check(src)
        self._check(dst)
        if self.node_of(src) == self.node_of(dst):
            path = self._intra(src, dst)
        elif self.fabric == "rail":
            j = self.local_of(dst)
            hop = self.node_of(src) * self.node_chips + j
            rail = ("rail", j)
            path = self._intra(src, hop) + [(hop, rail), (rail, dst)]
        else:
            path = [(src, FABRIC), (FABRIC, dst)]
        self._routes[key] = path
        return path

    @staticmethod
    def is_chip(node: Hashable) -> bool:
        return isinstance(node, int)

    def link_class(self, link: Link) -> int:
        """SCALE_UP or SCALE_OUT."""
        u, v = link
        far = v if self.is_chip(u) else u
        return SCALE_OUT if isinstance(far, tuple) and far[0] in ("fabric", "rail") else SCALE_UP

    def link_latency_units(self, link: Link) -> int:
        """1 when the link carries its class's latency (it leaves a chip), 0 otherwise."""
        return 1 if self.is_chip(link[0]) else 0

    def hops(self, src: int, dst: int) -> int:
        """Chip-level hops from ``src`` to ``dst``: links that leave a chip (a switch or the
        fabric is one hop from chip to chip)."""
        return sum(1 for u, _ in self.route(src, dst) if self.is_chip(u))

    def links(self) -> list[Link]:
        """Every directed link of the system."""
        out: list[Link] = []
        m = self.node_chips
        for node in range(self.num_nodes):
            base = node * m
            if m > 1 and self.kind == "switch":
                sw = ("switch", node)
                for c in range(base, base + m):
                    out += [(c, sw), (sw, c)]
            elif m > 1 and self.kind == "fully_connected":
                out += [(a, b) for a in range(base, base + m) for b in range(base, base + m) if a != b]
            elif m > 1:
                seen = set()
                for c in range(base, base + m):
                    x = self.coords(c)
                    for i, d in enumerate(self.dims):
                        if d == 1:
                            continue
                        for step in ((1, -1) if self.bidirectional else (1,)):
                            y = x[i] + step
                            if not self.wraps and not 0 <= y < d:
                                continue
                            nxt = list(x)
                            nxt[i] = y % d
                            e = (c, self.chip_at(node, nxt))
                            if e not in seen:
                                seen.add(e)
                                out.append(e)
        if self.num_nodes > 1:
            for c in range(self.num_chips):
                hub = ("rail", self.local_of(c)) if self.fabric == "rail" else FABRIC
                out += [(c, hub), (hub, c)]
        return out


def _structure_key(system: SystemSpec) -> tuple:
    ic = system.interconnect
    m = system.chips_per_node
    so = system.scale_out
    return (ic.kind if ic is not None and m > 1 else None, tuple(ic.dims) if ic is not None and m > 1 else (),
            m, system.num_chips, ic.wraps if ic is not None else True,
            ic.bidirectional if ic is not None else True,
            (so.kind if so is not None else "fat_tree") if system.num_chips > m else None)


@lru_cache(maxsize=256)
def _topology(key: tuple) -> Topology:
    kind, dims, m, n, wraps, bidir, fabric = key
    if kind == "switch" or kind == "fully_connected":
        dims = ()
    return Topology(kind=kind, dims=dims, node_chips=m, num_chips=n, wraps=wraps, bidirectional=bidir,
                    fabric=fabric)


def topology(system: SystemSpec) -> Topology:
    """The (cached) structure of ``system``'s network."""
    return _topology(_structure_key(system))


def link_bandwidth_Bps(system: SystemSpec, cls: int) -> float:
    """Peak one-direction bandwidth of a link of class ``cls`` (no calibration)."""
    if cls == SCALE_OUT:
        return system.scale_out.nic_bandwidth_Bps
    ic = system.interconnect
    return ic.link_bandwidth_Bps * ic.links_per_neighbour


def link_latency_s(system: SystemSpec, cls: int) -> float:
    """Latency of one hop of class ``cls``."""
    if cls == SCALE_OUT:
        return system.scale_out.nic_latency_s
    return system.interconnect.link_latency_s


def chip_graph(system: SystemSpec) -> nx.DiGraph:
    """The system as a directed graph: chips are int nodes, switches and the scale-out fabric are
    tuple nodes; one edge per directed link with ``bandwidth_Bps``, ``latency_s`` and ``tier``."""
    topo = topology(system)
    import networkx as nx

    g = nx.DiGraph(name=system.name)
    g.add_nodes_from(range(system.num_chips), kind="chip")
    for u, v in topo.links():
        cls = topo.link_class((u, v))
        for x in (u, v):
            if not topo.is_chip(x) and x not in g:
                g.add_node(x, kind=x[0])
        g.add_edge(u, v, bandwidth_Bps=link_bandwidth_Bps(system, cls),
                   latency_s=link_latency_s(system, cls) * topo.link_latency_units((u, v)),
                   tier="scale_out" if cls == SCALE_OUT else "scale_up")
    return g


def route(system: SystemSpec, src: int, dst: int) -> list[Link]:
    """Dimension-order route from chip ``src`` to chip ``dst`` as a list of directed links."""
    return topology(system).route(src, dst)


def hops(system: SystemSpec, src: int, dst: int) -> int:
    """Chip-level hops of the route (a switch or the fabric counts as one hop)."""
    return topology(system).hops(src, dst)


def _intra_diameter(topo: Topology) -> int:
    if topo.node_chips == 1:
        return 0
    if not topo.dims:
        return 1
    if not topo.wraps:
        return sum(d - 1 for d in topo.dims)
    if not topo.bidirectional:
        return sum(d - 1 for d in topo.dims)
    return sum(d // 2 for d in topo.dims)


def diameter(system: SystemSpec) -> int:
    """Largest chip-level hop count between two chips:
    ring/torus: sum(d // 2) (sum(d - 1) unidirectional); mesh: sum(d - 1); switch and fully
    connected: 1; across nodes: max(intra, 1) on a fat tree, intra + 1 on rails."""
    topo = topology(system)
    intra = _intra_diameter(topo)
    if topo.num_nodes == 1:
        return intra
    return intra + 1 if topo.fabric == "rail" and topo.node_chips > 1 else max(intra, 1)


def _intra_bisection(system: SystemSpec) -> float:
    topo = topology(system)
    n = topo.node_chips
    if n == 1:
        return 0.0
    b = link_bandwidth_Bps(system, SCALE_UP)
    if not topo.dims:
        return (n // 2) * b if topo.kind == "switch" else (n // 2) * (n - n // 2) * b
    big = max(topo.dims)
    cut = 2 if (topo.wraps and topo.bidirectional and big > 2) else 1
    return n // big * cut * b


def bisection_bandwidth_Bps(system: SystemSpec) -> float:
    """One-direction bandwidth across the cut that splits the chips into two halves, bytes/s
    (peak). Torus / ring: cut across the largest dim D: N/D lines, each cut at 2 links (1 when
    D == 2, unidirectional or a mesh). Switch: N/2 chip links; fully connected: (N/2)^2 links.
    Several nodes: N/2 NICs (a fat tree and rails both have full bisection), plus the intra-node
    bisection of the node split in two when the node count is odd."""
    topo = topology(system)
    if topo.num_nodes == 1:
        return _intra_bisection(system)
    nic = system.scale_out.nic_bandwidth_Bps
    half = topo.num_nodes // 2
    extra = _intra_bisection(system) if topo.num_nodes % 2 else 0.0
    return half * topo.node_chips * nic + extra


# ------------------------------------------------------------------------------------------
# Embedding groups: boxes and rings

def box(topo: Topology, group: tuple[int, ...]) -> list[list[int]] | None:
    """Per dim, the group's coordinates in line order, when the group is a box in one node."""
    if not topo.dims or len({topo.node_of(c) for c in group}) != 1:
        return None
    cs = [topo.coords(c) for c in group]
    sets = [sorted({x[i] for x in cs}) for i in range(len(topo.dims))]
    if math.prod(len(s) for s in sets) != len(group) or len(set(cs)) != len(group):
        return None
    if topo.wraps:
        for i, (s, d) in enumerate(zip(sets, topo.dims)):
            if 1 < len(s) < d:  # start after the largest cyclic gap
                gaps = [((s[(k + 1) % len(s)] - s[k]) % d, k) for k in range(len(s))]
                k = max(gaps)[1]
                sets[i] = s[k + 1:] + s[:k + 1]
    return sets


def snake(lists: list[list]) -> list[tuple]:
    """Boustrophedon order over a product of lines (first varies fastest): consecutive
    entries differ by one step in one line."""
    if not lists:
        return [()]
    inner = snake(lists[:-1])
    out = []
    for j, y in enumerate(lists[-1]):
        out += [s + (y,) for s in (inner if j % 2 == 0 else inner[::-1])]
    return out


def _grid_cycle(cols: list, rows: list) -> list[tuple]:
    """A Hamiltonian cycle over cols x rows (each a path) when len(rows) is even: row 0 left to
    right, rows 1.. snake over columns 1.., back down column 0."""
    out = [(c, rows[0]) for c in cols]
    for j in range(1, len(rows)):
        seq = cols[1:][::-1] if j % 2 else cols[1:]
        out += [(c, rows[j]) for c in seq]
    out += [(cols[0], rows[j]) for j in range(len(rows) - 1, 0, -1)]
    return out


def _box_cycle(topo: Topology, node: int, sets: list[list[int]]) -> list[int]:
    """Chips of a box in ring order: all edges one hop when a Hamiltonian cycle exists."""
    act = [i for i, s in enumerate(sets) if len(s) > 1]
    fixed = [s[0] for s in sets]

    def chip(assign: dict[int, int]) -> int:
        return topo.chip_at(node, [assign.get(i, fixed[i]) for i in range(len(sets))])

    if len(act) <= 1:
        return [chip({act[0]: x}) if act else chip({}) for x in (sets[act[0]] if act else [0])]
    f, rest = act[0], act[1:]
    path = snake([sets[i] for i in rest])
    if len(path) % 2 == 0:
        cyc = [(x, r) for x, r in _grid_cycle(sets[f], path)]
    elif len(sets[f]) % 2 == 0:
        cyc = [(x, r) for r, x in _grid_cycle(path, sets[f])]
    else:  # every extent odd: no one-hop cycle; a snake, closed over a longer route
        cyc = [(s[0], s[1:]) for s in snake([sets[f]] + [sets[i] for i in rest])]
    return [chip({f: x, **dict(zip(rest, r))}) for x, r in cyc]


def by_node(topo: Topology, group: tuple[int, ...]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for c in group:
        out.setdefault(topo.node_of(c), []).append(c)
    return out


def node_orders(topo: Topology, group: tuple[int, ...]) -> list[list[int]]:
    """Each node's share of the group in ring order: a Hamiltonian cycle of a box (one-hop
    edges), else the given order."""
    out = []
    for node, chips in by_node(topo, group).items():
        sets = box(topo, tuple(chips))
        out.append(_box_cycle(topo, node, sets) if sets is not None else chips)
    return out


def ring_orders(topo: Topology, group: tuple[int, ...]) -> list[list[int]]:
    """The rings (channels) of a ring algorithm. One node: one ring. A group over K nodes with
    m chips each: m rings (like NCCL's channels), ring c entering every node at its c-th chip
    and leaving from the one before, so each chip's NIC carries one ring."""
    nodes = node_orders(topo, group)
    if len(nodes) > 1 and len({len(o) for o in nodes}) == 1:
        m = len(nodes[0])
        return [[c for o in nodes for c in o[j:] + o[:j]] for j in range(m)]
    order = [c for o in nodes for c in o]
    k = order.index(group[0])
    return [order[k:] + order[:k]]


# ------------------------------------------------------------------------------------------
# Placement of parallel groups

AXES = ("tp", "cp", "ep", "dp", "pp")


@dataclass(frozen=True)
class Placement:
    """Where each rank of a parallel layout runs. Rank ``r`` has axis indices with ``order[0]``
    varying fastest; ``chips[r]`` is its chip. ``groups[axis]`` lists the chips of every group
    along ``axis`` (the ranks that differ only in that axis), each in axis-index order."""

    order: tuple[str, ...]
    sizes: Mapping[str, int]
    chips: tuple[int, ...]
    groups: Mapping[str, tuple[tuple[int, ...], ...]]

    @property
    def world(self) -> int:
        return len(self.chips)

    def index(self, rank: int) -> dict[str, int]:
        """Axis indices of ``rank``."""
        out = {}
        for ax in self.order:
            out[ax] = rank % self.sizes[ax]
            rank //= self.sizes[ax]
        return out

    def chip(self, **idx: int) -> int:
        """Chip of the rank with the given axis indices (missing axes are 0)."""
        rank, stride = 0, 1
        for ax in self.order:
            rank += idx.get(ax, 0) * stride
            stride *= self.sizes[ax]
        return self.chips[rank]

    def group_of(self, axis: str, chip: int) -> tuple[int, ...]:
        """The ``axis`` group that contains ``chip``."""
        for g in self.groups[axis]:
            if chip in g:
                return g
        raise WorkloadError(f"chip {chip} is not placed")


def place(system: SystemSpec, tp: int = 1, pp: int = 1, dp: int = 1, ep: int = 1, cp: int = 1,
          order: Sequence[str] = ("tp", "cp", "ep", "dp", "pp"),
          explicit: Sequence[int] | None = None) -> Placement:
    """Place a tp x cp x ep x dp x pp layout on ``system``'s chips.

    Ranks are laid out with ``order[0]`` fastest (tensor parallel first by default) and rank
    ``r`` goes to chip ``r``: chips are numbered node-major with the first torus dimension
    fastest, so a TP group is contiguous inside a node (along the first torus dims), then
    CP / EP / DP fill the rest of the node and PP spans nodes. ``explicit`` (the chip of each
    rank) overrides this mapping."""
    sizes = {"tp": tp, "cp": cp, "ep": ep, "dp": dp, "pp": pp}
    for ax, s in sizes.items():
        if int(s) != s or s < 1:
            raise WorkloadError(f"{ax} must be a positive integer, got {s}")
    order = tuple(order)
    if sorted(order) != sorted(set(order)) or not set(order) <= set(AXES):
        raise WorkloadError(f"order must name distinct axes among {AXES}, got {list(order)}")
    for ax in AXES:
        if ax not in order:
            if sizes[ax] != 1:
                raise WorkloadError(f"order {list(order)} leaves out {ax} = {sizes[ax]}")
            order += (ax,)
    world = math.prod(sizes.values())
    if world > system.num_chips:
        raise WorkloadError(f"tp*cp*ep*dp*pp = {world} ranks need {world} chips; {system.name} has "
                            f"{system.num_chips}")
    if explicit is None:
        chips = tuple(range(world))
    else:
        chips = tuple(int(c) for c in explicit)
        if len(chips) != world:
            raise WorkloadError(f"explicit placement lists {len(chips)} chips for {world} ranks")
        if len(set(chips)) != world or not all(0 <= c < system.num_chips for c in chips):
            raise WorkloadError(f"explicit placement must list {world} distinct chips in 0..{system.num_chips - 1}")
    strides, s = {}, 1
    for ax in order:
        strides[ax] = s
        s *= sizes[ax]
    groups: dict[str, tuple[tuple[int, ...], ...]] = {}
    for ax in AXES:
        out = []
        for r in range(world):
            if (r // strides[ax]) % sizes[ax] == 0:
                out.append(tuple(chips[r + k * strides[ax]] for k in range(sizes[ax])))
        groups[ax] = tuple(out)
    return Placement(order=order, sizes=sizes, chips=chips, groups=groups)


# ------------------------------------------------------------------------------------------
# Scale-out replication

def scale_out_system(system: SystemSpec, chips: int) -> SystemSpec:
    """``system`` replicated to ``chips`` chips: its nodes (``node_chips``, else all its chips)
    joined by its ``scale_out`` network."""
    from ..limits import check_chips

    check_chips(chips, f"{system.name} scaled out")
    if system.scale_out is None:
        raise ConfigError(f"{system.name} has no scale_out network, so it cannot be replicated to {chips} chips")
    node = system.chips_per_node
    if chips < 1 or chips % node:
        raise ConfigError(f"{chips} chips is not a multiple of {system.name}'s node of {node} chips")
    name = system.name if chips == system.num_chips else f"{system.name}x{chips // node}"
    data = system.model_dump()
    data.update(name=name, num_chips=chips, node_chips=node)
    return SystemSpec.model_validate(data)
