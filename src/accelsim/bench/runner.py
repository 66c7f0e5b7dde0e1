"""Silicon microbenchmarks with PyTorch, written as measurement rows (correlate schema).

Kinds: ``gemm`` (square sweep and skinny decode shapes m = 1, 8, 32, ...), ``copy`` (device
memory copy, ``elements``), ``softmax``, ``layernorm``, ``rmsnorm``, ``silu_mul`` and ``add``
(``rows`` x ``cols``), ``gelu`` (``elements``), and ``allreduce`` (torch.distributed, NCCL) when
more than one CUDA device is visible. Attention (``scaled_dot_product_attention``) is no kind of
the schema, so it is timed only on request and written to a separate CSV (``ATTENTION_COLUMNS``).

PyTorch is imported lazily: importing this module never needs it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import AccelsimError
from .timing import time_call

#: measurement schema columns, in order (../shared/data/measurements/SCHEMA.md)
COLUMNS = ["id", "kind", "system", "chips", "dtype", "m", "n", "k", "batch", "rows", "cols", "elements", "bytes",
           "ranks", "model", "op", "phase", "seq_len", "context_len", "tp", "pp", "dp", "compression",
           "stack", "cache", "measured_time_s", "source", "notes"]
INT_COLUMNS = ["chips", "m", "n", "k", "batch", "rows", "cols", "elements", "bytes", "ranks", "seq_len",
               "context_len", "tp", "pp", "dp"]
#: columns of the separate attention CSV (not a correlate kind)
ATTENTION_COLUMNS = ["id", "op", "system", "dtype", "batch", "heads", "q_len", "kv_len", "head_dim", "causal",
                     "measured_time_s", "source", "notes"]
DTYPES = ("fp32", "bf16", "fp16", "fp8")
FP8_MIN = 16
"""``torch._scaled_mm`` needs every dimension a multiple of 16: fp8 runs GEMMs only, m >= 16."""


class BenchError(AccelsimError, RuntimeError):
    """The benchmark cannot run here (no PyTorch, no CUDA device, ...)."""


def require_torch():
    try:
        import torch
    except ImportError:
        raise BenchError('accelsim bench needs PyTorch, which is not installed: pip install -e ".[bench]" '
                         '(from a checkout) or pip install "accelsim[bench]"') from None
    return torch


# --------------------------------------------------------------------------------------------
# device and system


# (substring of the CUDA device name, substrings that exclude it, single-chip preset, multi-chip preset)
_GPU_PRESETS = [
    ("H200", (), "h200-sxm-141gb", "dgx-h200"),
    ("H100", ("PCIE", "NVL"), "h100-sxm-80gb", "dgx-h100"),
    ("A100", ("PCIE", "40GB"), "a100-sxm-80gb", "dgx-a100"),
    ("MI300X", (), "mi300x", "mi300x-8"),
]


def preset_for(device_name: str, chips: int = 1) -> str | None:
    """The accelsim preset that models a device (by its CUDA name), or None."""
    up = device_name.upper()
    for key, excl, single, multi in _GPU_PRESETS:
        if key in up and not any(x in up for x in excl):
            if chips == 1:
                return single
            if key == "A100" and chips <= 4:
                return "a100x4-nvlink"
            return multi
    return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _driver() -> str:
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def eager_stack(device: str) -> str | None:
    """The accelsim stack of PyTorch eager on ``device`` (None on a CPU: no CPU stack exists)."""
    if device != "cuda":
        return None
    torch = require_torch()
    return "rocm-eager" if getattr(torch.version, "hip", None) else "cuda-eager"


def describe_device(device: str) -> dict[str, str]:
    torch = require_torch()
    if device == "cuda":
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return {"name": torch.cuda.get_device_name(0), "cuda": str(torch.version.cuda or torch.version.hip),
                "cudnn": str(cudnn), "driver": _driver()}
    return {"name": _cpu_name(), "cuda": "none", "cudnn": "none", "driver": "none",
            "threads": str(torch.get_num_threads())}


def resolve_device(device: str) -> str:
    torch = require_torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: PyTorch sees no CUDA device here (torch "
                         f"{torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu")
    return device


# --------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class Plan:
    """Shapes and repeat counts of one benchmark run."""

    square: tuple[int, ...]
    skinny_m: tuple[int, ...]
    skinny_nk: tuple[tuple[int, int], ...]
    copy_elements: tuple[int, ...]
    rowwise: tuple[tuple[int, int], ...]
    elementwise: tuple[int, ...]
    allreduce_bytes: tuple[int, ...]
    attention: tuple[tuple[int, int, int, int, int, bool], ...]  # batch, heads, q_len, kv_len, head_dim, causal
    warmup: int
    repeats: int
    extra: dict = field(default_factory=dict)


def make_plan(device: str, quick: bool) -> Plan:
    if quick:
        return Plan(square=(128, 256), skinny_m=(1, 8, 32), skinny_nk=((512, 512),), copy_elements=(1 << 16, 1 << 20),
                    rowwise=((256, 512),), elementwise=(1 << 16,), allreduce_bytes=(1 << 20,),
                    attention=((1, 4, 128, 128, 64, True), (1, 4, 1, 512, 64, False)), warmup=2, repeats=5)
    if device == "cpu":
        return Plan(square=(256, 512, 1024, 2048), skinny_m=(1, 8, 32, 128), skinny_nk=((2048, 2048), (8192, 2048)),
                    copy_elements=(1 << 16, 1 << 20, 1 << 24), rowwise=((1024, 1024), (4096, 4096)),
                    elementwise=(1 << 16, 1 << 20, 1 << 24), allreduce_bytes=(),
                    attention=((1, 8, 512, 512, 64, True), (8, 8, 1, 2048, 64, False)), warmup=3, repeats=10)
    return Plan(square=(512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192), skinny_m=(1, 8, 32, 128, 512, 2048, 8192),
                skinny_nk=((4096, 4096), (14336, 4096), (4096, 14336)),
                copy_elements=(1 << 16, 1 << 20, 1 << 24, 1 << 28),
                rowwise=((32, 4096), (4096, 1024), (4096, 4096), (32768, 4096), (4096, 32768)),
                elementwise=(1 << 10, 1 << 20, 1 << 24, 1 << 28),
                allreduce_bytes=(8, 1 << 10, 1 << 16, 1 << 20, 1 << 24, 1 << 26, 1 << 28, 1 << 30),
                attention=((8, 32, 2048, 2048, 128, True), (32, 32, 1, 4096, 128, False)), warmup=10, repeats=50)


# --------------------------------------------------------------------------------------------
# cases


def _cases(torch, plan: Plan, device: str, tdtype) -> Iterator[tuple[dict[str, Any], Callable[[], Any], str]]:
    """(schema fields, the call to time, extra note) per case, generated lazily so that only one
    case's tensors are alive at a time."""
    import torch.nn.functional as F

    def t(*shape):
        return torch.randn(*shape, device=device, dtype=tdtype)

    gemms = [(s, s, s) for s in plan.square]
    gemms += [(m, n, k) for n, k in plan.skinny_nk for m in plan.skinny_m]
    if tdtype == torch.float8_e4m3fn:
        yield from _fp8_gemms(torch, [g for g in dict.fromkeys(gemms) if min(g) >= FP8_MIN], device)
        return
    for m, n, k in dict.fromkeys(gemms):
        a, b = t(m, k), t(k, n)
        yield ({"id": f"gemm-{m}x{n}x{k}", "kind": "gemm", "m": m, "n": n, "k": k},
               lambda a=a, b=b: torch.matmul(a, b), "torch.matmul C[m,n] = A[m,k] @ B[k,n]")
    for e in plan.copy_elements:
        src, dst = t(e), torch.empty(e, device=device, dtype=tdtype)
        yield ({"id": f"copy-{e}", "kind": "copy", "elements": e}, lambda s=src, d=dst: d.copy_(s),
               "dst.copy_(src): reads and writes elements x dtype bytes")
    for rows, cols in plan.rowwise:
        x, y = t(rows, cols), t(rows, cols)
        w, bias = t(cols), t(cols)
        shape = {"rows": rows, "cols": cols}
        rms = (lambda x=x, w=w: F.rms_norm(x, (x.shape[-1],), w, eps=1e-6)) if hasattr(F, "rms_norm") else \
              (lambda x=x, w=w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w)
        yield from [
            ({"id": f"softmax-{rows}x{cols}", "kind": "softmax", **shape}, lambda x=x: torch.softmax(x, dim=-1),
             "torch.softmax over the last dim"),
            ({"id": f"layernorm-{rows}x{cols}", "kind": "layernorm", **shape},
             lambda x=x, w=w, b=bias: F.layer_norm(x, (x.shape[-1],), w, b), "F.layer_norm with weight and bias"),
            ({"id": f"rmsnorm-{rows}x{cols}", "kind": "rmsnorm", **shape}, rms, "rms_norm with weight"),
            ({"id": f"silu_mul-{rows}x{cols}", "kind": "silu_mul", **shape},
             lambda g=x, u=y: F.silu(g) * u, "eager F.silu(gate) * up (two kernels); rows x cols is the output"),
            ({"id": f"add-{rows}x{cols}", "kind": "add", **shape}, lambda x=x, y=y: x + y, "x + y"),
        ]
    for e in plan.elementwise:
        x = t(e)
        yield ({"id": f"gelu-{e}", "kind": "gelu", "elements": e}, lambda x=x: F.gelu(x), "F.gelu (erf form)")


def _fp8_gemms(torch, gemms, device):
    """FP8 (e4m3) GEMMs as inference engines call them: ``torch._scaled_mm`` with per-tensor
    scales, B column-major, bf16 output."""
    one = torch.ones((), device=device)
    for m, n, k in gemms:
        a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()
        yield ({"id": f"gemm-fp8-{m}x{n}x{k}", "kind": "gemm", "m": m, "n": n, "k": k},
               lambda a=a, b=b: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
               "torch._scaled_mm e4m3 x e4m3, per-tensor scales, bf16 output")


def _notes(torch, dev: dict[str, str], plan: Plan, when: str, extra: str) -> str:
    parts = [f"torch {torch.__version__}", f"CUDA {dev['cuda']}", f"cuDNN {dev['cudnn']}", f"device {dev['name']}",
             f"driver {dev['driver']}"]
    if "threads" in dev:
        parts.append(f"{dev['threads']} threads")
    parts += [f"median of {plan.repeats} calls after {plan.warmup} warm-up", "one call per sample, launch overhead "
              "included, warm caches", when]
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def run_bench(device: str = "auto", quick: bool = False, system: str | None = None, dtype: str | None = None,
              warmup: int | None = None, repeats: int | None = None, attention: bool = False,
              progress: Callable[[dict[str, Any]], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Run the microbenchmarks; returns (measurement rows in ``COLUMNS``, attention rows or None).

    ``system`` names the accelsim preset (or YAML) that models this device; by default it is
    chosen from the CUDA device name, else a placeholder ``unknown-<device>``.
    """
    torch = require_torch()
    from ..version import __version__

    device = resolve_device(device)
    dtype = dtype or ("bf16" if device == "cuda" else "fp32")
    if dtype not in DTYPES:
        raise BenchError(f"--dtype {dtype}: use one of {', '.join(DTYPES)}")
    if dtype == "fp8" and device != "cuda":
        raise BenchError("--dtype fp8 needs a CUDA device (torch._scaled_mm); this run is on the cpu")
    tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
              "fp8": getattr(torch, "float8_e4m3fn", None)}[dtype]
    plan = make_plan(device, quick)
    plan = Plan(**{**plan.__dict__, "warmup": plan.warmup if warmup is None else warmup,
                   "repeats": plan.repeats if repeats is None else repeats})
    dev = describe_device(device)
    system_1 = system or preset_for(dev["name"]) or f"unknown-{device}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    source = f"accelsim bench {__version__}"
    stack = eager_stack(device)
    torch.manual_seed(0)

    rows: list[dict[str, Any]] = []
    noisy: list[str] = []
    with torch.inference_mode():
        for fields, fn, note in _cases(torch, plan, device, tdtype):
            t = time_call(fn, device, plan.warmup, plan.repeats)
            row = {"system": system_1, "chips": 1, "dtype": dtype, **fields, "stack": stack, "cache": "warm",
                   "measured_time_s": t.median_s,
                   "source": source, "notes": _notes(torch, dev, plan, when, f"{note}; {t.note()}")}
            if t.noisy:
                noisy.append(f"{fields.get('id', fields.get('kind'))}: IQR {100 * t.spread:.0f} % of the median")
            rows.append(row)
            if progress:
                progress(row)
        att = None
        if attention:
            att = _attention(torch, plan, device, tdtype, dtype, system_1, source, dev, when, progress)

    n_gpu = torch.cuda.device_count() if device == "cuda" else 0
    if n_gpu > 1 and plan.allreduce_bytes:
        from .allreduce import run_allreduce

        times = run_allreduce(n_gpu, plan.allreduce_bytes, dtype, plan.warmup, plan.repeats)
        system_n = system or preset_for(dev["name"], n_gpu) or f"unknown-{device}x{n_gpu}"
        for nbytes, t in times.items():
            row = {"id": f"allreduce-{nbytes}B-x{n_gpu}", "kind": "allreduce", "system": system_n, "chips": n_gpu,
                   "dtype": dtype, "bytes": nbytes, "ranks": n_gpu, "stack": stack, "measured_time_s": t, "source": source,
                   "notes": _notes(torch, dev, plan, when, "torch.distributed all_reduce (NCCL, sum), slowest rank's "
                                   f"median; {n_gpu} GPUs")}
            rows.append(row)
            if progress:
                progress(row)
    if noisy:
        import warnings

        warnings.warn(f"{len(noisy)} of {len(rows)} timings are noisy (the machine is busy or throttling; "
                      f"the spread is in each row's notes): " + "; ".join(noisy[:5]) + ("; ..." if len(noisy) > 5 else ""),
                      RuntimeWarning, stacklevel=2)
    return to_frame(rows), att


def _attention(torch, plan, device, tdtype, dtype, system, source, dev, when, progress) -> pd.DataFrame:
    import torch.nn.functional as F

    out = []
    for b, h, q, kv, d, causal in plan.attention:
        qt = torch.randn(b, h, q, d, device=device, dtype=tdtype)
        kt, vt = (torch.randn(b, h, kv, d, device=device, dtype=tdtype) for _ in range(2))
        fn = lambda qt=qt, kt=kt, vt=vt, c=causal: F.scaled_dot_product_attention(qt, kt, vt, is_causal=c)  # noqa: E731
        t = time_call(fn, device, plan.warmup, plan.repeats)
        row = {"id": f"sdpa-b{b}h{h}q{q}kv{kv}d{d}{'c' if causal else ''}", "op": "scaled_dot_product_attention",
               "system": system, "dtype": dtype, "batch": b, "heads": h, "q_len": q, "kv_len": kv, "head_dim": d,
               "causal": causal, "measured_time_s": t.median_s, "source": source,
               "notes": _notes(torch, dev, plan, when, "F.scaled_dot_product_attention, backend chosen by PyTorch; "
                               + t.note())}
        out.append(row)
        if progress:
            progress(row)
    return pd.DataFrame(out, columns=ATTENTION_COLUMNS)


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    return df


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        os.makedirs(path.parent, exist_ok=True)
    df.to_csv(path, index=False)
    return path
