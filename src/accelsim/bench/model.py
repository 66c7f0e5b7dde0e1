"""Whole-model silicon rows: a decoder written in plain PyTorch from a model spec (the fields of
``workloads/*.yaml``: hidden size, heads, KV heads, MLP, norm, positions), with random weights,
timed as a serving engine or a training loop runs it.

- ``prefill``: one forward over ``batch`` x ``seq`` new tokens that writes the KV cache, the
  final norm over every token and the LM head on the last token only, then a greedy pick;
- ``decode``: one token per sequence against a KV cache of ``context`` tokens, LM head and pick;
  timed under PyTorch eager (stack ``cuda-eager``) and replayed as one captured CUDA graph
  (stack ``cuda-eager-graphs``);
- ``train``: forward, cross-entropy over every token, backward, and AdamW on fp32 master weights
  (bf16 weights and gradients, fp32 master, m and v: 16 B a parameter, as Megatron keeps them).

QKV and gate/up are one GEMM each (as vLLM and Megatron fuse them); attention is
``F.scaled_dot_product_attention`` (backend chosen by PyTorch; grouped KV heads without copies).
Rows use the validation schema (``MODEL_COLUMNS``): they are whole steps, never fitted.
PyTorch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .runner import BenchError, require_torch
from .timing import Timing, time_call

#: serving and training columns of workloads/measurements/validation (one file holds both)
MODEL_COLUMNS = ["id", "kind", "system", "chips", "dtype", "model", "phase", "metric", "batch", "concurrency",
                 "input_len", "output_len", "seq_len", "context_len", "tp", "pp", "dp", "microbatch",
                 "global_batch", "recompute", "zero", "compression", "stack", "load", "measured_time_s", "source",
                 "notes"]
MODEL_INT_COLUMNS = ("chips", "batch", "input_len", "seq_len", "context_len", "tp", "pp", "dp", "microbatch",
                     "global_batch", "zero")


@dataclass(frozen=True)
class Point:
    """One timed case: ``phase`` prefill (``seq`` tokens), decode (``context`` cached tokens) or
    train (``seq`` tokens a sequence), ``batch`` sequences."""

    phase: str
    batch: int
    seq: int = 0
    context: int = 0


def _spec(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg.get("sliding_window"):
        raise BenchError(f"model {cfg.get('name')!r}: sliding-window attention is not built by the benchmark decoder")
    if cfg.get("family", "decoder") != "decoder" or cfg.get("num_experts") or cfg.get("kv_lora_rank"):
        raise BenchError(f"model {cfg.get('name')!r}: only dense decoder models with multi-head or grouped "
                         "attention are benchmarked (no MoE, no latent attention, no vision or CNN models)")
    need = ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size"]
    missing = [k for k in need if not cfg.get(k)]
    if missing:
        raise BenchError(f"model {cfg.get('name', '?')!r}: missing {', '.join(missing)}")
    heads = cfg["num_attention_heads"]
    return {**cfg, "num_key_value_heads": cfg.get("num_key_value_heads") or heads,
            "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // heads}


def build_model(cfg: dict[str, Any], device: str, dtype: Any, layers: int | None = None):
    """The decoder of ``cfg`` as a ``torch.nn.Module`` (``layers`` overrides the depth)."""
    torch = require_torch()
    from torch import nn
    import torch.nn.functional as F

    c = _spec(cfg)
    h, f, nh, nkv, hd = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
                         c["num_key_value_heads"], c["head_dim"])
    gated, rope = bool(c.get("gated_mlp", True)), c.get("position_embedding", "rope") == "rope"
    kw = {"device": device, "dtype": dtype}
    act = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}[c.get("activation") or "silu"]

    def norm():
        return nn.RMSNorm(h, eps=1e-5, **kw) if c.get("norm", "rmsnorm") == "rmsnorm" else nn.LayerNorm(h, **kw)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = norm(), norm()
            self.qkv = nn.Linear(h, (nh + 2 * nkv) * hd, bias=bool(c.get("attention_bias") or c.get("qkv_bias")), **kw)
            self.o = nn.Linear(nh * hd, h, bias=bool(c.get("attention_bias")), **kw)
            self.up = nn.Linear(h, f * (2 if gated else 1), bias=bool(c.get("mlp_bias")), **kw)
            self.down = nn.Linear(f, h, bias=bool(c.get("mlp_bias")), **kw)

        def forward(self, x, cos, sin, cache, start):
            b, q, _ = x.shape
            y = self.qkv(self.n1(x)).view(b, q, nh + 2 * nkv, hd).transpose(1, 2)
            qh, k, v = y.split([nh, nkv, nkv], dim=1)
            if rope:
                qh, k = _rotate(qh, cos, sin), _rotate(k, cos, sin)
            if cache is not None:
                cache[0][:, :, start:start + q] = k
                cache[1][:, :, start:start + q] = v
                k, v = cache[0][:, :, :start + q], cache[1][:, :, :start + q]
            a = F.scaled_dot_product_attention(qh, k, v, is_causal=q > 1, enable_gqa=nkv != nh)
            x = x + self.o(a.transpose(1, 2).reshape(b, q, nh * hd))
            u = self.up(self.n2(x))
            if gated:
                g, u = u.chunk(2, dim=-1)
                u = act(g) * u
            else:
                u = act(u)
            return x + self.down(u)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(c["vocab_size"], h, **kw)
            self.pos = None if rope else nn.Embedding(c.get("max_position_embeddings") or 2048, h, **kw)
            self.blocks = nn.ModuleList(Block() for _ in range(layers or c["num_hidden_layers"]))
            self.norm = norm()
            self.head = None if c.get("tied_embeddings") else nn.Linear(h, c["vocab_size"], bias=False, **kw)
            if rope:
                inv = 1.0 / (float(c.get("rope_theta") or 10000.0) ** (torch.arange(0, hd, 2, device=device) / hd))
                n = max(int(c.get("max_position_embeddings") or 0), 1 << 15)
                ang = torch.outer(torch.arange(n, device=device), inv)
                ang = torch.cat([ang, ang], dim=-1)
                self.register_buffer("cos", ang.cos().to(dtype), persistent=False)
                self.register_buffer("sin", ang.sin().to(dtype), persistent=False)

        def forward(self, tokens, caches=None, start=0, last_only=True):
            q = tokens.shape[1]
            x = self.embed(tokens)
            cos = sin = None
            if self.pos is not None:
                x = x + self.pos.weight[start:start + q]
            else:
                cos, sin = self.cos[start:start + q], self.sin[start:start + q]
            for i, blk in enumerate(self.blocks):
                x = blk(x, cos, sin, None if caches is None else caches[i], start)
            x = self.norm(x)
            if last_only:
                x = x[:, -1]
            return F.linear(x, self.embed.weight if self.head is None else self.head.weight)

    return Decoder()


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    torch = require_torch()
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def kv_cache(cfg: dict[str, Any], batch: int, length: int, device: str, dtype: Any, layers: int | None = None):
    """Per layer (K, V), each [batch, kv heads, length, head dim], random."""
    torch = require_torch()
    c = _spec(cfg)
    shape = (batch, c["num_key_value_heads"], length, c["head_dim"])
    return [(torch.randn(shape, device=device, dtype=dtype), torch.randn(shape, device=device, dtype=dtype))
            for _ in range(layers or c["num_hidden_layers"])]


def graphed(fn: Callable[[], Any], warmup: int = 3) -> Callable[[], Any]:
    """``fn`` captured as one CUDA graph (warmed up on a side stream first); returns its replay."""
    torch = require_torch()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def train_step(model, dtype) -> Callable[[Any], Any]:
    """One mixed-precision training step on ``tokens`` [batch, seq]: low-precision weights and
    gradients, AdamW on fp32 master weights, then the weights refreshed from them."""
    torch = require_torch()
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
    master = [p.detach().float().requires_grad_() for p in params]
    fused = params[0].is_cuda
    opt = torch.optim.AdamW(master, lr=1e-5, fused=fused) if fused else torch.optim.AdamW(master, lr=1e-5)

    def step(tokens):
        logits = model(tokens[:, :-1], last_only=False)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        for m, p in zip(master, params):
            m.grad = p.grad.float()
            p.grad = None
        opt.step()
        for m in master:
            m.grad = None
        with torch.no_grad():
            torch._foreach_copy_(params, master)
        return loss.detach()

    return step


def _fits(torch, p: "Point", fn: Callable[[], Any]):
    """``fn()``, or None (with a warning) when the device runs out of memory for ``p``."""
    try:
        return fn()
    except torch.OutOfMemoryError:
        import warnings

        warnings.warn(f"{p.phase} {p.batch}x{p.seq or p.context}: out of device memory, skipped",
                      RuntimeWarning, stacklevel=3)
        return None


def run_points(cfg: dict[str, Any], points: Iterable[Point], device: str, dtype: Any, warmup: int, repeats: int,
               graphs: bool, layers: int | None = None) -> Iterable[tuple[Point, str, Timing]]:
    """Time each point; yields (point, stack, timing): serving points under eager and, when
    ``graphs`` and the phase is decode, as a CUDA graph replay."""
    torch = require_torch()
    points = list(points)
    serving = [p for p in points if p.phase in ("prefill", "decode")]
    from .runner import eager_stack

    stack_eager = eager_stack(device) or "cpu-eager"
    if serving:
        torch.manual_seed(0)
        model = build_model(cfg, device, dtype, layers).eval()
        with torch.inference_mode():
            for p in serving:
                length = p.seq if p.phase == "prefill" else p.context + 1
                caches = kv_cache(cfg, p.batch, length, device, dtype, layers)
                q = p.seq if p.phase == "prefill" else 1
                tokens = torch.randint(0, cfg["vocab_size"], (p.batch, q), device=device)
                start = 0 if p.phase == "prefill" else p.context
                fn = lambda t=tokens, kc=caches, s=start, m=model: m(t, kc, s).argmax(-1)  # noqa: E731
                t = _fits(torch, p, lambda: time_call(fn, device, warmup, repeats))
                if t is not None:
                    yield p, stack_eager, t
                if t is not None and graphs and p.phase == "decode" and device == "cuda":
                    t = _fits(torch, p, lambda: time_call(graphed(fn), device, warmup, repeats))
                    if t is not None:
                        yield p, stack_eager.replace("eager", "eager-graphs"), t
                del caches, fn
                _free(torch, device)
        del model
        _free(torch, device)
    for p in (p for p in points if p.phase == "train"):
        torch.manual_seed(0)
        model = build_model(cfg, device, dtype, layers).train()
        step = train_step(model, dtype)
        tokens = torch.randint(0, cfg["vocab_size"], (p.batch, p.seq + 1), device=device)
        t = _fits(torch, p, lambda s=step, tk=tokens: time_call(lambda: s(tk), device, train_warmup(warmup),
                                                                   max(3, repeats // 4)))
        if t is not None:
            yield p, stack_eager, t
        del model, step
        _free(torch, device)


def train_warmup(warmup: int) -> int:
    """Warm-up steps of a training point (a step costs far more than a serving call)."""
    return max(2, warmup // 2)


def _free(torch, device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def parse_points(text: str) -> list[Point]:
    """``prefill:1x2048,decode:8x1024,train:4x2048`` (phase:batch x seq, or x context for decode)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            phase, shape = item.split(":")
            b, n = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise BenchError(f"--points {item!r}: write PHASE:BATCHxLEN, e.g. decode:8x1024") from None
        if phase not in ("prefill", "decode", "train") or b < 1 or n < 1:
            raise BenchError(f"--points {item!r}: phase prefill, decode or train; batch and length >= 1")
        out.append(Point(phase, b, n, 0) if phase != "decode" else Point(phase, b, 0, n))
    return out


def tokens_flops(cfg: dict[str, Any], p: Point) -> float:
    """Model FLOPs of one forward of ``p`` (2 x parameters x tokens plus attention): a sanity
    figure for the notes, not a prediction."""
    c = _spec(cfg)
    h, f, nh, nkv, hd, L = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
                            c["num_key_value_heads"], c["head_dim"], c["num_hidden_layers"])
    per_layer = h * (nh + 2 * nkv) * hd + nh * hd * h + h * f * (3 if c.get("gated_mlp", True) else 2)
    q = p.seq if p.phase != "decode" else 1
    kv = p.seq if p.phase != "decode" else p.context + 1
    attn = 2 * 2 * nh * hd * q * kv * (0.5 if p.phase != "decode" else 1.0)
    return float(p.batch * (2 * L * per_layer * q + L * attn + 2 * h * c["vocab_size"]))


def run_model_bench(model: str, points: Iterable[Point], device: str = "auto", system: str | None = None,
                    dtype: str | None = None, warmup: int = 5, repeats: int = 20, graphs: bool = True,
                    layers: int | None = None, progress: Callable[[dict[str, Any]], None] | None = None):
    """Time ``points`` of ``model`` (a name or YAML path) on this machine; returns the rows as a
    DataFrame in ``MODEL_COLUMNS`` (``layers`` shortens the model: the rows then name it
    ``<model>@<layers>L`` and are no validation rows)."""
    from ..version import __version__
    from ..workload.loaders import load_model
    from .runner import DTYPES, _notes, Plan, describe_device, make_plan, preset_for, resolve_device

    torch = require_torch()
    device = resolve_device(device)
    dtype = dtype or ("bf16" if device == "cuda" else "fp32")
    if dtype not in DTYPES or dtype == "fp8":
        raise BenchError(f"--dtype {dtype}: use one of fp32, bf16, fp16")
    tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    cfg = load_model(model).model_dump()
    name = cfg["name"] if layers is None else f"{cfg['name']}@{layers}L"
    dev = describe_device(device)
    system = system or preset_for(dev["name"]) or f"unknown-{device}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = Plan(**{**make_plan(device, True).__dict__, "warmup": warmup, "repeats": repeats})
    rows = []
    for p, stack, t in run_points(cfg, points, device, tdtype, warmup, repeats, graphs, layers):
        what = {"prefill": f"prefill {p.batch}x{p.seq}", "decode": f"decode {p.batch} at context {p.context}",
                "train": f"train step {p.batch}x{p.seq}"}[p.phase]
        flops = tokens_flops({**cfg, "num_hidden_layers": layers or cfg["num_hidden_layers"]}, p)
        note = (f"{what}, {stack}; plain-PyTorch decoder from the model spec, random weights "
                f"(accelsim.bench.model); {flops * (3 if p.phase == 'train' else 1) / t.median_s / 1e12:.1f} "
                f"model TFLOP/s; {t.note()}")
        row = {"id": f"{name}-{p.phase}-b{p.batch}-{p.seq or p.context}-{stack}", "kind": "model", "system": system,
               "chips": 1, "dtype": dtype, "model": name, "phase": p.phase, "batch": p.batch, "tp": 1, "pp": 1,
               "dp": 1, "stack": stack, "load": "burst", "measured_time_s": t.median_s,
               "source": f"accelsim bench-model {__version__}",
               "notes": _notes(torch, dev, Plan(**{**plan.__dict__, "repeats": t.samples, "warmup": train_warmup(warmup)
                                                    if p.phase == "train" else warmup}), when, note)}
        if p.phase == "prefill":
            row.update(metric="ttft", input_len=p.seq, seq_len=p.seq)
        elif p.phase == "decode":
            row.update(metric="tpot", context_len=p.context)
        else:
            row.update(seq_len=p.seq, microbatch=p.batch, global_batch=p.batch, recompute="none", zero=0)
        rows.append(row)
        if progress:
            progress(row)
    return model_frame(rows)


def model_frame(rows: list[dict[str, Any]]):
    """Validation rows as a DataFrame in ``MODEL_COLUMNS``, counts as integers (no "128.0")."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    for col in MODEL_INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    return df


__all__ = ["MODEL_COLUMNS", "MODEL_INT_COLUMNS", "Point", "build_model", "kv_cache", "graphed", "train_step",
           "run_points", "run_model_bench", "model_frame", "parse_points", "tokens_flops"]
