"""How eager PyTorch's host dispatch overlaps the device: for whole steps of a model built by
``accelsim.bench.model``, time (1) the host alone: the seconds until an eager call returns to
Python with the device idle at its start (nothing waits for the device, so this is the dispatch
of every kernel), (2) the eager call with a final synchronize, and (3) the same call captured
once as a CUDA graph and replayed (device time, no host gaps); and count the kernels a call
launches. Medians of ``--repeats`` samples; each pass over the points runs twice, the second in
reverse order, so a drift of clocks shows. Writes JSON and prints a table.

    python benchmarks/silicon/host_overlap.py llama-3-8b OUT.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from accelsim.bench.model import build_model, graphed, kv_cache
from accelsim.workload.loaders import load_model

POINTS = [("prefill", 1, 128), ("prefill", 1, 512), ("prefill", 1, 2048), ("decode", 1, 128), ("decode", 8, 1024),
          ("decode", 64, 2048), ("decode", 256, 512)]


def kernels(fn) -> int:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def measure(fn, repeats: int) -> dict:
    host, total = [], []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        host.append(t1 - t0)
        total.append(t2 - t0)
    return {"host_s": statistics.median(host), "eager_s": statistics.median(total)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    cfg = load_model(a.model).model_dump()
    torch.manual_seed(0)
    model = build_model(cfg, "cuda", torch.bfloat16).eval()
    rows = []
    with torch.inference_mode():
        for rnd, pts in enumerate((POINTS, POINTS[::-1])):
            for phase, b, n in pts:
                q, start = (n, 0) if phase == "prefill" else (1, n)
                caches = kv_cache(cfg, b, start + q, "cuda", torch.bfloat16)
                tokens = torch.randint(0, cfg["vocab_size"], (b, q), device="cuda")
                fn = lambda t=tokens, c=caches, s=start: model(t, c, s).argmax(-1)  # noqa: E731
                for _ in range(5):
                    fn()
                r = {"round": rnd, "phase": phase, "batch": b, "len": n, **measure(fn, a.repeats)}
                try:
                    replay = graphed(fn)
                except RuntimeError as e:  # a kernel that refuses capture: say so, keep the rest
                    print(f"graph capture failed: {e}", flush=True)
                    replay = None
                t = []
                for _ in range(a.repeats if replay else 0):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    replay()
                    torch.cuda.synchronize()
                    t.append(time.perf_counter() - t0)
                r["graph_s"] = statistics.median(t) if t else float("nan")
                if rnd == 0:
                    r["kernels"] = kernels(fn)
                rows.append(r)
                print(f"{rnd} {phase:8s} {b:4d}x{n:<5d} host {1e3 * r['host_s']:7.2f} ms  eager {1e3 * r['eager_s']:7.2f} ms"
                      f"  graph {1e3 * r['graph_s']:7.2f} ms  kernels {r.get('kernels', '')}", flush=True)
                del caches, fn, replay
                torch.cuda.empty_cache()
    json.dump({"model": cfg["name"], "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
               "rows": rows}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
