"""Record PyTorch profiler traces (Kineto Chrome-trace JSON, gzipped) of whole eager steps of a
model built by ``accelsim.bench.model``: decode steps and one prefill, for ``accelsim profile``.

    python benchmarks/silicon/trace_steps.py llama-3-8b OUT_DIR [--decode 8x1024] [--prefill 1x512]
        [--sustain SECONDS] [--train BATCHxSEQ]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from accelsim.bench.model import build_model, kv_cache
from accelsim.workload.loaders import load_model


def export(prof, path: Path) -> None:
    """The profile as gzipped Chrome-trace JSON at ``path``."""
    raw = path.with_suffix("")
    prof.export_chrome_trace(str(raw))
    with open(raw, "rb") as src, gzip.open(path, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


def trace(model, cfg, batch: int, q: int, start: int, steps: int, path: Path) -> None:
    caches = kv_cache(cfg, batch, start + q, "cuda", torch.bfloat16)
    tokens = torch.randint(0, cfg["vocab_size"], (batch, q), device="cuda")
    for _ in range(3):
        model(tokens, caches, start).argmax(-1)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(steps):
            model(tokens, caches, start).argmax(-1)
        torch.cuda.synchronize()
    export(prof, path)


def trace_train(cfg, batch: int, seq: int, path: Path) -> None:
    """One mixed-precision training step (accelsim.bench.model.train_step) after two warm-ups."""
    from accelsim.bench.model import train_step

    torch.manual_seed(0)
    model = build_model(cfg, "cuda", torch.bfloat16).train()
    step = train_step(model, torch.bfloat16)
    tokens = torch.randint(0, cfg["vocab_size"], (batch, seq + 1), device="cuda")
    for _ in range(2):
        step(tokens)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        step(tokens)
        torch.cuda.synchronize()
    export(prof, path)


def sustained(model, cfg, batch: int, seq: int, seconds: float) -> None:
    """Prefill back to back for ``seconds``; prints the step time of each second (clock drift)."""
    import time

    caches = kv_cache(cfg, batch, seq, "cuda", torch.bfloat16)
    tokens = torch.randint(0, cfg["vocab_size"], (batch, seq), device="cuda")
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 1.0:
            model(tokens, caches, 0).argmax(-1)
            torch.cuda.synchronize()
            n += 1
        print(f"sustained prefill {batch}x{seq}: {1e3 * (time.perf_counter() - t0) / n:.2f} ms a step over {n}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out", type=Path)
    ap.add_argument("--decode", default="8x1024")
    ap.add_argument("--prefill", default="1x512")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--train", default=None, help="also trace one training step BATCHxSEQ (a separate model)")
    ap.add_argument("--sustain", type=float, default=0.0, help="then prefill back to back this many seconds")
    a = ap.parse_args()
    cfg = load_model(a.model).model_dump()
    torch.manual_seed(0)
    model = build_model(cfg, "cuda", torch.bfloat16).eval()
    a.out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        b, ctx = (int(v) for v in a.decode.split("x"))
        trace(model, cfg, b, 1, ctx, a.steps, a.out / f"{cfg['name']}_decode_{a.decode}.json.gz")
        b, seq = (int(v) for v in a.prefill.split("x"))
        trace(model, cfg, b, seq, 0, 1, a.out / f"{cfg['name']}_prefill_{a.prefill}.json.gz")
        if a.sustain > 0:
            sustained(model, cfg, b, seq, a.sustain)
    if a.train:
        del model
        torch.cuda.empty_cache()
        b, seq = (int(v) for v in a.train.split("x"))
        trace_train(cfg, b, seq, a.out / f"{cfg['name']}_train_{a.train}.json.gz")


if __name__ == "__main__":
    main()
