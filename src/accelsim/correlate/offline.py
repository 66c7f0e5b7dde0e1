"""Serving rows whose load the engine sets: the running batch of an offline maximum-throughput
row (every request queued at once, no ``batch`` or ``concurrency`` on the row) under an engine
that admits requests by its KV-cache capacity (``stack.admission``), and whether a batch's KV
cache fits the HBM at all."""

from __future__ import annotations

from typing import Any, Callable

from ..stack.admission import kv_admitted, trtllm_bench_limits
from ..units import fmt

MetaOf = Callable[[str, int, int, int], Any]
"""(phase, batch, seq_len, context_len) -> the WorkloadMeta of that step of the row's model."""

UNKNOWN_LOAD = "no batch or concurrency: the load the figure was measured at is unknown"


def kv_unfit(meta_of: MetaOf, hbm_bytes: float, batch: int, tokens: int) -> str | None:
    """Why the weights and the KV cache of ``batch`` sequences of ``tokens`` tokens do not fit
    one chip's ``hbm_bytes`` (None: they fit)."""
    m = meta_of("decode", batch, 0, tokens - 1)
    if m.weight_bytes_per_chip + m.kv_cache_bytes_per_chip <= hbm_bytes:
        return None
    gib = lambda b: fmt(b, unit="B", binary=True)  # noqa: E731
    return (f"does not fit: weights {gib(m.weight_bytes_per_chip)} and the KV cache of {batch} x {tokens} tokens "
            f"{gib(m.kv_cache_bytes_per_chip)} per chip exceed its {gib(hbm_bytes)} of HBM")


def offline_batch(serving: Any, meta_of: MetaOf, hbm_bytes: float, chips: int, input_len: int | None,
                  output_len: int | None, metric: str) -> tuple[int | None, str]:
    """(running batch, how it was set) of a row that states no load; (None, why) when the
    engine does not set it or the row cannot say what it would. The cache is
    ``serving.kv_cache_fraction`` of one chip's HBM less its weights and the working set of a
    ``max_tokens``-token step; a request reserves its ``input_len + output_len`` tokens."""
    if serving is None or serving.offline_batch != "kv_capacity" or metric != "throughput":
        return None, UNKNOWN_LOAD
    if not input_len or not output_len:
        return None, UNKNOWN_LOAD + " (and the engine's batch needs input_len and output_len)"
    total = input_len + output_len
    kv = meta_of("decode", 1, 0, total - 1)
    weights, per_token = kv.weight_bytes_per_chip, kv.kv_cache_bytes_per_chip / total
    cap, tokens = serving.max_batch, serving.max_tokens
    how = "KV-cache capacity"
    if cap == "trtllm_bench":
        cap, tokens = trtllm_bench_limits(weights * chips, per_token * chips, hbm_bytes, chips, input_len,
                                          output_len)
        how += f", trtllm-bench's max batch {cap} and {tokens} tokens a step"
    working = meta_of("prefill", 1, tokens, 0).activation_bytes_per_chip
    n = kv_admitted(hbm_bytes - weights - working, per_token, total, serving.kv_cache_fraction,
                    serving.kv_block_tokens)
    if n < 1:
        return None, (f"does not fit: the KV cache left by the weights {fmt(weights, unit='B', binary=True)} holds "
                      f"no request of {total} tokens")
    return (min(n, cap) if cap else n), how
