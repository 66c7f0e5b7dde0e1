"""Event-tier lowering of fused attention: per (sequence, KV head, query tile) unit, Q loaded
once, K/V streamed in chunks through the core's load path, QK^T and PV passes on the tensor
engine, exp on the scalar engine, the online softmax update on the vector engine.

A core's units run in at most ``MAX_TILE_GROUPS`` groups of ``FLASH_LANES`` independent
streams; a stream of more than ``MAX_KV_STEPS`` chunks is cut into steps that ramp up from one
chunk to 1/MAX_KV_STEPS of it and back down (bytes, cycles and FLOPs add up), so the tasks grow
with the units, not units x chunks (Llama-3-8B prefill of 32k tokens on trn2: 44.7 M -> 2.4 M
tasks; the makespan 3.9 % longer than chunk by chunk, 0.8 % at 8k, 0.1 % at 2k; streams of up to
MAX_KV_STEPS chunks, e.g. decode up to 8k of context, are lowered chunk by chunk). A unit's
passes are counted over its whole stream, as the closed form counts them, and shared out over
its chunks; its K/V loads carry the closed form's HBM share (``cost.op_cost.flash_kv_reads``),
the chip-shared cache serving the rest.
"""

from __future__ import annotations

import math
from itertools import chain, repeat

from ..compress.formats import DTYPE_BYTES
from ..cost.mapping import MAX_TILE_GROUPS
from ..cost.op_cost import DEQUANT_OPS_PER_ELEMENT, flash_kv_reads
from ..cost.systolic import pass_cycles
from ..workload.ops import FlashAttention
from .schedule import BUSY, CAT_SCALAR, CAT_TENSOR, CAT_VECTOR

KV_CHUNK = 512
"""Keys per streamed K/V chunk."""
MAX_KV_STEPS = 16
"""A stream longer than this many chunks is cut into steps of up to 1/MAX_KV_STEPS of it
(ramping up from one chunk and back down to one)."""
FLASH_LANES = 4
"""A group's units alternate between this many independent streams, so that one stream's
softmax (scalar and vector engines) overlaps the other's matmuls, as separate units do."""


def _taper(n: int, mid: int = MAX_KV_STEPS) -> list[int]:
    """Chunks per step for a stream of ``n`` chunks: one chunk per step up to ``mid`` chunks;
    beyond, 1, 2, 4, ... up to ``ceil(n / mid)``, steps of that size, then back down to 1."""
    cap = -(-n // mid)
    if cap <= 1:
        return [1] * n
    up = []
    s = 1
    while s < cap:
        up.append(s)
        s *= 2
    rest = n - 2 * sum(up)
    return up + [cap] * (rest // cap) + ([rest % cap] if rest % cap else []) + up[::-1]


class AttentionLowering:
    """The fused-attention part of ``lower.lowering.Lowerer`` (which provides the chip model
    ``cm``, the schedule builder ``b``, the engines and ``load`` / ``store`` / ``vec_time``)."""

    def flash(self, o: FlashAttention, oid: int, start: int) -> list[int]:
        cm, b = self.cm, self.b
        if cm.attn_per_head and o.q_len == 1:
            return self.per_head_decode(o, oid, start)
        dt = DTYPE_BYTES[o.dtype]
        group = max(1, o.heads // o.kv_heads)
        rows = group * o.q_len
        mt = min(rows, 128)
        q_tiles = -(-rows // mt)
        units = [(bi, kh, qt) for bi in range(o.batch) for kh in range(o.kv_heads) for qt in range(q_tiles)]
        split = 1
        if len(units) < self.cores:
            split = max(1, min(-(-self.cores // len(units)), -(-o.kv_read() // 128)))
        kv_eff = o.score_elements() / (o.batch * o.heads * o.q_len)
        kv_part = kv_eff / split
        speed = cm.speedup(o.dtype)
        kv_dq = (DEQUANT_OPS_PER_ELEMENT if o.kv_dtype and o.kv_dtype != o.dtype and not cm.fused_dequant
                 else 0.0)
        vrate_ops = o.vector_ops() / o.score_elements() if o.score_elements() else 0.0
        work = [(u, s) for u in units for s in range(split)]
        per, extra = divmod(len(work), self.cores)
        eff = cm.tensor_eff(o.dtype) * cm.attention_eff(o)
        chunks = []  # one unit's K/V stream, KV_CHUNK keys at a time
        done = 0.0
        while done < kv_part - 1e-9:
            chunks.append(min(KV_CHUNK, kv_part - done))
            done += chunks[-1]
        out_b = o.vd * (dt if split == 1 else 4.0)
        # the units stream their K/V through their cores' load paths; HBM supplies what the
        # closed form reads from it (once with a chip-shared cache holding them), the cache the rest
        kv_bytes, rereads = flash_kv_reads(cm, o, q_tiles, kv_eff)
        streamed = len(work) * kv_part * o.kv_width() * o.kv_el_bytes()
        kv_hbm = min(1.0, kv_bytes * rereads / streamed) if streamed > 0 else 1.0
        qk_s: dict[tuple, float] = {}  # seconds of one stream item's two passes, by (rows, keys)
        pv_s: dict[tuple, float] = {}
        # a unit's passes over its whole K/V stream, as the closed form counts them (the array's
        # fill and drain once: consecutive chunks' passes pipeline on it), shared out over the
        # chunks in proportion to their keys, as a GEMM's K steps share its passes
        kv_n = math.ceil(kv_part) if chunks else 1
        for m in {min(mt, rows - qt * mt) for qt in range(q_tiles)}:
            qk = pass_cycles(m, kv_n, o.head_dim, cm.R, cm.C, cm.count, cm.df, speed, cm.overlap,
                             cm.min_pass) / cm.f_tensor / eff
            pv = pass_cycles(m, o.vd, kv_n, cm.R, cm.C, cm.count, cm.df, speed, cm.overlap,
                             cm.min_pass) / cm.f_tensor / eff
            for kvn in set(chunks):
                qk_s[m, kvn] = qk * kvn / kv_part
                pv_s[m, kvn] = pv * kvn / kv_part
        ends, first = [], 0
        for c in range(self.cores):
            count = per + (1 if c < extra else 0)
            mine = work[first:first + count]
            first += count
            if not chunks:
                for (bi, kh, qt), s in mine:
                    m = min(mt, rows - qt * mt)
                    self.load(oid, c, m * o.head_dim * dt, [start])
                    ends += self.store(oid, c, m * out_b, [-1])
                continue
            # a core's units run in at most MAX_TILE_GROUPS groups, each one stream of the
            # group's K/V chunks, cut into steps that start and end one chunk long and are at
            # most 1/MAX_KV_STEPS of the stream in between (a long stream pipelines as well as
            # chunk by chunk, with a bounded number of tasks)
            size = max(1, -(-len(mine) // MAX_TILE_GROUPS))
            lanes = [mine[g0:g0 + size][j::FLASH_LANES] for g0 in range(0, len(mine), size)
                     for j in range(min(FLASH_LANES, len(mine[g0:g0 + size])))]
            for lane in lanes:
                ms = [min(mt, rows - qt * mt) for (_, _, qt), _ in lane]
                # the stream (unit by unit, chunk by chunk) as parallel lists of its items' unit,
                # keys, m x keys and pass seconds: each unit's run of them is built once per
                # distinct row count and chained, and a step sums a slice of each (the same
                # values in the same order as item by item, at C speed: a 32k-token stream has
                # ~300 k items a lane)
                per_m = {m: ([m * kvn for kvn in chunks], [qk_s[m, kvn] for kvn in chunks],
                             [m * kvn / cm.trans_rate for kvn in chunks], [pv_s[m, kvn] for kvn in chunks])
                         for m in set(ms)}
                st_i = list(chain.from_iterable(repeat(i, len(chunks)) for i in range(len(ms))))
                st_keys = chunks * len(ms)
                st_mk, st_qk, st_ex, st_pv = (list(chain.from_iterable(per_m[m][j] for m in ms)) for j in range(4))
                n_stream = len(st_i)
                q_of: dict[int, list[int]] = {}
                prev = -1
                pos = 0
                for n_steps in _taper(n_stream):
                    a, pos = pos, pos + n_steps
                    items = list(dict.fromkeys(st_i[a:pos]))
                    for i in items:
                        if i not in q_of:
                            q_of[i] = self.load(oid, c, ms[i] * o.head_dim * dt, [start])
                    q = [t for i in items for t in q_of[i]]
                    keys = sum(st_keys[a:pos])
                    kvload = self.load(oid, c, keys * o.kv_width() * o.kv_el_bytes(), [start], kv_hbm)
                    if kv_dq and kvload:
                        kvload = [b.task(BUSY, CAT_VECTOR, oid, kvload, resource=self.vector[c],
                                         duration_s=self.vec_time(kv_dq * keys * o.kv_width(), o.dtype))]
                    mk = sum(st_mk[a:pos])
                    qk = b.task(BUSY, CAT_TENSOR, oid, q + kvload + [prev], resource=self.tensor[c],
                                duration_s=sum(st_qk[a:pos]), flops=2.0 * mk * o.head_dim)
                    ex = b.task(BUSY, CAT_SCALAR, oid, [qk], resource=self.scalar[c], duration_s=sum(st_ex[a:pos]))
                    upd = b.task(BUSY, CAT_VECTOR, oid, [qk], resource=self.vector[c],
                                 duration_s=self.vec_time(vrate_ops * mk, o.dtype))
                    prev = b.task(BUSY, CAT_TENSOR, oid, [ex, upd], resource=self.tensor[c],
                                  duration_s=sum(st_pv[a:pos]), flops=2.0 * mk * o.vd)
                    # units whose stream ends in this step write their output
                    finished = [i for i in items if pos >= n_stream or st_i[pos] != i]
                    if finished:
                        ends += self.store(oid, c, sum(ms[i] for i in finished) * out_b, [prev])
        return ends
