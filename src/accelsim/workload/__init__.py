"""Workloads: op types, graphs, model configs and builders."""

from .build import build, decode, prefill
from .graph import WorkloadGraph, WorkloadMeta
from .model import ModelConfig, list_models, load_model
from .ops import (Collective, Conv2D, Elementwise, Embedding, FlashAttention, KVCache, LayerNorm,
                  MatMul, Op, RMSNorm, Softmax)

__all__ = ["ModelConfig", "load_model", "list_models", "build", "prefill", "decode", "WorkloadGraph",
           "WorkloadMeta", "Op", "MatMul", "Conv2D", "Softmax", "LayerNorm", "RMSNorm", "Elementwise",
           "Embedding", "KVCache", "FlashAttention", "Collective"]
