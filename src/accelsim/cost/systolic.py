"""Systolic-array compute cycles.

GEMM view C[M,N] = A[M,K] @ B[K,N] on an R x C array. What stays in the array per fold, and
what streams through it:

| dataflow | stationary (rows x cols) | streamed | folds            | per-fold overhead |
|----------|--------------------------|----------|------------------|-------------------|
| os       | outputs  M x N           | K        | ceil(M/R)ceil(N/C) | R + C - 2       |
| ws       | weights  K x N           | M        | ceil(K/R)ceil(N/C) | 2R + C - 2      |
| is       | inputs   K x M           | N        | ceil(K/R)ceil(M/C) | 2R + C - 2      |

``scalesim_cycles`` runs the folds strictly one after another, paying the full fill/drain each
time, and subtracts one (SCALE-Sim reports the index of the last cycle): this reproduces
SCALE-Sim 3.0's "Total Cycles" exactly. ``pass_cycles`` is accelsim's engine model: with
``preload_overlap`` the next fold's stationary operand loads while the current one streams, so
fill/drain is paid once, and each fold occupies the array for at least ``min_pass_cycles``.
"""

from __future__ import annotations

import math

from ..jit import kernel


def _fold_geometry(M: int, N: int, K: int, R: int, C: int, dataflow: str) -> tuple[int, int, int, float]:
    """(row folds, col folds, streamed length, per-fold fill/drain) for one dataflow."""
    if dataflow == "os":
        return -(-M // R), -(-N // C), K, R + C - 2
    if dataflow == "ws":
        return -(-K // R), -(-N // C), M, 2 * R + C - 2
    if dataflow == "is":
        return -(-K // R), -(-M // C), N, 2 * R + C - 2
    raise ValueError(f"unknown dataflow {dataflow!r}; use ws, os or is")


def scalesim_cycles(M: int, N: int, K: int, R: int, C: int, dataflow: str) -> int:
    """SCALE-Sim's compute cycles ("Total Cycles") for one layer with no memory stalls."""
    fr, fc, stream, fill = _fold_geometry(M, N, K, R, C, dataflow)
    return int(fr * fc * (stream + fill) - 1)


def scalesim_report(M: int, N: int, K: int, R: int, C: int, dataflow: str) -> dict[str, float]:
    """Compute cycles, mapping efficiency and compute utilisation, as SCALE-Sim defines them.

    mapping efficiency: the mean over folds of the fraction of PEs that hold a mapped element.
    utilisation: MACs / (PEs x cycles), where SCALE-Sim's utilisation cycles per fold are
    stream + 2R + 2C - 3 for ws/is and K + R + C - 2 for os (its own convention, matched to its
    reported figures on square arrays).
    """
    if min(M, N, K, R, C) < 1:
        raise ValueError("M, N, K, rows and cols must all be >= 1")
    fr, fc, stream, _ = _fold_geometry(M, N, K, R, C, dataflow)
    rows_dim, cols_dim = {"os": (M, N), "ws": (K, N), "is": (K, M)}[dataflow]
    mapping = (rows_dim / (fr * R)) * (cols_dim / (fc * C))
    util_fold = stream + (R + C - 2 if dataflow == "os" else 2 * R + 2 * C - 3)
    utilization = M * N * K / (R * C * fr * fc * util_fold)
    return {"compute_cycles": scalesim_cycles(M, N, K, R, C, dataflow),
            "folds": fr * fc, "mapping_efficiency": mapping, "utilization": utilization}


@kernel(python_budget_s=None)
def pass_cycles(M: float, N: float, K: float, R: int, C: int, count: int, df: int,
                speedup: float, overlap: bool, min_pass: float) -> float:
    """Cycles for one core to compute an M x N x K tile on ``count`` arrays of R x C.

    ``df``: 0 = ws, 1 = os, 2 = is. The output columns (ws, os) or rows (is) are split across
    the arrays. ``speedup`` scales the streaming rate for a dtype faster than one MAC per PE
    per cycle (e.g. 2 for fp8 on Trainium2, 0.25 for fp32)."""
    if df == 0:
        fr = math.ceil(K / R)
        fc = math.ceil(math.ceil(N / count) / C)
        stream = M
        fill = 2 * R + C - 2
    elif df == 1:
        fr = math.ceil(M / R)
        fc = math.ceil(math.ceil(N / count) / C)
        stream = K
        fill = R + C - 2
    else:
        fr = math.ceil(K / R)
        fc = math.ceil(math.ceil(M / count) / C)
        stream = N
        fill = 2 * R + C - 2
    per_fold = max(stream / speedup, min_pass)
    folds = fr * fc
    if overlap:
        return folds * per_fold + fill
    return folds * (per_fold + fill)


# The pieces of ``pass_cycles`` the mapping search works out once per split, M tile and N tile
# (``mapping._groups``), computing the same numbers (``tests/test_costs.py`` holds each group's
# compute to ``pass_cycles``); ``pass_cycles`` keeps its own body, which plain-Python callers
# (the attention's cost, the event tier's lowering) run faster than calls to these.


@kernel(python_budget_s=None)
def col_folds(x: float, C: int, count: int) -> int:
    """Folds of ``x`` output columns (rows when input-stationary) split over ``count`` arrays
    of C columns (``pass_cycles``)."""
    return math.ceil(math.ceil(x / count) / C)


@kernel(python_budget_s=None)
def pass_fill(df: int, R: int, C: int) -> int:
    """A pass's fill and drain cycles (``pass_cycles``): R + C - 2 output-stationary, else
    2R + C - 2."""
    return R + C - 2 if df == 1 else 2 * R + C - 2


@kernel(python_budget_s=None)
def pass_time(folds: float, per_fold: float, fill: float, overlap: bool) -> float:
    """A pass of ``folds`` folds of ``per_fold`` cycles each: the fill and drain paid once when the
    next fold's stationary operand loads while the current one streams, else per fold."""
    if overlap:
        return folds * per_fold + fill
    return folds * (per_fold + fill)
