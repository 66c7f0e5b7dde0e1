"""A tensor-bound GEMM loop held for a while, with the GPU's SM clock, power and achieved TFLOP/s
sampled each second (writes one JSON file): does the chip hold the rate of a short
microbenchmark (the kernel rows the achievable priors were fitted on) once the load is
sustained, as training and long serving runs sustain it?

    python benchmarks/silicon/sustained.py OUT.json [--seconds 60] [--n 8192] [--dtype bf16]

Clocks and power come from ``nvidia-smi --query-gpu`` (the device image has it; no pynvml
needed). ``--device cpu --seconds 2 --n 256`` is a smoke test of the script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

import torch


def _smi() -> dict:
    """SM clock (MHz), power (W) and the throttle reasons bitmask of GPU 0, or {} without nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,clocks_throttle_reasons.active,"
                              "temperature.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
        sm, pw, why, temp = (x.strip() for x in out.split(","))
        return {"sm_mhz": float(sm), "power_w": float(pw), "throttle": why, "temp_c": float(temp)}
    except Exception:  # noqa: BLE001 - no nvidia-smi (CPU smoke test) or an odd line: no sample
        return {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp8"])
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16}[a.dtype]
    if a.device == "cpu":
        dt = torch.float32
    x = torch.randn(a.n, a.n, device=a.device, dtype=dt)
    w = torch.randn(a.n, a.n, device=a.device, dtype=dt)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.dtype == "fp8" and a.device == "cuda":
        xf, wf = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn).t()
        one = torch.tensor(1.0, device=a.device)

        def mm():
            return torch._scaled_mm(xf, wf, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        def mm():
            return x @ w
    for _ in range(5):
        mm()
    sync()
    flops = 2.0 * a.n ** 3
    samples, t_end = [], time.perf_counter() + a.seconds
    while time.perf_counter() < t_end:
        t0, calls = time.perf_counter(), 0
        while time.perf_counter() - t0 < 1.0:  # about a second of back-to-back calls, timed to the device
            for _ in range(10):
                mm()
            calls += 10
            sync()
        dt_s = time.perf_counter() - t0
        samples.append({"t_s": round(a.seconds - (t_end - time.perf_counter()), 2),
                        "tflops": flops * calls / dt_s / 1e12, **_smi()})
        print(json.dumps(samples[-1]), flush=True)
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu",
           "n": a.n, "dtype": a.dtype, "samples": samples,
           "first_s_tflops": samples[0]["tflops"], "last_10_s_tflops": sum(s["tflops"] for s in samples[-10:])
           / len(samples[-10:])}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
