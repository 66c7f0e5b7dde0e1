"""A training step runs the attention its framework runs: neuronx-nemo-megatron's Megatron core
attention is unfused on the SDK 2.15-2.17 releases (scores in HBM, softmax, then the context
matmul), the GPU frameworks' is fused; an explicit ``attention`` wins."""

from __future__ import annotations

import pytest

from accelsim.api import evaluate_train
from accelsim.stack.presets import load_stack
from accelsim.stack.realize import train_attention

PLAN = dict(tp=8, pp=1, dp=1, microbatch=1)


def test_the_framework_decides_unless_asked():
    assert train_attention(load_stack("neuronx-nemo-megatron")) == "unfused"
    assert train_attention(load_stack("transformers-neuronx")) == "unfused"  # unfused_grouped serves; trains repeated
    for st in ("megatron-cuda", "torchtitan-cuda", "nxd-training", None):
        assert train_attention(load_stack(st) if st else None) == "flash"
    assert train_attention(load_stack("neuronx-nemo-megatron"), "flash") == "flash"


def test_an_unfused_step_moves_the_score_matrix_through_memory():
    kw = dict(system="trn1-32xl", model="gpt3-23b", global_batch=1, seq_len=2048, stack="neuronx-nemo-megatron",
              **PLAN)
    un = evaluate_train(**kw)
    fl = evaluate_train(**kw, attention="flash")
    assert un.summary["attention"] == "unfused" and fl.summary["attention"] == "flash"
    assert un.summary["step_time_s"] > fl.summary["step_time_s"]
    # the same model FLOPs (MFU counts the model, not how attention runs)
    assert un.summary["mfu"] * un.summary["step_time_s"] == pytest.approx(fl.summary["mfu"] * fl.summary["step_time_s"],
                                                                           rel=1e-9)


def test_gpu_frameworks_keep_flash():
    r = evaluate_train("dgx-h100", "llama-2-7b", 8, 4096, stack="megatron", tp=1, pp=1, dp=8)
    assert r.summary["attention"] == "flash"
