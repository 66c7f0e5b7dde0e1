"""Event tier against the analytical tier on whole steps: one line per case with both latencies,
their ratio and the event tier's task count. The README's ratios ("event over analytical tier
on decode: A100 1.031, ...") come from this script:

    python benchmarks/tier_agreement.py

The two tiers model the same chip with different detail (the event tier runs every tile's loads,
passes and stores on the engines and DMA queues; the closed form charges each op the larger of
its compute and memory times plus a fill), so a ratio far from 1 points at a mechanism one tier
has and the other lacks. About 10 s on the 2-core machine.
"""

from __future__ import annotations

import time

from accelsim.api import evaluate

CASES = [
    ("a100-sxm-80gb", "llama-3-8b", dict(phase="prefill", seq_len=512)),
    ("a100-sxm-80gb", "llama-3-8b", dict(phase="decode", batch=8, context_len=2048)),
    ("h100-sxm-80gb", "llama-3-8b", dict(phase="decode", batch=8, context_len=2048)),
    ("h100-sxm-80gb", "llama-3-8b", dict(phase="prefill", seq_len=2048)),
    ("mi300x", "llama-3-8b", dict(phase="decode", batch=1, context_len=2048)),
    ("mi300x", "llama-3-8b", dict(phase="prefill", seq_len=1024)),
    ("h200-sxm-141gb", "llama-3-8b", dict(phase="decode", batch=32, context_len=1024)),
    ("trn2", "llama-3-8b", dict(phase="decode", batch=8, context_len=2048)),
    ("tpu-v5e", "llama-3-8b", dict(phase="prefill", seq_len=512)),
    ("dgx-h100", "llama-3-70b", dict(phase="decode", batch=8, context_len=2048, tp=8)),
]


def main() -> None:
    for system, model, kw in CASES:
        t = time.perf_counter()
        s = evaluate(system, model, fidelity="event", **kw).summary
        print(f"{system:16s} {model:12s} {kw['phase']:8s} analytical {s['analytical_latency_s'] * 1e3:9.3f} ms  "
              f"event {s['latency_s'] * 1e3:9.3f} ms  ratio {s['latency_s'] / s['analytical_latency_s']:.3f}  "
              f"tasks {s['num_tasks']:,}  ({time.perf_counter() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
