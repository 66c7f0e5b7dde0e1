"""Serving under a closed-loop load: ``users`` clients, each sending its next request when the
last one has finished (how benchmark clients at a fixed concurrency drive an engine).

A request's prompt waits for the prompts ahead of it: an engine prefills one prompt per
iteration next to the running requests' decode tokens (a prompt of thousands of tokens fills a
step's token budget) while every other request decodes. That is a closed queueing network of
one queue, the prefill of service time ``prefill_s``, and one delay, a request's decode
``(output_len - 1) x iteration_s``, solved exactly by mean value analysis (Reiser & Lavenberg,
"Mean-Value Analysis of Closed Multichain Queuing Networks", JACM 27(2), 1980):

    R(n) = S (1 + Q(n - 1)),   X(n) = n / (R(n) + Z),   Q(n) = X(n) R(n),   Q(0) = 0

for n = 1 .. users. With one user nothing waits (R = S); as users grow the prefill queue
saturates (X -> 1 / S) and the wait grows linearly. A new request also arrives, on average,
half-way through a running decode iteration while the prefill server is idle (probability
1 - X S, with other users present), and waits for it to end.
"""

from __future__ import annotations


def closed_loop_ttft(prefill_s: float, iteration_s: float, users: int, output_len: int) -> float:
    """Mean time to first token at ``users`` requests in flight: the queue for the prefill
    (mean value analysis, see the module) plus the residual of a running decode iteration."""
    if users < 1 or prefill_s < 0 or iteration_s < 0:
        raise ValueError("users must be >= 1 and times >= 0")
    think = max(0, output_len - 1) * iteration_s
    queue = 0.0
    resp = throughput = prefill_s
    n = 0
    while n < users:
        n += 1
        resp = prefill_s * (1.0 + queue)
        throughput = n / (resp + think) if resp + think > 0 else 0.0
        queue = throughput * resp
        if throughput * prefill_s > 1.0 - 1e-12:  # saturated: each further user adds one prefill
            resp += (users - n) * prefill_s
            break
    idle = max(0.0, 1.0 - throughput * prefill_s) if users > 1 else 0.0
    return resp + idle * iteration_s / 2


__all__ = ["closed_loop_ttft"]
