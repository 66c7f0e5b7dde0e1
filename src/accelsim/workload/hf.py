"""Hugging Face ``config.json`` import: the config keys of common model types mapped onto a
``ModelConfig`` (Llama-style defaults; GPT-2 / OPT / BERT / ViT / Falcon conventions where they
differ). Errors name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..configio import validate
from ..errors import WorkloadError
from .model import ModelConfig


# Hugging Face model types whose conventions differ from the Llama defaults.
_GATED_TYPES = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
                "gemma2", "phi3", "deepseek", "deepseek_v2", "deepseek_v3", "olmo", "olmo2", "granite"}
_BIAS_TYPES = {"gpt2", "gpt_neox", "opt", "bert", "roberta", "vit", "deit", "gptj", "bloom", "falcon"}
_QKV_BIAS_TYPES = {"qwen2", "qwen2_moe", "qwen2_vl"}
"""Families whose attention has q, k, v biases but none on the output (Qwen2: bias=True is
hard-coded on q_proj, k_proj, v_proj; o_proj has none)."""
_LEARNED_POS_TYPES = {"gpt2", "opt", "bert", "roberta", "vit", "deit", "gpt_bigcode", "bloom"}
_UNTIED_BY_DEFAULT = _GATED_TYPES  # their config classes default tie_word_embeddings to False
_ENCODER_TYPES = {"bert", "roberta", "vit", "deit"}
_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu",
                "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "gelu_python": "gelu",
                "quick_gelu": "gelu"}
_ALIASES = {"n_embd": "hidden_size", "n_head": "num_attention_heads", "n_layer": "num_hidden_layers",
            "n_positions": "max_position_embeddings", "n_inner": "intermediate_size",
            "num_local_experts": "num_experts", "n_routed_experts": "num_experts",
            "n_shared_experts": "num_shared_experts", "first_k_dense_replace": "first_dense_layers",
            "activation_function": "hidden_act"}


_READ = {"hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
         "num_hidden_layers", "vocab_size", "max_position_embeddings", "hidden_act", "rms_norm_eps", "layer_norm_eps",
         "layer_norm_epsilon", "tie_word_embeddings", "attention_bias", "qkv_bias", "mlp_bias", "sliding_window",
         "use_sliding_window", "num_experts", "num_experts_per_tok", "moe_intermediate_size", "num_shared_experts",
         "first_dense_layers", "image_size", "patch_size", "num_channels", "id2label", "label2id", "num_labels",
         "model_type", "rope_theta", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
         "v_head_dim", *_ALIASES}
"""Config keys the import maps onto the ModelConfig."""
_NO_COST = {"_name_or_path", "_comment", "architectures", "auto_map", "transformers_version", "torch_dtype",
            "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "use_cache", "attention_dropout",
            "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop", "embd_pdrop",
            "attn_pdrop", "dropout", "rope_scaling", "pretraining_tp", "router_aux_loss_coef", "output_router_logits",
            "router_jitter_noise", "max_window_layers", "problem_type", "classifier_dropout", "layerdrop",
            "mlp_only_layers", "decoder_sparse_step", "norm_topk_prob", "aux_loss_alpha", "seq_aux", "scoring_func",
            "type_vocab_size", "position_embedding_type", "qkv_proj_bias", "use_parallel_residual", "hidden_dropout_rate",
            "tokenizer_class", "is_decoder", "add_cross_attention", "model_name", "quantization_config", "n_group",
            "topk_group", "topk_method", "routed_scaling_factor"}
"""Keys that change neither the compute nor the memory of a step: ids, dropout, initialisation,
RoPE frequency scaling (``rope_scaling``: the same rotations with other frequencies), training
losses (router auxiliary loss), how a router picks its top-k experts (group-limited routing,
a scaling of the routed output: the same number of experts run), and the dtype the checkpoint
was saved in (the run's dtype decides). ``max_window_layers`` matters only with ``use_sliding_window`` on (reported then)."""


def load_hf_config(path: str | Path) -> ModelConfig:
    """Map a Hugging Face ``config.json`` onto a ModelConfig; a missing required key is a
    WorkloadError naming the key and the file. A key that is neither mapped nor known to cost
    nothing (``_NO_COST``) is listed in ``ModelConfig.unmodelled``, never dropped silently.
    DeepSeek-V2/V3's multi-head latent attention (``kv_lora_rank`` ...) is read."""
    from ..configio import read_text

    path = Path(path)
    try:
        raw = json.loads(read_text(path, WorkloadError))
    except RecursionError:
        raise WorkloadError(f"{path}: refused: nested too deeply") from None
    except json.JSONDecodeError as e:
        raise WorkloadError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
    if not isinstance(raw, dict):
        raise WorkloadError(f"{path}: expected a JSON object at the top level")
    cfg = {k: v for k, v in raw.items() if v is not None}
    for alias, key in _ALIASES.items():
        if alias in cfg and key not in cfg:
            cfg[key] = cfg[alias]
    mt = str(cfg.get("model_type", ""))
    vision = "image_size" in cfg and "patch_size" in cfg
    family = "encoder" if (mt in _ENCODER_TYPES or vision) else "decoder"

    def flag(key: str, default: bool) -> bool:
        """A JSON boolean; anything else (the string "false", 0) is refused, not guessed."""
        v = cfg.get(key, default)
        if not isinstance(v, bool):
            raise WorkloadError(f"{path}: {key} must be true or false, got {v!r}")
        return v

    def need(key: str) -> Any:
        if key not in cfg:
            raise WorkloadError(f"{path}: missing required key {key!r} (Hugging Face config.json"
                                f" of model_type {mt or '?'!r})")
        return cfg[key]

    hidden = need("hidden_size")
    if "intermediate_size" not in cfg and mt == "gpt2":
        cfg["intermediate_size"] = 4 * hidden
    act_name = str(cfg.get("hidden_act", "silu" if mt in _GATED_TYPES else "gelu"))
    if act_name not in _ACTIVATIONS:
        raise WorkloadError(f"{path}: hidden_act: unsupported activation {act_name!r}; supported: "
                            f"{', '.join(sorted(_ACTIVATIONS))}")
    if "rms_norm_eps" in cfg:
        norm = "rmsnorm"
    elif "layer_norm_eps" in cfg or "layer_norm_epsilon" in cfg:
        norm = "layernorm"
    else:
        raise WorkloadError(f"{path}: missing required key 'rms_norm_eps' (RMSNorm) or "
                            f"'layer_norm_eps'/'layer_norm_epsilon' (LayerNorm)")
    data: dict[str, Any] = {
        "name": _hf_name(path, raw),
        "family": family,
        "source": str(path),
        "model_type": mt,
        "hidden_size": hidden,
        "intermediate_size": need("intermediate_size"),
        "num_attention_heads": need("num_attention_heads"),
        "num_key_value_heads": cfg.get("num_key_value_heads"),
        "head_dim": cfg.get("head_dim"),
        "num_hidden_layers": need("num_hidden_layers"),
        "vocab_size": cfg.get("vocab_size", 0) if vision else need("vocab_size"),
        "max_position_embeddings": cfg.get("max_position_embeddings", 0),
        "activation": _ACTIVATIONS[act_name],
        "gated_mlp": mt in _GATED_TYPES or (mt not in _BIAS_TYPES and _ACTIVATIONS[act_name] == "silu"),
        "norm": norm,
        "tied_embeddings": family == "decoder" and flag("tie_word_embeddings", mt not in _UNTIED_BY_DEFAULT),
        "attention_bias": flag("attention_bias", mt in _BIAS_TYPES),
        "qkv_bias": flag("qkv_bias", mt in _QKV_BIAS_TYPES),
        "mlp_bias": flag("mlp_bias", mt in _BIAS_TYPES),
        "position_embedding": ("learned" if (mt in _LEARNED_POS_TYPES or vision) and "rope_theta" not in cfg
                               else "rope"),
    }
    if cfg.get("kv_lora_rank"):  # multi-head latent attention (DeepSeek-V2/V3)
        data.update({k: cfg.get(k) or 0 for k in ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim",
                                                    "qk_rope_head_dim", "v_head_dim")})
    window = cfg.get("sliding_window")
    if window and cfg.get("use_sliding_window", True) is not False:  # Qwen2 declares one but leaves it off
        data["sliding_window"] = window
    if cfg.get("num_experts"):
        data["num_experts"] = cfg["num_experts"]
        data["num_experts_per_tok"] = need("num_experts_per_tok")
        data["moe_intermediate_size"] = cfg.get("moe_intermediate_size")
        data["num_shared_experts"] = cfg.get("num_shared_experts", 0)
        data["first_dense_layers"] = cfg.get("first_dense_layers", 0)
    if vision:
        data.update(image_size=cfg["image_size"], patch_size=cfg["patch_size"],
                    num_channels=cfg.get("num_channels", 3),
                    num_classes=len(cfg.get("id2label", {})) or cfg.get("num_labels", 0))
        data["max_position_embeddings"] = 0  # derived: patches + class token
    no_cost = _NO_COST - ({"max_window_layers"} if data.get("sliding_window") and mt.startswith("qwen") else set())
    if cfg.get("moe_layer_freq", 1) == 1:  # every layer past first_k_dense_replace is MoE: as modelled
        no_cost = no_cost | {"moe_layer_freq"}
    data["unmodelled"] = tuple(sorted(k for k in cfg if k not in _READ and k not in no_cost))
    return validate(ModelConfig, data, str(path), error=WorkloadError)


def _hf_name(path: Path, raw: dict[str, Any]) -> str:
    named = raw.get("_name_or_path")
    if isinstance(named, str) and named.strip("/"):
        return named.rstrip("/").split("/")[-1]
    return path.parent.name if path.name == "config.json" and path.parent.name else path.stem


__all__ = ["load_hf_config"]
