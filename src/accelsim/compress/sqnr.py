"""SQNR proxy of a number format: measured signal-to-quantization-noise ratio of a tensor (synthetic
Gaussian with optional outlier channels, or a user's array) and of a GEMM output, next to the
closed forms they are tested against."""

from __future__ import annotations

import math

import numpy as np

from .formats import Format, fake_quant


def sqnr_db(x: np.ndarray, xq: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, dB: 10 log10(sum x^2 / sum (x - xq)^2)."""
    x = np.asarray(x, dtype=np.float64)
    noise = float(np.sum((x - np.asarray(xq, dtype=np.float64)) ** 2))
    sig = float(np.sum(x * x))
    return math.inf if noise == 0 else 10.0 * math.log10(sig / noise)


def synthetic_tensor(rows: int = 256, cols: int = 1024, outlier_channels: int = 0, outlier_scale: float = 20.0,
                     seed: int = 0) -> np.ndarray:
    """Gaussian [rows, cols] tensor (unit variance) whose ``outlier_channels`` columns (the
    feature dimension of an LLM activation, cf. LLM.int8()) are ``outlier_scale`` times larger."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols))
    if outlier_channels:
        idx = rng.choice(cols, size=min(outlier_channels, cols), replace=False)
        x[:, idx] *= outlier_scale
    return x


def sqnr(fmt: Format | str, x: np.ndarray | None = None, **synthetic) -> float:
    """Accuracy *proxy*: SQNR (dB) of quantize -> dequantize of ``x`` (default: a synthetic
    tensor, see ``synthetic_tensor``) in ``fmt``. Not a model-accuracy prediction."""
    x = synthetic_tensor(**synthetic) if x is None else np.asarray(x, dtype=np.float64)
    return sqnr_db(x, fake_quant(x, fmt))


def gemm_sqnr(weight_fmt: Format | str, act_fmt: Format | str | None = None, m: int = 64, k: int = 1024,
              n: int = 256, act_outliers: int = 0, seed: int = 0) -> float:
    """Accuracy *proxy* on a GEMM output: SQNR (dB) of Q(A) @ Q(W)^T against A @ W^T for
    Gaussian A [m, k] (with ``act_outliers`` outlier channels) and W [n, k]; both quantized
    along K (the reduction axis), as block formats are applied in practice."""
    a = synthetic_tensor(m, k, act_outliers, seed=seed)
    w = synthetic_tensor(n, k, 0, seed=seed + 1) / math.sqrt(k)
    aq = a if act_fmt is None else fake_quant(a, act_fmt)
    return sqnr_db(a @ w.T, aq @ fake_quant(w, weight_fmt).T)


def float_sqnr_closed_form(mbits: int) -> float:
    """SQNR (dB) of RNE rounding of N(0, 1) data to a float with ``mbits`` mantissa bits, no
    range limits: noise in a binade [2^e, 2^(e+1)) is step^2/12 with step = 2^(e - m), so
    SQNR = 10 log10(12 * 2^(2m) * E[x^2] / E[4^floor(log2|x|)]). For Gaussian data the last
    ratio is 1.842 (computed below from the normal CDF), giving 6.02 m + 13.45 dB (uniform
    mantissas would give 7/3 and 14.47 dB)."""
    return 20 * math.log10(2) * mbits + 10 * math.log10(12 * _gauss_binade_ratio())


def _gauss_binade_ratio() -> float:
    """E[x^2] / E[4^floor(log2|x|)] for x ~ N(0, 1) (sum over binades of the normal CDF)."""
    total = 0.0
    for e in range(-40, 12):
        p = math.erf(2.0 ** (e + 1) / math.sqrt(2)) - math.erf(2.0 ** e / math.sqrt(2))
        total += p * 4.0 ** e
    return 1.0 / total


def int_sqnr_closed_form(bits: int, kappa: float) -> float:
    """SQNR (dB) of symmetric absmax ``bits``-bit integer quantization when the group maximum is
    ``kappa`` times the RMS: step = max / (2^(b-1) - 1), uniform error step^2/12:
    10 log10(12) + 20 log10(2^(b-1) - 1) - 20 log10(kappa)."""
    return 10 * math.log10(12) + 20 * math.log10(2 ** (bits - 1) - 1) - 20 * math.log10(kappa)


__all__ = ["sqnr", "sqnr_db", "gemm_sqnr", "synthetic_tensor", "float_sqnr_closed_form", "int_sqnr_closed_form"]
