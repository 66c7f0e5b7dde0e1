"""WorkloadGraph: the ops (per chip) of one step in program order, their data dependencies, what
the run is (model, phase, shapes, parallelism) and the totals that the summary needs.

A graph is stored as blocks of ops; a block may stand for a run of identical transformer layers
(its ops are the first layer's, repeated for the rest), so an 80-layer model is built, and
costed, as one layer. The full op list, the edge list and the networkx DAG are expanded on
first use only (``ops()``, ``edges()``, ``g``); ``slots()`` gives the stored ops with their
multiplicities, which is all the analytical tier needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

import numpy as np

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


@dataclass(frozen=True, slots=True)
class Block:
    """Ops in program order with the edges into them. With ``layers``, the ops are layer
    ``layers.start``'s (named ``L{layer}.{suffix}``) and stand for every layer of the range;
    each later layer's external inputs come from the previous layer's last op."""

    ops: tuple[Op, ...]
    edges: tuple[tuple[str, str], ...]
    layers: range | None = None

    @property
    def repeat(self) -> int:
        return len(self.layers) if self.layers is not None else 1

    def expand(self) -> tuple[list[Op], list[tuple[str, str]]]:
        if self.layers is None or len(self.layers) == 1:
            return list(self.ops), list(self.edges)
        first = self.layers.start
        pre = f"L{first}."
        suffix = {}
        for o in self.ops:
            if not o.name.startswith(pre) or o.layer != first:
                raise WorkloadError(f"op {o.name!r} of a repeated block is not named {pre}<role> in layer {first}")
            suffix[o.name] = o.name[len(pre):]
        last = self.ops[-1].name[len(pre):]
        ops: list[Op] = []
        edges: list[tuple[str, str]] = []
        for li in self.layers:
            p = f"L{li}."
            outer = f"L{li - 1}.{last}"
            ops.extend(o if li == first else dataclasses.replace(o, name=p + suffix[o.name], layer=li)
                       for o in self.ops)
            edges.extend((p + suffix[a] if a in suffix else (a if li == first else outer), p + suffix[b])
                         for a, b in self.edges)
        return ops, edges


class WorkloadGraph:
    """Ops as nodes (attribute ``op`` of the networkx DAG ``g``), data dependencies as edges."""

    def __init__(self, meta: WorkloadMeta):
        self.meta = meta
        self._blocks: list[Block] = []
        self._order: list[Op] | None = []
        self._edges: list[tuple[str, str]] | None = []
        self._g = None
        self._slots = None

    @classmethod
    def from_ordered(cls, meta: WorkloadMeta, ops: list[Op], edges: Iterable[tuple[str, str]]) -> "WorkloadGraph":
        """A graph from ops already in topological order (every edge points forward in
        ``ops``); the order is kept as the graph's op order, so no sort is needed."""
        ops, edges = list(ops), list(edges)
        position = {o.name: i for i, o in enumerate(ops)}
        if len(position) != len(ops):
            dup = next(o.name for i, o in enumerate(ops) if position[o.name] != i)
            raise WorkloadError(f"duplicate op name {dup!r}")
        for a, b in edges:
            if position.get(a, len(ops)) >= position.get(b, -1):
                raise WorkloadError(f"edge {a} -> {b} does not follow the given op order")
        return cls.from_blocks(meta, [Block(tuple(ops), tuple(edges))])

    @classmethod
    def from_blocks(cls, meta: WorkloadMeta, blocks: list[Block]) -> "WorkloadGraph":
        """A graph from blocks in program order (a builder's output: each op after its
        dependencies, names unique); nothing is expanded until asked for."""
        g = cls(meta)
        g._blocks = list(blocks)
        g._order = g._edges = None
        return g

    def _expand(self) -> None:
        ops: list[Op] = []
        edges: list[tuple[str, str]] = []
        for b in self._blocks:
            o, e = b.expand()
            ops += o
            edges += e
        self._order, self._edges = ops, edges

    @property
    def g(self):
        """The networkx DiGraph (built on first use)."""
        if self._g is None:
            import networkx as nx

            g = nx.DiGraph()
            g.add_nodes_from((o.name, {"op": o}) for o in self.ops())
            g.add_edges_from(self.edges())
            self._g = g
        return self._g

    def add(self, op: Op, deps: Iterable[str | Op] = ()) -> str:
        """Add ``op`` after ``deps`` (names or ops); returns its name."""
        if not op.name:
            raise WorkloadError(f"op {op!r} has no name")
        g = self.g
        if op.name in g:
            raise WorkloadError(f"duplicate op name {op.name!r}")
        new = []
        for d in deps:
            dname = d if isinstance(d, str) else d.name
            if dname not in g:
                raise WorkloadError(f"op {op.name!r} depends on unknown op {dname!r}")
            new.append((dname, op.name))
        g.add_node(op.name, op=op)
        g.add_edges_from(new)
        self._order.append(op)
        self._edges += new
        self._blocks = None  # rebuilt from the op list when slots() asks
        self._slots = None
        return op.name

    def ops(self) -> list[Op]:
        """Ops in program order (a topological order: each op after its dependencies)."""
        if self._order is None:
            self._expand()
        return self._order

    def edges(self) -> list[tuple[str, str]]:
        """Data dependencies (producer name, consumer name)."""
        if self._edges is None:
            self._expand()
        return self._edges

    def predecessors(self, name: str) -> list[str]:
        return list(self.g.predecessors(name))

    def slots(self) -> tuple[list[Op], np.ndarray]:
        """(stored ops, how many ops each stands for): a repeated block's ops stand for every
        layer of its range."""
        if self._slots is None:
            if self._blocks is None:
                self._blocks = [Block(tuple(self._order), tuple(self._edges))]
            ops: list[Op] = []
            counts: list[int] = []
            for b in self._blocks:
                ops += b.ops
                counts += [b.repeat] * len(b.ops)
            self._slots = (ops, np.array(counts, dtype=np.int64))
        return self._slots

    def slot_index(self) -> np.ndarray:
        """The stored op (position in ``slots()``) of each op of ``ops()``."""
        self.slots()
        index, start = [], 0
        for b in self._blocks:
            base = np.arange(start, start + len(b.ops))
            index.append(np.tile(base, b.repeat) if b.repeat > 1 else base)
            start += len(b.ops)
        return np.concatenate(index) if index else np.zeros(0, dtype=np.int64)

    def op(self, name: str) -> Op:
        return self.g.nodes[name]["op"]

    def __len__(self) -> int:
        if self._order is not None:
            return len(self._order)
        return sum(len(b.ops) * b.repeat for b in self._blocks)

    def flops(self) -> float:
        """FLOPs of one chip's share."""
        ops, counts = self.slots()
        return float(sum(o.flops() * c for o, c in zip(ops, counts)))

    def bytes(self) -> float:
        """Compulsory HBM bytes of one chip's share."""
        ops, counts = self.slots()
        return float(sum(o.bytes() * c for o, c in zip(ops, counts)))
