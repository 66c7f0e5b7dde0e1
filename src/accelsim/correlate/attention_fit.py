"""Fused-attention kernels against published measurements: the fraction of the modelled
attention rate each kernel family (FlashAttention-2, cuDNN, FlashAttention-3) reaches on a
chip, which a stack's ``attention`` block carries (``stack.spec.AttentionKernel``).

Rows (``workloads/measurements/kernels/attention_published.csv``): one kernel call each,
``system, kernel, direction (fwd | bwd), causal, batch, heads, seq_len, head_dim, dtype,
tflops``, with the FlashAttention papers' FLOP convention (forward ``4 b h s^2 d``, halved when
causal; backward 2.5 x forward), so the measured time is those FLOPs over ``tflops``. The
backward runs as the training graph builds it: a fused-attention op of 2.5 x the head dim.

The fit is one number per (kernel, chip): the efficiency that minimises the squared log error
of the modelled times (which are not simply proportional to it: a memory-bound call does not
speed up), under the plain ``cuda-native`` runtime of the chip.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from ..arch.presets import load_system
from ..errors import MeasurementError
from ..workload.ops import FLASH_BWD_FACTOR, FlashAttention

COLUMNS = ("id", "system", "kernel", "direction", "causal", "batch", "heads", "seq_len", "head_dim", "dtype",
           "tflops", "source")


def load_attention_rows(path: str | Path) -> pd.DataFrame:
    """The rows of a kernel file, checked (missing columns or bad values name the file and
    the row); adds ``flops`` and ``measured_time_s``."""
    from ..configio import MAX_TABLE_BYTES, check_regular_file

    check_regular_file(path, MeasurementError, MAX_TABLE_BYTES)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        raise MeasurementError(f"{path}: cannot read: {e}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise MeasurementError(f"{path}: missing column(s): {', '.join(missing)}")
    for c in ("batch", "heads", "seq_len", "head_dim", "tflops"):
        bad = df[~(pd.to_numeric(df[c], errors="coerce") > 0)]
        if len(bad):
            raise MeasurementError(f"{path}: row {bad['id'].iloc[0]}: {c} must be a positive number")
    bad = df[~df["direction"].isin(["fwd", "bwd"])]
    if len(bad):
        raise MeasurementError(f"{path}: row {bad['id'].iloc[0]}: direction must be fwd or bwd")
    df = df.copy()
    df["causal"] = df["causal"].astype(str).str.lower().map({"true": True, "false": False})
    if df["causal"].isna().any():
        raise MeasurementError(f"{path}: causal must be true or false")
    fwd = 4.0 * df["batch"] * df["heads"] * df["seq_len"] ** 2 * df["head_dim"] / np.where(df["causal"], 2.0, 1.0)
    df["flops"] = np.where(df["direction"] == "bwd", FLASH_BWD_FACTOR * fwd, fwd)
    df["measured_time_s"] = df["flops"] / (df["tflops"] * 1e12)
    return df


def _op(r) -> FlashAttention:
    d = int(r.head_dim) if r.direction == "fwd" else round(FLASH_BWD_FACTOR * int(r.head_dim))
    return FlashAttention(name="attn", role=f"{r.direction}.attn", batch=int(r.batch), heads=int(r.heads),
                          kv_heads=int(r.heads), q_len=int(r.seq_len), kv_len=int(r.seq_len), head_dim=d,
                          causal=bool(r.causal), dtype=r.dtype, backward=r.direction == "bwd")


def model_times(rows: pd.DataFrame, efficiency: float = 1.0) -> np.ndarray:
    """Modelled seconds of each row at ``efficiency`` (realistic mode, ``cuda-native``)."""
    from ..cost.op_cost import ChipModel, op_cost
    from ..stack.presets import resolve
    from ..stack.realize import realize

    out = np.empty(len(rows))
    models: dict[str, ChipModel] = {}
    for i, r in enumerate(rows.itertuples(index=False)):
        cm = models.get(r.system)
        if cm is None:
            base = load_system(r.system)
            spec = realize(base, resolve("cuda-native", base.stack, "realistic"))
            cal = spec.chip.calibration.model_copy(update={"attention_efficiency": efficiency})
            spec = spec.model_copy(update={"chip": spec.chip.model_copy(update={"calibration": cal})})
            cm = models[r.system] = ChipModel(spec)
        out[i] = op_cost(cm, _op(r)).time_s
    return out


def fit_attention_efficiency(rows: pd.DataFrame, by_direction: bool = False) -> pd.DataFrame:
    """Per (kernel, system), or per (kernel, system, direction) with ``by_direction`` (a
    stack's ``efficiency`` and ``backward_efficiency``): the fitted efficiency, the rows, and
    the MAPE and bias of the modelled times at 1 and at the fit."""
    recs = []
    keys = ["kernel", "system"] + (["direction"] if by_direction else [])
    for key, g in rows.groupby(keys):
        meas = g["measured_time_s"].to_numpy()

        def loss(e: float) -> float:
            return float(np.mean(np.log(model_times(g, e) / meas) ** 2))

        best = minimize_scalar(loss, bounds=(0.05, 1.0), method="bounded", options={"xatol": 1e-3})
        e = float(best.x)
        recs.append({**dict(zip(keys, key)), "n": len(g), "efficiency": round(e, 2),
                     **{f"{k}_{tag}": v for tag, t in (("at_1", model_times(g, 1.0)), ("fit", model_times(g, e)))
                        for k, v in (("mape", float(np.mean(np.abs(t / meas - 1)))),
                                     ("bias", float(math.exp(np.mean(np.log(t / meas))))))}})
    return pd.DataFrame.from_records(recs)


__all__ = ["fit_attention_efficiency", "load_attention_rows", "model_times"]
