"""Compression recipes: number formats for weights, activations and the KV cache, per-layer
overrides, N:M structured sparsity and structured pruning, applied by the workload builders
(``build(..., compression=)``, ``build_train(..., compression=)``), so prefill, decode and
training graphs carry compressed shapes, bytes and dtypes.

What a recipe changes:

- **Pruning** (``prune``) transforms the ModelConfig before building: query heads removed
  (rounded to keep whole GQA groups), MLP width removed (rounded to a multiple of 64), whole
  layers dropped.
- **Weights** (``weights``): the B operand of every linear-layer GEMM (qkv, out, MLP / expert
  projections, router; the LM head / classifier only with ``quantize_head``) is stored in that
  format (its bytes include scales); ``activations`` sets the A operand. GEMMs touched by a
  recipe have ``emulate=True``: a format the tensor engine cannot run is dequantized on the
  vector engine to the nearest type it runs (see ``accelsim.cost.op_cost``). In training the
  forward and dgrad GEMMs take (activations, weights), the wgrad GEMMs take the activation
  format for both operands (FP8 training quantizes gradients too); master weights, optimizer
  state and gradient collectives are unchanged.
- **KV cache** (``kv_cache``): KV append and attention read K/V in that format (dequantized on
  the vector engine as they stream); attention math stays in the model dtype.
- **Sparsity** (``sparsity``, e.g. "2:4"): weight GEMMs store N/M of the weight plus index
  metadata and run ``min(sparsity_speedup, M/N)`` faster on a chip listing the pattern.
  Inference only (ignored in training graphs).
- **Overrides**: ``keep_first`` / ``keep_last`` layers stay in the model dtype and dense;
  ``overrides`` set other formats for listed layers (negative indices count from the end).

Correlation rows carry recipes as tags: ``Compression.from_tag("w4a16-g64+sparse2:4")``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import WorkloadError

WEIGHT_ROLES = ("qkv_proj", "out_proj", "mlp_up", "mlp_down", "moe_up", "moe_down", "shared_up", "shared_down",
                "router")
"""Roles of the linear-layer GEMMs whose B operand is a weight (the head is separate)."""
HEAD_ROLES = ("lm_head", "classifier", "fc")


def nm_pattern(pattern: str) -> tuple[int, int]:
    """(N, M) of an "N:M" sparsity pattern; ValueError for anything else."""
    try:
        n, m = (int(v) for v in str(pattern).split(":"))
    except ValueError:
        raise ValueError(f"sparsity must be 'N:M' (e.g. '2:4'), got {pattern!r}") from None
    if not 0 < n < m:
        raise ValueError(f"sparsity N:M needs 0 < N < M, got {pattern!r}")
    return n, m



def _check_format(v: str | None) -> str | None:
    if v is None:
        return v
    from .formats import get_format

    try:
        get_format(v)
    except ValueError as e:
        raise ValueError(str(e)) from None
    return str(v).lower()


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LayerOverride(_Model):
    """Formats for some layers, replacing the recipe's."""

    layers: tuple[int, ...]
    """Layer indices (negative: from the end, -1 = last layer)."""
    weights: str | None = None
    """Weight format of these layers (None: the model dtype)."""
    activations: str | None = None
    """Activation format of these layers (None: the model dtype)."""
    sparsity: str = ""
    """N:M sparsity of these layers ("" = dense)."""

    @field_validator("weights", "activations")
    @classmethod
    def _formats_known(cls, v: str | None) -> str | None:
        return _check_format(v)


class Pruning(_Model):
    """Structured pruning applied to the model config."""

    heads_fraction: float = Field(0.0, ge=0, lt=1)
    """Fraction of query heads removed in every layer (rounded down to whole GQA groups)."""
    mlp_fraction: float = Field(0.0, ge=0, lt=1)
    """Fraction of the MLP (and expert) width removed (the kept width rounds to 64)."""
    layers: int = Field(0, ge=0)
    """Whole transformer layers removed (the last ones; depth pruning)."""
    hidden_fraction: float = Field(0.0, ge=0, lt=1)
    """Fraction of the embedding / residual width removed (width pruning of the hidden size, as
    Minitron does; the kept width rounds to 64, the head width stays)."""


class Compression(_Model):
    """A compression recipe (YAML-loadable; see the module docstring)."""

    name: str = ""
    """Label, e.g. "w4a16-g128"."""
    weights: str | None = None
    """Weight format (``accelsim.compress.formats`` name: int4-g128, fp8, mxfp4, nvfp4, ...); None: the
    model dtype."""
    activations: str | None = None
    """Format of the activations entering weight GEMMs; None: the model dtype."""
    kv_cache: str | None = None
    """KV-cache format; None: the model dtype."""
    sparsity: str = ""
    """N:M structured sparsity of the weights, e.g. "2:4" ("" = dense)."""
    keep_first: int = Field(0, ge=0)
    """First layers kept in the model dtype, dense."""
    keep_last: int = Field(0, ge=0)
    """Last layers kept in the model dtype, dense."""
    quantize_head: bool = False
    """Also compress the LM head / classifier (off: it stays in the model dtype)."""
    overrides: tuple[LayerOverride, ...] = ()
    """Per-layer formats (applied after keep_first / keep_last)."""
    prune: Pruning = Pruning()
    """Structured pruning."""

    @field_validator("weights", "activations", "kv_cache")
    @classmethod
    def _formats_known(cls, v: str | None) -> str | None:
        return _check_format(v)

    @field_validator("sparsity")
    @classmethod
    def _nm(cls, v: str) -> str:
        if v:
            nm_pattern(v)
        return v

    # ---------------------------------------------------------------- constructors
    @classmethod
    def load(cls, path: str | Path) -> "Compression":
        """A recipe from a YAML file (top-level fields, or under a ``compression:`` key)."""
        from ..configio import load_yaml, validate

        data = load_yaml(Path(path))
        if isinstance(data, dict) and "compression" in data:
            data = data["compression"]
        return validate(cls, data, str(path))

    @classmethod
    def from_tag(cls, tag: str) -> "Compression":
        """A recipe from a measurement tag: ``w{bits}a{bits}[-g{G}][+sparse{N}:{M}]`` (w8a16:
        int8 weights, per-channel; w4a16-g64: int4 weights with one fp16 scale per 64;
        w8a8: int8 both; wfp8afp8 / fp8: fp8 both) or a bare format name (weights)."""
        t = tag.strip().lower()
        sparsity = ""
        if "+" in t:
            t, rest = t.split("+", 1)
            m = re.fullmatch(r"(?:sparse|sparsity)?(\d+:\d+)", rest)
            if not m:
                raise WorkloadError(f"compression tag {tag!r}: cannot read {rest!r} (expected sparse2:4)")
            sparsity = m.group(1)
        m = re.fullmatch(r"w(\d+|fp8|fp4)a(\d+|fp8)(?:-g(\d+))?", t)
        if m:
            wb, ab, g = m.groups()
            w = {"fp8": "fp8", "fp4": "fp4"}.get(wb) or (f"int{wb}-g{g}" if g else f"int{wb}")
            if wb in ("16",):
                w = None
            a = None if ab == "16" else ("fp8" if ab == "fp8" else f"int{ab}")
            return cls(name=tag, weights=w, activations=a, sparsity=sparsity)
        if t in ("fp8", "wfp8afp8"):
            return cls(name=tag, weights="fp8", activations="fp8", sparsity=sparsity)
        try:
            return cls(name=tag, weights=t, sparsity=sparsity)
        except ValueError:
            raise WorkloadError(f"unknown compression tag {tag!r} (expected e.g. w8a16, w4a16-g64, "
                                f"w4a16-g64+sparse2:4 or a format name)") from None

    @property
    def is_identity(self) -> bool:
        return (self.weights is None and self.activations is None and self.kv_cache is None and not self.sparsity
                and not self.overrides and self.prune == Pruning())

    # ---------------------------------------------------------------- pruning
    def apply_model(self, m):
        """The ModelConfig after structured pruning (unchanged without ``prune``)."""
        p = self.prune
        if p == Pruning() or m.family == "cnn":
            return m
        upd: dict[str, Any] = {"head_dim": m.head_dim}
        if p.heads_fraction:
            kv = m.num_key_value_heads
            group = m.num_attention_heads // kv
            keep_groups = max(1, round(kv * (1 - p.heads_fraction)))
            upd["num_attention_heads"] = keep_groups * group
            upd["num_key_value_heads"] = keep_groups
        if p.mlp_fraction:
            upd["intermediate_size"] = max(64, int(round(m.intermediate_size * (1 - p.mlp_fraction) / 64)) * 64)
            if m.moe_intermediate_size:
                upd["moe_intermediate_size"] = max(64, int(round(m.moe_intermediate_size * (1 - p.mlp_fraction) / 64)) * 64)
        if p.hidden_fraction:
            upd["hidden_size"] = max(64, int(round(m.hidden_size * (1 - p.hidden_fraction) / 64)) * 64)
        if p.layers:
            if p.layers >= m.num_hidden_layers:
                raise WorkloadError(f"pruning {p.layers} layers leaves none of {m.num_hidden_layers}")
            upd["num_hidden_layers"] = m.num_hidden_layers - p.layers
        return m.model_copy(update=upd)

    # ---------------------------------------------------------------- graph transform
    def layer_formats(self, layer: int, num_layers: int) -> tuple[str | None, str | None, str]:
        """(weights, activations, sparsity) of ``layer`` (-1: outside the layer stack)."""
        if layer < 0:
            return (self.weights, self.activations, "") if self.quantize_head else (None, None, "")
        if layer < self.keep_first or layer >= num_layers - self.keep_last:
            return None, None, ""
        w, a, s = self.weights, self.activations, self.sparsity
        for o in self.overrides:
            if any(layer == (i if i >= 0 else num_layers + i) for i in o.layers):
                w, a, s = o.weights, o.activations, o.sparsity
        return w, a, s

    def describe(self) -> str:
        parts = [f"weights {self.weights or 'model dtype'}", f"activations {self.activations or 'model dtype'}",
                 f"KV {self.kv_cache or 'model dtype'}"]
        if self.sparsity:
            parts.append(f"sparsity {self.sparsity}")
        if self.prune != Pruning():
            parts.append(f"pruning {self.prune.model_dump()}")
        return ", ".join(parts)


def as_compression(c: "Compression | str | dict | Path | None") -> "Compression | None":
    """A Compression from a recipe, a tag / format name, a mapping or a YAML path."""
    if c is None or isinstance(c, Compression):
        return c
    if isinstance(c, dict):
        from ..configio import validate

        return validate(Compression, c, "compression")
    p = Path(str(c))
    if str(c).endswith((".yaml", ".yml")) or p.is_file():
        return Compression.load(p)
    return Compression.from_tag(str(c))


__all__ = ["Compression", "LayerOverride", "Pruning", "as_compression", "nm_pattern", "WEIGHT_ROLES", "HEAD_ROLES"]
