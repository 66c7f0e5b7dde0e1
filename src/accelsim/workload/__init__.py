"""Workloads: op types, graphs, model configs and builders (inference and training).

The training and memory modules load on first use (``accelsim.workload.ParallelPlan`` works as
before), so an inference evaluation does not import them."""

from .build import build, decode, prefill
from .graph import WorkloadGraph, WorkloadMeta
from .hf import load_hf_config
from .loaders import list_models, load_model
from .model import ModelConfig
from .ops import (AdamW, Collective, Conv2D, Elementwise, Embedding, FlashAttention, KVCache, LayerNorm,
                  MatMul, Op, RMSNorm, Softmax)

_LAZY = {"MemoryBreakdown": "memory", "fit_message": "memory", "inference_memory": "memory",
         "train_memory": "memory", "ParallelPlan": "parallel", "TrainStep": "train", "build_train": "train"}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["ModelConfig", "load_model", "load_hf_config", "list_models", "build", "prefill", "decode", "WorkloadGraph",
           "WorkloadMeta", "Op", "MatMul", "Conv2D", "Softmax", "LayerNorm", "RMSNorm", "Elementwise",
           "Embedding", "KVCache", "FlashAttention", "Collective", "AdamW", "ParallelPlan", "build_train",
           "TrainStep", "train_memory", "inference_memory", "fit_message", "MemoryBreakdown"]
