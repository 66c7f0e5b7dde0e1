"""Per-kernel costs on a CUDA device, as parts: (1) the host's dispatch of one bare eager op
(1000 in-place adds on one element, enqueued without waiting), (2) the device's time per kernel
of the same 1000 adds replayed from one CUDA graph, (3) elementwise kernels on contiguous,
transposed and broadcast operands (what eager RoPE and SiLU*mul run on). Writes JSON, prints it.

    python benchmarks/silicon/launch_costs.py OUT.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch


def median_s(fn, repeats: int = 20) -> float:
    out = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    n = 1000
    x = torch.ones(1, device="cuda")
    res: dict[str, float] = {}
    for _ in range(3):
        for _ in range(n):
            x.add_(1)
    torch.cuda.synchronize()
    host = []
    for _ in range(10):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            x.add_(1)
        host.append((time.perf_counter() - t0) / n)
        torch.cuda.synchronize()
    res["eager_dispatch_s_per_op"] = statistics.median(host)
    res["eager_loop_s_per_op"] = median_s(lambda: [x.add_(1) for _ in range(n)], 10) / n
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        x.add_(1)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        for _ in range(n):
            x.add_(1)
    g.replay()
    res["graph_s_per_kernel"] = median_s(g.replay, 20) / n
    # elementwise on 32 heads x 2048 tokens x 128 (a prefill's q), bf16
    b, s_, h, d = 1, 2048, 32, 128
    base = torch.randn(b, s_, h, d, device="cuda", dtype=torch.bfloat16)
    qt = base.transpose(1, 2)  # [b, h, s, d] view, strided (as after the QKV projection)
    qc = qt.contiguous()
    cos = torch.randn(s_, d, device="cuda", dtype=torch.bfloat16)
    nbytes = 2 * qc.numel() * 2  # read q, write the product (cos is small, cached)
    for name, fn in (("mul_contiguous_broadcast", lambda: qc * cos), ("mul_transposed_broadcast", lambda: qt * cos),
                     ("copy_contiguous", lambda: qc.clone()), ("copy_transposed", lambda: qt.contiguous())):
        for _ in range(5):
            fn()
        t = median_s(fn, 50)
        res[f"{name}_s"] = t
        res[f"{name}_TBps"] = nbytes / t / 1e12
    gate_up = torch.randn(2048, 2 * 14336, device="cuda", dtype=torch.bfloat16)
    g_, u_ = gate_up.chunk(2, dim=-1)
    gc, uc = g_.contiguous(), u_.contiguous()
    sb = 2 * g_.numel() * 2
    for name, fn in (("silu_contiguous", lambda: torch.nn.functional.silu(gc)),
                     ("silu_strided_chunk", lambda: torch.nn.functional.silu(g_)),
                     ("mul_contiguous", lambda: gc * uc), ("mul_strided_chunk", lambda: g_ * u_)):
        for _ in range(5):
            fn()
        t = median_s(fn, 50)
        res[f"{name}_s"] = t
        res[f"{name}_TBps"] = (sb if name.startswith("silu") else 1.5 * sb) / t / 1e12
    res["torch"] = torch.__version__
    res["device"] = torch.cuda.get_device_name(0)
    json.dump(res, open(sys.argv[1], "w"), indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
