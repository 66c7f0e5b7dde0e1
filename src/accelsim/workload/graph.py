"""WorkloadGraph: a networkx DAG of ops (per chip) plus what the run is (model, phase, shapes,
parallelism) and the totals that the summary needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import networkx as nx

from ..errors import WorkloadError
from .ops import Op


@dataclass(frozen=True)
class WorkloadMeta:
    """What the graph represents. Byte counts are per chip."""

    model: str
    phase: str
    batch: int
    seq_len: int = 0
    """Prompt length (prefill) or training sequence length."""
    context_len: int = 0
    """Tokens already in the KV cache (decode)."""
    tp: int = 1
    """Tensor-parallel degree: the graph is one chip's share, replicated on ``tp`` chips."""
    dtype: str = "bf16"
    tokens: int = 0
    """Tokens processed (prefill) or generated (decode) by one step, for tokens/s."""
    params: int = 0
    """Parameters of the whole model."""
    weight_bytes_per_chip: float = 0.0
    kv_cache_bytes_per_chip: float = 0.0
    activation_bytes_per_chip: float = 0.0
    """Peak live activations of one layer (a lower bound on scratch memory)."""
    attention: str = "flash"


class WorkloadGraph:
    """Ops as nodes (attribute ``op``), data dependencies as edges."""

    def __init__(self, meta: WorkloadMeta):
        self.meta = meta
        self.g = nx.DiGraph()
        self._order: list[Op] | None = None

    @classmethod
    def from_ordered(cls, meta: WorkloadMeta, ops: list[Op], edges: Iterable[tuple[str, str]]) -> "WorkloadGraph":
        """A graph from ops already in topological order (every edge points forward in
        ``ops``); the order is kept as the graph's op order, so no sort is needed."""
        g = cls(meta)
        g.g.add_nodes_from((o.name, {"op": o}) for o in ops)
        position = {o.name: i for i, o in enumerate(ops)}
        edges = list(edges)
        for a, b in edges:
            if position.get(a, len(ops)) >= position.get(b, -1):
                raise WorkloadError(f"edge {a} -> {b} does not follow the given op order")
        g.g.add_edges_from(edges)
        g._order = list(ops)
        return g

    def add(self, op: Op, deps: Iterable[str | Op] = ()) -> str:
        """Add ``op`` after ``deps`` (names or ops); returns its name."""
        if not op.name:
            raise WorkloadError(f"op {op!r} has no name")
        if op.name in self.g:
            raise WorkloadError(f"duplicate op name {op.name!r}")
        self.g.add_node(op.name, op=op)
        for d in deps:
            dname = d if isinstance(d, str) else d.name
            if dname not in self.g:
                raise WorkloadError(f"op {op.name!r} depends on unknown op {dname!r}")
            self.g.add_edge(dname, op.name)
        self._order = None
        return op.name

    def ops(self) -> list[Op]:
        """Ops in a deterministic topological order (ties broken by insertion order)."""
        if self._order is None:
            index = {n: i for i, n in enumerate(self.g.nodes)}
            order = nx.lexicographical_topological_sort(self.g, key=index.__getitem__)
            self._order = [self.g.nodes[n]["op"] for n in order]
        return self._order

    def op(self, name: str) -> Op:
        return self.g.nodes[name]["op"]

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def flops(self) -> float:
        """FLOPs of one chip's share."""
        return sum(o.flops() for o in self.ops())

    def bytes(self) -> float:
        """Compulsory HBM bytes of one chip's share."""
        return sum(o.bytes() for o in self.ops())
