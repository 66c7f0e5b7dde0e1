"""Whole steps of Hugging Face transformers' own LlamaForCausalLM (SDPA attention, random bf16
weights, the config built from an accelsim model spec), as a user of the library runs them:
prefill with ``logits_to_keep=1`` (the cache returned), and decode steps against a DynamicCache
of ``context`` tokens (cropped back after each timed step). A second implementation of the same
models as ``accelsim bench-model``: separate q / k / v and gate / up projections, the library's
RoPE, RMSNorm and cache code. Writes validation rows (stack hf-transformers: the library's own op decomposition in PyTorch eager).

    python benchmarks/silicon/hf_llama.py llama-3-8b OUT.csv [--points prefill:1x512,decode:8x1024]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import torch
import transformers
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from accelsim.bench.model import model_frame, parse_points
from accelsim.workload.loaders import load_model


def timed(fn, device: str, warmup: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return statistics.median(samples), (q[2] - q[0]) / statistics.median(samples)


def trace_call(fn, path: str) -> None:
    """One call of ``fn`` under the PyTorch profiler (CPU and CUDA), gzipped Chrome-trace JSON."""
    import gzip
    import os
    import shutil

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        fn()
        torch.cuda.synchronize()
    raw = path[:-3]
    prof.export_chrome_trace(raw)
    with open(raw, "rb") as src, gzip.open(path, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    os.remove(raw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--points", default="prefill:1x512,prefill:1x2048,decode:1x1024,decode:8x1024,decode:64x1024")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--trace", default=None, help="also write a gzipped profiler trace of one call per point here")
    a = ap.parse_args()
    spec = load_model(a.model).model_dump()
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    hf = LlamaConfig(hidden_size=spec["hidden_size"], intermediate_size=spec["intermediate_size"],
                     num_attention_heads=spec["num_attention_heads"],
                     num_key_value_heads=spec["num_key_value_heads"] or spec["num_attention_heads"],
                     head_dim=spec["head_dim"], num_hidden_layers=a.layers or spec["num_hidden_layers"],
                     vocab_size=spec["vocab_size"], max_position_embeddings=32768,
                     rope_theta=float(spec.get("rope_theta") or 10000.0), tie_word_embeddings=False)
    hf._attn_implementation = "sdpa"
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    with torch.device(a.device):
        model = LlamaForCausalLM(hf).eval()
    torch.set_default_dtype(torch.float32)
    name = spec["name"] if a.layers is None else f"{spec['name']}@{a.layers}L"
    dev = torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = []
    with torch.inference_mode():
        for p in parse_points(a.points):
            q = p.seq if p.phase == "prefill" else p.context
            ids = torch.randint(0, spec["vocab_size"], (p.batch, q), device=a.device)
            if p.phase == "prefill":
                def fn(ids=ids):
                    return model(input_ids=ids, use_cache=True, logits_to_keep=1).logits.argmax(-1)
                what = f"prefill {p.batch}x{p.seq}: forward with use_cache, logits_to_keep=1, greedy pick"
            elif p.phase == "decode":
                cache = DynamicCache(config=hf)
                model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
                nxt = torch.randint(0, spec["vocab_size"], (p.batch, 1), device=a.device)
                pos = torch.full((p.batch, 1), p.context, device=a.device)

                def fn(nxt=nxt, cache=cache, pos=pos):
                    out = model(input_ids=nxt, past_key_values=cache, position_ids=pos, use_cache=True).logits.argmax(-1)
                    cache.crop(-1)
                    return out
                what = f"decode {p.batch} at context {p.context}: one token against a DynamicCache (cropped back)"
            else:
                continue
            t, iqr = timed(fn, a.device, a.warmup, a.repeats)
            if a.trace:
                trace_call(fn, f"{a.trace}/hf_{name}_{p.phase}_{p.batch}x{p.seq or p.context}.json.gz")
            print(f"{name} {p.phase} {p.batch}x{p.seq or p.context}: {1e3 * t:.2f} ms (IQR {100 * iqr:.1f} %)",
                  flush=True)
            row = {"id": f"hf-{name}-{p.phase}-b{p.batch}-{p.seq or p.context}", "kind": "model",
                   "system": "h200-sxm-141gb" if "H200" in dev else f"unknown-{a.device}", "chips": 1,
                   "dtype": "bf16" if dtype == torch.bfloat16 else "fp32", "model": name, "phase": p.phase,
                   "batch": p.batch, "tp": 1, "pp": 1, "dp": 1, "stack": "hf-transformers", "load": "burst",
                   "measured_time_s": t,
                   "source": f"benchmarks/silicon/hf_llama.py (transformers {transformers.__version__})",
                   "notes": f"{what}; LlamaForCausalLM, attn sdpa, random weights; torch {torch.__version__}; "
                            f"device {dev}; median of {a.repeats} synchronized calls after {a.warmup} warm-up, "
                            f"IQR {100 * iqr:.1f} % of it; {when}"}
            if p.phase == "prefill":
                row.update(metric="ttft", input_len=p.seq, seq_len=p.seq)
            else:
                row.update(metric="tpot", context_len=p.context)
            rows.append(row)
            if p.phase == "decode":
                del cache
            if a.device == "cuda":
                torch.cuda.empty_cache()
    model_frame(rows).to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
