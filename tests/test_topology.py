"""Topology: spec validation of multi-node systems, the chip graph, routing, hop counts,
diameter, bisection bandwidth, placement and scale-out presets. Expected values are counted by
hand from the topology definitions."""

from __future__ import annotations

import networkx as nx
import pytest
from pydantic import ValidationError

from accelsim.arch import load_system
from accelsim.arch.topology import (FABRIC, bisection_bandwidth_Bps, chip_graph, diameter, hops, place, route,
                                    scale_out_system, topology)
from accelsim.errors import ConfigError, WorkloadError
from conftest import make_system

GB = 1e9


def ring(n=8, **kw):
    return make_system(num_chips=n, interconnect={"kind": "ring", "dims": [n], "link_bandwidth_Bps": "100 GB/s", **kw})


def grid(kind, dims, **kw):
    n = 1
    for d in dims:
        n *= d
    return make_system(num_chips=n, interconnect={"kind": kind, "dims": list(dims), "link_bandwidth_Bps": "100 GB/s", **kw})


def two_level(nodes=2, node=8, fabric="fat_tree", kind="switch"):
    ic = {"kind": kind, "link_bandwidth_Bps": "450 GB/s"}
    return make_system(num_chips=nodes * node, node_chips=node, interconnect=ic,
                       scale_out={"nic_bandwidth_Bps": "400 Gbps", "kind": fabric})


# --------------------------------------------------------------------------------------------
# Spec

def test_mesh_kinds_need_their_dims():
    assert grid("mesh2d", (4, 4)).interconnect.kind == "mesh2d"
    assert grid("mesh3d", (2, 2, 2)).interconnect.wraps is False
    with pytest.raises(ValidationError, match="mesh3d needs dims with 3 entries"):
        make_system(num_chips=16, interconnect={"kind": "mesh3d", "dims": [4, 4], "link_bandwidth_Bps": 1e9})


def test_unidirectional_ring_has_half_the_injection_bandwidth():
    assert ring().interconnect.chip_bandwidth_Bps(8) == 200 * GB           # +1 and -1 neighbour
    assert ring(bidirectional=False).interconnect.chip_bandwidth_Bps(8) == 100 * GB
    with pytest.raises(ValidationError, match="only meaningful for a ring or torus"):
        make_system(num_chips=4, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9, "bidirectional": False})


def test_node_validation():
    s = make_system(num_chips=32, node_chips=16, interconnect={"kind": "torus2d", "dims": [4, 4], "link_bandwidth_Bps": 1e9},
                    scale_out={"nic_bandwidth_Bps": "50 Gbps"})
    assert (s.chips_per_node, s.num_nodes, s.scale_out.nic_bandwidth_Bps) == (16, 2, 6.25e9)
    with pytest.raises(ValidationError, match="not a multiple of node_chips"):
        make_system(num_chips=24, node_chips=16, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9},
                    scale_out={"nic_bandwidth_Bps": 1e9})
    with pytest.raises(ValidationError, match="need a scale_out network"):
        make_system(num_chips=16, node_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9})
    with pytest.raises(ValidationError, match=r"hold 16 chips but a node has 32"):
        make_system(num_chips=32, interconnect={"kind": "torus2d", "dims": [4, 4], "link_bandwidth_Bps": 1e9})
    with pytest.raises(ValidationError, match="unknown|Extra inputs|extra"):
        make_system(num_chips=16, node_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9},
                    scale_out={"nic_bandwidth_Bps": 1e9, "nic_bandwith_Bps": 1})


def test_scale_out_system_replicates_the_node():
    s = scale_out_system(load_system("dgx-h100"), 32)
    assert (s.num_chips, s.chips_per_node, s.num_nodes) == (32, 8, 4)
    assert s.name == "dgx-h100x4"
    assert s.scale_out.nic_bandwidth_Bps == 50 * GB               # 400 Gb/s NDR per GPU
    assert s.interconnect == load_system("dgx-h100").interconnect
    with pytest.raises(ConfigError, match="no scale_out"):
        scale_out_system(load_system("tpu-v4-64"), 128)
    with pytest.raises(ConfigError, match="not a multiple"):
        scale_out_system(load_system("dgx-h100"), 12)


# per-chip NIC bandwidth per direction, derived from the cited per-node figures
SCALE_OUT = [("dgx-a100", 200e9 / 8), ("dgx-h100", 400e9 / 8), ("dgx-h200", 400e9 / 8),
             ("trn1-32xl", 800e9 / 16 / 8), ("trn2-48xl", 3200e9 / 16 / 8), ("tpu-v5e-256", 2 * 100e9 / 8 / 8),
             ("mi300x-8", 400e9 / 8)]


@pytest.mark.parametrize("name,nic", SCALE_OUT, ids=[s[0] for s in SCALE_OUT])
def test_preset_scale_out(name, nic):
    s = load_system(name)
    assert s.scale_out.nic_bandwidth_Bps == pytest.approx(nic, rel=1e-12)
    assert s.num_nodes == 1 and s.chips_per_node == s.num_chips


@pytest.mark.parametrize("name", ["tpu-v4-64", "a100x4-nvlink", "inf2-48xl"])
def test_presets_without_a_cited_scale_out(name):
    assert load_system(name).scale_out is None


# --------------------------------------------------------------------------------------------
# Graph

@pytest.mark.parametrize("system,nodes,edges", [
    (ring(8), 8, 16),                                  # +1 and -1 per chip
    (ring(8, bidirectional=False), 8, 8),              # +1 only
    (grid("torus2d", (4, 4)), 16, 64),                 # 4 neighbours per chip
    (grid("torus2d", (2, 2)), 4, 8),                   # a dim of 2 has one neighbour
    (grid("mesh2d", (4, 4)), 16, 48),                  # 2 dims x 4 lines x 3 links x 2 directions
    (grid("torus3d", (4, 4, 4)), 64, 384),             # 6 neighbours per chip
    (make_system(num_chips=4, interconnect={"kind": "fully_connected", "link_bandwidth_Bps": 1e9}), 4, 12),
    (make_system(num_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9}), 9, 16),
    (two_level(2, 8), 16 + 2 + 1, 2 * 16 + 2 * 16),   # 2 switches, one fabric
    (two_level(2, 8, "rail"), 16 + 2 + 8, 2 * 16 + 2 * 16),
])
def test_graph_counts(system, nodes, edges):
    g = chip_graph(system)
    assert (g.number_of_nodes(), g.number_of_edges()) == (nodes, edges)


def test_graph_attributes():
    g = chip_graph(load_system("dgx-h100").model_copy(update={}))
    sw = ("switch", 0)
    assert g.edges[0, sw]["bandwidth_Bps"] == 450 * GB and g.edges[sw, 3]["bandwidth_Bps"] == 450 * GB
    g2 = chip_graph(scale_out_system(load_system("dgx-h100"), 16))
    assert g2.edges[0, FABRIC]["bandwidth_Bps"] == 50 * GB
    assert g2.edges[0, FABRIC]["tier"] == "scale_out"
    a4 = chip_graph(load_system("a100x4-nvlink"))
    assert a4.edges[0, 1]["latency_s"] == pytest.approx(8.92e-6) and a4.edges[0, 1]["bandwidth_Bps"] == 100 * GB


# --------------------------------------------------------------------------------------------
# Routing

def test_dimension_order_routes_on_a_torus():
    t = grid("torus2d", (4, 4))
    assert route(t, 0, 10) == [(0, 1), (1, 2), (2, 6), (6, 10)]    # (0,0)->(2,2): x first, ties go +
    assert route(t, 0, 3) == [(0, 3)]                               # wrap-around, -1 way
    assert route(t, 5, 5) == []
    assert hops(t, 0, 15) == 2                                      # (0,0)->(3,3): two wraps


def test_routes_on_mesh_unidirectional_switch_and_nodes():
    assert hops(grid("mesh2d", (4, 4)), 0, 3) == 3                  # no wrap-around
    assert route(ring(8, bidirectional=False), 1, 0) == [(i, (i + 1) % 8) for i in range(1, 8)]
    sw = make_system(num_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9})
    assert route(sw, 2, 5) == [(2, ("switch", 0)), (("switch", 0), 5)] and hops(sw, 2, 5) == 1
    ft = two_level(2, 8)
    assert route(ft, 1, 9) == [(1, FABRIC), (FABRIC, 9)] and hops(ft, 0, 9) == 1
    rail = two_level(2, 8, "rail")
    # chip 0 -> chip 9 (local 1 of node 1): first to local 1 of node 0 through the switch, then rail 1
    assert route(rail, 0, 9) == [(0, ("switch", 0)), (("switch", 0), 1), (1, ("rail", 1)), (("rail", 1), 9)]
    assert hops(rail, 0, 9) == 2


@pytest.mark.parametrize("system", [grid("torus2d", (4, 3)), grid("mesh3d", (3, 2, 2)), ring(7),
                                    ring(6, bidirectional=False), grid("torus3d", (2, 3, 2))])
def test_routes_are_minimal_paths_of_the_graph(system):
    g = chip_graph(system)
    dist = dict(nx.all_pairs_shortest_path_length(g))
    n = system.num_chips
    for a in range(n):
        for b in range(n):
            path = route(system, a, b)
            assert all(g.has_edge(u, v) for u, v in path)
            assert all(path[i][1] == path[i + 1][0] for i in range(len(path) - 1))
            if a != b:
                assert path[0][0] == a and path[-1][1] == b
            assert len(path) == dist[a][b], (a, b)
    assert max(hops(system, a, b) for a in range(n) for b in range(n)) == diameter(system)


@pytest.mark.parametrize("system,expected", [
    (grid("torus2d", (4, 4)), 4), (grid("torus2d", (16, 16)), 16), (grid("mesh2d", (4, 4)), 6),
    (ring(8), 4), (ring(8, bidirectional=False), 7), (grid("torus3d", (4, 4, 4)), 6),
    (make_system(num_chips=8, interconnect={"kind": "switch", "link_bandwidth_Bps": 1e9}), 1),
    (two_level(4, 8), 1), (two_level(4, 8, "rail"), 2),
])
def test_diameter(system, expected):
    assert diameter(system) == expected


@pytest.mark.parametrize("name,expected", [
    ("tpu-v5e-256", 1.6e12),       # gcloud_v5e: 1.6 TB/s bisection = 32 links x 50 GB/s
    ("tpu-v4-64", 16 * 2 * 45e9),  # 16 lines across the cut, 2 links each (wrap), 45 GB/s
    ("dgx-h100", 4 * 450e9),       # 4 chips' switch ports
    ("mi300x-8", 4 * 4 * 64e9),    # 16 links between two halves of 4
    ("trn1-32xl", 4 * 2 * 96 * 2**30),
])
def test_bisection_of_presets(name, expected):
    assert bisection_bandwidth_Bps(load_system(name)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("system", [grid("torus2d", (4, 4)), grid("mesh2d", (4, 4)), ring(8),
                                    ring(8, bidirectional=False), grid("torus3d", (4, 2, 2))])
def test_bisection_is_the_flow_across_the_cut(system):
    # max flow from one half to the other (cut across the largest dim) = the formula
    g = chip_graph(system)
    topo = topology(system)
    big = max(range(len(topo.dims)), key=lambda i: topo.dims[i])
    left = [c for c in range(system.num_chips) if topo.coords(c)[big] < topo.dims[big] // 2]
    right = [c for c in range(system.num_chips) if c not in left]
    h = nx.DiGraph()
    for u, v, d in g.edges(data=True):
        h.add_edge(u, v, capacity=d["bandwidth_Bps"])
    for c in left:
        h.add_edge("s", c)
    for c in right:
        h.add_edge(c, "t")
    assert nx.maximum_flow_value(h, "s", "t") == pytest.approx(bisection_bandwidth_Bps(system))


def test_bisection_across_nodes():
    assert bisection_bandwidth_Bps(two_level(4, 8)) == pytest.approx(16 * 50e9)


# --------------------------------------------------------------------------------------------
# Placement

def test_tp_is_contiguous_along_the_first_torus_dim():
    p = place(load_system("trn1-32xl"), tp=4, dp=2, pp=2)
    assert p.groups["tp"] == ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15))
    assert p.groups["dp"] == ((0, 4), (1, 5), (2, 6), (3, 7), (8, 12), (9, 13), (10, 14), (11, 15))
    assert p.groups["pp"][0] == (0, 8)
    assert p.chip(tp=1, dp=1, pp=1) == 13 and p.index(13) == {"tp": 1, "cp": 0, "ep": 0, "dp": 1, "pp": 1}
    t = topology(load_system("trn1-32xl"))
    for g in p.groups["tp"]:  # a TP group is one torus row: a closed ring of one-hop neighbours
        assert all(t.hops(g[i], g[(i + 1) % 4]) == 1 for i in range(4))


def test_tp_stays_inside_a_node_and_pp_spans_nodes():
    s = scale_out_system(load_system("dgx-h100"), 32)
    p = place(s, tp=8, pp=4)
    for g in p.groups["tp"]:
        assert len({c // 8 for c in g}) == 1
    assert p.groups["pp"][0] == (0, 8, 16, 24)
    dp_first = place(s, tp=8, dp=4, order=("dp", "tp", "cp", "ep", "pp"))
    assert dp_first.groups["dp"][0] == (0, 1, 2, 3) and dp_first.groups["tp"][0] == tuple(range(0, 32, 4))


def test_explicit_placement_and_errors():
    s = grid("torus2d", (4, 4))
    p = place(s, tp=2, dp=2, explicit=[0, 5, 10, 15])
    assert p.groups["tp"] == ((0, 5), (10, 15)) and p.groups["dp"] == ((0, 10), (5, 15))
    with pytest.raises(WorkloadError, match="need 32 chips"):
        place(s, tp=4, dp=8)
    with pytest.raises(WorkloadError, match="lists 3 chips"):
        place(s, tp=2, dp=2, explicit=[0, 1, 2])
    with pytest.raises(WorkloadError, match="distinct"):
        place(s, tp=2, dp=2, explicit=[0, 1, 1, 2])
    with pytest.raises(WorkloadError, match="leaves out dp"):
        place(s, tp=2, dp=2, order=("tp",))
