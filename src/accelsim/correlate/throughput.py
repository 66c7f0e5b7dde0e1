"""Offline serving throughput of a model on a system: requests of ``input_len`` prompt and
``output_len`` generated tokens, all queued at once, run in waves of ``batch`` (one prefill of
the wave, then its decode steps at the mean context), as the validation set's throughput rows
are predicted. Without a batch, the stack's serving engine sets it where it can
(``ServingEngine.offline_batch``: how many requests its KV cache admits at their full length)."""

from __future__ import annotations

from ..errors import WorkloadError
from .offline import UNKNOWN_LOAD
from .predict import Predictor
from .schema import MeasurementRow


def offline_throughput(system: str, model: str, input_len: int, output_len: int, tp: int = 1, dtype: str = "bf16",
                       stack: str | None = None, batch: int | None = None, compression: str = "",
                       mode: str = "realistic") -> dict:
    """{seconds_per_output_token, output_tokens_per_s, output_tokens_per_s_per_chip, chips, batch (None when the
    engine set it), note (how the engine set it), bound}; a WorkloadError with the reason when it cannot be
    predicted (an engine that leaves the batch to the caller, a model that does not fit)."""
    row = MeasurementRow(id="offline-throughput", kind="model", system=system, model=model, phase="decode",
                         metric="throughput", dtype=dtype, input_len=input_len, output_len=output_len, tp=tp,
                         batch=batch, stack=stack, compression=compression or None,
                         measured_time_s=1.0)  # nothing is measured here: only the prediction is read
    pr = Predictor(mode=mode)
    p = pr.predict(row)
    if p.skipped:
        if batch is None and p.reason.startswith(UNKNOWN_LOAD):
            raise WorkloadError(f"the serving engine of {pr.stack_name(row)} leaves an offline run's batch to the "
                                "caller (serving.offline_batch: given): give a batch")
        raise WorkloadError(f"{model} on {system}: {p.reason}")
    chips = pr.tp_chips(system, tp)
    t = float(p.time_s)
    return {"seconds_per_output_token": t, "output_tokens_per_s": 1.0 / t, "output_tokens_per_s_per_chip": 1.0 / t / chips, "chips": chips, "batch": batch, "note": p.note,
            "bound": p.bound, "stack": pr.stack_name(row)}
