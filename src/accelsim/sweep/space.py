"""DesignSpace: a base system and workload, axes of dotted-path overrides, a sampling plan and
declarative constraints; loaded from YAML (format: ``workloads/sweeps/README.md``).

A *point* is a mapping ``path -> value`` over every axis (a bundle axis contributes several
paths). Paths starting with ``workload.`` edit the workload; every other path edits the system
spec, exactly like ``accelsim run --set``. Each point's system is re-validated in full by
``SystemSpec.model_validate`` of the edited dict (never ``model_copy(update=...)``), in the
worker that evaluates it; an invalid point is recorded, not raised (see ``runner``).

Sampling: ``grid`` (Cartesian product, first axis slowest), ``zip`` (axes advance together),
``random`` (``samples`` independent draws) and ``lhs`` (Latin hypercube from
``scipy.stats.qmc``, ``samples`` points); both random kinds are reproducible from ``seed``.
Numeric ranges ``{low, high, log, num, integer}`` are sampled continuously by ``random`` / ``lhs``
and expand to ``num`` values (linear or geometric) in ``grid`` / ``zip``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictFloat, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..arch.presets import load_raw
from ..arch.spec import SystemSpec
from ..configio import StrictModel, load_yaml, path_problem, validate
from ..errors import ConfigError
from ..units import parse
from ..workload.parallel import RecomputeScope, Selective
from .derived import CostModel

SAMPLING = ("grid", "zip", "random", "lhs")
SYSTEM_ROOTS = tuple(SystemSpec.model_fields)
"""First keys of a system path (``chip``, ``num_chips``, ``interconnect``, ...)."""
WORKLOAD_PREFIX = "workload."

_UNIT_SUFFIX = (("_Bps", "bandwidth"), ("_bytes", "bytes"), ("_Hz", "frequency"), ("_s", "time"),
                ("_W", "power"), ("_m2", "area"), ("_pJ", "energy"))


def unit_kind(path: str) -> str | None:
    """The unit kind a field's name implies (``chip.hbm.bandwidth_Bps`` -> "bandwidth")."""
    leaf = path.rsplit(".", 1)[-1]
    for suffix, kind in _UNIT_SUFFIX:
        if leaf.endswith(suffix):
            return kind
    return None


def normalize_value(path: str, value: Any) -> Any:
    """A unit string on a unit-named field becomes its SI number ("24 MiB" -> 25165824.0);
    anything that does not parse is left alone for validation to report."""
    kind = unit_kind(path)
    if kind and isinstance(value, str):
        try:
            return parse(value, kind)
        except ValueError:
            return value
    if isinstance(value, tuple):
        return list(value)
    return value


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for hashes and cache keys (what
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"), default=...)`` gives, with one
    encoder for every call: a sweep asks for several a point)."""
    if obj.__class__ is dict and not obj:
        return "{}"
    return _CANONICAL.encode(obj)


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_json_default)


class Range(StrictModel):
    """A numeric range for one axis. ``random`` and ``lhs`` draw from it continuously (log-uniform
    with ``log``); ``grid`` and ``zip`` expand it to ``num`` values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: int | float | str
    """Lower end (a number or a unit string such as "12 MiB")."""
    high: int | float | str
    """Upper end."""
    log: bool = False
    """Sample (and space grid values) geometrically."""
    num: int | None = Field(None, ge=1)
    """Values when expanded by ``grid`` / ``zip``."""
    integer: bool | None = None
    """Round samples to integers; default: true when both ends are integers without units."""

    def bounds(self, path: str) -> tuple[float, float]:
        lo, hi = (_number(path, v) for v in (self.low, self.high))
        if hi < lo:
            raise ConfigError(f"axes.{path}: high {self.high!r} is below low {self.low!r}")
        if self.log and lo <= 0:
            raise ConfigError(f"axes.{path}: a log range needs low > 0, got {self.low!r}")
        return lo, hi

    def is_integer(self) -> bool:
        if self.integer is not None:
            return self.integer
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))

    def at(self, path: str, u: float) -> float | int:
        """The value at quantile ``u`` in [0, 1]."""
        lo, hi = self.bounds(path)
        x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if self.log and hi > lo else lo + u * (hi - lo)
        return int(round(x)) if self.is_integer() else float(x)

    def expand(self, path: str) -> list[Any]:
        if self.num is None:
            raise ConfigError(f"axes.{path}: a range needs num: N for grid / zip sampling")
        if self.num == 1:
            return [self.at(path, 0.0)]
        vals = [self.at(path, i / (self.num - 1)) for i in range(self.num)]
        return list(dict.fromkeys(vals))  # integer rounding may repeat values


def _number(path: str, v: Any) -> float:
    x = normalize_value(path, v)
    if isinstance(x, str):
        raise ConfigError(f"axes.{path}: cannot read {v!r} as a number (a unit string needs a unit-named "
                          f"field such as *_bytes, *_Bps, *_Hz, *_s, *_W)")
    return float(x)


AxisValues = Union[list[Any], Range]


METRIC_UNITS = {"memory_bytes_per_chip": ("bytes", 1.0), "hbm_capacity_bytes": ("bytes", 1.0),
                "latency_s": ("time", 1.0), "power_W": ("power", 1.0), "area_mm2": ("area", 1e6),
                "peak_flops_per_chip": ("flops", 1.0)}
"""Metric columns whose bounds may be unit strings: (unit kind, SI -> column unit)."""


class Constraints(StrictModel):
    """Declarative filters. Keys are metric columns (``latency_s``, ``memory_bytes_per_chip``,
    ``area_mm2``, ``power_W``, ...), ``workload.*`` fields or dotted paths into the validated
    system spec (``chip.tdp_W``, ``num_chips``); values are numbers or unit strings. A point
    that breaks one is kept but marked ``feasible = False`` with the reason in ``violations``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: dict[str, StrictInt | StrictFloat | str] = {}
    """Upper bounds (inclusive): finite numbers or unit strings (``true`` is not a number)."""
    min: dict[str, StrictInt | StrictFloat | str] = {}
    """Lower bounds (inclusive)."""
    fits: bool = False
    """Require the workload to fit in HBM (``fits`` column)."""

    def bounds(self) -> list[tuple[str, str, float]]:
        """(key, "max" | "min", SI value) for every bound."""
        out = []
        for sense, table in (("max", self.max), ("min", self.min)):
            for key, v in table.items():
                x = normalize_value(key, v)
                if key in METRIC_UNITS and isinstance(v, str):
                    kind, scale = METRIC_UNITS[key]
                    try:
                        x = parse(v, kind) * scale
                    except ValueError as e:
                        raise ConfigError(f"constraints.{sense}.{key}: {e}") from None
                if isinstance(x, str):
                    try:
                        x = float(x)
                    except ValueError:
                        raise ConfigError(f"constraints.{sense}.{key}: cannot read {v!r} as a number") from None
                if isinstance(x, bool) or not math.isfinite(float(x)):  # NaN never compares: the bound would drop out
                    raise ConfigError(f"constraints.{sense}.{key}: a bound must be a finite number, got {v!r}")
                out.append((key, sense, float(x)))
        return out

    @model_validator(mode="after")
    def _readable(self) -> "Constraints":
        self.bounds()  # a bound that is not a finite number is refused when the space is loaded
        return self

    def spec_paths(self) -> list[str]:
        """Keys that are paths into the system spec (recorded by the workers)."""
        return [k for k, _, _ in self.bounds() if k.split(".", 1)[0] in SYSTEM_ROOTS]


class WorkloadSpec(StrictModel):
    """The base workload of a sweep; any field can be an axis as ``workload.<field>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    """Model preset name, YAML path or Hugging Face config.json (relative to the sweep file)."""
    phase: Literal["prefill", "decode", "train"] = "decode"
    """Step to predict."""
    batch: int = Field(1, ge=1)
    """Sequences per step (for train: the global batch)."""
    seq_len: int | None = Field(None, ge=1)
    """Prompt length (prefill, default 2048) or training sequence length (train, default 2048)."""
    context_len: int | None = Field(None, ge=0)
    """Cached tokens (decode, default 2048)."""
    tp: int = Field(1, ge=1)
    """Tensor-parallel degree."""
    dtype: str = "bf16"
    """Number format of weights and activations."""
    attention: Literal["flash", "unfused", "unfused_grouped"] | None = None
    """Attention implementation (default: the stack's, ``stack.realize.attention_of``; training
    runs flash or unfused)."""
    layers: int | None = Field(None, ge=1)
    """Override the model's ``num_hidden_layers`` (1 = a one-layer graph, the cheapest proxy)."""
    pp: int = Field(1, ge=1)
    """Pipeline stages (train)."""
    dp: int = Field(1, ge=1)
    """Data-parallel replicas (train)."""
    ep: int = Field(1, ge=1)
    """Expert-parallel degree (train)."""
    cp: int = Field(1, ge=1)
    """Context-parallel degree (train)."""
    sp: bool = False
    """Sequence parallelism (train)."""
    microbatch: int = Field(1, ge=1)
    """Sequences per microbatch (train)."""
    zero: Literal[0, 1, 2, 3] = 0
    """ZeRO stage (train)."""
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation (train)."""
    selective: Selective = "attention"
    """What selective recomputation keeps (train, ``ParallelPlan.selective``)."""
    recompute_scope: RecomputeScope = "layer"
    """What a recomputed layer reruns (train, ``ParallelPlan.recompute_scope``)."""
    schedule: Literal["1f1b", "gpipe"] = "1f1b"
    """Pipeline schedule (train)."""
    cores_per_chip: int = Field(1, ge=1)
    """When > 1, ``tp`` counts cores (AWS Neuron convention, train)."""

    def plan_fields(self) -> dict[str, Any]:
        return dict(tp=self.tp, pp=self.pp, dp=self.dp, ep=self.ep, cp=self.cp, sp=self.sp,
                    microbatch=self.microbatch, zero=self.zero, recompute=self.recompute,
                    selective=self.selective, recompute_scope=self.recompute_scope, schedule=self.schedule,
                    cores_per_chip=self.cores_per_chip)


@dataclass(frozen=True, slots=True)
class Point:
    """One design point: its position in the space, the overrides, the axis column values."""

    index: int
    overrides: dict[str, Any]
    """path -> value over every axis (bundles expanded; unit strings already in SI)."""
    columns: dict[str, Any]
    """Axis name -> value as shown in the results (bundle axes: their label)."""
    hash: str
    """``point_hash`` of the overrides within the space's context."""


class DesignSpace(BaseModel):
    """A design space over a base system and workload. Build it in Python or load it with
    ``DesignSpace.from_yaml``; ``points()`` enumerates it deterministically."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "sweep"
    """Name of the sweep (for display)."""
    system: str
    """Base system: preset name or YAML path (relative to the sweep file)."""
    set: dict[str, Any] = {}
    """Fixed overrides of the base system (``path: value``), applied before the axes."""
    workload: WorkloadSpec
    """Base workload."""
    axes: dict[str, AxisValues] = {}
    """Axis name -> values. A name that is a dotted path (``chip.hbm.bandwidth_Bps``,
    ``workload.batch``) overrides that field; any other name is a *bundle*: each value is a
    mapping ``{path: value, ..., label: optional}`` applied together."""
    sampling: Literal["grid", "zip", "random", "lhs"] = "grid"
    """How points are drawn from the axes."""
    samples: int | None = Field(None, ge=1)
    """Points to draw for random / lhs."""
    seed: int = 0
    """Seed of random / lhs sampling."""
    constraints: Constraints = Constraints()
    """Declarative filters (see ``Constraints``)."""
    scale_tensor_rates: bool = True
    """When a point changes ``chip.core.tensor.rows``, ``cols`` or ``count`` (and not
    ``macs_per_cycle``), scale every ``macs_per_cycle`` entry by the change in PEs, so per-PE
    throughput is kept and the peak follows the array size."""
    cost_model: CostModel = CostModel()
    """Coefficients of the first-order area / power model (``area_mm2``, ``power_W``)."""
    filters: SkipJsonSchema[list[Callable[[dict[str, Any]], bool]]] = Field(default_factory=list, exclude=True)
    """Python-only constraints: each gets a result row (a dict) and returns True to keep it."""
    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _check(self) -> "DesignSpace":
        seen: dict[str, str] = {}
        for name, values in self.axes.items():
            paths = self._axis_paths(name, values)
            for p in paths:
                if p in seen:
                    raise ValueError(f"path {p!r} is set by two axes ({seen[p]!r} and {name!r})")
                seen[p] = name
            if isinstance(values, list) and not values:
                raise ValueError(f"axis {name!r} has no values")
        if self.sampling in ("random", "lhs") and self.samples is None:
            raise ValueError(f"sampling {self.sampling} needs samples: N")
        return self

    @staticmethod
    def is_path(name: str) -> bool:
        root = name.split(".", 1)[0]
        return root in SYSTEM_ROOTS or name.startswith(WORKLOAD_PREFIX)

    def _axis_paths(self, name: str, values: AxisValues) -> list[str]:
        if self.is_path(name):
            if name.startswith(WORKLOAD_PREFIX) and name[len(WORKLOAD_PREFIX):] not in WorkloadSpec.model_fields:
                known = ", ".join(WorkloadSpec.model_fields)
                raise ValueError(f"axis {name!r}: unknown workload field; known: {known}")
            _check_system_path(f"axis {name!r}", name)
            return [name]
        if isinstance(values, Range) or not all(isinstance(v, dict) for v in values):
            raise ValueError(f"axis {name!r} is not a path into the system ({', '.join(SYSTEM_ROOTS)}) or "
                             f"workload.*, so it must be a bundle: a list of mappings path -> value")
        paths = []
        for v in values:
            for p in v:
                if p == "label":
                    continue
                if not self.is_path(p):
                    raise ValueError(f"bundle axis {name!r}: {p!r} is not a path into the system or workload.*")
                _check_system_path(f"bundle axis {name!r}", p)
                if p not in paths:
                    paths.append(p)
        return paths

    # --- loading --------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> "DesignSpace":
        """Load a sweep file; relative system and model paths are taken from its folder."""
        path = Path(path)
        data = load_yaml(path)
        space = validate(cls, data, str(path))
        space._root = path.resolve().parent
        return space

    @classmethod
    def load(cls, spec: "DesignSpace | str | Path | dict[str, Any]") -> "DesignSpace":
        """A DesignSpace from itself, a YAML path or a mapping."""
        if isinstance(spec, DesignSpace):
            return spec
        if isinstance(spec, dict):
            return validate(cls, spec, "design space")
        return cls.from_yaml(spec)

    @property
    def root(self) -> Path:
        """Folder that relative system and model paths are taken from (the sweep file's)."""
        return self._root

    def _resolve(self, ref: str) -> str:
        return resolve_ref(self._root, ref)

    def base_system(self) -> SystemSpec:
        """The validated base system (``system`` with ``set`` applied); raises ConfigError."""
        raw, origin = load_raw(self._resolve(self.system))
        for k, v in self.set.items():
            raw = set_path(raw, k, normalize_value(k, v))
        return validate(SystemSpec, raw, origin + (" (with set: " + ", ".join(self.set) + ")" if self.set else ""))

    def base_workload(self) -> dict[str, Any]:
        """The base workload as a plain mapping, model path resolved."""
        wl = self.workload.model_dump()
        wl["model"] = self._resolve(wl["model"])
        return wl

    # --- enumeration ----------------------------------------------------------------------
    def _expanded(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(overrides, column value) per value of a list (or num-expanded range) axis."""
        values = self.axes[name]
        if isinstance(values, Range):
            values = values.expand(name)
        if self.is_path(name):
            return [({name: normalize_value(name, v)}, _column(normalize_value(name, v))) for v in values]
        out = []
        for i, v in enumerate(values):
            ov = {p: normalize_value(p, x) for p, x in v.items() if p != "label"}
            out.append((ov, v.get("label", i)))
        return out

    def _sampler(self, name: str) -> Callable[[float], tuple[dict[str, Any], Any]]:
        """Maps a quantile u in [0, 1) to the axis value: a range is sampled continuously, a
        list by index."""
        values = self.axes[name]
        if isinstance(values, Range):
            lo, hi = values.bounds(name)
            integer, log = values.is_integer(), values.log and hi > lo
            llo, lspan = (math.log(lo), math.log(hi) - math.log(lo)) if log else (0.0, 0.0)

            def draw(u: float) -> tuple[dict[str, Any], Any]:
                x = math.exp(llo + u * lspan) if log else lo + u * (hi - lo)
                x = int(round(x)) if integer else float(x)
                return {name: x}, x

            return draw
        opts = self._expanded(name)
        n = len(opts)
        return lambda u: opts[min(int(u * n), n - 1)]

    def size(self) -> int:
        """Number of points."""
        names = list(self.axes)
        if not names:
            return 1
        if self.sampling == "grid":
            return math.prod(len(self._expanded(n)) for n in names)
        if self.sampling == "zip":
            return len(self._expanded(names[0]))
        return int(self.samples)

    def points(self) -> list[Point]:
        """Every point, in a deterministic order (``index`` 0..n-1)."""
        names = list(self.axes)
        combos: list[list[tuple[dict[str, Any], Any]]]
        if not names:
            combos = [[]]
        elif self.sampling == "grid":
            combos = [list(c) for c in itertools.product(*(self._expanded(n) for n in names))]
        elif self.sampling == "zip":
            lists = [self._expanded(n) for n in names]
            lengths = {n: len(v) for n, v in zip(names, lists)}
            if len(set(lengths.values())) > 1:
                raise ConfigError(f"zip sampling needs axes of equal length, got {lengths}")
            combos = [list(c) for c in zip(*lists)]
        else:
            u = self._unit_samples(len(names))
            samplers = [self._sampler(n) for n in names]
            combos = [[f(float(x)) for f, x in zip(samplers, row)] for row in u.tolist()]
        hash_of = point_hasher(canonical_json(self.context_key()))
        out = []
        for i, combo in enumerate(combos):
            overrides: dict[str, Any] = {}
            columns: dict[str, Any] = {}
            for name, (ov, col) in zip(names, combo):
                overrides.update(ov)
                columns[name] = col
                if not self.is_path(name):
                    for p, v in ov.items():
                        columns[p] = _column(v)
            out.append(Point(index=i, overrides=overrides, columns=columns, hash=hash_of(overrides)))
        return out

    def _unit_samples(self, d: int) -> np.ndarray:
        n = int(self.samples)
        if self.sampling == "random":
            return np.random.default_rng(self.seed).random((n, d))
        from scipy.stats import qmc

        try:
            sampler = qmc.LatinHypercube(d=d, rng=self.seed)
        except TypeError:  # scipy < 1.15
            sampler = qmc.LatinHypercube(d=d, seed=self.seed)
        return sampler.random(n)

    def context_key(self) -> dict[str, Any]:
        """What every point of this space shares: the base system and its fixed overrides, the
        base workload and the derivation rules. Part of each point's hash."""
        return {"system": self.system, "set": {k: normalize_value(k, v) for k, v in self.set.items()},
                "workload": self.workload.model_dump(), "scale_tensor_rates": self.scale_tensor_rates}


def resolve_ref(root: Path, ref: str) -> str:
    """A relative YAML / JSON path that exists under ``root`` becomes that path; names (presets)
    and other paths are returned as they are."""
    p = Path(ref)
    if p.suffix in (".yaml", ".yml", ".json") and not p.is_absolute() and (Path(root) / p).exists():
        return str(Path(root) / p)
    return ref


def _column(v: Any) -> Any:
    """A value as a DataFrame cell: scalars as they are, lists / mappings as compact JSON."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, separators=(",", ":"), default=_json_default)


def point_hash(context: str | dict[str, Any], overrides: dict[str, Any]) -> str:
    """sha256 (hex, first 16 bytes) of the canonical JSON of the point's overrides, prefixed by
    the canonical JSON of the space's shared context (``DesignSpace.context_key``): stable
    across runs, machines, processes and axis order."""
    return point_hasher(context)(overrides)


def point_hasher(context: str | dict[str, Any]):
    """``point_hash`` of one context as a function of the overrides, the context's part of the
    digest worked out once (a space's points share it)."""
    prefix = hashlib.sha256(f"{context if isinstance(context, str) else canonical_json(context)}|".encode())

    def hash_of(overrides: dict[str, Any]) -> str:
        h = prefix.copy()
        h.update(canonical_json(overrides).encode())
        return h.hexdigest()[:32]

    return hash_of


def _check_system_path(what: str, path: str) -> None:
    """Refuse a system path that names no field of the system schema (a misspelt axis would
    otherwise make every point of the sweep invalid)."""
    if not path.startswith(WORKLOAD_PREFIX):
        problem = path_problem(SystemSpec, path)
        if problem:
            raise ValueError(f"{what}: {problem}")


# --- building a point's system dict ----------------------------------------------------------
def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` set, copying only the mappings along the path (the rest
    is shared: validation never mutates its input). A missing or null mapping on the way is
    created; a non-mapping on the way raises ConfigError."""
    keys = path.split(".")
    out = dict(data)
    node = out
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"{path}: {'.'.join(keys[: i + 1])} is not a mapping")
        nxt = dict(nxt)
        node[k] = nxt
        node = nxt
    node[keys[-1]] = value
    return out


TENSOR_SHAPE = ("chip.core.tensor.rows", "chip.core.tensor.cols", "chip.core.tensor.count")


def system_dict(base: dict[str, Any], overrides: dict[str, Any], scale_tensor_rates: bool = True) -> dict[str, Any]:
    """The base system dict with a point's system overrides applied (and the tensor-rate rule)."""
    data = base
    for path, value in overrides.items():
        data = set_path(data, path, value)
    if scale_tensor_rates and any(p in overrides for p in TENSOR_SHAPE) \
            and "chip.core.tensor.macs_per_cycle" not in overrides:
        t0 = base["chip"]["core"]["tensor"]
        t1 = data["chip"]["core"]["tensor"]
        try:
            ratio = (float(t1["rows"]) * float(t1["cols"]) * float(t1.get("count", 1))) / \
                    (float(t0["rows"]) * float(t0["cols"]) * float(t0.get("count", 1)))
        except (TypeError, ValueError, KeyError):
            ratio = None  # an invalid shape: let validation report it
        if ratio is not None and math.isfinite(ratio) and ratio > 0:
            data = set_path(data, "chip.core.tensor.macs_per_cycle",
                            {k: v * ratio for k, v in t0["macs_per_cycle"].items()})
    return data


__all__ = ["DesignSpace", "WorkloadSpec", "Range", "Constraints", "Point", "point_hash", "canonical_json",
           "system_dict", "set_path", "normalize_value", "unit_kind", "SAMPLING"]
