"""Context-parallel attention as PyTorch's ring attention runs it (``cp_attention="ring_sdpa"``).

``torch.distributed.tensor.experimental.context_parallel`` (the CP that torchtitan applies)
replaces each ``scaled_dot_product_attention`` of a layer with a ring over the ``cp`` ranks
(PyTorch ``torch/distributed/tensor/experimental/_attention.py``: ``_templated_ring_attention``
and ``_templated_ring_attention_backward``, with its defaults ``enable_load_balance = True``,
``rotate_method = ALL_GATHER``, ``convert_to_f32 = True``). What it runs on one rank, here on the
last rank of the ring, which takes the full query block at every step:

- the keys and values are all-gathered once per attention pass; torchtitan's Llama expands them
  to the query heads before the call (``repeat_kv``), so the gather moves the query heads' K/V;
  the gather is issued before the first, local block and waited for after it, so only what
  exceeds that block's time is exposed (``Collective.hidden_by``);
- ``cp`` SDPA calls: the local causal block (``sc x sc``), then ``cp - 1`` half blocks
  (``sc`` queries against half of a peer's ``sc`` keys, no mask), the causal work of one rank;
- each call's output is merged into a running output in fp32 (``_SDPAMerger``: the widening
  copy, ``out - block_out``, its product with the sigmoid of the log-sum-exp difference, the
  subtraction, and the log-sum-exp update), and the result narrowed back at the end;
- backward: the gather again, one SDPA backward per step, the gradients accumulated in fp32
  (``zeros_like`` buffers, ``+=`` per step, the key and value gradients updated in their first
  half by ``_partial_update``'s chunk-and-concatenate), and the key / value gradients passed
  to the next rank after every step in fp32 (``torch.cat`` of both, then a permute: a send /
  receive with the ring neighbour) while the next step runs; the last exchange is waited for.
"""

from __future__ import annotations

from typing import Any

from .ops import FLASH_BWD_FACTOR, Collective, Elementwise, FlashAttention


RINGS = ("ring_sdpa", "te_p2p")
"""``ParallelPlan.cp_attention`` values that run as a ring of attention calls (this module)."""


def applies(m: Any, plan: Any, attention: str) -> bool:
    """Whether ``plan``'s context parallelism runs as a ring (flash attention over the whole
    context: a latent (MLA) or sliding-window model keeps the fused model)."""
    return (plan.cp > 1 and plan.cp_attention in RINGS and attention == "flash" and not m.is_mla
            and not m.sliding_window)


def _ew(e: Any, pre: str, role: str, li: int, fn: str, n: float, *deps, dtype: str = "fp32",
        dtype_out: str | None = None) -> str:
    return e(Elementwise(name=pre + role.split(".", 1)[1], layer=li, role=role, fn=fn, elements=int(n),
                         dtype=dtype, dtype_out=dtype_out), *deps)


def _kv_gather(b: Any, e: Any, pre: str, li: int, hidden_by: str, *deps) -> str:
    kv = b.p.microbatch * b.sc * 2 * b.hq * b.hd * b.B  # K and V of the query heads (repeat_kv)
    return e(Collective(name=pre + "cp_allgather_kv", layer=li, role="cp.allgather", op="allgather",
                        bytes_per_rank=kv, group=b.p.cp, dtype=b.dt, hidden_by=hidden_by), *deps)


def _attn(b: Any, e: Any, pre: str, role: str, li: int, step: int, *deps, backward: bool = False) -> str:
    half = b.sc // 2
    name = pre + ("attn" if step == 0 else f"attn_ring{step}")
    hd = round(FLASH_BWD_FACTOR * b.hd) if backward else b.hd
    return e(FlashAttention(name=name, layer=li, role=role, batch=b.p.microbatch, heads=b.hq, kv_heads=b.hq,
                            q_len=b.sc, kv_len=b.sc if step == 0 else half, head_dim=hd, causal=step == 0,
                            dtype=b.dt, backward=backward), *deps)


def forward(b: Any, e: Any, pre: str, ps: str, li: int, h: str | None) -> str:
    """One layer's ring attention forward (``ps``: "fwd" or "recompute"); returns its output op."""
    if b.p.cp_attention == "te_p2p":
        return _te_forward(b, e, pre, ps, li, h)
    n = b.p.microbatch * b.sc * b.hq * b.hd  # output elements
    lse = n / b.hd
    gather = _kv_gather(b, e, pre, li, pre + "attn", h)
    first = _attn(b, e, pre, f"{ps}.attn", li, 0, h)
    out = _ew(e, pre, f"{ps}.attn_merge_upcast", li, "copy", n, first, dtype=b.dt, dtype_out="fp32")
    for i in range(1, b.p.cp):
        blk = _attn(b, e, pre, f"{ps}.attn", li, i, gather)
        up = _ew(e, pre + f"r{i}.", f"{ps}.attn_merge_upcast", li, "copy", n, blk, dtype=b.dt, dtype_out="fp32")
        sig = _ew(e, pre + f"r{i}.", f"{ps}.attn_merge_lse", li, "add", 3 * lse, up)  # sigmoid(blse - lse)
        diff = _ew(e, pre + f"r{i}.", f"{ps}.attn_merge_diff", li, "add", n, up, out)
        # times the per-row sigmoid (broadcast: one full operand read)
        prod = _ew(e, pre + f"r{i}.", f"{ps}.attn_merge_scale", li, "copy", n, diff, sig)
        out = _ew(e, pre + f"r{i}.", f"{ps}.attn_merge", li, "add", n, prod, sig)
    return _ew(e, pre, f"{ps}.attn_merge_downcast", li, "copy", n, out, dtype_out=b.dt)


def backward(b: Any, e: Any, pre: str, li: int, h: str | None) -> list[str]:
    """One layer's ring attention backward; returns the ops producing dQ and dK / dV."""
    if b.p.cp_attention == "te_p2p":
        return _te_backward(b, e, pre, li, h)
    n = b.p.microbatch * b.sc * b.hq * b.hd  # elements of Q, and of K and V (query heads)
    gather = _kv_gather(b, e, pre, li, pre + "attn", h)
    acc = _ew(e, pre, "bwd.attn_grad_zero", li, "fill", 3 * n, h)
    dq = dkv = acc
    for i in range(b.p.cp):
        blk = _attn(b, e, pre, "bwd.attn", li, i, h if i == 0 else gather, backward=True)
        p = pre + f"r{i}."
        dq = _ew(e, p, "bwd.attn_grad_acc_q", li, "add", n, blk, dq)
        if i == 0:
            dkv = _ew(e, p, "bwd.attn_grad_acc_kv", li, "add", 2 * n, blk, dkv)
        else:  # the first half of each (chunk[0] += new), then the halves concatenated again
            dkv = _ew(e, p, "bwd.attn_grad_acc_kv", li, "add", n, blk, dkv)
            dkv = _ew(e, p, "bwd.attn_grad_cat_kv", li, "copy", 2 * n, dkv)
        dkv = _ew(e, p, "bwd.attn_grad_pack_kv", li, "copy", 2 * n, dkv)  # torch.cat for the send
        nxt = pre + f"attn_ring{i + 1}" if i + 1 < b.p.cp else ""
        dkv = e(Collective(name=p + "cp_sendrecv_dkv", layer=li, role="cp.sendrecv", op="sendrecv",
                           bytes_per_rank=2 * n * 4, group=2, dtype="fp32", hidden_by=nxt), dkv)
    dq = _ew(e, pre, "bwd.attn_grad_downcast_q", li, "copy", n, dq, dtype_out=b.dt)
    dkv = _ew(e, pre, "bwd.attn_grad_downcast_kv", li, "copy", 2 * n, dkv, dtype_out=b.dt)
    return [dq, dkv]


# --- Transformer Engine's ring (``cp_attention="te_p2p"``) ----------------------------------------------


def _te_attn(b: Any, e: Any, pre: str, role: str, li: int, step: int, *deps, backward: bool = False) -> str:
    """One ring step's attention kernel over the KV heads (no repetition): the local causal
    block, else the full query block against half of a peer's keys."""
    name = pre + ("attn" if step == 0 else f"attn_ring{step}")
    hd = round(FLASH_BWD_FACTOR * b.hd) if backward else b.hd
    return e(FlashAttention(name=name, layer=li, role=role, batch=b.p.microbatch, heads=b.hq, kv_heads=b.kvl,
                            q_len=b.sc, kv_len=b.sc if step == 0 else b.sc // 2, head_dim=hd, causal=step == 0,
                            dtype=b.dt, backward=backward), *deps)


def _te_exchange(b: Any, e: Any, p: str, li: int, name: str, nbytes: float, hidden_by: str, *deps) -> str:
    return e(Collective(name=p + name, layer=li, role="cp.sendrecv", op="sendrecv", bytes_per_rank=nbytes,
                        group=2, dtype=b.dt, hidden_by=hidden_by), *deps)


def _te_forward(b: Any, e: Any, pre: str, ps: str, li: int, h: str | None) -> str:
    """Transformer Engine's ``AttnFuncWithCPAndKVP2P`` forward on the ring's last rank (the full
    query block at every step): K and V of the KV heads packed into one buffer, then one
    attention call per step (the local causal block, then the queries against the first half of
    each peer's keys, copied contiguous), each step's K / V received from the previous rank
    while the step before runs; the output zeroed, then each step's partial output merged into
    it by one fused correction (``flash_attn_fwd_out_correction``: out += out_step x exp(lse
    difference)) in the activation dtype."""
    n = b.p.microbatch * b.sc * b.hq * b.hd  # output elements
    kvn = b.p.microbatch * b.sc * b.kvl * b.hd  # elements of K (and of V) on this rank
    buf = _ew(e, pre, f"{ps}.attn_cp_pack_kv", li, "copy", 2 * kvn, h, dtype=b.dt)
    blk = _te_attn(b, e, pre, f"{ps}.attn", li, 0, h)
    done = [blk]
    for i in range(1, b.p.cp):
        p = pre + f"r{i}."
        recv = _te_exchange(b, e, p, li, "cp_sendrecv_kv", 2 * kvn * b.B, blk, buf)
        half = _ew(e, p, f"{ps}.attn_cp_half_kv", li, "copy", kvn, recv, dtype=b.dt)  # [:, 0].contiguous()
        blk = _te_attn(b, e, pre, f"{ps}.attn", li, i, half)
        done.append(blk)
    out = _ew(e, pre, f"{ps}.attn_cp_zero_out", li, "fill", n, h, dtype=b.dt)
    for i, blk in enumerate(done):
        out = _ew(e, pre + f"r{i}.", f"{ps}.attn_cp_correct", li, "add", n, blk, out, dtype=b.dt)
    return out


def _te_backward(b: Any, e: Any, pre: str, li: int, h: str | None) -> list[str]:
    """Its backward on the same rank: K / V packed again with a buffer for their gradients, one
    attention backward per step in reverse order (half of a peer's keys copied contiguous), dQ
    accumulated in the activation dtype, each step's dK / dV added to the gradients received
    from the next rank and both K / V and dK / dV passed on while the next step runs."""
    n = b.p.microbatch * b.sc * b.hq * b.hd
    kvn = b.p.microbatch * b.sc * b.kvl * b.hd
    buf = _ew(e, pre, "bwd.attn_cp_pack_kv", li, "copy", 2 * kvn, h, dtype=b.dt)
    dq = dkv = buf
    for i in reversed(range(b.p.cp)):
        p = pre + f"r{i}."
        src = buf if i == 0 else _ew(e, p, "bwd.attn_cp_half_kv", li, "copy", kvn, buf, dtype=b.dt)
        blk = _te_attn(b, e, pre, "bwd.attn", li, i, src, backward=True)
        dq = _ew(e, p, "bwd.attn_cp_acc_q", li, "add" if i < b.p.cp - 1 else "copy", n, blk, dq, dtype=b.dt)
        dkv = _ew(e, p, "bwd.attn_cp_acc_kv", li, "add", 2 * kvn if i == 0 else kvn, blk, dkv, dtype=b.dt)
        nxt = pre + f"attn_ring{i - 1}" if i > 1 else (pre + "attn" if i == 1 else "")
        dkv = _te_exchange(b, e, p, li, "cp_sendrecv_kv_dkv", 4 * kvn * b.B, nxt, dkv)
    return [dq, dkv]


def backward_bytes(m: Any, seq_len: int, plan: Any, dtype_bytes: float) -> float:
    """Bytes one chip holds for a layer's ring attention backward beside what the layer keeps:
    the gathered K / V of every query head (the whole sequence), the fp32 dQ / dK / dV
    accumulators, the fp32 K / V gradients being sent and received, and one step's SDPA
    gradients (``n`` = the rank's query elements, ``microbatch x seq_len / cp x heads x head dim``
    on its TP share of the heads)."""
    hq, hd = m.num_attention_heads // plan.tp_chips, m.head_dim
    n = plan.microbatch * (seq_len // plan.cp) * hq * hd
    if plan.cp_attention == "te_p2p":  # Transformer Engine: dQ, two K / V + dK / dV buffers, one step's
        kvn = plan.microbatch * (seq_len // plan.cp) * m.kv_heads_per_chip(plan.tp_chips) * hd  # gradients
        return (n + 2 * 4 * kvn + n + 2 * kvn) * dtype_bytes
    gathered = plan.microbatch * seq_len * 2 * hq * hd * dtype_bytes
    return gathered + 3 * n * 4 + 2 * (2 * n * 4) + 2 * n * dtype_bytes

