"""Number formats: storage bits per element (scales included), the tensor-engine rate each one
runs at, and numpy quantize -> dequantize for every format.

Formats (``get_format(name)``):

- IEEE-like floats ``fp32``, ``tf32`` (stored in 32 bits), ``bf16``, ``fp16``, ``fp8_e5m2``
  (overflow to inf, as IEEE), and the saturating small floats of the OCP 8-bit floating point
  and MX specifications: ``fp8_e4m3`` (max 448, no inf), ``fp6_e2m3`` (max 7.5), ``fp6_e3m2``
  (max 28), ``fp4_e2m1`` (max 6). ``fp8`` is ``fp8_e4m3``, ``fp6`` is ``fp6_e2m3``, ``fp4`` is
  ``fp4_e2m1``.
- Integers ``int8`` / ``int4``: symmetric absmax, one fp32 scale per tensor (negligible storage).
- OCP Microscaling (MX v1.0): ``mxfp8`` (e4m3 elements), ``mxfp8_e5m2``, ``mxfp6`` (e2m3),
  ``mxfp6_e3m2``, ``mxfp4`` (e2m1), ``mxint8``; 32 elements share one E8M0 (8-bit power of two)
  scale: bits = element bits + 8/32 (MXFP4: 4.25).
- ``nvfp4``: e2m1 elements, 16 share an E4M3 scale (4 + 8/16 = 4.5 bits) and one FP32 scale per
  tensor (``tensor_scale_bits``; ``storage_bits(n)`` counts it).
- Group-wise integers ``int{b}-g{G}[-{scale}][-zp]``: ``b``-bit integers, one ``scale`` (fp16 by
  default; bf16, fp32 or e8m0) per group of ``G`` consecutive elements and, with ``-zp``, a
  ``b``-bit zero point per group (asymmetric min/max): int4-g128 = 4 + 16/128 = 4.125 bits.

Rate lookup: the cost model prices a format's *storage* with ``bits_per_element / 8`` bytes
(``DTYPE_BYTES`` resolves these names) and its *math* with the tensor engine
rate of its element type ``compute`` (``macs_per_cycle`` is keyed by fp32, tf32, bf16, fp16,
fp8, int8, int4, fp6, fp4): mxfp4 and nvfp4 -> fp4, mxfp6 -> fp6, mxfp8 and fp8_e5m2 -> fp8,
mxint8 -> int8, int4-g128 -> int4.

All quantizers round to nearest, ties to even (``np.round``), and work block-wise along the
last axis (zero-padded to a whole block).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

RATE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp6", "fp4")
"""Element types a tensor-engine rate table (``macs_per_cycle``) may name."""


@dataclass(frozen=True)
class Format:
    """One number format. A block / group format's element type is ``element``; the scale
    shared by ``block`` elements is ``scale`` of ``scale_bits`` bits."""

    name: str
    kind: str
    """float | int | mx | nvfp4 | group."""
    bits: int
    """Bits of one stored element (without scales)."""
    compute: str
    """Element type whose tensor-engine rate the format runs at (a ``RATE_DTYPES`` name)."""
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    max_value: float = 0.0
    """Largest finite magnitude of the element type (floats), or qmax (integers)."""
    saturate: bool = True
    """Out-of-range values clamp to +-max (OCP small floats) instead of overflowing to inf."""
    element: str = ""
    """Element format of a block / group format."""
    block: int = 0
    """Elements sharing one scale (0: per-tensor)."""
    scale: str = ""
    """Scale format: e8m0, fp8_e4m3, fp16, bf16, fp32."""
    scale_bits: int = 0
    zero_point: bool = False
    """Asymmetric (min/max) groups with a ``bits``-bit zero point each."""
    tensor_scale_bits: int = 0
    """Bits of the one per-tensor scale (NVFP4: 32), not spread over the elements."""
    storage_bits_override: int = 0
    """Storage bits when they differ from the value bits (tf32 is stored in 32 bits)."""

    @property
    def bits_per_element(self) -> float:
        """Exact storage bits per element, per-block scales and zero points included (the one
        per-tensor scale excluded: see ``storage_bits``)."""
        b = float(self.storage_bits_override or self.bits)
        if self.block:
            b += (self.scale_bits + (self.bits if self.zero_point else 0)) / self.block
        return b

    @property
    def bytes_per_element(self) -> float:
        return self.bits_per_element / 8.0

    def storage_bits(self, elements: int) -> float:
        """Bits to store a tensor of ``elements`` elements, every scale included (the blocks'
        padding of a last partial block is not counted)."""
        return elements * self.bits_per_element + self.tensor_scale_bits

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Quantize then dequantize ``x`` (float64 result), block-wise along the last axis."""
        return fake_quant(x, self)


def _float(name, ebits, mbits, bias, max_value, compute, saturate=True, storage=0) -> Format:
    return Format(name=name, kind="float", bits=1 + ebits + mbits, compute=compute, ebits=ebits, mbits=mbits,
                  bias=bias, max_value=max_value, saturate=saturate, storage_bits_override=storage)


_FLOATS = {
    "fp32": _float("fp32", 8, 23, 127, float(np.finfo(np.float32).max), "fp32", saturate=False),
    "tf32": _float("tf32", 8, 10, 127, (2 - 2.0 ** -10) * 2.0 ** 127, "tf32", saturate=False, storage=32),
    "bf16": _float("bf16", 8, 7, 127, (2 - 2.0 ** -7) * 2.0 ** 127, "bf16", saturate=False),
    "fp16": _float("fp16", 5, 10, 15, 65504.0, "fp16", saturate=False),
    "fp8_e4m3": _float("fp8_e4m3", 4, 3, 7, 448.0, "fp8"),
    "fp8_e5m2": _float("fp8_e5m2", 5, 2, 15, 57344.0, "fp8", saturate=False),
    "fp6_e2m3": _float("fp6_e2m3", 2, 3, 1, 7.5, "fp6"),
    "fp6_e3m2": _float("fp6_e3m2", 3, 2, 3, 28.0, "fp6"),
    "fp4_e2m1": _float("fp4_e2m1", 2, 1, 1, 6.0, "fp4"),
}
_ALIASES = {"fp8": "fp8_e4m3", "fp6": "fp6_e2m3", "fp4": "fp4_e2m1", "mxfp8_e4m3": "mxfp8",
            "mxfp6_e2m3": "mxfp6", "mxfp4_e2m1": "mxfp4"}
_SCALE_BITS = {"e8m0": 8, "fp8_e4m3": 8, "fp16": 16, "bf16": 16, "fp32": 32}


def _mx(name, element, compute) -> Format:
    e = _FLOATS.get(element)
    bits = e.bits if e else 8
    return Format(name=name, kind="mx", bits=bits, compute=compute, element=element, block=32, scale="e8m0",
                  scale_bits=8, max_value=e.max_value if e else 127 / 64)


FORMATS: dict[str, Format] = {
    **_FLOATS,
    "int8": Format(name="int8", kind="int", bits=8, compute="int8", max_value=127),
    "int4": Format(name="int4", kind="int", bits=4, compute="int4", max_value=7),
    "mxfp8": _mx("mxfp8", "fp8_e4m3", "fp8"),
    "mxfp8_e5m2": _mx("mxfp8_e5m2", "fp8_e5m2", "fp8"),
    "mxfp6": _mx("mxfp6", "fp6_e2m3", "fp6"),
    "mxfp6_e3m2": _mx("mxfp6_e3m2", "fp6_e3m2", "fp6"),
    "mxfp4": _mx("mxfp4", "fp4_e2m1", "fp4"),
    "mxint8": _mx("mxint8", "int8", "int8"),
    "nvfp4": Format(name="nvfp4", kind="nvfp4", bits=4, compute="fp4", element="fp4_e2m1", block=16,
                    scale="fp8_e4m3", scale_bits=8, tensor_scale_bits=32, max_value=6.0),
}
"""The named formats (group-wise integers are parsed from their names, see ``get_format``)."""

_GROUP = re.compile(r"^int(\d+)-g(\d+)(?:-(fp16|bf16|fp32|e8m0))?(-zp)?$")


def group_int(bits: int, group: int, scale: str = "fp16", zero_point: bool = False) -> Format:
    """Group-wise ``bits``-bit integer quantization, one ``scale`` per ``group`` elements."""
    if not 2 <= bits <= 8 or group < 1 or scale not in _SCALE_BITS:
        raise ValueError(f"bad group-wise integer format: int{bits}, group {group}, scale {scale}")
    name = f"int{bits}-g{group}" + ("" if scale == "fp16" else f"-{scale}") + ("-zp" if zero_point else "")
    return Format(name=name, kind="group", bits=bits, compute="int4" if bits <= 4 else "int8",
                  max_value=2 ** (bits - 1) - 1, element=f"int{bits}", block=group, scale=scale,
                  scale_bits=_SCALE_BITS[scale], zero_point=zero_point)


def get_format(name: str) -> Format:
    """The format called ``name`` (case-insensitive; see the module docstring). Raises
    ValueError (with the known names) for an unknown one."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    f = FORMATS.get(key)
    if f is not None:
        return f
    m = _GROUP.match(key)
    if m:
        return group_int(int(m.group(1)), int(m.group(2)), m.group(3) or "fp16", bool(m.group(4)))
    raise ValueError(f"unknown number format {name!r}; known: {', '.join(list(FORMATS) + list(_ALIASES))} "
                     f"and group-wise integers such as int4-g128, int4-g64-bf16, int4-g128-zp")


def is_format(name: str) -> bool:
    try:
        get_format(name)
        return True
    except ValueError:
        return False


def format_table() -> list[dict]:
    """One row per named format: name, kind, element bits, bits per element, block, scale, rate."""
    rows = []
    for n, f in list(FORMATS.items()) + [("int4-g128", group_int(4, 128)), ("int4-g64", group_int(4, 64))]:
        rows.append({"name": n, "kind": f.kind, "element_bits": f.bits, "bits_per_element": f.bits_per_element,
                     "block": f.block, "scale": f.scale, "tensor_scale_bits": f.tensor_scale_bits,
                     "max_value": f.max_value, "compute": f.compute})
    return rows


# ------------------------------------------------------------------------------------------
# Quantizers


def quant_float(x: np.ndarray, f: Format, saturate: bool | None = None) -> np.ndarray:
    """Round ``x`` to the float format ``f`` (nearest, ties to even; subnormals kept; beyond the
    largest finite value: clamp when saturating, else +-inf past max + half an ulp)."""
    x = np.asarray(x, dtype=np.float64)
    if f.name == "fp32":
        return x.astype(np.float32).astype(np.float64)
    sat = f.saturate if saturate is None else saturate
    ax = np.abs(x)
    emin = 1 - f.bias
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(ax > 0, ax, 1.0)))
    step = np.exp2(np.maximum(e, emin) - f.mbits)
    q = np.round(ax / step) * step
    if sat:
        q = np.minimum(q, f.max_value)
    else:
        ulp = 2.0 ** (math.floor(math.log2(f.max_value)) - f.mbits)
        q = np.where(ax >= f.max_value + ulp / 2, np.inf, np.minimum(q, f.max_value))
    return np.copysign(q, x)


def _e8m0(scale_exp: np.ndarray) -> np.ndarray:
    return np.exp2(np.clip(scale_exp, -127, 127))


def _blocks(x: np.ndarray, block: int) -> tuple[np.ndarray, tuple, int]:
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    flat = x.reshape(-1, shape[-1]) if x.ndim else x.reshape(1, 1)
    pad = (-flat.shape[1]) % block
    if pad:
        flat = np.pad(flat, ((0, 0), (0, pad)))
    return flat.reshape(flat.shape[0], -1, block), shape, pad


def _unblocks(b: np.ndarray, shape: tuple, pad: int) -> np.ndarray:
    flat = b.reshape(b.shape[0], -1)
    if pad:
        flat = flat[:, :-pad]
    return flat.reshape(shape)


def _round_scale(s: np.ndarray, scale: str) -> np.ndarray:
    if scale == "e8m0":  # round the scale up to a power of two so no element saturates
        with np.errstate(divide="ignore"):
            return _e8m0(np.ceil(np.log2(np.where(s > 0, s, 1.0))))
    return quant_float(s, _FLOATS[scale], saturate=True)


def _int_groups(b: np.ndarray, f: Format) -> np.ndarray:
    """Quantize blocks ``b`` [rows, groups, G] to ``f.bits``-bit integers per group."""
    if f.zero_point:
        levels = 2 ** f.bits - 1
        lo, hi = np.minimum(b.min(-1, keepdims=True), 0.0), np.maximum(b.max(-1, keepdims=True), 0.0)
        s = _round_scale((hi - lo) / levels, f.scale)
        s = np.where(s > 0, s, 1.0)
        zp = np.clip(np.round(-lo / s), 0, levels)
        q = np.clip(np.round(b / s) + zp, 0, levels)
        return (q - zp) * s
    qmax = 2 ** (f.bits - 1) - 1
    s = _round_scale(np.abs(b).max(-1, keepdims=True) / qmax, f.scale)
    s = np.where(s > 0, s, 1.0)
    return np.clip(np.round(b / s), -qmax, qmax) * s


def fake_quant(x: np.ndarray, f: Format | str) -> np.ndarray:
    """Quantize then dequantize ``x`` in format ``f`` (blocks along the last axis)."""
    f = get_format(f) if isinstance(f, str) else f
    x = np.asarray(x, dtype=np.float64)
    if f.kind == "float":
        return quant_float(x, f)
    if f.kind == "int":  # per-tensor symmetric absmax, fp32 scale
        amax = float(np.abs(x).max()) if x.size else 0.0
        s = amax / f.max_value if amax > 0 else 1.0
        return np.clip(np.round(x / s), -f.max_value, f.max_value) * s
    b, shape, pad = _blocks(x, f.block)
    if f.kind == "group":
        return _unblocks(_int_groups(b, f), shape, pad)
    amax = np.abs(b).max(-1, keepdims=True)
    if f.kind == "mx":
        # OCP MX v1.0: shared exponent = floor(log2(amax)) - emax of the element type
        if f.element == "int8":  # MXINT8: 8-bit two's complement with an implicit 2^-6
            emax = 0
        else:
            emax = math.floor(math.log2(_FLOATS[f.element].max_value))
        with np.errstate(divide="ignore"):
            e = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - emax
        s = _e8m0(e)
        if f.element == "int8":
            q = np.clip(np.round(b / s * 64.0), -127, 127) / 64.0
        else:
            q = quant_float(b / s, _FLOATS[f.element], saturate=True)
        return _unblocks(q * s, shape, pad)
    # NVFP4: per-tensor fp32 scale maps the tensor max to 448 * 6; E4M3 block scales
    tmax = float(np.abs(x).max()) if x.size else 0.0
    ts = tmax / (448.0 * 6.0) if tmax > 0 else 1.0
    s = quant_float(amax / 6.0 / ts, _FLOATS["fp8_e4m3"], saturate=True) * ts
    s = np.where(s > 0, s, 1.0)
    q = quant_float(b / s, _FLOATS["fp4_e2m1"], saturate=True) * s
    return _unblocks(q, shape, pad)


# ------------------------------------------------------------------------------------------
# Storage bytes per element


class _DtypeBytes(dict):
    """Storage bytes per element of a dtype. The base dtypes are listed; any other
    format name (fp8_e5m2, mxfp4 = 4.25/8, nvfp4 = 4.5/8, int4-g128 = 4.125/8,
    ...) resolves on first use to its exact bits per element (scales included) / 8."""

    def __missing__(self, key: str) -> float:
        try:
            f = get_format(key)
        except (ValueError, TypeError):
            raise KeyError(key) from None
        self[key] = f.bytes_per_element
        return self[key]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
            return True
        except KeyError:
            return False


DTYPE_BYTES = _DtypeBytes({"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
                           "int4": 0.5, "fp4": 0.5})
"""Storage bytes per element of each dtype (tf32 is stored as fp32; any other format name
resolves to its bits per element / 8)."""


__all__ = ["Format", "FORMATS", "RATE_DTYPES", "DTYPE_BYTES", "get_format", "group_int", "is_format", "format_table",
           "fake_quant", "quant_float"]
