"""Model configs: the architecture of a transformer (decoder or encoder) or a ResNet-style CNN,
with exact parameter counts (loaders: ``workload.loaders``; Hugging Face config.json: ``workload.hf``).

One ``ModelConfig`` class covers three families, selected by ``family``:

- ``decoder``: causal transformer LMs (Llama, Mixtral, GPT-3, DeepSeek-MoE style MoE).
- ``encoder``: bidirectional transformers; with ``image_size``/``patch_size`` a ViT (patch
  embedding as a convolution, a class token, learned positions, a classifier head).
- ``cnn``: a bottleneck ResNet (ResNet-50 is ``stage_blocks: [3, 4, 6, 3]``,
  ``stage_widths: [64, 128, 256, 512]``, ``bottleneck_expansion: 4``), torchvision v1.5 layout
  (stride on the 3x3 convolution), batch norm after every convolution.

Fields that do not apply to a family are left at their neutral defaults (0, empty, False).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from pydantic_core import PydanticCustomError

from ..compress.formats import DTYPE_BYTES
from ..configio import StrictModel, suggest
from ..errors import WorkloadError

TRANSFORMER_FAMILIES = ("decoder", "encoder")


class ModelConfig(StrictModel):
    """The architecture of one model. Sizes are of the whole (unsharded) model."""

    model_config = ConfigDict(frozen=True, extra="forbid",
                              validate_default=True)

    name: str
    """Model name (the preset name for presets)."""
    family: Literal["decoder", "encoder", "cnn"]
    """decoder: causal transformer with a KV cache; encoder: bidirectional transformer (ViT with
    ``image_size``); cnn: bottleneck ResNet."""
    source: str = ""
    """Where the numbers come from: the Hugging Face config.json or the paper."""
    model_type: str = ""
    """Hugging Face ``model_type`` (llama, mixtral, vit, ...), informational."""
    unmodelled: tuple[str, ...] = ()
    """Keys of the Hugging Face config this model was read from that accelsim does not model
    (e.g. DeepSeek-V2's ``moe_layer_freq`` other than 1, MoE layers only every few layers): the
    prediction is of the model without them, and ``accelsim run`` says so."""

    # --- transformer -----------------------------------------------------------------------
    hidden_size: int = Field(0, ge=0)
    """Model width d (residual stream)."""
    intermediate_size: int = Field(0, ge=0)
    """Width of the dense MLP (per branch for a gated MLP; the expert width of Mixtral)."""
    num_attention_heads: int = Field(0, ge=0)
    """Query heads."""
    num_key_value_heads: int = Field(0, ge=0)
    """Key/value heads (grouped-query attention); defaults to ``num_attention_heads``."""
    head_dim: int = Field(0, ge=0)
    """Width of one head; defaults to ``hidden_size // num_attention_heads``."""
    num_hidden_layers: int = Field(0, ge=0, le=100_000)
    """Transformer blocks (for a CNN: unused, see ``stage_blocks``); at most 100,000 (a graph of
    more is a typo that would take gigabytes, not a model)."""
    vocab_size: int = Field(0, ge=0)
    """Token vocabulary (0 for vision models)."""
    max_position_embeddings: int = Field(0, ge=0)
    """Longest sequence (the size of the position table for learned positions; for a ViT it
    defaults to patches + 1)."""
    activation: Literal["silu", "gelu", "relu"]
    """MLP activation: silu (SwiGLU when gated), gelu (any tanh/erf variant), relu (CNNs)."""
    gated_mlp: bool | None = None
    """True for a gated MLP (gate and up projections, act(gate) * up, then down: Llama, Mixtral);
    False for up -> act -> down (GPT, ViT). Required for transformers."""
    norm: Literal["rmsnorm", "layernorm", "batchnorm"]
    """Normalisation: rmsnorm (scale only), layernorm (scale and shift), batchnorm (CNNs)."""
    tied_embeddings: bool = False
    """The LM head reuses the input embedding matrix (no separate output weights)."""
    attention_bias: bool = False
    """Biases on the q, k, v and output projections."""
    qkv_bias: bool = False
    """Biases on the q, k and v projections only, not the output (Qwen2); ignored with
    ``attention_bias``."""
    mlp_bias: bool = False
    """Biases on the MLP projections."""
    sliding_window: int | None = Field(None, ge=1)
    """Sliding-window attention span in tokens (Mistral-7B-v0.1: 4096): each token attends to at
    most this many, and the KV cache keeps at most this many per sequence (a rolling buffer);
    None = full attention."""
    qk_rope_head_dim: int = Field(0, ge=0)
    """Multi-head latent attention (MLA, DeepSeek-V2/V3): width of the rotary part of each query
    head, and of the one rotary key all heads share (64)."""
    qk_nope_head_dim: int = Field(0, ge=0)
    """MLA: width of the non-rotary part of a query / key head (128)."""
    v_head_dim: int = Field(0, ge=0)
    """MLA: width of a value head (128)."""
    q_lora_rank: int = Field(0, ge=0)
    """MLA: width of the compressed query (0: queries are projected from the hidden state)."""
    kv_lora_rank: int = Field(0, ge=0)
    """MLA: width of the compressed K/V latent (512). The cache keeps, per token and layer, this
    latent and the shared rotary key (``kv_lora_rank + qk_rope_head_dim`` elements) instead of
    K and V per head; 0: standard attention."""
    position_embedding: Literal["rope", "learned", "none"] = "none"
    """rope: rotary (applied to q and k in every layer, no parameters); learned: a table of
    ``max_position_embeddings`` rows added to the token embeddings (GPT-3, ViT)."""

    # --- mixture of experts ----------------------------------------------------------------
    num_experts: int = Field(0, ge=0)
    """Routed experts per MoE layer (0: dense model)."""
    num_experts_per_tok: int = Field(0, ge=0)
    """Routed experts each token goes to (top-k)."""
    moe_intermediate_size: int = Field(0, ge=0)
    """Width of one routed (and one shared) expert; defaults to ``intermediate_size``."""
    num_shared_experts: int = Field(0, ge=0)
    """Always-active shared experts per MoE layer (DeepSeek-MoE), each ``moe_intermediate_size``
    wide."""
    first_dense_layers: int = Field(0, ge=0)
    """The first N layers use a dense MLP of ``intermediate_size`` (DeepSeek's
    ``first_k_dense_replace``)."""

    # --- vision (ViT encoder and CNN) --------------------------------------------------------
    image_size: int = Field(0, ge=0)
    """Input image side in pixels (square images)."""
    patch_size: int = Field(0, ge=0)
    """ViT patch side in pixels."""
    num_channels: int = Field(0, ge=0)
    """Input image channels."""
    num_classes: int = Field(0, ge=0)
    """Classifier outputs (0: no classifier head)."""

    # --- CNN -------------------------------------------------------------------------------
    stem_width: int = Field(0, ge=0)
    """Output channels of the 7x7 stride-2 stem convolution."""
    stage_blocks: tuple[int, ...] = ()
    """Bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3)."""
    stage_widths: tuple[int, ...] = ()
    """Bottleneck (3x3) width per stage; block outputs are ``width * bottleneck_expansion``."""
    bottleneck_expansion: int = Field(0, ge=0)
    """Output/bottleneck channel ratio of a block (4 for ResNet-50)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        heads, hidden = data.get("num_attention_heads"), data.get("hidden_size")
        if data.get("num_key_value_heads") in (None, 0) and isinstance(heads, int):
            data["num_key_value_heads"] = heads
        if (data.get("head_dim") in (None, 0) and isinstance(heads, int) and heads > 0
                and isinstance(hidden, int) and hidden % heads == 0):
            data["head_dim"] = hidden // heads
        if data.get("moe_intermediate_size") in (None, 0) and data.get("num_experts"):
            data["moe_intermediate_size"] = data.get("intermediate_size", 0)
        img, patch = data.get("image_size"), data.get("patch_size")
        if (data.get("family") == "encoder" and data.get("max_position_embeddings") in (None, 0)
                and isinstance(img, int) and isinstance(patch, int) and patch > 0):
            data["max_position_embeddings"] = (img // patch) ** 2 + 1
        return data

    @field_validator("*", mode="after")
    @classmethod
    def _check_field(cls, value: Any, info: ValidationInfo) -> Any:
        check = _FIELD_CHECKS.get(info.field_name or "")
        problem = check(value, info.data) if check else None
        if problem:
            raise PydanticCustomError("model_config_invalid", problem)
        return value

    # --- derived sizes ---------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_vision(self) -> bool:
        """A ViT-style encoder (patch embedding) or a CNN."""
        return self.family == "cnn" or (self.family == "encoder" and self.patch_size > 0)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2 if self.patch_size else 0

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (``kv_lora_rank`` > 0)."""
        return self.kv_lora_rank > 0

    def qkv_width(self, tp: int = 1) -> int:
        """Output width of a layer's fused input projection on one of ``tp`` chips: q, k and v
        of the heads it holds; under MLA the query (or its compressed form, ``q_lora_rank``)
        with the K/V latent and the shared rotary key (replicated)."""
        if self.is_mla:
            q = self.q_lora_rank or self.num_attention_heads // tp * (self.qk_nope_head_dim + self.qk_rope_head_dim)
            return q + self.kv_lora_rank + self.qk_rope_head_dim
        return (self.num_attention_heads // tp + 2 * self.kv_heads_per_chip(tp)) * self.head_dim

    def attention_params(self, tp: int = 1) -> int:
        """One layer's attention weights (and biases) on one of ``tp`` chips. Standard: q and the
        output projection split by ``tp``, k and v by KV head (replicated when fewer than ``tp``).
        MLA: the query path (down-projection and its norm, replicated, then the per-head
        up-projection; or one projection), the K/V down-projection to the latent and the shared
        rotary key and its norm (replicated), the latent's up-projection to per-head keys and
        values, the output projection."""
        d = self.hidden_size
        if self.is_mla:
            h = self.num_attention_heads // tp
            qk, r = self.qk_nope_head_dim + self.qk_rope_head_dim, self.kv_lora_rank
            q = (d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h * qk) if self.q_lora_rank else d * h * qk
            kv = d * (r + self.qk_rope_head_dim) + r + r * h * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv + h * self.v_head_dim * d
        hq = self.q_width // tp
        hkv = self.kv_heads_per_chip(tp) * self.head_dim
        attn = d * hq + 2 * d * hkv + hq * d
        if self.attention_bias or self.qkv_bias:
            attn += hq + 2 * hkv + (d if self.attention_bias else 0)
        return attn

    @property
    def q_width(self) -> int:
        """Width of all query heads: heads * head_dim."""
        return self.num_attention_heads * self.head_dim

    def kv_heads_per_chip(self, tp: int = 1) -> int:
        """KV heads each of ``tp`` chips holds: kv_heads/tp, at least 1 (replicated when
        kv_heads < tp)."""
        return -(-self.num_key_value_heads // tp)

    def is_moe_layer(self, layer: int) -> bool:
        return self.is_moe and layer >= self.first_dense_layers

    def _norm_params(self) -> int:
        return {"rmsnorm": 1, "layernorm": 2}.get(self.norm, 0) * self.hidden_size

    def param_breakdown(self, tp: int = 1) -> dict[str, int]:
        """Parameters by component held by ONE chip under ``tp``-way Megatron tensor parallelism
        (``tp=1``: the whole model). Column/row-parallel weights, experts' widths and the
        vocabulary (padded up to a multiple of ``tp``) are split; norms, row-parallel biases,
        the router, position tables and patch embeddings are replicated; KV projections are
        replicated when ``num_key_value_heads < tp``. Assumes ``tp`` divides the heads and the
        MLP widths (``build`` checks)."""
        if self.family == "cnn":
            return _cnn_params(self) if tp == 1 else {}
        d = self.hidden_size
        g = 3 if self.gated_mlp else 2
        out: dict[str, int] = {}
        L = self.num_hidden_layers
        out["attention"] = L * self.attention_params(tp)
        out["norms"] = L * 2 * self._norm_params() + self._norm_params()
        n_moe = L - self.first_dense_layers if self.is_moe else 0
        f = self.intermediate_size // tp
        mlp = g * d * f + (((g - 1) * f + d) if self.mlp_bias else 0)
        out["mlp"] = (L - n_moe) * mlp
        if n_moe:
            fm = self.moe_intermediate_size // tp
            out["router"] = n_moe * d * self.num_experts
            out["experts"] = n_moe * self.num_experts * g * d * fm
            out["shared_experts"] = n_moe * self.num_shared_experts * g * d * fm
        if self.vocab_size:
            v = -(-self.vocab_size // tp)
            out["embedding"] = v * d
            if self.family == "decoder" and not self.tied_embeddings:
                out["lm_head"] = v * d
        if self.patch_size:
            out["patch_embedding"] = self.patch_size ** 2 * self.num_channels * d + d + d  # + class token
        if self.position_embedding == "learned":
            out["position_embedding"] = self.max_position_embeddings * d
        if self.family == "encoder" and self.num_classes:
            out["classifier"] = -(-self.num_classes // tp) * d + self.num_classes
        return out

    def params(self) -> int:
        """Exact parameter count from the architecture formulas (trainable parameters; batch-norm
        running statistics are buffers, not parameters)."""
        return sum(self.param_breakdown(1).values())

    def non_embedding_params(self) -> int:
        """Parameters excluding the input token/patch/position embeddings (the LM head stays)."""
        b = self.param_breakdown(1)
        return self.params() - sum(b.get(k, 0) for k in ("embedding", "position_embedding"))

    def weight_bytes(self, dtype: str = "bf16") -> float:
        """Bytes of all weights stored in ``dtype``."""
        return self.params() * dtype_bytes(dtype)

    def kv_cache_bytes(self, batch: int, tokens: int, dtype: str = "bf16") -> float:
        """Bytes of the K and V caches of ``batch`` sequences of ``tokens`` tokens, all layers
        (0 for encoders and CNNs, which keep no cache)."""
        if self.family != "decoder":
            return 0.0
        kept = min(tokens, self.sliding_window) if self.sliding_window else tokens
        if self.is_mla:  # one latent and the shared rotary key per token and layer
            return (self.num_hidden_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * batch * kept
                    * dtype_bytes(dtype))
        return (2.0 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim
                * batch * kept * dtype_bytes(dtype))


# --- per-field checks (each sees the fields declared before it, so errors carry the field path) --

def _tf(d: dict) -> bool:
    return d.get("family") in TRANSFORMER_FAMILIES


def _positive_for(families: tuple[str, ...]):
    def check(v: int, d: dict) -> str | None:
        fam = d.get("family")
        if fam in families and v <= 0:
            return f"required (a positive integer) for a {fam} model"
        return None
    return check


def _kv_heads(v: int, d: dict) -> str | None:
    heads = d.get("num_attention_heads") or 0
    if _tf(d) and v > 0 and heads % v:
        return f"{v} does not divide num_attention_heads={heads}"
    return None


def _head_dim(v: int, d: dict) -> str | None:
    if _tf(d) and v <= 0 and (d.get("num_attention_heads") or 0) > 0:
        return (f"required: hidden_size={d.get('hidden_size')} is not a multiple of "
                f"num_attention_heads={d.get('num_attention_heads')}")
    return None


def _activation(v: str, d: dict) -> str | None:
    if _tf(d) and v == "relu":
        return "relu is only supported for CNNs; use silu or gelu"
    if d.get("family") == "cnn" and v != "relu":
        return "a cnn uses relu"
    return None


def _gated(v: bool | None, d: dict) -> str | None:
    if _tf(d) and v is None:
        return "required for transformers (true for SwiGLU MLPs such as Llama's, false for GPT/ViT MLPs)"
    return None


def _norm(v: str, d: dict) -> str | None:
    if _tf(d) and v == "batchnorm":
        return "batchnorm is only supported for CNNs; use rmsnorm or layernorm"
    if d.get("family") == "cnn" and v != "batchnorm":
        return "a cnn uses batchnorm"
    return None


def _position(v: str, d: dict) -> str | None:
    if v == "learned" and (d.get("max_position_embeddings") or 0) <= 0:
        return "learned position embeddings need max_position_embeddings > 0"
    return None


def _top_k(v: int, d: dict) -> str | None:
    e = d.get("num_experts") or 0
    if e and not 1 <= v <= e:
        return f"must be in 1..num_experts={e}"
    if not e and v:
        return "needs num_experts > 0"
    return None


def _shared(v: int, d: dict) -> str | None:
    return "needs num_experts > 0 (shared experts sit beside routed ones)" if v and not d.get("num_experts") else None


def _first_dense(v: int, d: dict) -> str | None:
    layers = d.get("num_hidden_layers") or 0
    return f"exceeds num_hidden_layers={layers}" if v > layers else None


def _patch(v: int, d: dict) -> str | None:
    if d.get("family") != "encoder":
        return None
    img = d.get("image_size") or 0
    if img or v:
        if v <= 0 or img <= 0 or img % v:
            return f"must be positive and divide image_size={img}"
    elif (d.get("vocab_size") or 0) <= 0:
        return "a text encoder needs vocab_size > 0; a vision encoder needs image_size and patch_size"
    return None


def _channels(v: int, d: dict) -> str | None:
    fam = d.get("family")
    if (fam == "cnn" or (fam == "encoder" and d.get("patch_size"))) and v <= 0:
        return f"required (a positive integer) for a vision {fam}"
    return None


def _stages(v: tuple[int, ...], d: dict) -> str | None:
    if d.get("family") != "cnn":
        return None
    if not v or any(x <= 0 for x in v):
        return "required for a cnn: one positive entry per stage"
    return None


def _widths(v: tuple[int, ...], d: dict) -> str | None:
    r = _stages(v, d)
    if r is None and d.get("family") == "cnn" and len(v) != len(d.get("stage_blocks") or ()):
        return f"needs one entry per stage ({len(d.get('stage_blocks') or ())} stage_blocks)"
    return r


def _mla(v: int, d: dict) -> str | None:
    if v > 0 and not all(d.get(k) for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")):
        return "multi-head latent attention needs qk_nope_head_dim, qk_rope_head_dim and v_head_dim > 0"
    return None


_FIELD_CHECKS = {
    "kv_lora_rank": _mla,
    "hidden_size": _positive_for(TRANSFORMER_FAMILIES),
    "intermediate_size": _positive_for(TRANSFORMER_FAMILIES),
    "num_attention_heads": _positive_for(TRANSFORMER_FAMILIES),
    "num_hidden_layers": _positive_for(TRANSFORMER_FAMILIES),
    "num_key_value_heads": _kv_heads,
    "head_dim": _head_dim,
    "vocab_size": _positive_for(("decoder",)),
    "activation": _activation,
    "gated_mlp": _gated,
    "norm": _norm,
    "position_embedding": _position,
    "num_experts_per_tok": _top_k,
    "num_shared_experts": _shared,
    "first_dense_layers": _first_dense,
    "image_size": _positive_for(("cnn",)),
    "patch_size": _patch,
    "num_channels": _channels,
    "stem_width": _positive_for(("cnn",)),
    "stage_blocks": _stages,
    "stage_widths": _widths,
    "bottleneck_expansion": _positive_for(("cnn",)),
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element; an unknown dtype is a WorkloadError with suggestions."""
    try:
        return DTYPE_BYTES[dtype]
    except (KeyError, TypeError):  # TypeError: an unhashable value (a list)
        raise WorkloadError(f"unknown dtype {dtype!r}.{suggest(str(dtype), DTYPE_BYTES)} "
                            f"Known: {', '.join(DTYPE_BYTES)}") from None


def cnn_blocks(m: ModelConfig):
    """(stage, block index in stage, in_channels, width, out_channels, stride) of every
    bottleneck block, in order."""
    cin = m.stem_width
    for s, (n, w) in enumerate(zip(m.stage_blocks, m.stage_widths)):
        for b in range(n):
            yield s, b, cin, w, w * m.bottleneck_expansion, (2 if s > 0 and b == 0 else 1)
            cin = w * m.bottleneck_expansion


def _cnn_params(m: ModelConfig) -> dict[str, int]:
    bn = lambda c: 2 * c  # noqa: E731  (batch-norm scale and shift)
    stem = 49 * m.num_channels * m.stem_width + bn(m.stem_width)
    blocks = 0
    for _, _, cin, w, cout, stride in cnn_blocks(m):
        blocks += cin * w + bn(w) + 9 * w * w + bn(w) + w * cout + bn(cout)
        if cin != cout or stride != 1:
            blocks += cin * cout + bn(cout)  # projection shortcut
    cout = m.stage_widths[-1] * m.bottleneck_expansion
    out = {"stem": stem, "blocks": blocks}
    if m.num_classes:
        out["classifier"] = cout * m.num_classes + m.num_classes
    return out


def pad_for_tp(m: ModelConfig, ranks: int) -> tuple[ModelConfig, str]:
    """``m`` with its attention heads, KV heads (when there are at least ``ranks`` of them; fewer
    are replicated) and MLP width padded up to multiples of ``ranks``, as the AWS Neuron stack
    pads a model whose heads a tensor-parallel degree does not divide; and a sentence saying what
    was padded ("" when nothing was). Padded heads and columns are computed like real ones."""
    up = lambda v: -(-v // ranks) * ranks  # noqa: E731
    heads, kv, inter = m.num_attention_heads, m.num_key_value_heads, m.intermediate_size
    new = {"num_attention_heads": up(heads), "head_dim": m.head_dim,
           "num_key_value_heads": up(kv) if kv >= ranks else kv, "intermediate_size": up(inter) if inter else inter}
    if m.is_moe and m.moe_intermediate_size:
        new["moe_intermediate_size"] = up(m.moe_intermediate_size)
    said = [f"{k.replace('num_', '').replace('_', ' ')} {getattr(m, k)} -> {v}" for k, v in new.items()
            if k != "head_dim" and v != getattr(m, k)]
    if not said:
        return m, ""
    return m.model_copy(update=new), f"padded for tp={ranks} ranks (as the Neuron stack pads): " + ", ".join(said)


def tp_over_chips(m: ModelConfig, ranks: int, ranks_per_chip: int) -> tuple[ModelConfig, int, str]:
    """``ranks`` tensor-parallel ranks on chips that count ``ranks_per_chip`` ranks each (AWS
    Neuron: a rank is a NeuronCore): the model (padded when the ranks or the chips do not divide
    its heads, as the Neuron stack pads), the chips, and the padding sentence ("" for none).
    With one rank per chip the model and ``ranks`` come back unchanged."""
    if ranks_per_chip <= 1:
        return m, ranks, ""
    chips = -(-ranks // ranks_per_chip)
    heads = m.num_attention_heads
    if heads % ranks == 0 and heads % chips == 0:
        return m, chips, ""
    import math

    padded, said = pad_for_tp(m, math.lcm(ranks, chips))
    return padded, chips, said


__all__ = ["ModelConfig", "dtype_bytes", "cnn_blocks", "pad_for_tp", "tp_over_chips", "TRANSFORMER_FAMILIES"]
