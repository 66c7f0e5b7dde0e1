"""Training-step graphs of one pipeline stage for ONE microbatch on ONE chip: the forward and the
backward op graphs, the optimizer step and the data-parallel gradient collectives
(``StageGraphs``, used by ``train.build_train``).

Forward of a layer (as ``build.prefill``, on ``T = microbatch * seq_len / cp`` tokens):
norm, QKV (column-parallel), RoPE, [cp: all-gather K/V], attention, out projection
(row-parallel), TP all-reduce (with sp: reduce-scatter, and an all-gather before each
column-parallel GEMM; norms and residual adds on ``T / tp`` tokens), residual, norm, MLP (dense,
or MoE: router, [ep: all-to-all dispatch], experts, [ep: all-to-all combine], shared experts),
TP all-reduce, residual. The first stage starts with the vocabulary-parallel embedding, the
last ends with the final norm, the LM head over all ``T`` tokens and the vocabulary-parallel
cross-entropy (a softmax over the chip's vocabulary shard plus an all-reduce of 3 fp32 numbers
per token: max, target logit, sum of exponentials).

Backward, layer by layer in reverse:

- every weight GEMM ``Y[m,n] = X[m,k] W[k,n]`` becomes an activation-gradient GEMM
  ``dX = dY W^T`` (``*_dgrad``: m x k x n) and a weight-gradient GEMM ``dW = X^T dY``
  (``*_wgrad``: k x n x m, output in the gradient dtype): 2x the forward FLOPs;
- flash attention backward is a flash forward with 2.5x the head width (``ops.FLASH_BWD_FACTOR``;
  2.5x its bytes where the real pass moves 2x); unfused, four batched GEMMs and the softmax's;
- norm backward is an elementwise pass reading x and dy and writing dx (``mul`` over the
  tokens x hidden); an activation's backward is the same function over ``(2i+1)/(i+1)`` times
  its elements (``i`` inputs: reads inputs and dy, writes one gradient per input), so bytes
  match; RoPE backward is RoPE; a residual junction adds the two incoming gradients;
- TP collectives are mirrored (Megatron's f/g conjugates): the forward all-reduce after a
  row-parallel GEMM has an identity backward, the identity before a column-parallel GEMM an
  all-reduce of dX in backward; with sp a forward all-gather becomes a reduce-scatter and vice
  versa, and the input of each column-parallel GEMM is all-gathered again for its weight
  gradient (Korthikanti et al.). CP: K/V are all-gathered again and dK/dV reduce-scattered
  (``cp_attention="ring_sdpa"`` / ``"te_p2p"``: ``cp_ring``). EP: one all-to-all per direction;
- recompute="full": before a layer's backward its forward is recomputed (roles
  ``recompute.*``, TP/CP/EP collectives included); "selective": the attention core is
  recomputed (``recompute.attn``) before its backward, or with ``plan.selective == "op"``
  (torchtitan) what op-level checkpointing did not keep: norms, RoPE, the k, output and MLP up
  projections, the activation and the residual adds (``op_recompute``; its TP collectives
  are not repeated); with MaxText's ``qkv_proj`` / ``context_offload`` the layer's forward
  without the q / k / v projections, or without the attention core (its output reloaded from
  host memory). Under ``plan.recompute_scope == "needed"`` (JAX) a recomputed dense layer
  stops after the MLP activation: the down projection's output only feeds the residual add.
"""

from __future__ import annotations

import dataclasses
import math

from .build import active_experts
from .graph import WorkloadGraph, WorkloadMeta
from .model import ModelConfig, dtype_bytes
from . import cp_ring, eager
from .ops import (AdamW, Collective, ELEMENTWISE, Elementwise, Embedding, FLASH_BWD_FACTOR, FlashAttention,
                  LayerNorm, MatMul, RMSNorm, Softmax)
from .parallel import ParallelPlan, embedding_params, head_params, layer_params
from ..errors import WorkloadError

class _Emit:
    """Ops and edges in program order (each op after its dependencies)."""

    def __init__(self) -> None:
        self.ops: list = []
        self.edges: list[tuple[str, str]] = []
        self.names: set[str] = set()

    def __call__(self, op, *deps: str | None) -> str:
        if op.name in self.names:
            raise WorkloadError(f"duplicate op name {op.name!r} (a bug in the training builder)")
        self.names.add(op.name)
        self.ops.append(op)
        self.edges.extend((d, op.name) for d in deps if d)
        return op.name

    def graph(self, meta: WorkloadMeta) -> WorkloadGraph:
        return WorkloadGraph.from_ordered(meta, self.ops, self.edges)


LINEAR_ROLES = frozenset({"qkv_proj", "k_proj", "out_proj", "mlp_up", "mlp_down", "moe_up", "moe_down", "shared_up",
                          "shared_down", "q_up", "kv_up"})
"""The linear layers whose GEMMs an FP8 recipe of scope "gemm" runs in FP8 (Transformer Engine's
``te.Linear``); attention, the router and the LM head stay in the activation dtype."""


class StageGraphs:
    """Shapes of one chip's share of one microbatch, and the emitters of each part."""

    def __init__(self, m: ModelConfig, plan: ParallelPlan, seq_len: int, dt: str, attention: str,
                 fp8_scope: str = "all", fp8_transposes: bool = False):
        # fp8 with scope "gemm": the linear layers' GEMMs take fp8 operands (each activation
        # operand cast from bf16 first, to both layouts with ``fp8_transposes``), everything
        # else is bf16
        self.fp8_copies = 2 if fp8_transposes else 1
        self.mdt = dt
        if dt == "fp8" and fp8_scope == "gemm":
            dt = "bf16"
        self.m, self.p, self.dt = m, plan, dt
        self.gdt = plan.grad_dtype or dt
        self.B, self.GB = dtype_bytes(dt), dtype_bytes(self.gdt)
        self.rdt = plan.reduce_dtype or self.gdt  # the data-parallel reduction's dtype
        self.RB = dtype_bytes(self.rdt)
        self.zero_once = plan.zero == 3 and plan.pp > 1 and plan.zero3_pipeline == "step"  # ZeRO-1's collectives
        self.t = t = plan.tp_chips
        self.sp = plan.sp and t > 1
        self.s, self.sc = seq_len, seq_len // plan.cp
        self.T = plan.microbatch * self.sc
        self.Tsp = self.T // t if self.sp else self.T
        self.d, self.hd = m.hidden_size, m.head_dim
        self.hq, self.kvl = m.num_attention_heads // t, m.kv_heads_per_chip(t)
        self.qkv_n = m.qkv_width(t)
        self.o_k = self.hq * self.hd  # the output projection's contraction
        self.rope_el = (self.hq + self.kvl) * self.hd  # elements RoPE rotates per token
        self.kv_tok = 2 * self.kvl * self.hd  # K/V elements per token a CP rank gathers
        self.mla = m.is_mla
        if self.mla:  # multi-head latent attention: see build._mla_attention
            r, rope = m.kv_lora_rank, m.qk_rope_head_dim
            self.qk, self.vd = m.qk_nope_head_dim + rope, m.v_head_dim
            self.o_k = self.hq * self.vd
            self.rope_el = (self.hq + 1) * rope
            self.kv_tok = r + rope
            self.kv_up_n = self.hq * (m.qk_nope_head_dim + self.vd)
        self.g = 2 if m.gated_mlp else 1
        self.f = m.intermediate_size // t
        self.act = (m.activation + "_mul") if m.gated_mlp else m.activation
        self.Norm = RMSNorm if m.norm == "rmsnorm" else LayerNorm
        self.flash = attention == "flash"
        self.ring = cp_ring.applies(m, plan, attention)
        # load-balanced causal CP: sc queries see (s + sc)/2 keys on average (exactly 1/cp of
        # the causal work; see FlashAttention.score_elements)
        self.kv_len = (self.s + self.sc) // 2 if plan.cp > 1 else self.s
        vm = self.p.vocab_multiple
        self.Vt = -(-m.vocab_size // (vm * t)) * vm  # a rank's share of the (padded) vocabulary
        if m.is_moe:
            E, k = m.num_experts, m.num_experts_per_tok
            cap = plan.moe_capacity_factor
            if plan.ep == 1:
                self.n_exp = active_experts(E, k, self.T)
                self.m_exp = math.ceil(self.T * k * (cap or 1.0) / self.n_exp)
                self.fm = m.moe_intermediate_size // t
            else:
                self.n_exp = E // plan.ep
                load = cap if cap is not None else plan.moe_load_imbalance
                self.load = load
                self.m_exp = math.ceil(self.Tsp * k * load / self.n_exp)
                self.fm = m.moe_intermediate_size
            self.fs = m.num_shared_experts * (m.moe_intermediate_size // t)

    # --- op factories -------------------------------------------------------------------------
    def norm(self, e: _Emit, pre: str, role: str, layer: int, rows: int, *deps: str | None) -> str:
        """A norm's forward: one fused op, or an eager RMSNorm's separate ops in a chain."""
        local = role.split(".", 1)[1]
        if self.Norm is not RMSNorm or self.p.rmsnorm != "eager":
            return e(self.Norm(name=pre + local, layer=layer, role=role, rows=rows, cols=self.d, dtype=self.dt), *deps)
        h = None
        for op in eager.composite_rmsnorm(rows, self.d, self.dt, name=pre + local):
            h = e(dataclasses.replace(op, layer=layer, role=role), *((h,) if h else deps))
        return h

    def norm_bwd(self, e: _Emit, pre: str, local: str, layer: int, *deps: str | None) -> str:
        """A norm's backward: one elementwise pass, plus an eager RMSNorm's per-op gradients
        (about its forward's kernels again)."""
        h = self.ew(e, pre, f"bwd.{local}", layer, "mul", self.Tsp * self.d, *deps)
        if self.Norm is not RMSNorm or self.p.rmsnorm != "eager":
            return h
        for op in eager.composite_rmsnorm(self.Tsp, self.d, self.dt, name=f"{pre}{local}_grad"):
            h = e(dataclasses.replace(op, layer=layer, role=f"bwd.{local}"), h)
        return h

    def mm(self, e: _Emit, pre: str, role: str, layer: int, m: int, n: int, k: int, *deps: str | None,
           batch: int = 1, shared: bool = True, out: str | None = None) -> str:
        local = role.split(".", 1)[1]
        dt = self.dt
        if self.mdt != self.dt and local.removesuffix("_dgrad").removesuffix("_wgrad") in LINEAR_ROLES:
            dt = self.mdt
            if not local.endswith("_wgrad"):  # wgrad reuses the casts of fwd (X) and dgrad (dY)
                deps = (e(Elementwise(name=pre + local + "_cast", layer=layer, role=role + "_cast", fn="copy",
                                      elements=batch * m * k, dtype=self.dt, dtype_out=dt,
                                      out_elements=self.fp8_copies * batch * m * k), *deps),)
        return e(MatMul(name=pre + local, layer=layer, role=role, m=m, n=n, k=k, batch=batch,
                        dtype_a=dt, dtype_b=dt, dtype_out=out or self.dt, b_shared=shared), *deps)

    def ew(self, e: _Emit, pre: str, role: str, layer: int, fn: str, elements: float, *deps: str | None,
           backward: bool = False) -> str:
        if backward:  # reads inputs and dy, writes one gradient per input
            i = ELEMENTWISE[fn][0]
            elements = elements * (2 * i + 1) / (i + 1)
        return e(Elementwise(name=pre + role.split(".", 1)[1], layer=layer, role=role, fn=fn,
                             elements=int(math.ceil(elements)), dtype=self.dt), *deps)

    def loss_fwd(self, e: _Emit, x: str | None) -> str:
        """The loss's forward over the chip's logits: one softmax pass in the training dtype, or
        (``loss: eager_fp32``) the widening copy of the logits, then log-softmax in fp32."""
        if self.p.loss != "eager_fp32":
            return e(Softmax(name="fwd.loss", role="fwd.loss", rows=self.T, cols=self.Vt, dtype=self.dt), x)
        x = e(Elementwise(name="fwd.loss_upcast", role="fwd.loss", fn="copy", elements=self.T * self.Vt,
                          dtype=self.dt, dtype_out="fp32", unvectorized=True), x)
        return e(Softmax(name="fwd.loss", role="fwd.loss", rows=self.T, cols=self.Vt, dtype="fp32"), x)

    def loss_bwd(self, e: _Emit, *deps: str | None) -> str:
        """The loss's backward: one gradient pass in the training dtype (reads the kept softmax
        and the labels' gradient, writes the logits' gradient), or (``eager_fp32``) nll_loss's
        zero-filled gradient, the log-softmax backward in fp32 and the narrowing copy."""
        n = self.T * self.Vt
        if self.p.loss != "eager_fp32":
            return self.ew(e, "bwd.", "bwd.loss", -1, "mul", n, *deps)
        g = e(Elementwise(name="bwd.loss_fill", role="bwd.loss", fn="fill", elements=n, dtype="fp32"), *deps)
        g = e(Elementwise(name="bwd.loss", role="bwd.loss", fn="mul", elements=n, dtype="fp32"), g)
        return e(Elementwise(name="bwd.loss_downcast", role="bwd.loss", fn="copy", elements=n, dtype="fp32",
                             dtype_out=self.dt), g)

    def coll(self, e: _Emit, pre: str, local: str, group_name: str, op: str, nbytes: float, group: int,
             layer: int, *deps: str | None, dtype: str | None = None) -> str | None:
        """A collective, or nothing (returns the first dep) when the group has one rank."""
        if group <= 1:
            return next((d for d in deps if d), None)
        return e(Collective(name=pre + local, layer=layer, role=f"{group_name}.{op}", op=op,
                            bytes_per_rank=nbytes, group=group, dtype=dtype or self.dt), *deps)

    def tp_in(self, e: _Emit, pre: str, tag: str, li: int, x: str | None) -> str | None:
        """Before a column-parallel GEMM: sp all-gathers the sequence shards (forward) — also
        the backward's re-gather for a weight gradient."""
        if not self.sp:
            return x
        return self.coll(e, pre, f"tp_allgather_{tag}", "tp", "allgather", self.Tsp * self.d * self.B, self.t, li, x)

    def tp_out(self, e: _Emit, pre: str, tag: str, li: int, *deps: str | None) -> str | None:
        """After a row-parallel GEMM (forward) or a column-parallel dgrad (backward): sum the
        partial results over TP (all-reduce, or reduce-scatter with sp)."""
        op = "reducescatter" if self.sp else "allreduce"
        return self.coll(e, pre, f"tp_{op}_{tag}", "tp", op, self.T * self.d * self.B, self.t, li, *deps)

    def zero_groups(self, dense: float, expert: float) -> list[tuple[str, float, int]]:
        """(name suffix, parameters, group) of the data-parallel groups holding ``dense`` and
        ``expert`` parameters (merged when they are the same group)."""
        p = self.p
        if p.ep == 1 or expert == 0:
            return [("", dense + expert, p.dp_group)]
        return [("", dense, p.dp_group), ("_experts", expert, p.expert_dp_group)]

    def zero_gather(self, e: _Emit, pre: str, li: int, dense: float, expert: float, *deps: str | None,
                    tag: str = "") -> list[str]:
        """ZeRO-3: all-gather the weights (one shard per rank) before they are used."""
        if self.p.zero != 3 or self.zero_once:
            return []
        out = []
        for sfx, n, grp in self.zero_groups(dense, expert):
            c = self.coll(e, pre, "dp_allgather" + tag + sfx, "dp", "allgather", n * self.B / grp, grp, li, *deps)
            if c and c not in deps:
                if self.p.zero3_copies:  # FSDP2: the gathered buffer copied into the parameters
                    role = pre.rstrip(".").rsplit(".", 1)[-1] + ".zero_copy_out"  # "L0.fwd." -> "fwd.zero_copy_out"
                    c = e(Elementwise(name=pre + "zero_copy_out" + tag + sfx, layer=li, role=role, fn="copy",
                                      elements=int(n), dtype=self.dt), c)
                out.append(c)
        return out

    def zero_scatter(self, e: _Emit, pre: str, li: int, dense: float, expert: float, *deps: str | None,
                     tag: str = "") -> None:
        """ZeRO-2/3: reduce-scatter the gradients once computed."""
        if self.p.zero < 2 or self.zero_once:
            return
        for sfx, n, grp in self.zero_groups(dense, expert):
            self.coll(e, pre, "dp_reducescatter" + tag + sfx, "dp", "reducescatter", n * self.RB, grp, li, *deps,
                      dtype=self.rdt)

    # --- forward ------------------------------------------------------------------------------
    def attention_fwd(self, e: _Emit, pre: str, ps: str, li: int, h: str) -> str:
        b = self.p.microbatch
        if self.mla:  # decompressed keys and values, 192 / 128 wide (always fused)
            return e(FlashAttention(name=pre + "attn", layer=li, role=f"{ps}.attn", batch=b, heads=self.hq,
                                    kv_heads=self.hq, q_len=self.sc, kv_len=self.kv_len, head_dim=self.qk,
                                    v_head_dim=self.vd, causal=True, dtype=self.dt), h)
        if self.flash:
            return e(FlashAttention(name=pre + "attn", layer=li, role=f"{ps}.attn", batch=b, heads=self.hq,
                                    kv_heads=self.kvl, q_len=self.sc, kv_len=self.kv_len, head_dim=self.hd,
                                    causal=True, dtype=self.dt, window=self.m.sliding_window or 0), h)
        bh = b * self.hq
        h = self.mm(e, pre, f"{ps}.attn_score", li, self.sc, self.s, self.hd, h, batch=bh, shared=False)
        h = e(Softmax(name=pre + "attn_softmax", layer=li, role=f"{ps}.attn_softmax", rows=bh * self.sc,
                      cols=self.s, dtype=self.dt), h)
        return self.mm(e, pre, f"{ps}.attn_context", li, self.sc, self.hd, self.s, h, batch=bh, shared=False)

    def layer_fwd(self, e: _Emit, li: int, x: str | None, ps: str = "fwd", gathered: list[str] | None = None,
                  skip: frozenset[str] = frozenset()) -> str:
        """One layer's forward (``ps`` = "fwd", or "recompute" inside the backward, where the
        weights were ``gathered`` already); a recomputation ``skip``s what was kept
        (``recompute_skips``): "qkv_proj", "attention" (the core, its output reloaded) or
        "mlp_down" (a dense MLP's down projection, its reduction and the residual add)."""
        m, T, Tsp, d = self.m, self.T, self.Tsp, self.d
        pre = f"L{li}.{ps}."
        if gathered is None:
            gathered = self.zero_gather(e, pre, li, *layer_params(m, li, self.p), x)
        h = self.norm(e, pre, f"{ps}.norm_attn", li, Tsp, x)
        h = self.tp_in(e, pre, "attn", li, h)
        if "qkv_proj" not in skip:
            h = self.mm(e, pre, f"{ps}.qkv_proj", li, T, self.qkv_n, d, h, *gathered)
        if self.mla:
            h = self.mla_qkv_fwd(e, pre, ps, li, h)
        elif m.position_embedding == "rope":
            h = self.ew(e, pre, f"{ps}.rope", li, "rope", T * self.rope_el, h)
        if "attention" not in skip and self.ring:
            h = cp_ring.forward(self, e, pre, ps, li, h)
        elif "attention" not in skip:
            kv = self.p.microbatch * self.sc * self.kv_tok * self.B
            h = self.coll(e, pre, "cp_allgather_kv", "cp", "allgather", kv, self.p.cp, li, h)
            if self.mla:  # every position's latent decompressed into per-head keys and values
                h = self.mm(e, pre, f"{ps}.kv_up", li, self.p.microbatch * self.s, self.kv_up_n, m.kv_lora_rank, h)
            h = self.attention_fwd(e, pre, ps, li, h)
        h = self.mm(e, pre, f"{ps}.out_proj", li, T, d, self.o_k, h, *(gathered if "qkv_proj" in skip else ()))
        h = self.tp_out(e, pre, "attn", li, h)
        r = self.ew(e, pre, f"{ps}.residual_attn", li, "add", Tsp * d, h, x)
        n2 = self.norm(e, pre, f"{ps}.norm_mlp", li, Tsp, r)
        if m.is_moe_layer(li):
            outs = self.moe_fwd(e, pre, ps, li, n2)
        else:
            h = self.tp_in(e, pre, "mlp", li, n2)
            h = self.mm(e, pre, f"{ps}.mlp_up", li, T, self.g * self.f, d, h)
            h = self.ew(e, pre, f"{ps}.mlp_act", li, self.act, T * self.f, h)
            if "mlp_down" in skip:
                return h
            h = self.mm(e, pre, f"{ps}.mlp_down", li, T, d, self.f, h)
            outs = [self.tp_out(e, pre, "mlp", li, h)]
        return self.ew(e, pre, f"{ps}.residual_mlp", li, "add", Tsp * d, *outs, r)

    def mla_qkv_fwd(self, e: _Emit, pre: str, ps: str, li: int, h: str) -> str:
        """MLA after the fused projection: the compressed query's norm and up-projection, the
        latent's norm, RoPE on the query heads and the one shared rotary key."""
        m, T = self.m, self.T
        q = h
        if m.q_lora_rank:
            q = e(RMSNorm(name=pre + "q_norm", layer=li, role=f"{ps}.q_norm", rows=T, cols=m.q_lora_rank,
                          dtype=self.dt), h)
            q = self.mm(e, pre, f"{ps}.q_up", li, T, self.hq * self.qk, m.q_lora_rank, q)
        kv = e(RMSNorm(name=pre + "kv_norm", layer=li, role=f"{ps}.kv_norm", rows=T, cols=m.kv_lora_rank,
                       dtype=self.dt), h)
        return self.ew(e, pre, f"{ps}.rope", li, "rope", T * self.rope_el, *dict.fromkeys((q, kv)))

    def moe_fwd(self, e: _Emit, pre: str, ps: str, li: int, n2: str) -> list[str | None]:
        m, d, g = self.m, self.d, self.g
        E, k = m.num_experts, m.num_experts_per_tok
        ep = self.p.ep > 1
        tokens = self.Tsp if ep else self.T  # ep: each TP rank routes its own sequence shard
        hin = n2 if ep else self.tp_in(e, pre, "moe", li, n2)
        h = self.mm(e, pre, f"{ps}.router", li, tokens, E, d, hin)
        a2a = tokens * k * d * self.B * (self.load if ep else 1.0)
        if ep:
            h = self.coll(e, pre, "ep_alltoall_dispatch", "ep", "alltoall", a2a, self.p.ep, li, h)
        h = self.mm(e, pre, f"{ps}.moe_up", li, self.m_exp, g * self.fm, d, h, batch=self.n_exp, shared=False)
        h = self.ew(e, pre, f"{ps}.moe_act", li, self.act, self.n_exp * self.m_exp * self.fm, h)
        h = self.mm(e, pre, f"{ps}.moe_down", li, self.m_exp, d, self.fm, h, batch=self.n_exp, shared=False)
        if ep:
            h = self.coll(e, pre, "ep_alltoall_combine", "ep", "alltoall", a2a, self.p.ep, li, h)
        outs: list[str | None] = [h]
        if self.fs:
            s = self.tp_in(e, pre, "shared", li, n2) if ep else hin
            s = self.mm(e, pre, f"{ps}.shared_up", li, self.T, g * self.fs, d, s)
            s = self.ew(e, pre, f"{ps}.shared_act", li, self.act, self.T * self.fs, s)
            outs.append(self.mm(e, pre, f"{ps}.shared_down", li, self.T, d, self.fs, s))
        if ep:
            return [outs[0], self.tp_out(e, pre, "shared", li, outs[1])] if self.fs else outs
        return [self.tp_out(e, pre, "mlp", li, *outs)]

    def stage_fwd(self, stage: int, layers: range) -> _Emit:
        e, m, d = _Emit(), self.m, self.d
        x: str | None = None
        last = stage == self.p.pp - 1
        if stage == 0:
            ag = self.zero_gather(e, "fwd.", -1, embedding_params(m, self.p), 0, tag="_embed")
            x = e(Embedding(name="fwd.embed", role="fwd.embed", tokens=self.T, hidden=d, vocab=self.Vt,
                            dtype=self.dt), *ag)
            x = self.tp_out(e, "fwd.", "embed", -1, x)
            if m.position_embedding == "learned":
                x = self.ew(e, "fwd.", "fwd.pos_embed", -1, "add", self.Tsp * d, x)
        for li in layers:
            x = self.layer_fwd(e, li, x)
        if last:
            # ZeRO-3 gathers the LM head (with tied embeddings and pp == 1: the token table again)
            head = m._norm_params() + self.Vt * d
            ag = self.zero_gather(e, "fwd.", -1, head, 0, x, tag="_head")
            x = self.norm(e, "fwd.", "fwd.final_norm", -1, self.Tsp, x)
            x = self.tp_in(e, "fwd.", "head", -1, x)
            x = self.mm(e, "fwd.", "fwd.lm_head", -1, self.T, self.Vt, d, x, *ag)
            x = self.loss_fwd(e, x)
            self.coll(e, "fwd.", "tp_allreduce_loss", "tp", "allreduce", 3 * self.T * 4.0, self.t, -1, x,
                      dtype="fp32")
        return e

    # --- backward -----------------------------------------------------------------------------
    def linear_bwd(self, e: _Emit, pre: str, li: int, name: str, m: int, n: int, k: int, *dy: str | None,
                   x: str | None = None, batch: int = 1, wgrads: list | None = None) -> str:
        """dgrad and wgrad of ``Y[m,n] = X[m,k] W[k,n]`` (batched per expert with ``batch``);
        ``dy`` are the dependencies of both, ``x`` an extra one of the wgrad (a re-gathered
        input). Returns the dgrad."""
        dx = self.mm(e, pre, f"bwd.{name}_dgrad", li, m, k, n, *dy, batch=batch, shared=batch == 1)
        w = self.mm(e, pre, f"bwd.{name}_wgrad", li, k, n, m, *dy, x, batch=batch, shared=False, out=self.gdt)
        if wgrads is not None:
            wgrads.append(w)
        return dx

    def attention_bwd(self, e: _Emit, pre: str, li: int, h: str | None) -> list[str]:
        """Attention backward; returns the ops producing dQ, dK and dV."""
        b = self.p.microbatch
        if self.mla:
            return [e(FlashAttention(name=pre + "attn", layer=li, role="bwd.attn", batch=b, heads=self.hq,
                                     kv_heads=self.hq, q_len=self.sc, kv_len=self.kv_len,
                                     head_dim=round(FLASH_BWD_FACTOR * self.qk),
                                     v_head_dim=round(FLASH_BWD_FACTOR * self.vd), causal=True, dtype=self.dt,
                                     backward=True), h)]
        if self.flash:
            return [e(FlashAttention(name=pre + "attn", layer=li, role="bwd.attn", batch=b, heads=self.hq,
                                     kv_heads=self.kvl, q_len=self.sc, kv_len=self.kv_len,
                                     head_dim=round(FLASH_BWD_FACTOR * self.hd), causal=True, dtype=self.dt,
                                     window=self.m.sliding_window or 0, backward=True), h)]
        bh, sc, s, hd = b * self.hq, self.sc, self.s, self.hd
        dp = self.mm(e, pre, "bwd.attn_dprobs", li, sc, s, hd, h, batch=bh, shared=False)     # dP = dO V^T
        dv = self.mm(e, pre, "bwd.attn_dv", li, s, hd, sc, h, batch=bh, shared=False)         # dV = P^T dO
        ds = self.ew(e, pre, "bwd.attn_softmax", li, "mul", bh * sc * s, dp)                  # dS = P*(dP-D)
        dq = self.mm(e, pre, "bwd.attn_dq", li, sc, hd, s, ds, batch=bh, shared=False)        # dQ = dS K
        dk = self.mm(e, pre, "bwd.attn_dk", li, s, hd, sc, ds, batch=bh, shared=False)        # dK = dS^T Q
        return [dq, dk, dv]

    def op_recompute(self, e: _Emit, li: int, dy: str | None) -> str | None:
        """Op-level selective recompute (torchtitan): before a layer's backward, rerun what was
        not kept: the norms, RoPE, the k, output and MLP up (w3) projections (every other
        matmul), the activation and the residual adds."""
        T, Tsp, d = self.T, self.Tsp, self.d
        pre, ps = f"L{li}.recompute.", "recompute"
        h = self.norm(e, pre, f"{ps}.norm_attn", li, Tsp, dy)
        kv_n = self.m.kv_lora_rank + self.m.qk_rope_head_dim if self.mla else self.kvl * self.hd
        h = self.mm(e, pre, f"{ps}.k_proj", li, T, kv_n, d, h)
        if self.m.position_embedding == "rope" or self.mla:
            h = self.ew(e, pre, f"{ps}.rope", li, "rope", T * self.rope_el, h)
        h = self.mm(e, pre, f"{ps}.out_proj", li, T, d, self.o_k, h)
        h = self.ew(e, pre, f"{ps}.residual_attn", li, "add", Tsp * d, h)
        h = self.norm(e, pre, f"{ps}.norm_mlp", li, Tsp, h)
        if not self.m.is_moe_layer(li):
            h = self.mm(e, pre, f"{ps}.mlp_up", li, T, self.f, d, h)
            h = self.ew(e, pre, f"{ps}.mlp_act", li, self.act, T * self.f, h)
        return self.ew(e, pre, f"{ps}.residual_mlp", li, "add", Tsp * d, h)

    def recompute_skips(self) -> frozenset[str] | None:
        """What a layer recomputed from its input before its backward leaves out (None: the plan
        does not recompute layers so): with full recompute nothing, with MaxText's selective
        policies what they keep (the q / k / v projections, or the attention output reloaded
        from host memory), and under ``recompute_scope == "needed"`` the dense MLP's down
        projection too, whose output no backward op reads."""
        p = self.p
        if not p.recomputes_layers:
            return None
        skip = {"qkv_proj" if p.selective == "qkv_proj" else "attention"} if p.recompute == "selective" else set()
        return frozenset(skip | ({"mlp_down"} if p.recompute_scope == "needed" else set()))

    def layer_bwd(self, e: _Emit, li: int, dy: str | None) -> str:
        m, T, Tsp, d = self.m, self.T, self.Tsp, self.d
        pre = f"L{li}.bwd."
        dense, expert = layer_params(m, li, self.p)
        gathered = self.zero_gather(e, pre, li, dense, expert, dy)
        start = dy
        skip = self.recompute_skips()
        if skip is not None:
            start = self.layer_fwd(e, li, dy, "recompute", gathered, skip)
        elif self.p.recompute == "selective" and self.p.selective == "op":
            start = self.op_recompute(e, li, dy)
        wg: list[str] = []
        # MLP block
        if m.is_moe_layer(li):
            dn = self.moe_bwd(e, pre, li, start, gathered, wg)
        else:
            h = self.tp_in(e, pre, "mlp", li, start)
            h = self.linear_bwd(e, pre, li, "mlp_down", T, d, self.f, h, *gathered, wgrads=wg)
            h = self.ew(e, pre, "bwd.mlp_act", li, self.act, T * self.f, h, backward=True)
            x = self.tp_in(e, pre, "mlp_wgrad", li, h)
            dx = self.linear_bwd(e, pre, li, "mlp_up", T, self.g * self.f, d, h, x=x, wgrads=wg)
            dn = [self.tp_out(e, pre, "mlp", li, dx)]
        h = self.norm_bwd(e, pre, "norm_mlp", li, *dn)
        dr = self.ew(e, pre, "bwd.residual_mlp", li, "add", Tsp * d, h, start)
        # attention block
        h = self.tp_in(e, pre, "attn", li, dr)
        h = self.linear_bwd(e, pre, li, "out_proj", T, d, self.o_k, h, wgrads=wg)
        if self.p.recompute == "selective" and self.p.selective == "attention":
            h = (cp_ring.forward(self, e, f"L{li}.recompute.", "recompute", li, h) if self.ring
                 else self.attention_fwd(e, f"L{li}.recompute.", "recompute", li, h))
        kv = self.p.microbatch * self.kv_tok * self.B
        if self.ring:
            grads = cp_ring.backward(self, e, pre, li, h)
        else:
            h = self.coll(e, pre, "cp_allgather_kv", "cp", "allgather", kv * self.sc, self.p.cp, li, h)
            grads = self.attention_bwd(e, pre, li, h)
        if self.mla:  # back through the decompression of every position's latent
            grads = [self.linear_bwd(e, pre, li, "kv_up", self.p.microbatch * self.s, self.kv_up_n,
                                     m.kv_lora_rank, *grads, wgrads=wg)]
        if self.p.cp > 1 and not self.ring:
            grads = [self.coll(e, pre, "cp_reducescatter_dkv", "cp", "reducescatter", kv * self.s, self.p.cp, li,
                               *grads)]
        if m.position_embedding == "rope" or self.mla:
            grads = [self.ew(e, pre, "bwd.rope", li, "rope", T * self.rope_el, *grads)]
        if self.mla and m.q_lora_rank:
            grads = [self.linear_bwd(e, pre, li, "q_up", T, self.hq * self.qk, m.q_lora_rank, *grads, wgrads=wg)]
        x = self.tp_in(e, pre, "attn_wgrad", li, grads[0])
        dx = self.linear_bwd(e, pre, li, "qkv_proj", T, self.qkv_n, d, *grads, x=x, wgrads=wg)
        h = self.tp_out(e, pre, "attn", li, dx)
        h = self.norm_bwd(e, pre, "norm_attn", li, h)
        out = self.ew(e, pre, "bwd.residual_attn", li, "add", Tsp * d, h, dr)
        self.zero_scatter(e, pre, li, dense, expert, *wg)
        return out

    def moe_bwd(self, e: _Emit, pre: str, li: int, start: str | None, gathered: list[str],
                wg: list[str]) -> list[str | None]:
        """Backward of a MoE block; returns the ops producing the gradient of its input."""
        m, d, g, T = self.m, self.d, self.g, self.T
        ep = self.p.ep > 1
        tokens = self.Tsp if ep else self.T
        if ep:
            a2a = tokens * m.num_experts_per_tok * d * self.B * self.load
            h = self.coll(e, pre, "ep_alltoall_combine", "ep", "alltoall", a2a, self.p.ep, li, start)
            x = None
        else:
            h = dyg = self.tp_in(e, pre, "moe", li, start)
            x = self.tp_in(e, pre, "moe_wgrad", li, start) if self.sp else None  # re-gathered input
        h = self.linear_bwd(e, pre, li, "moe_down", self.m_exp, d, self.fm, h, *gathered, batch=self.n_exp,
                            wgrads=wg)
        h = self.ew(e, pre, "bwd.moe_act", li, self.act, self.n_exp * self.m_exp * self.fm, h, backward=True)
        h = self.linear_bwd(e, pre, li, "moe_up", self.m_exp, g * self.fm, d, h, x=x, batch=self.n_exp, wgrads=wg)
        if ep:
            h = self.coll(e, pre, "ep_alltoall_dispatch", "ep", "alltoall", a2a, self.p.ep, li, h)
        outs: list[str | None] = [self.linear_bwd(e, pre, li, "router", tokens, m.num_experts, d, h, x=x,
                                                  wgrads=wg)]
        if self.fs:
            s = self.tp_in(e, pre, "shared", li, start) if ep else dyg
            s = self.linear_bwd(e, pre, li, "shared_down", T, d, self.fs, s, *gathered, wgrads=wg)
            s = self.ew(e, pre, "bwd.shared_act", li, self.act, T * self.fs, s, backward=True)
            xs = self.tp_in(e, pre, "shared_wgrad", li, s) if ep else x
            s = self.linear_bwd(e, pre, li, "shared_up", T, g * self.fs, d, s, x=xs, wgrads=wg)
            outs.append(self.tp_out(e, pre, "shared", li, s) if ep else s)
        return outs if ep else [self.tp_out(e, pre, "mlp", li, *outs)]

    def stage_bwd(self, stage: int, layers: range) -> _Emit:
        e, m, d, T = _Emit(), self.m, self.d, self.T
        dy: str | None = None
        if stage == self.p.pp - 1:
            head = m._norm_params() + self.Vt * d
            ag = self.zero_gather(e, "bwd.", -1, head, 0, tag="_head")
            if self.p.vocab_tiles > 1:  # each tile's logits computed again for its gradient
                ag = [self.mm(e, "bwd.", "recompute.lm_head", -1, T, self.Vt, d, *ag)]
            h = self.loss_bwd(e, *ag)
            x = self.tp_in(e, "bwd.", "head_wgrad", -1, h)
            wg: list[str] = []
            h = self.linear_bwd(e, "bwd.", -1, "lm_head", T, self.Vt, d, h, x, wgrads=wg)
            h = self.tp_out(e, "bwd.", "head", -1, h)
            dy = self.ew(e, "bwd.", "bwd.final_norm", -1, "mul", self.Tsp * d, h)
            self.zero_scatter(e, "bwd.", -1, head_params(m, self.p), 0, *wg, tag="_head")
        for li in reversed(layers):
            dy = self.layer_bwd(e, li, dy)
        if stage == 0:
            h = self.tp_in(e, "bwd.", "embed", -1, dy)
            if m.position_embedding == "learned":
                self.ew(e, "bwd.", "bwd.pos_embed", -1, "add", self.Tsp * d, h)
            h = e(Embedding(name="bwd.embed", role="bwd.embed", tokens=T, hidden=d, vocab=self.Vt, dtype=self.gdt), h)
            self.zero_scatter(e, "bwd.", -1, embedding_params(m, self.p), 0, h, tag="_embed")
        return e

    # --- once per step ------------------------------------------------------------------------
    def optimizer(self, dense: int, expert: int) -> _Emit:
        e = _Emit()
        sharded = self.p.zero >= 1
        n = sum(p / grp if sharded else p for _, p, grp in self.zero_groups(dense, expert))
        n = int(math.ceil(n))
        if self.p.master_casts == "separate" and self.dt != "fp32":
            # the loop's casts around an optimizer that steps fp32 tensors only
            g = e(Elementwise(name="opt.grad_cast", role="opt.grad_cast", fn="copy", elements=n, dtype=self.gdt,
                              dtype_out="fp32", unvectorized=True))
            a = e(AdamW(name="opt.adamw", role="opt.adamw", elements=n, dtype="fp32", grad_dtype="fp32",
                        param_dtype="fp32", master_weights=False), g)
            e(Elementwise(name="opt.param_copy", role="opt.param_copy", fn="copy", elements=n, dtype="fp32",
                          dtype_out=self.dt), a)
            return e
        e(AdamW(name="opt.adamw", role="opt.adamw", elements=n, dtype="fp32",
                grad_dtype=self.gdt, param_dtype=self.dt, master_weights=self.dt != "fp32"))
        return e

    def grad_sync(self, stage: int, dense: int, expert: int) -> list[Collective]:
        out: list[Collective] = []
        z = self.p.zero
        for sfx, n, grp in self.zero_groups(dense, expert):
            if grp <= 1:
                continue
            kw = dict(layer=-1, group=grp)
            if z == 0:
                out.append(Collective(name="dp.allreduce" + sfx, role="dp.allreduce", op="allreduce",
                                      bytes_per_rank=n * self.RB, dtype=self.rdt, **kw))
            if z == 1 or self.zero_once:
                out.append(Collective(name="dp.reducescatter" + sfx, role="dp.reducescatter", op="reducescatter",
                                      bytes_per_rank=n * self.RB, dtype=self.rdt, **kw))
            if z in (1, 2) or self.zero_once:
                out.append(Collective(name="dp.allgather" + sfx, role="dp.allgather", op="allgather",
                                      bytes_per_rank=n * self.B / grp, dtype=self.dt, **kw))
        if self.m.tied_embeddings and self.p.pp > 1 and stage in (0, self.p.pp - 1):
            out.append(Collective(name="pp.allreduce_embedding", role="pp.allreduce", op="allreduce", layer=-1,
                                  bytes_per_rank=self.Vt * self.d * self.GB, group=2, dtype=self.gdt))
        return out


__all__ = ["StageGraphs", "FLASH_BWD_FACTOR"]
