"""A training loop that casts its gradients to fp32 master copies and back
(``ParallelPlan.master_casts == "separate"``, the ``cuda-eager`` stack's loop)."""

from __future__ import annotations

import pytest

from accelsim.api import evaluate_train
from accelsim.arch import load_system
from accelsim.stack.presets import load_kernels
from accelsim.workload import load_model
from accelsim.workload.memory import train_memory
from accelsim.workload.parallel import ParallelPlan


def _opt(**kw):
    r = evaluate_train("h200-sxm-141gb", "gpt3-5b", 1, 2048, stack="cuda-eager", **kw)
    ops = r.ops.set_index("name")
    return r, {n: float(ops.loc[n, "time_s"]) for n in ops.index if n.startswith("opt.")}


def test_the_loops_casts_cost_what_the_h200_trace_measured():
    r, opt = _opt()
    assert set(opt) == {"opt.grad_cast", "opt.adamw", "opt.param_copy"}
    n = load_model("gpt3-5b").params()
    chip = load_system("h200-sxm-141gb").chip
    # the bf16 -> fp32 cast of every gradient runs in ATen's unvectorized loop: n elements at
    # 1.24 per SM-cycle (its 6 bytes an element would stream faster at the copy rate)
    loop = chip.num_cores * chip.engine_hz("vector") * load_kernels("aten").unvectorized_elements_per_cycle
    assert opt["opt.grad_cast"] == pytest.approx(n / loop, rel=0.02)
    # the trace of the same step (tests/data/profiles/h200_gpt3_5b_train_1x2048.json.gz): the casts
    # 16.9 ms (unrolled_elementwise_kernel copies), the copy back 8.35 ms (a foreach kernel)
    assert opt["opt.grad_cast"] == pytest.approx(16.9e-3, rel=0.15)
    assert opt["opt.param_copy"] == pytest.approx(8.35e-3, rel=0.15)
    # a fused optimizer (the default without a framework) has neither, and a shorter step
    fused, fopt = _opt(master_casts="fused")
    assert set(fopt) == {"opt.adamw"}
    assert r.summary["step_time_s"] - fused.summary["step_time_s"] == pytest.approx(
        sum(opt.values()) - fopt["opt.adamw"], rel=0.01)


def test_fp32_master_gradients_set_the_peak_once_activations_are_freed():
    m = load_model("gpt3-5b")
    n = m.params()
    fused = train_memory(m, 1, 2048, ParallelPlan())
    loop = train_memory(m, 1, 2048, ParallelPlan(master_casts="separate"))
    act = fused.activations_bytes
    assert loop.activations_bytes == act
    # bf16 gradients during the backward (beside the activations), fp32 ones after it (without)
    assert loop.gradients_bytes == pytest.approx(2 * n + max(0.0, 2 * n - act))
    assert loop.total_bytes == pytest.approx(max(fused.total_bytes, fused.total_bytes - act + 2 * n))
