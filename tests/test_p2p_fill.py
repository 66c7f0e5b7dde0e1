"""An all-to-all's pipeline fill as NCCL splits it: each peer's message over channels, in parts
of at least an eighth of a step, a part under a step filling that fraction of the bulk
protocol's base latency. Expected values by hand from the rule (NVIDIA/nccl
``scheduleP2pTasksToPlan``: 32 p2p channels, 32 per peer, 512 KiB steps on NVLink)."""

from __future__ import annotations

import pytest

from accelsim.arch import load_system
from accelsim.arch.topology import scale_out_system
from accelsim.cost.collective_net import net_of, p2p_fill
from accelsim.cost.collectives import collective_cost, link_terms
from accelsim.errors import AccelsimError
from accelsim.stack.presets import load_stack
from accelsim.stack.spec import CollectiveLibrary

KiB, MiB = 2**10, 2**20


@pytest.fixture(scope="module")
def h100():
    return load_system("dgx-h100"), load_stack("cuda-native").collectives


@pytest.mark.parametrize("ranks, per_peer, fill", [
    # 8 ranks: 32 channels per peer halve to 4 (4 x 8 = 32 channels)
    (8, 32 * KiB, 32 / 512),    # under an eighth of a step: one part, the whole message
    (8, 128 * KiB, 64 / 512),   # 128 KiB / 4 = 32 KiB, raised to the 64 KiB minimum part
    (8, 256 * KiB, 64 / 512),   # 256 KiB / 4 channels = 64 KiB parts
    (8, 1 * MiB, 256 / 512),    # 1 MiB / 4 = 256 KiB parts
    (8, 2 * MiB, 1.0),          # 512 KiB parts: a whole step
    (8, 64 * MiB, 1.0),
    # 2 ranks: 16 channels per peer (16 x 2 = 32)
    (2, 512 * KiB, 64 / 512),   # 512 KiB / 16 = 32 KiB, raised to 64 KiB
    (2, 4 * MiB, 256 / 512),    # 4 MiB / 16 = 256 KiB
    # 4 ranks: 8 channels per peer
    (4, 1 * MiB, 128 / 512),
])
def test_fill_of_an_alltoall_by_hand(h100, ranks, per_peer, fill):
    system, lib = h100
    net = net_of(system, lib)
    assert p2p_fill(net, "alltoall", per_peer * ranks, tuple(range(ranks))) == pytest.approx(fill)


def test_other_kinds_and_other_libraries_pay_the_whole_base(h100):
    system, lib = h100
    group = tuple(range(8))
    assert p2p_fill(net_of(system, lib), "allreduce", 256 * KiB, group) == 1.0
    bare = lib.model_copy(update={"p2p_channels": 0, "p2p_channels_per_peer": 0, "p2p_step_bytes": None})
    assert p2p_fill(net_of(system, bare), "alltoall", 256 * KiB, group) == 1.0
    # a send / receive is one peer's message: 256 KiB over 16 channels -> 64 KiB parts
    assert p2p_fill(net_of(system, lib), "sendrecv", 256 * KiB, (0, 1)) == pytest.approx(64 / 512)


def test_across_nodes_the_base_stays_whole(h100):
    system, lib = h100
    big = scale_out_system(system, 16)
    assert p2p_fill(net_of(big, lib), "alltoall", 256 * KiB, tuple(range(16))) == 1.0


def test_the_cost_drops_by_the_unfilled_base(h100):
    """2 MiB a rank over 8 H100s (256 KiB a peer, past the LL threshold: Simple in both): the
    call costs the whole base less one eighth of it, nothing else changes."""
    system, lib = h100
    bare = lib.model_copy(update={"p2p_channels": 0, "p2p_channels_per_peer": 0, "p2p_step_bytes": None})
    with_fill = collective_cost(system, "alltoall", 2 * MiB, 8, library=lib)
    whole = collective_cost(system, "alltoall", 2 * MiB, 8, library=bare)
    assert with_fill.protocol == whole.protocol == "Simple"
    base = next(p for p in lib.protocols if p.name == "Simple").base_latency_s
    assert whole.time_s - with_fill.time_s == pytest.approx(base * (1 - 1 / 8), rel=1e-9)
    # the event tier is handed the same call latency
    assert (link_terms(system, "alltoall", 2 * MiB, 8, library=bare).call_latency_s
            - link_terms(system, "alltoall", 2 * MiB, 8, library=lib).call_latency_s) == pytest.approx(base * 7 / 8)


@pytest.mark.parametrize("fields, message", [
    ({"p2p_channels": 32}, "p2p_channels_per_peer"),
    ({"p2p_channels": 32, "p2p_channels_per_peer": 32}, "p2p_step_bytes"),
    ({"p2p_channels": 16, "p2p_channels_per_peer": 32, "p2p_step_bytes": "512 KiB"}, "more than p2p_channels"),
])
def test_the_three_fields_go_together(h100, fields, message):
    _, lib = h100
    data = {**lib.model_dump(), "p2p_channels": 0, "p2p_channels_per_peer": 0, "p2p_step_bytes": None, **fields}
    with pytest.raises((ValueError, AccelsimError)) as e:
        CollectiveLibrary.model_validate(data)
    assert message in str(e.value)
