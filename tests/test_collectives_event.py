"""Event-tier collective schedules built as arrays (lower.collective_schedule): the structure
of a ring, checked by hand."""

import re

from accelsim.arch import load_system
from accelsim.lower.collective_schedule import collective_schedule
from accelsim.lower.schedule import CAT_LINK


def test_ring_steps_wait_for_what_the_rank_last_received_and_sent():
    # a 4-chip ring reduce-scatter: 3 steps of 4 one-hop transfers; a rank's send in step k
    # waits for its own send and what it received in step k-1, nothing else
    s = collective_schedule(load_system("tpu-v5e-256", ["num_chips=4", "interconnect.kind=ring", "interconnect.dims=[4]"]),
                            "reducescatter", 2**20, 4, "ring")
    xfers = [t for t in range(s.num_tasks) if s.category[t] == CAT_LINK]
    assert len(xfers) == 3 * 4
    ends = {t: tuple(map(int, re.findall(r"chip(\d+)", s.res_names[s.resource[t]]))) for t in xfers}
    steps = [xfers[i * 4:(i + 1) * 4] for i in range(3)]
    assert all(len({ends[t][0] for t in st}) == 4 for st in steps)  # every rank sends once a step
    for k in (1, 2):
        for t in steps[k]:
            rank = ends[t][0]
            want = {u for u in steps[k - 1] if rank in (ends[u][0], ends[u][1])}
            assert set(s.deps(t).tolist()) == want and len(want) == 2
    assert s.priority[steps[2][0]] == 2  # steps keep their order on the links
