"""Load a large synthetic Kineto-shaped trace and report wall time and peak memory.

Run: ``python benchmarks/profile_load.py [--mb 500] [--keep PATH]``. The trace is written event
by event (a training-like loop of GEMM / elementwise / NCCL kernels with their CPU ops and
launches, shapes recorded), then loaded by ``accelsim.profile.load_trace`` in a fresh process
whose peak RSS is reported (target: a 500 MB trace in under 1 GiB, issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

LOAD = r"""
import json, resource, sys, time
t = time.perf_counter()
from accelsim.profile import load_trace
tr = load_trace(sys.argv[1])
print(json.dumps({"events_kept": len(tr.work) + len(tr.host), "work": len(tr.work), "kind": tr.kind,
                  "load_s": time.perf_counter() - t,
                  "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_trace(path: str, target_bytes: int) -> int:
    """Write a Kineto-shaped trace of about ``target_bytes``; returns the number of events."""
    n = 0
    ts = 1_000_000.0
    shapes = [[[8192, 4096], [4096, 4096]], [[8192, 4096], [4096, 14336]], [[8192, 14336], [14336, 4096]]]
    with open(path, "w") as f:
        f.write('{"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "synthetic"}], "traceEvents": [\n')
        first = True
        i = 0
        while f.tell() < target_bytes:
            i += 1
            kind = i % 4
            corr, ext = 10 * i, i
            if kind == 3:
                op = {"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1, "ts": ts,
                      "dur": 4.0, "args": {"External id": ext, "Collective name": "allreduce",
                                           "In msg nelems": 33554432, "Group size": 8, "dtype": "BFloat16"}}
                kname, stream = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)", 20
            else:
                op = {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": ts, "dur": 6.0,
                      "args": {"External id": ext, "Input Dims": shapes[kind], "Input type": ["c10::BFloat16"] * 2,
                               "Sequence number": i, "Fwd thread id": 0}}
                kname, stream = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", 7
            launch = {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
                      "ts": ts + 1, "dur": 3.0, "args": {"External id": ext, "correlation": corr}}
            kern = {"ph": "X", "cat": "kernel", "name": kname, "pid": 0, "tid": stream, "ts": ts + 6, "dur": 40.0,
                    "args": {"External id": ext, "correlation": corr, "stream": stream, "device": 0,
                             "grid": [132, 1, 1], "block": [384, 1, 1]}}
            flow = {"ph": "s", "id": corr, "pid": 1, "tid": 1, "ts": ts + 1, "cat": "ac2g", "name": "ac2g"}
            for e in (op, launch, kern, flow):
                f.write(("" if first else ",\n") + json.dumps(e))
                first = False
                n += 1
            ts += 45.0
        f.write('\n], "traceName": "synthetic"}\n')
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=500.0)
    ap.add_argument("--keep", default=None, help="Write the trace here (default: a temporary file, removed).")
    args = ap.parse_args()
    path = args.keep or tempfile.mkstemp(suffix=".json")[1]
    try:
        t = time.perf_counter()
        n = write_trace(path, int(args.mb * 1e6))
        size = os.path.getsize(path)
        print(json.dumps({"case": "write_synthetic_trace", "bytes": size, "events": n,
                          "seconds": time.perf_counter() - t}), flush=True)
        out = subprocess.run([sys.executable, "-c", LOAD, path], capture_output=True, text=True, check=True)
        d = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"case": "profile_load_synthetic_trace", "trace_MB": size / 1e6, **d,
                          "target_peak_MiB": 1024, "meets_target": d["peak_rss_MiB"] < 1024}), flush=True)
    finally:
        if not args.keep:
            os.unlink(path)


if __name__ == "__main__":
    main()
