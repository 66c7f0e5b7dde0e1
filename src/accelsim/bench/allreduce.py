"""All-reduce timing with torch.distributed: one process per device (``torch.multiprocessing.spawn``).

Each rank times ``all_reduce`` of a buffer of ``bytes`` per rank (median of the repeats, CUDA
events on NCCL, perf_counter on gloo/CPU); the reported time is the
slowest rank's median (a collective ends when its last rank does). The gloo/CPU path exists so
the mechanics are tested on machines without GPUs; ``accelsim bench`` only uses NCCL.
"""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, sizes: list[int], dtype: str, warmup: int, repeats: int,
            backend: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from .timing import time_call

    device = "cuda" if backend == "nccl" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        itemsize = torch.tensor([], dtype=tdtype).element_size()
        result = {}
        for nbytes in sizes:
            buf = torch.zeros(max(1, nbytes // itemsize), device=device, dtype=tdtype)
            dist.barrier()
            t = time_call(lambda buf=buf: dist.all_reduce(buf), device, warmup, repeats).median_s
            worst = torch.tensor([t], dtype=torch.float64, device=device)
            dist.all_reduce(worst, op=dist.ReduceOp.MAX)
            result[str(nbytes)] = float(worst.item())
        if rank == 0:
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def run_allreduce(world: int, sizes, dtype: str = "bf16", warmup: int = 5, repeats: int = 20,
                  backend: str = "nccl", start_method: str = "spawn") -> dict[int, float]:
    """{bytes per rank: seconds} of an all-reduce over ``world`` processes (CUDA needs "spawn";
    "fork" starts faster and suits gloo on CPU)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "allreduce.json")
        mp.start_processes(_worker, args=(world, _free_port(), list(sizes), dtype, warmup, repeats, backend, out),
                           nprocs=world, join=True, start_method=start_method)
        return {int(k): v for k, v in json.loads(Path(out).read_text()).items()}
