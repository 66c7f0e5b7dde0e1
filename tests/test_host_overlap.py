"""Eager dispatch: the host enqueues kernels ahead of the device (stack runtime ``host_async``)
and one op can be several kernels (``launches``). Expected values are hand-derived."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.api import evaluate
from accelsim.cost.op_cost import OpCost
from accelsim.sim.analytical import pipeline, sequence_time
from accelsim.stack.presets import load_stack


def test_pipeline_closed_form_by_hand():
    # host 5 us per op, device 1, 10, 1 us: ops issued at 5, 10, 15; the device runs op 0 at
    # 5-6, op 1 at 10-20, op 2 at 20-21 -> 21 us (additive: 33; max of totals: 15)
    t = np.array([6.0, 15.0, 6.0])
    h = np.array([5.0, 5.0, 5.0])
    wait = pipeline(t, h, np.ones(3), np.arange(3))
    assert wait.tolist() == [5.0, 4.0, 0.0]  # idle before op 0 (5), before op 1 (10 - 6)
    assert (t - h).sum() + wait.sum() == 21.0
    costs = [OpCost(memory_s=d, overhead_s=5.0, host_s=5.0) for d in (1.0, 10.0, 1.0)]
    assert sequence_time(costs) == 21.0
    # one op alone: launch plus kernel, as its isolated timing
    assert sequence_time(costs[:1]) == 6.0
    # no host time: a plain sum
    assert sequence_time([OpCost(memory_s=2.0, overhead_s=1.0)] * 3) == 9.0


def test_pipeline_over_stored_ops_expands_their_order():
    # stored ops a (x1), b (x3), program a b b b: host 2, device a 1, b 3 -> a at 2-3,
    # b at 4-7, 7-10, 10-13 (issued 4, 6, 8: device-bound after the first) -> 13
    t, h = np.array([3.0, 5.0]), np.array([2.0, 2.0])
    wait = pipeline(t, h, np.array([1, 3]), np.array([0, 1, 1, 1]))
    assert wait[0] == 2.0 and wait[1] == pytest.approx(1.0 / 3)  # one wait of 1 over 3 instances
    assert 1.0 + 3 * 3.0 + 2.0 + 3 * wait[1] == pytest.approx(13.0)


def test_eager_decode_is_host_bound_until_the_device_catches_up():
    """Measured on one H200 (workloads/measurements/notes/h200_host_overlap.md): eager decode
    13-15 ms at every batch 1..256 while the graph replay grew from 5.9 to 13.4 ms."""
    lat = {b: evaluate("h200-sxm-141gb", "llama-3-8b", phase="decode", batch=b, context_len=1024,
                       stack="cuda-eager").summary["latency_s"] for b in (1, 64, 512)}
    graphs = {b: evaluate("h200-sxm-141gb", "llama-3-8b", phase="decode", batch=b, context_len=1024,
                          stack="cuda-graphs").summary["latency_s"] for b in (1, 64, 512)}
    assert lat[64] < 1.01 * lat[1]  # host-bound: flat
    assert graphs[1] < 0.6 * lat[1]
    assert lat[512] > 1.2 * lat[1] and lat[512] < graphs[512] + 0.2 * lat[1]  # device-bound: max, not sum


def test_eager_runs_rope_and_silu_mul_as_their_kernels():
    from accelsim.arch.presets import load_system
    from accelsim.cost.op_cost import ChipModel, op_cost
    from accelsim.stack.realize import realize
    from accelsim.workload.ops import Elementwise, KVCache

    st = load_stack("cuda-eager")
    assert st.runtime.host_async and st.runtime.launches == {"kv_append": 2}
    assert st.runtime.composite == ["rope", "silu_mul"]
    cm = ChipModel(realize(load_system("h200-sxm-141gb"), st))
    n = 1 << 20
    rope = op_cost(cm, Elementwise(name="r", role="rope", fn="rope", elements=n, dtype="bf16"))
    silu = op_cost(cm, Elementwise(name="s", role="mlp_act", fn="silu_mul", elements=n, dtype="bf16"))
    add = op_cost(cm, Elementwise(name="a", role="residual_attn", fn="add", elements=n, dtype="bf16"))
    assert add.host_s == st.runtime.kernel_launch_s  # one eager dispatch
    # RoPE: x*cos, neg, cat, *sin, add for q and for k: 10 kernels, 10 element passes
    # (bf16: 2 + 1 + 2 + 2 + 3 = 10 elements of 2 bytes each per element of q and k)
    assert rope.host_s == pytest.approx(10 * add.host_s)
    assert rope.hbm_bytes == pytest.approx(10 * n * 2, rel=1e-6)
    # act(gate) * up: SiLU (1 in, 1 out) then the product (2 in, 1 out): 5 passes, 2 kernels
    assert silu.host_s == pytest.approx(2 * add.host_s) and silu.hbm_bytes == 5 * n * 2
    # the KV write: key and value, two launches of one op
    kv = op_cost(cm, KVCache(name="k", role="kv_append", mode="append", batch=8, tokens=1, kv_heads=8,
                             head_dim=128, dtype="bf16"))
    chip = load_system("h200-sxm-141gb").chip
    fixed = chip.hbm.latency_s + chip.dma.setup_latency_s
    assert kv.host_s == pytest.approx(2 * st.runtime.kernel_launch_s)
    assert kv.overhead_s == pytest.approx(2 * (st.runtime.kernel_launch_s + fixed), rel=1e-9)
    # under a fused stack the same op is one kernel, no host time, 3 passes
    g = op_cost(ChipModel(realize(load_system("h200-sxm-141gb"), load_stack("cuda-graphs"))),
                Elementwise(name="s", role="mlp_act", fn="silu_mul", elements=n, dtype="bf16"))
    assert g.host_s == 0.0 and g.hbm_bytes == 3 * n * 2


def test_event_tier_and_sweep_agree_with_the_analytical_pipeline():
    from accelsim.sweep import DesignSpace, sweep

    a = evaluate("h200-sxm-141gb", "llama-3-8b", phase="decode", batch=8, context_len=512, stack="cuda-eager")
    e = evaluate("h200-sxm-141gb", "llama-3-8b", phase="decode", batch=8, context_len=512, stack="cuda-eager",
                 fidelity="event")
    assert e.summary["latency_s"] == pytest.approx(a.summary["latency_s"], rel=0.05)
    s = DesignSpace.load({"system": "h200-sxm-141gb",
                          "workload": {"model": "llama-3-8b", "phase": "decode", "context_len": 512},
                          "axes": {"workload.batch": [1, 8]}})
    df = sweep(s, progress=False, workers=1, stack="cuda-eager")
    for _, row in df.iterrows():
        ref = evaluate("h200-sxm-141gb", "llama-3-8b", phase="decode", batch=int(row["workload.batch"]),
                       context_len=512, stack="cuda-eager").summary
        assert row["latency_s"] == ref["latency_s"]


def test_a_misaligned_gemm_runs_at_the_fallback_rate():
    """Hopper's fast GEMM kernels need 16-byte-aligned rows (K of A, N of the output): a
    50,257-wide LM head (GPT-2/3's vocabulary, unpadded) ran cutlass_75 kernels at ~0.16 of the
    aligned rate in the H200 trace. The compute term scales by 1/0.16; 50,256 (a multiple of 8)
    does not; a chip without the requirement (A100 preset: none set) does not."""
    from accelsim.arch.presets import load_system
    from accelsim.cost.op_cost import ChipModel, aligned, op_cost
    from accelsim.workload.ops import MatMul

    cm = ChipModel(load_system("h200-sxm-141gb"))
    mk = lambda n, k=4096: MatMul(name="lm", role="lm_head", m=4096, n=n, k=k, dtype_a="bf16", dtype_b="bf16",  # noqa: E731
                                  dtype_out="bf16", b_shared=True)
    assert not aligned(cm, mk(50257)) and aligned(cm, mk(50256)) and not aligned(cm, mk(4096, 50257))
    slow, fast = op_cost(cm, mk(50257)), op_cost(cm, mk(50256))
    assert slow.compute_s / fast.compute_s == pytest.approx(1 / 0.16 * 50257 / 50256, rel=0.02)
    a100 = ChipModel(load_system("a100-sxm-80gb"))
    assert aligned(a100, mk(50257))


def test_megatron_pads_the_vocabulary_to_128_per_rank():
    """gpt3-5b's 50,257 tokens under Megatron with TP 4: padded to a multiple of 128 x 4 = 512,
    50,688, so each rank's LM head is 12,672 wide (aligned); unpadded it is 12,565."""
    from accelsim.stack.presets import load_stack
    from accelsim.workload.parallel import ParallelPlan
    from accelsim.workload.train import build_train

    assert load_stack("megatron-cuda").training.vocab_multiple == 128
    widths = {}
    for vm in (1, 128):
        step = build_train("gpt3-5b", 4, 2048, plan=ParallelPlan(tp=4, vocab_multiple=vm))
        head = [o for o in step.fwd[0].ops() if o.role == "fwd.lm_head"]
        widths[vm] = head[0].n
    assert widths == {1: 12565, 128: 12672}


def test_a_timed_call_of_two_eager_kernels_synchronizes_once():
    """An eager ``F.silu(g) * u`` row times one call of two kernels: the second costs the bare
    dispatch (7.0 us measured), not a whole synchronized call. A one-kernel row is unchanged."""
    import pandas as pd

    from accelsim.correlate.predict import Predictor
    from accelsim.correlate.schema import rows_of, validate_frame

    base = {"kind": "silu_mul", "system": "h200-sxm-141gb", "dtype": "bf16", "rows": 32, "cols": 4096,
            "stack": "cuda-eager", "measured_time_s": 2e-5, "source": "test"}
    df = validate_frame(pd.DataFrame([{**base, "id": "s"}, {**base, "id": "a", "kind": "add"}]), "test")
    silu, add = rows_of(df)
    pr = Predictor()
    one, two = pr.predict(add, "analytical").time_s, pr.predict(silu, "analytical").time_s
    st = load_stack("cuda-eager").runtime
    assert st.further_kernel_s == 7.0e-6
    # two kernels: the launch once, the bare dispatch once, two tiny device times (< 1 us each)
    assert two - one == pytest.approx(st.further_kernel_s, abs=1.5e-6)


def test_an_eager_training_step_hides_its_host_dispatch():
    """A training step is device-bound: under an eager stack the host's dispatch runs ahead and
    hides, so the step is about the sum of its host costs shorter than with them in series."""
    from accelsim.api import evaluate_train

    st = load_stack("cuda-eager")
    serial = st.model_copy(update={"runtime": st.runtime.model_copy(update={"host_async": False})})
    a = evaluate_train("h200-sxm-141gb", "gpt3-5b", 1, 2048, stack=st)
    b = evaluate_train("h200-sxm-141gb", "gpt3-5b", 1, 2048, stack=serial)
    ops = a.ops
    host = ops.loc[~ops["kind"].isin(["collective"]), "overhead_s"].sum()  # every op's launch (and tiny latencies)
    saved = b.summary["step_time_s"] - a.summary["step_time_s"]
    assert 0.8 * host < saved <= host
