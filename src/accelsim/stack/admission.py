"""How many requests a serving engine runs at once in an offline maximum-throughput run: every
request queued at the start, the batch left to the engine (``ServingEngine.offline_batch``).

An engine that admits a queued request only when its KV cache can hold the request's whole
prompt and output (TensorRT-LLM's default capacity scheduler, GUARANTEED_NO_EVICT, which
reserves a request's blocks to completion) runs as many requests as its cache holds at their
full length, up to its maximum batch size. The cache is a fraction of the HBM the weights and
the runtime's own working set leave. Pure arithmetic on byte counts; the caller prices them."""

from __future__ import annotations

import math
from typing import NamedTuple

GIB = float(1 << 30)


class BatchLimits(NamedTuple):
    """An engine's maximum batch size and maximum tokens a step."""

    max_batch: int
    max_tokens: int


def trtllm_bench_limits(weight_bytes: float, kv_bytes_per_token: float, device_bytes: float, gpus: int,
                        input_len: int, output_len: int, pp: int = 1, cache_fraction: float = 0.95) -> BatchLimits:
    """The maximum batch size and tokens a step that ``trtllm-bench`` sets when its command
    line does not (TensorRT-LLM ``tensorrt_llm/bench/build/tuning.py``: ``calc_engine_setting``
    and ``finetune_setting``): the requests of ``input_len + output_len`` tokens that 0.95 of
    the GPUs' memory less the weights holds, capped at 4,096, then rounded up (to 32 under 256,
    128 under 1,024, else 256; at least 64); tokens a step that batch times ``1 + input /
    output``, capped at 32,768, rounded up (to 256 under 4,096, at least 2,048; 512 under
    8,192; else 1,024). ``weight_bytes`` and ``kv_bytes_per_token`` are the whole model's
    (every GPU's K/V heads, at least one a GPU); ``device_bytes`` is one GPU's memory."""
    available = device_bytes * gpus / GIB - weight_bytes / GIB
    requests = available * cache_fraction / (kv_bytes_per_token / GIB * (input_len + output_len))
    raw_bs = min(requests, 4096) / pp
    raw_tokens = min(raw_bs * (1 + input_len / output_len), 32768)
    return BatchLimits(_round_up(raw_bs, ((256, 32), (1024, 128), (math.inf, 256)), 64),
                       _round_up(raw_tokens, ((4096, 256), (8192, 512), (math.inf, 1024)), 2048))


def _round_up(x: float, bands: tuple[tuple[float, int], ...], least: int) -> int:
    """``x`` rounded up to the step of the first band whose bound it is under, and at least ``least``."""
    step = next(step for below, step in bands if x < below)
    return max(least, step * math.ceil(x / step))


def kv_admitted(free_bytes: float, kv_bytes_per_token: float, request_tokens: int, fraction: float,
                block_tokens: int = 0) -> int:
    """Requests of ``request_tokens`` tokens whose whole K/V fits the cache an engine makes of
    ``fraction`` of ``free_bytes`` (one chip's HBM less its weights and working set; per-chip K/V
    bytes a token), each holding whole blocks of ``block_tokens`` tokens (0: no blocks)."""
    if free_bytes <= 0 or kv_bytes_per_token <= 0 or request_tokens < 1:
        return 0
    tokens = fraction * free_bytes / kv_bytes_per_token
    if block_tokens:
        return int(tokens // block_tokens) // math.ceil(request_tokens / block_tokens)
    return int(tokens // request_tokens)
