"""Workloads: op types, graphs, model configs and builders (inference and training)."""

from .build import build, decode, prefill
from .graph import WorkloadGraph, WorkloadMeta
from .memory import MemoryBreakdown, fit_message, inference_memory, train_memory
from .hf import load_hf_config
from .loaders import list_models, load_model
from .model import ModelConfig
from .ops import (AdamW, Collective, Conv2D, Elementwise, Embedding, FlashAttention, KVCache, LayerNorm,
                  MatMul, Op, RMSNorm, Softmax)
from .parallel import ParallelPlan
from .train import TrainStep, build_train

__all__ = ["ModelConfig", "load_model", "load_hf_config", "list_models", "build", "prefill", "decode", "WorkloadGraph",
           "WorkloadMeta", "Op", "MatMul", "Conv2D", "Softmax", "LayerNorm", "RMSNorm", "Elementwise",
           "Embedding", "KVCache", "FlashAttention", "Collective", "AdamW", "ParallelPlan", "build_train",
           "TrainStep", "train_memory", "inference_memory", "fit_message", "MemoryBreakdown"]
