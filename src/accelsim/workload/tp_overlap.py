"""Tensor-parallel communication overlapped with the GEMMs beside it, as Transformer Engine's
userbuffers run it under Megatron / NeMo (``ub_tp_comm_overlap``): with sequence parallelism each
all-gather of the sequence shards runs chunk by chunk beside the GEMM that consumes them (ring
exchange: the GEMM works on the chunks that have arrived), and each reduce-scatter beside the GEMM
that produces its input (the GEMM split into pieces, each piece's output reduce-scattered while
the next is computed). The backward's gathers and reduce-scatters pair with their dgrad / wgrad
GEMMs the same way (TE's bulk overlap). The pass marks each such collective ``hidden_by`` that
GEMM; the tiers then charge only what outlasts it (``sim.training``, ``sim.train_event``)."""

from __future__ import annotations

from dataclasses import replace

from .graph import WorkloadGraph
from .ops import Collective, MatMul


def overlap_tp(graph: WorkloadGraph) -> WorkloadGraph:
    """``graph`` with every TP all-gather hidden by the first GEMM that consumes it and every TP
    reduce-scatter by the GEMM that produces its input (a collective with no GEMM beside it, as
    the embedding's, stays on the path)."""
    ops, edges = graph.ops(), graph.edges()
    by_name = {o.name: o for o in ops}
    consumers: dict[str, list[str]] = {}
    producers: dict[str, list[str]] = {}
    for a, b in edges:
        consumers.setdefault(a, []).append(b)
        producers.setdefault(b, []).append(a)
    out = []
    for o in ops:
        if isinstance(o, Collective) and not o.hidden_by and o.role in ("tp.allgather", "tp.reducescatter"):
            near = consumers.get(o.name, []) if o.op == "allgather" else producers.get(o.name, [])
            gemm = next((n for n in near if isinstance(by_name[n], MatMul)), None)
            if gemm is not None:
                o = replace(o, hidden_by=gemm)
        out.append(o)
    return WorkloadGraph.from_ordered(graph.meta, out, edges)


__all__ = ["overlap_tp"]
