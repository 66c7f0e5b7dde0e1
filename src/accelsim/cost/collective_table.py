"""A collective's algorithm choice as arrays, for a kind and group costed at many sizes (the
analytical fast path's all-reduce of every new batch or prompt length).

``collective_terms`` walks the candidate algorithms and protocols in Python for each new size;
``collective_table`` lays the same candidates out once per network, kind and group (each one's
size limit, lower bound, protocol terms and its steps' finishing terms, ``collectives._step_terms``)
and ``table_terms`` (a ``jit.Kernel``, with its pure-Python twin) prices a size from them with the
same operations in the same order, so both give the same numbers to the last bit
(``tests/test_fast_path.py``). Where the choice is not a flat plan's on one node (a hierarchical
candidate, a point-to-point kind's size-dependent protocols, a pipelined broadcast) there is no
table and the caller keeps ``collective_terms``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..arch.spec import SystemSpec
from ..jit import kernel
from ..memo import IdentityCache
from ..stack.spec import CollectiveLibrary
from .collective_net import P2P_KINDS, net_of, rate_and_step
from .collectives import _candidates, _floor_terms, _group, _step_terms

CAND = ("max_bytes", "floor_base", "floor_largest", "floor_rate", "floor_steps_s", "base_latency_s", "bw_up", "bw_out",
        "own_s", "sent", "first_step", "end_step", "name")
"""A candidate's row of ``CollectiveTable.cand``: its protocol's size limit, ``_floor_s``' terms, its
base latency, the link classes' rates under it, its steps' own latency, the busiest sender's
bytes per byte of the buffer, its steps' rows and its algorithm's place in ``names``."""
STEP = ("repeat", "step_s", "first", "end")
"""A step's row of ``CollectiveTable.step``: its repeat, its step latency, its finishing terms' rows."""


class CollectiveTable(NamedTuple):
    names: tuple[str, ...]
    cand: np.ndarray
    step: np.ndarray
    term: np.ndarray
    """A step's finishing terms: (link class, latency before the bytes reach the link, bytes
    arriving at or after it per byte of the buffer)."""
    overhead_s: float
    """The call's own latency: the chip's collective overhead and the library's call latency."""


def collective_table(system: SystemSpec, kind: str, ranks: int,
                     library: CollectiveLibrary | None) -> CollectiveTable | None:
    """The table of ``kind`` over chips 0..ranks-1 of ``system`` under ``library``, or None
    where ``collective_terms`` prices it otherwise (see the module docstring); once per system,
    library, kind and ranks."""
    per = _TABLES.get((system, library), dict)
    key = (kind, ranks)
    if key not in per:
        per[key] = _table(system, kind, ranks, library)
    return per[key]


_TABLES = IdentityCache(32)


def _table(system: SystemSpec, kind: str, ranks: int, library: CollectiveLibrary | None) -> CollectiveTable | None:
    if kind in P2P_KINDS or kind == "broadcast" or ranks <= 1:
        return None
    net = net_of(system, library)
    group = _group(system, ranks, None)
    names = _candidates(net, kind, group, None)
    if "hierarchical" in names:
        return None
    top = max((p.bw_fraction for p in net.protocols), default=0.0)
    cand, step, term = [], [], []
    for a, name in enumerate(names):
        steps, sent = _step_terms(net, kind, name, group)
        for proto in net.protocols:
            if name == "in_switch" and proto.bw_fraction < top:
                continue  # whatever the size (``_cost``)
            base, largest, rate, steps_s = _floor_terms(net, kind, name, group, proto)
            frac, own = rate_and_step(net, name, proto)
            first = len(step)
            for repeat, crosses, cands in steps:
                step.append((repeat, max(own, net.step_latency_out_s) if crosses else own, len(term),
                             len(term) + len(cands)))
                term.extend(cands)
            cand.append((proto.max_bytes, base, largest, rate, steps_s, proto.base_latency_s, net.bw_up * frac,
                         net.bw_out * frac, own, sent, first, len(step), a))
    overhead = system.chip.calibration.collective_overhead_s + (library.call_latency_s if library else 0.0)
    return CollectiveTable(names, np.array(cand, float).reshape(-1, len(CAND)), np.array(step, float).reshape(-1, 4),
                           np.array(term, float).reshape(-1, 3), overhead)


@kernel(None)
def table_terms(cand, step, term, overhead_s, n, out):
    """``collective_terms``' (bandwidth seconds, latency seconds, bytes sent per chip, the
    algorithm's place in ``names``) of ``n`` bytes per rank, into ``out``."""
    best_bw, best_lat, best_sent, best_name = 0.0, 0.0, 0.0, -1.0
    found = False
    for c in range(cand.shape[0]):
        r = cand[c]
        if n > r[0]:
            continue
        if found and (r[1] * 1.0 + r[2] * n / r[3] + r[4] if r[3] > 0 else 0.0) >= (best_bw + best_lat) * (1 - 1e-9):
            continue  # cannot win: not worth pricing its steps (``_floor_s``)
        bw, lat = 0.0, r[5] * 1.0
        for s in range(int(r[10]), int(r[11])):
            be = bt = 0.0
            for j in range(int(step[s, 2]), int(step[s, 3])):
                t = term[j, 2] * n / (r[6] if term[j, 0] == 0 else r[7])
                if term[j, 1] + t > be + bt:
                    be, bt = term[j, 1], t
            lat += step[s, 0] * (be + step[s, 1])
            bw += step[s, 0] * bt
        if not found or bw + lat < (best_bw + best_lat) * (1 - 1e-9):
            best_bw, best_lat, best_sent, best_name = bw, lat, r[9] * n, r[12]
            found = True
    out[0] = best_bw
    out[1] = best_lat + overhead_s + 0.0
    out[2] = best_sent
    out[3] = best_name
