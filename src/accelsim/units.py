"""Units: parse human strings such as "24 MiB", "2.9 TB/s", "800 Gbps", "1.4 GHz", "500 ns"
into SI numbers (B, B/s, Hz, s, W, FLOP/s, J) at the edges. Everything inside accelsim is SI.

Prefix rules (the classic bug is mixing them up):
- decimal: k = K = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15, E = 1e18
- binary:  Ki = 2**10, Mi = 2**20, Gi = 2**30, Ti = 2**40, Pi = 2**50
- small (time, energy, power only): m = 1e-3, u = µ = 1e-6, n = 1e-9, p = 1e-12, f = 1e-15
"KB" therefore means 1000 bytes; write "KiB" for 1024.
A lower-case "b" is a bit: "800 Gbps" and "800 Gb/s" are 100e9 B/s.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Union


_BIG = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
        "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}
_SMALL = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}

# kind -> {unit symbol: (scale to SI, prefixes allowed)}
_UNITS: dict[str, dict[str, tuple[float, dict[str, float]]]] = {
    "bytes": {"B": (1.0, _BIG), "b": (0.125, _BIG), "bit": (0.125, _BIG), "bits": (0.125, _BIG)},
    "bandwidth": {"B/s": (1.0, _BIG), "Bps": (1.0, _BIG), "b/s": (0.125, _BIG),
                  "bps": (0.125, _BIG), "bit/s": (0.125, _BIG)},
    "frequency": {"Hz": (1.0, _BIG)},
    "time": {"s": (1.0, _SMALL), "sec": (1.0, _SMALL), "min": (60.0, {"": 1.0}), "h": (3600.0, {"": 1.0})},
    "power": {"W": (1.0, {**_BIG, **_SMALL})},
    "energy": {"J": (1.0, {**_BIG, **_SMALL})},
    "flops": {"FLOP/s": (1.0, _BIG), "FLOPS": (1.0, _BIG), "OP/s": (1.0, _BIG), "OPS": (1.0, _BIG)},
    "area": {"m2": (1.0, {"": 1.0}), "mm2": (1e-6, {"": 1.0}), "mm^2": (1e-6, {"": 1.0}),
             "m^2": (1.0, {"": 1.0})},
}
_EXAMPLES = {"bytes": '"24 MiB", "96 GiB", "512 KB"', "bandwidth": '"2.9 TB/s", "27 GiB/s", "800 Gbps"',
             "frequency": '"1.4 GHz", "960 MHz"', "time": '"500 ns", "8.9 us", "2 ms"',
             "power": '"700 W"', "energy": '"0.5 pJ"', "flops": '"989 TFLOP/s"', "area": '"814 mm2"'}
_NUM = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S*)\s*$")


def parse(value: object, kind: str) -> float:
    """Convert ``value`` (a number, already SI, or a string with a unit) to an SI float.

    Raises ``ValueError`` with a message that says what was expected; pydantic turns it into a
    validation error that names the field.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind} quantity, got a boolean")
    if isinstance(value, (int, float)):
        return _finite(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"expected a number or a string such as {_EXAMPLES[kind]}, got {type(value).__name__}")
    m = _NUM.match(value)
    if not m:
        raise ValueError(f"cannot parse {value!r} as a {kind} quantity; write e.g. {_EXAMPLES[kind]}")
    number, unit = float(m.group(1)), m.group(2)
    if unit == "":
        return _finite(number, value)
    for symbol, (scale, prefixes) in sorted(_UNITS[kind].items(), key=lambda kv: -len(kv[0])):
        if unit.endswith(symbol):
            prefix = unit[: -len(symbol)]
            if prefix in prefixes:
                return _finite(number * prefixes[prefix] * scale, value)
    raise ValueError(f"unknown unit {unit!r} in {value!r} for a {kind} quantity; write e.g. {_EXAMPLES[kind]}")


def _finite(x: float, original: object) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{original!r} is not a finite number")
    return x


FIELD_UNITS = (("_Bps", "B/s"), ("_bytes", "B"), ("_Hz", "Hz"), ("_pJ", "pJ"), ("_mm2", "mm²"), ("_W", "W"),
               ("_J", "J"), ("_s", "s"))
"""Field-name suffix -> SI unit: units live in field and column names (``bandwidth_Bps``)."""


def split_unit(name: str) -> tuple[str, str]:
    """(stem, unit) of a field or column name: ``chip.hbm.bandwidth_Bps`` -> (``chip.hbm.bandwidth``,
    "B/s"); (name, "") without a unit suffix. A rate such as ``tokens_per_s`` carries none."""
    name = str(name)
    if not name.endswith("_per_s"):
        for suffix, unit in FIELD_UNITS:
            if name.endswith(suffix):
                return name[: -len(suffix)], unit
    return name, ""


def unit_pattern(kind: str) -> str:
    """A regular expression of the strings ``parse`` accepts for ``kind`` (for JSON Schema)."""
    alts = sorted({re.escape(p + sym) for sym, (_, prefixes) in _UNITS[kind].items() for p in prefixes},
                  key=lambda a: (-len(a), a))
    return r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*(?:" + "|".join(alts) + r")?\s*$"


_TYPES = {"Bytes": "bytes", "BytesPerSecond": "bandwidth", "Hertz": "frequency", "Seconds": "time",
          "Watts": "power", "Joules": "energy", "FlopsPerSecond": "flops", "SquareMeters": "area"}
"""Field types that take a number in SI units or a string with a unit (``Bytes``: "24 MiB"),
built on first use (so that a command that only formats numbers does not import pydantic)."""


def _validator(kind: str):
    from pydantic import BeforeValidator, StringConstraints

    text = Annotated[str, StringConstraints(pattern=unit_pattern(kind))]
    return BeforeValidator(lambda v: parse(v, kind) if isinstance(v, (str, int, float)) else v,
                           json_schema_input_type=Union[float, text])


MAX_LATENCY_S = 3600.0
"""Largest value a ``Seconds`` field (a latency or a per-call, per-step or per-kernel overhead) takes:
an hour, far beyond any such cost, and far enough below the float range that a step's sums of them
stay finite (a latency of 1e308 s made a step's time infinite)."""


def _within_an_hour(x):
    if isinstance(x, float) and x > MAX_LATENCY_S:
        raise ValueError(f"{x!r} s is beyond an hour ({MAX_LATENCY_S:g} s), not a latency or an overhead")
    return x


def __getattr__(name: str):
    kind = _TYPES.get(name)
    if kind is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if kind == "time":
        from pydantic import AfterValidator

        t = Annotated[float, _validator(kind), AfterValidator(_within_an_hour)]
    else:
        t = Annotated[float, _validator(kind)]
    globals()[name] = t
    return t


def fmt(value: float, unit: str, binary: bool = False, digits: int = 3) -> str:
    """Format an SI value for people: fmt(2.9e12, "B/s") -> "2.9 TB/s"; fmt(25165824, "B", binary=True) -> "24 MiB"."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    if binary:
        steps = [(2.0**50, "Pi"), (2.0**40, "Ti"), (2.0**30, "Gi"), (2.0**20, "Mi"), (2.0**10, "Ki")]
    else:
        steps = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
                 (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")]
    for scale, prefix in steps:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    scale, prefix = steps[-1]
    return f"{value / scale:.{digits}g} {prefix}{unit}"
