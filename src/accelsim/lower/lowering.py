"""Lowering: a WorkloadGraph on one chip -> a Schedule of tile tasks.

Per core the chip has a tensor, a vector and a scalar engine and a pool of DMA queues (its
share of the chip's DMA engines); the chip has an HBM bandwidth server, an optional shared SRAM
server (GPU L2) and a link port. Each op becomes:

- **GEMM** (MatMul, Conv2D as im2col): the analytical mapping (tile, split-K, loop order) is
  reused; tiles are dealt to cores in contiguous blocks; each tile walks its K range in chunks:
  DMA-in of the chunk's operands (one transfer carrying the B and A chunks, each operand's
  bytes at its own HBM fraction, as a kernel issues a pipeline stage's loads together; a core's
  first B chunk travels alone, prefetched behind the previous op), which acquires an SRAM
  buffer slot, a tensor pass (the tile's systolic cycles, fill/drain included, spread over its
  chunks; the pass releases the slot), then an accumulator eviction on the vector engine and a
  DMA-out.
  With order "A-resident" a core loads a row's A panel once; with split-K the fp32 partials
  are written, read back, added on the vector engine and written once.
- **Flash attention**: K/V streamed per (sequence, KV head, query tile) unit
  (``lower.attention``); one-query attention by a per-query-head kernel on the vector engine.
- **Vector ops** (norms, softmax, elementwise, embedding, KV append): rows split over cores,
  chunked: DMA-in, scalar (transcendentals) and vector passes in parallel, DMA-out.
- **Collectives**: one transfer on the chip's link port carrying the bytes the algorithm sends,
  at the algorithm's effective bandwidth, after its latency (the multi-chip issue decomposes
  them into per-link transfers).

Ops start when their predecessor ops end (a zero-length join task per op, plus the launch
overhead as a delay: ``launch_overhead_s``, plus ``tensor_launch_overhead_s`` for a
tensor-engine op or ``vector_launch_overhead_s`` for a vector op; a collective pays
``collective_overhead_s`` instead, as in the analytical tier).
A core's first weight DMA of an op (the pipeline's fill) may start as soon as the previous op
has started, when that op feeds this one: one op of prefetch lookahead, one transfer deep,
whatever the SRAM (a deeper prefetch would hold DMA queues the running op needs, so more SRAM
could slow it). An op on a parallel branch (a ResNet downsample beside its block's
convolutions) does not prefetch: the previous op may start after it, and waiting for it would
let the op's later loads take every SRAM slot first.
"""

from __future__ import annotations

import math

import numpy as np

from ..arch.spec import SystemSpec
from ..compress.formats import DTYPE_BYTES
from ..errors import LoweringError
from ..gcpause import gc_paused
from ..cost.op_cost import (ChipModel, aligned, compute_dtype, dequant_seconds, dispatch, gemm_mapping, gemm_speed,
                            kernels, per_head_decode, reduction_op)
from ..cost.systolic import pass_cycles
from ..workload.graph import WorkloadGraph
from ..workload.ops import Collective, Conv2D, FlashAttention, MatMul, Op
from ..cost.cache import residency
from ..cost.mapping import K_CHUNK_MIN, MAX_TILE_GROUPS, event_k_chunk
from .schedule import (BUSY, CAT_DMA_IN, CAT_DMA_OUT, CAT_LINK, CAT_OVERHEAD, CAT_SCALAR, CAT_TENSOR,
                       CAT_VECTOR, DELAY, XFER, Schedule, ScheduleBuilder)
from .attention import AttentionLowering
from .template import Template

VECTOR_CHUNK_BYTES = 512 * 1024
"""Largest input chunk a core's vector pipeline brings in per DMA."""
VECTOR_PIECE_BYTES = 64 * 1024
"""A core's share of a vector op is cut into pieces of at least this size (up to
VECTOR_PIECES), so that loads, compute and stores overlap. The cut never depends on the SRAM
(a chunk stream needs a few buffers of it, and a coarser cut on a chip with more SRAM would
pipeline worse)."""
VECTOR_PIECES = 8


RAMP_MAX = 0.8
"""The largest size of one of a GEMM's last K steps over the step before it. A step's pass takes
no longer than the next step's load when that ratio is at least the step's compute over its load,
which a balanced GEMM brings near 1; at 0.8 the ramp down to the fine chunk has about three times
as many steps as halving."""


def ramp_ratio(pass_s: float, load_s: float) -> float:
    """The ratio of a GEMM's last K steps, one to the next: 1/2, or the steps' compute over their
    load time when that is more (at most ``RAMP_MAX``)."""
    return min(RAMP_MAX, max(0.5, pass_s / load_s)) if load_s > 0 else 0.5


class Lowerer(AttentionLowering):
    """Holds the chip's resources while ops are lowered one by one."""

    def __init__(self, system: SystemSpec, library=None, replay: bool = True, warm: bool = False):
        self.system = system
        self.replay = replay
        """Give an op equal to one lowered before that op's tasks again (False: lower each op)."""
        self.warm = warm
        """Each op is a warm re-run: the chip-shared level holds ``cost.cache.residency`` of it."""
        self.hbm_scale = 1.0
        """Share of the op being lowered's transfers that still reaches HBM (warm runs)."""
        self.library = library
        """The stack's collective library (None: the ideal bound), as in the analytical tier."""
        self.cm = cm = ChipModel(system, library)
        chip = system.chip
        self.b = b = ScheduleBuilder()
        self.cores = cores = chip.num_cores
        self.queues = queues = max(1, chip.dma.engines // cores)
        self.tensor = [b.resource(f"core{c}.tensor", "tensor") for c in range(cores)]
        self.vector = [b.resource(f"core{c}.vector", "vector") for c in range(cores)]
        self.scalar = [b.resource(f"core{c}.scalar", "scalar") for c in range(cores)]
        core_dma_bw = queues * chip.dma.bandwidth_per_engine_Bps * chip.calibration.hbm_efficiency
        # a core's queues pull up to its load path's peak while other cores leave the chip's load
        # paths idle; all together no more than every core's even share (``Dma.core_peak_Bps``)
        peaked = chip.dma.core_peak_Bps is not None and cm.core_peak > core_dma_bw
        self.dma = [b.resource(f"core{c}.dma", "dma", capacity=queues,
                               bandwidth_Bps=cm.core_peak if peaked else core_dma_bw) for c in range(cores)]
        self.link = b.resource("link", "link")
        self.hbm = b.bandwidth_server("hbm", cm.hbm_bw, by_op=True,
                                      path_Bps=cores * core_dma_bw if peaked else np.inf)
        ic = system.interconnect
        link_bw = ic.chip_bandwidth_Bps(system.chips_per_node) * chip.calibration.link_efficiency if ic else 1.0
        self.link_srv = b.bandwidth_server("link", link_bw)
        self.dma_lat = chip.dma.setup_latency_s + chip.hbm.latency_s
        cal = chip.calibration
        # a collective pays collective_overhead_s inside its transfer, as in the analytical tier
        self.launch = {"tensor": cal.launch_overhead_s + cal.tensor_launch_overhead_s,
                       "vector": cal.launch_overhead_s + cal.vector_launch_overhead_s,
                       "scalar": cal.launch_overhead_s + cal.vector_launch_overhead_s,
                       "link": 0.0}
        self.f_vec = chip.engine_hz("vector")
        self.prev_start = -1
        self.host = -1
        """The last host-dispatch task (a host-async runtime), -1 before the first."""

    # ---------------------------------------------------------------- helpers
    def load(self, op: int, core: int, nbytes: float, deps, hbm_fraction: float = 1.0,
             acquire: int = -1, cat: int = CAT_DMA_IN) -> list[int]:
        """DMA of ``nbytes`` into ``core``: one transfer on one of the core's DMA queues, sharing
        the core's DMA bandwidth with its other transfers in flight (a lone large copy gets all
        of it, as if its descriptors were spread over every queue) and HBM with everyone.
        ``hbm_fraction``, its weight on the HBM server: with a chip-shared cache the share of its
        bytes from HBM (the rest from the cache); above 1 for a row-wise reduction; times
        ``hbm_scale`` in a warm run."""
        out: list[int] = []
        if nbytes <= 0:
            return out
        out.append(self.b.task(XFER, cat, op, deps, resource=self.dma[core], server=self.hbm, duration_s=self.dma_lat,
                               nbytes=nbytes, weight=hbm_fraction * self.hbm_scale, acquire=acquire))
        return out

    def store(self, op: int, core: int, nbytes: float, deps, hbm_fraction: float = 1.0) -> list[int]:
        return self.load(op, core, nbytes, deps, hbm_fraction, cat=CAT_DMA_OUT)

    def k_steps(self, oid: int, c: int, steps: list[int], b_per_k: float, a_per_k: float, pass_per_k: float,
                flops_per_k: float, prev_pass: int, weight_deps: list[int], start: int, pool: int,
                w_a: float, w_b: float, dq_a: float, dq_b: float) -> int:
        """A tile group's K steps on core ``c`` (``steps``: the K extent of each), added as rows
        in one go: per step the weight (B) and activation (A) loads into an SRAM slot, the
        dequantization of narrow operands on the vector engine, and the tensor pass that frees
        the slot. Only a core's first weight load waits on ``weight_deps`` (it is prefetched);
        the others wait on the op's ``start``; after the first step a step's two loads are one
        transfer (issued apart, each core's in-order DMA flow moved the HBM-paced weight chunk,
        then the cached activation chunk, and cores alike left HBM idle together). Returns the
        last pass."""
        b = self.b
        dma, hbm, vec, ten, lat, mc = self.dma[c], self.hbm, self.vector[c], self.tensor[c], self.dma_lat, self.cm.multicast
        has_b, has_a = b_per_k > 0, a_per_k > 0
        has_dq = (has_b and dq_b > 0) or (has_a and dq_a > 0)
        rel = pool if (has_a or has_b) else -1
        rows, deps = [], []
        t = b.num_tasks
        for kk in steps:
            b_bytes, a_bytes = kk * b_per_k, kk * a_per_k
            loads = []
            merged = has_b and has_a and prev_pass >= 0
            if merged:  # one pipeline stage: each operand's bytes at its own HBM fraction
                both = b_bytes + a_bytes
                rows.append((XFER, dma, hbm, lat, both / mc, np.inf, (w_b * b_bytes + w_a * a_bytes) / both, 0.0,
                             pool, -1, t, oid, CAT_DMA_IN))
                deps.append([start])
                loads.append(t)
                t += 1
            elif has_b:
                rows.append((XFER, dma, hbm, lat, b_bytes / mc, np.inf, w_b, 0.0, pool, -1, t, oid, CAT_DMA_IN))
                deps.append(list(weight_deps) if prev_pass < 0 else [start])
                loads.append(t)
                t += 1
            if has_a and not merged:
                rows.append((XFER, dma, hbm, lat, a_bytes / mc, np.inf, w_a, 0.0, -1 if has_b else pool, -1, t, oid,
                             CAT_DMA_IN))
                deps.append([start])
                loads.append(t)
                t += 1
            if has_dq:
                rows.append((BUSY, vec, -1, dq_b * b_bytes + dq_a * a_bytes, 0.0, np.inf, 1.0, 0.0, -1, -1, t, oid,
                             CAT_VECTOR))
                deps.append(loads)
                loads = [t]
                t += 1
            rows.append((BUSY, ten, -1, pass_per_k * kk, 0.0, np.inf, 1.0, flops_per_k * kk, -1, rel, t, oid, CAT_TENSOR))
            deps.append(loads + [prev_pass] if prev_pass >= 0 else loads)
            prev_pass = t
            t += 1
        b.add_rows(rows, deps)
        return prev_pass

    def vec_time(self, ops: float, dtype: str) -> float:
        return ops / (self.cm.vec_rate.get(dtype, self.cm.vec_rate_default))

    # ---------------------------------------------------------------- ops
    def lower_graph(self, graph: WorkloadGraph) -> Schedule:
        ops = graph.ops()
        join_of: dict[str, int] = {}
        preds_of: dict[str, list[str]] = {}
        for a, b in graph.edges():
            preds_of.setdefault(b, []).append(a)
        from tqdm.auto import tqdm

        # an op equal to one lowered before (same shape and types, and alike in having a
        # previous op to prefetch behind) gets that op's tasks again as arrays, renumbered
        templates: dict[tuple[Op, bool], Template | None] = {}
        last_start, last_name = -1, None
        # a progress bar where someone watches (a terminal or a notebook) a large graph lower
        for o in tqdm(ops, desc="event tier: lowering", unit="op", leave=False,
                      disable=None if len(ops) > 200 else True):
            oid = self.b.op(o.name, o.role, o.kind)
            names = preds_of.get(o.name, ())
            preds = [join_of[p] for p in names]
            fed = last_name in names
            # an op the stack runs as several kernels (composite) is lowered kernel by kernel
            for u in kernels(self.cm, o):
                start = self.dispatch_task(u, oid, preds)
                # prefetch behind the previous op only when that op feeds this one (so it starts
                # before this op can): a parallel branch's previous op may start later
                self.prev_start = last_start if fed else -1
                key = (u, self.prev_start >= 0)
                tpl = templates.get(key) if self.replay else None
                if tpl is not None:
                    ends = tpl.replay(self.b, oid, start, self.prev_start)
                else:
                    t0, p0 = self.b.num_tasks, len(self.b.pools)
                    self.hbm_scale = 1.0 - residency(u.bytes(), self.cm.shared_cap) if self.warm else 1.0
                    ends = self.lower_op(u, oid, start)
                    if key not in templates:
                        templates[key] = Template.record(self.b, t0, p0, oid, start, self.prev_start, ends)
                preds = [self.b.task(DELAY, CAT_OVERHEAD, oid, ends, duration_s=0.0)]
                last_start, fed = start, True
            join_of[o.name] = preds[0]
            last_name = o.name
        return self.b.build()

    def dispatch_task(self, o: Op, oid: int, preds: list[int]) -> int:
        """The task that starts ``o`` after ``preds``: its launch delay, or under a host-async
        runtime a link of the host's dispatch chain too (``sim.analytical.pipeline``'s model)."""
        if self.cm.host_async and not isinstance(o, Collective):
            launch, _, extra = dispatch(self.cm, o)
            host = self.b.task(DELAY, CAT_OVERHEAD, oid, [self.host] if self.host >= 0 else [], duration_s=launch)
            self.host = host
            return self.b.task(DELAY, CAT_OVERHEAD, oid, preds + [host], duration_s=extra)
        if self.cm.launches and not isinstance(o, Collective):
            launch, _, extra = dispatch(self.cm, o)
            return self.b.task(DELAY, CAT_OVERHEAD, oid, preds, duration_s=launch + extra)
        return self.b.task(DELAY, CAT_OVERHEAD, oid, preds, duration_s=self.launch[o.engine])

    def lower_op(self, o: Op, oid: int, start: int) -> list[int]:
        if isinstance(o, MatMul):
            return self.gemm(o, oid, start)
        if isinstance(o, Conv2D):
            mm = o.as_matmul()
            in_elems = o.batch * o.in_h * o.in_w * o.in_channels
            return self.gemm(mm, oid, start, a_scale=min(1.0, in_elems / (mm.m * mm.k)))
        if isinstance(o, FlashAttention):
            return self.flash(o, oid, start)
        if isinstance(o, Collective):
            return self.collective(o, oid, start)
        return self.vector_op(o, oid, start)

    def gemm(self, mm: MatMul, oid: int, start: int, a_scale: float = 1.0) -> list[int]:
        cm, b = self.cm, self.b
        ba = DTYPE_BYTES[mm.dtype_a] * a_scale
        bb, bo = mm.b_el_bytes(), DTYPE_BYTES[mm.dtype_out]
        f = gemm_mapping(cm, mm, None if a_scale == 1.0 else ba)
        mt, nt, split, order = int(f["tile_m"]), int(f["tile_n"]), int(f["split_k"]), int(f["order"])
        M, N, K = mm.m, mm.n, mm.k
        # outputs go to HBM (split-K partials too, unless they fit the shared SRAM, as the
        # mapping decided); a multicast cluster's cores share their operand loads, a core's
        # path carrying 1/mc of them
        mc = cm.multicast
        h_part = 0.0 if f["partials_shared"] else 1.0  # split-K partials kept in the shared SRAM
        nm, nn = -(-M // mt), -(-N // nt)
        ks = -(-K // split)
        speed = gemm_speed(cm, mm)
        teff = cm.tensor_eff(compute_dtype(cm, mm)) * (1.0 if aligned(cm, mm) else cm.unaligned_eff)
        # dequantization of operands stored narrower than the compute type, on the vector
        # engine: vector seconds per loaded byte of B (A), spread over the K steps that load it
        dq_b, dq_a = dequant_seconds(cm, mm)  # per element; per loaded byte below
        dq_b, dq_a = dq_b / bb, dq_a / ba
        kc, slots = int(f["k_chunk"]), int(f["slots"])  # the K pipeline the mapping assumed
        # a step moves at most STEP_BYTES, as a kernel's fixed pipeline stage does; the SRAM the
        # mapping gave its slots then holds proportionally more of the smaller steps
        kc0, kc = kc, event_k_chunk(kc, ks, mt * ba + nt * bb)
        slots = max(slots, slots * kc0 // kc)
        kf = min(kc, max(K_CHUNK_MIN, cm.R))
        tiles = []
        outer, inner = (range(nn), range(nm)) if order == 2 else (range(nm), range(nn))
        for bi in range(mm.batch):  # a core walks a row (column) of tiles of one K range
            for x in outer:
                for s in range(split):
                    for y in inner:
                        i, j = (y, x) if order == 2 else (x, y)
                        tiles.append((bi, i, j, s))
        per, extra = divmod(len(tiles), self.cores)
        weight_deps = [self.prev_start] if mm.b_shared and self.prev_start >= 0 else [start]
        ends: list[int] = []
        partials: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
        first = 0
        # a core's tiles, each with its extent, K range and which operands it must load
        mines: list[list[tuple]] = []
        moved_a = moved_b = 0.0  # operand bytes the cores' loads carry
        for c in range(self.cores):
            count = per + (1 if c < extra else 0)
            loaded_row = loaded_col = None
            mine = []
            for bi, i, j, s in tiles[first:first + count]:
                m_i, n_j = min(mt, M - i * mt), min(nt, N - j * nt)
                k0, k1 = s * ks, min(K, (s + 1) * ks)
                load_a = not (order == 1 and loaded_row == (bi, i, s))
                load_b = not (order == 2 and loaded_col == (bi, j, s))
                loaded_row, loaded_col = (bi, i, s), (bi, j, s)
                moved_a += m_i * (k1 - k0) * ba if load_a else 0.0
                moved_b += n_j * (k1 - k0) * bb if load_b else 0.0
                cyc = pass_cycles(m_i, n_j, k1 - k0, cm.R, cm.C, cm.count, cm.df, speed, cm.overlap, cm.min_pass)
                mine.append((bi, i, j, m_i, n_j, k0, k1, load_a, load_b, cyc / cm.f_tensor / teff))
            mines.append(mine)
            first += count
        # with a chip-shared SRAM each operand's loads carry the operand's HBM bytes of the
        # mapping (the rest of what they move hits the shared SRAM)
        w_a = (f["a_hbm_bytes"] * mc / moved_a if cm.shared_cap > 0 and moved_a > 0 else 1.0) * self.hbm_scale
        w_b = (f["b_hbm_bytes"] * mc / moved_b if cm.shared_cap > 0 and moved_b > 0 else 1.0) * self.hbm_scale
        # what one core's loads move a second while every active core loads: its share of the
        # load paths and of HBM (at the operands' HBM fractions)
        active = max(1, min(self.cores, len(tiles)))
        hbm_frac = ((w_a * moved_a + w_b * moved_b) / (moved_a + moved_b)) if moved_a + moved_b > 0 else 1.0
        core_rate = min(cm.load_path(active), cm.hbm_bw / max(hbm_frac, 1e-12)) / active
        for c, mine in enumerate(mines):
            pool = b.pool(f"core{c}.sram.op{oid}", slots)
            prev_pass = -1
            # consecutive tiles with the same K range run as one group: their K steps are merged
            # (bytes, cycles and FLOPs add up), so the task count per op and core stays bounded
            size = max(1, -(-len(mine) // MAX_TILE_GROUPS))
            groups, cur = [], []
            for t in mine:
                if cur and (len(cur) == size or cur[0][5:7] != t[5:7]):
                    groups.append(cur)
                    cur = []
                cur.append(t)
            if cur:
                groups.append(cur)
            for gi, grp in enumerate(groups):
                k0, k1 = grp[0][5], grp[0][6]
                b_per_k = sum(g[4] for g in grp if g[8]) * bb  # bytes per unit of K
                a_per_k = sum(g[3] for g in grp if g[7]) * ba
                pass_per_k = sum(g[9] for g in grp) / (k1 - k0)
                flops_per_k = sum(2.0 * g[3] * g[4] for g in grp)
                k = k0
                first_step = prev_pass < 0  # the core's first step is fine-grained: it fills the pipeline
                last_group = gi == len(groups) - 1
                q = ramp_ratio(pass_per_k, (a_per_k + b_per_k) / mc / core_rate)
                steps = []
                while k < k1:
                    kk = min(kf if first_step else kc, k1 - k)
                    if last_group and not first_step and (k1 - k) * (1.0 - q) <= kc:
                        # the core's last K steps shrink by q a step down to the fine chunk: each
                        # step's pass then takes no longer than the next step's load, so the
                        # pipeline drains after one fine pass, whatever the chunk (so that a
                        # chunk grown with the SRAM cannot lengthen the drain)
                        kk = k1 - k if k1 - k <= kf else max(kf, min(kc, math.ceil((k1 - k) * (1.0 - q))))
                    first_step = False
                    steps.append(kk)
                    k += kk
                prev_pass = self.k_steps(oid, c, steps, b_per_k, a_per_k, pass_per_k, flops_per_k, prev_pass,
                                         weight_deps, start, pool, w_a, w_b, dq_a, dq_b)
                elems = sum(g[3] * g[4] for g in grp)
                ev = b.task(BUSY, CAT_VECTOR, oid, [prev_pass], resource=self.vector[c],
                            duration_s=self.vec_time(elems, "fp32"))
                if split > 1:
                    outs = self.store(oid, c, elems * 4.0, [ev], h_part)
                    for g in grp:
                        partials.setdefault((g[0], g[1], g[2]), []).append((outs, c))
                else:
                    ends += self.store(oid, c, elems * bo, [ev])
        # the reduction of the split-K partials runs over all the cores (as a separate reduction
        # kernel does): each output tile's rows are cut into as many pieces as there are cores
        # per output tile; the tiles of the last wave (a core's last tile, on the cores that run
        # every wave), reduced after the tensor passes end, are cut by their own count, so that
        # they too spread over every core as the closed form charges them. A piece runs as soon
        # as the tile's partials are written and takes the queue priority of its last partial,
        # ahead of later tiles' loads
        waves = max(1, -(-len(tiles) // self.cores))
        late = {t[:3] for mine in mines if len(mine) == waves for t in mine[-1:]} if partials and waves > 1 else set()
        per_tile = max(1, self.cores // max(1, len(partials)))
        per_late = max(1, self.cores // max(1, len(late)))
        # the last wave's pieces go first to the cores that ran fewer tiles (free earliest, as a
        # reduction kernel's blocks land on whichever cores are free), the others round robin
        free_first = sorted(range(self.cores), key=lambda c: (len(mines[c]), c))
        nxt = nxt_late = 0
        for (bi, i, j), parts in partials.items():
            m_i, n_j = min(mt, M - i * mt), min(nt, N - j * nt)
            outs = [t for o, _ in parts for t in o]
            first_new = b.num_tasks
            is_late = (bi, i, j) in late
            pieces = min(per_late if is_late else per_tile, m_i)
            for q in range(pieces):
                rows = m_i // pieces + (1 if q < m_i % pieces else 0)
                if is_late:
                    c = free_first[nxt_late % self.cores]
                    nxt_late += 1
                else:
                    c = nxt % self.cores
                    nxt += 1
                reads = self.load(oid, c, len(parts) * rows * n_j * 4.0, outs, h_part)
                add = b.task(BUSY, CAT_VECTOR, oid, reads, resource=self.vector[c],
                             duration_s=self.vec_time(len(parts) * rows * n_j, "fp32"))
                ends += self.store(oid, c, rows * n_j * bo, [add])
            for t in range(first_new, b.num_tasks):
                b.set_priority(t, max(outs))
        return ends

    def per_head_decode(self, o: FlashAttention, oid: int, start: int) -> list[int]:
        """One-query attention by a kernel with one thread block per query head
        (``cost.op_cost.per_head_decode``): each core loads its blocks' K/V through its DMA path
        (the chip-shared cache serving the repeats: only the HBM share weighs on HBM), works them
        on its vector engine at the fp32 rate and stores their outputs, in pieces that overlap."""
        cm, b = self.cm, self.b
        d = per_head_decode(cm, o)
        hbm_fraction = d.in_hbm_bytes / d.in_load_bytes if d.in_load_bytes else 1.0
        rate = cm.vec_rate.get("fp32", cm.vec_rate_default)
        per, extra = divmod(d.blocks, d.active)
        ends: list[int] = []
        for c in range(d.active):
            share = (per + (1 if c < extra else 0)) / d.blocks
            pieces = max(1, min(VECTOR_PIECES, math.ceil(d.in_load_bytes * share / VECTOR_PIECE_BYTES)))
            for _ in range(pieces):
                frac = share / pieces
                ld = self.load(oid, c, d.in_load_bytes * frac, [start], hbm_fraction)
                work = [b.task(BUSY, CAT_VECTOR, oid, ld, resource=self.vector[c],
                               duration_s=max(d.vector_ops * frac / rate, d.transcendentals * frac / cm.trans_rate))]
                ends += self.store(oid, c, d.out_bytes * frac, work)
        return ends

    def vector_op(self, o: Op, oid: int, start: int) -> list[int]:
        cm, b = self.cm, self.b
        rows = getattr(o, "rows", None)
        if rows is None and hasattr(o, "tokens"):
            rows = getattr(o, "batch", 1) * o.tokens
        if rows is None:
            rows = max(1, math.ceil(getattr(o, "elements", 1) / (cm.lanes * 16)))
        rows = max(1, int(rows))
        active = min(self.cores, rows)
        total_bytes = o.bytes()
        in_bytes, out_bytes = total_bytes / 2, total_bytes / 2
        dtype = getattr(o, "dtype", "bf16")
        # a row-wise reduction streams HBM at the library's reduction_efficiency (``vector_cost``)
        w = 1.0 / cm.reduction_eff if reduction_op(o) else 1.0
        ends = []
        per, extra = divmod(rows, active)
        for c in range(active):
            share = (per + (1 if c < extra else 0)) / rows
            core_in = in_bytes * share
            pieces = max(1, math.ceil(core_in / VECTOR_CHUNK_BYTES),
                         min(VECTOR_PIECES, math.ceil(core_in / VECTOR_PIECE_BYTES)))
            for _ in range(pieces):
                frac = share / pieces
                ld = self.load(oid, c, in_bytes * frac, [start], w)
                work = []
                if o.transcendentals() > 0:
                    work.append(b.task(BUSY, CAT_SCALAR, oid, ld, resource=self.scalar[c],
                                       duration_s=o.transcendentals() * frac / cm.trans_rate))
                vec_s = max(self.vec_time(o.vector_ops() * frac, dtype), cm.loop_s(o) * frac)
                if vec_s > 0:
                    work.append(b.task(BUSY, CAT_VECTOR, oid, ld, resource=self.vector[c], duration_s=vec_s))
                ends += self.store(oid, c, out_bytes * frac, work or ld, w)
        return ends

    def collective(self, o: Collective, oid: int, start: int) -> list[int]:
        link_s, overhead_s, sent, _ = self.cm.collective(o)  # the chip model of this system and library
        if sent <= 0:
            return [start]
        cap = sent / link_s if link_s > 0 else math.inf
        return [self.b.task(XFER, CAT_LINK, oid, [start], resource=self.link, server=self.link_srv,
                            duration_s=overhead_s, nbytes=sent, cap_Bps=cap)]


@gc_paused
def lower(graph: WorkloadGraph, system: SystemSpec, library=None, replay: bool = True, warm: bool = False) -> Schedule:
    """Lower one chip's share of ``graph`` onto ``system``'s chip (collectives under ``library``,
    the stack's collective library; None: the ideal bound). ``replay=False`` lowers every op
    afresh instead of repeating an identical op's tasks (the same schedule, slower). ``warm``:
    each op re-runs on buffers its previous run left in the chip-shared level (``cost.cache``)."""
    if graph.meta.tp > system.num_chips:
        raise LoweringError(f"--tp {graph.meta.tp} needs {graph.meta.tp} chips; {system.name} has {system.num_chips}")
    return Lowerer(system, library, replay, warm).lower_graph(graph)
