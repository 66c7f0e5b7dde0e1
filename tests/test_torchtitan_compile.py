"""torchtitan eager against torchtitan with torch.compile: the eager run's composite RoPE, SiLU x
product and RMSNorm kernels against Inductor's fused ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.correlate import correlate, load_measurements
from accelsim.stack import load_stack
from accelsim.stack.presets import for_platform
from accelsim.workload.eager import composite_rope_complex

TRAIN = Path(__file__).resolve().parents[1] / "workloads/measurements/validation/train_published.csv"


def test_reference_rope_moves_20_bytes_a_bf16_element():
    # q.float() 2 + 4, complex product 4 + 4 (the table is broadcast), type_as 4 + 2 = 20 bytes an
    # element where a fused kernel moves 4; the widening copy and the product leave ATen's
    # vectorized loop, the narrowing copy has a vectorized kernel
    n = 1 << 20
    parts = composite_rope_complex(n, "bf16")
    assert len(parts) == 6
    assert sum(p.bytes() for p in parts) == 20 * n
    assert [p.name.split(".")[-1] for p in parts if p.unvectorized] == ["upcast", "cmul"] * 2


def test_compile_stack_fuses_what_eager_runs_apart():
    eager, compiled = load_stack(for_platform("torchtitan", "cuda-graphs")), load_stack(
        for_platform("torchtitan-compile", "cuda-graphs"))
    assert eager.runtime.composite == ["rope_complex", "silu_mul"] and eager.training.rmsnorm == "eager"
    assert compiled.runtime.composite == [] and compiled.training.rmsnorm == "fused"
    assert (compiled.kernels, eager.kernels) == ("triton", "aten")
    assert compiled.training.zero == eager.training.zero == 3  # the same framework defaults otherwise


def test_eager_over_compiled_step_as_torchtitan_measured():
    # torchtitan's Llama 3.1 8B table on 8 Grand Teton H100s (tr-036 'FSDP', tr-037 'FSDP +
    # torch.compile', the same plan): 2.843 s against 2.457 s, eager 1.157x the compiled step
    df = load_measurements(TRAIN)
    pair = df[df["id"].isin(["tr-036", "tr-037"])]
    assert list(pair["stack"]) == ["torchtitan", "torchtitan-compile"]
    rows = correlate(pair).per_row.set_index("id")
    measured = rows.loc["tr-036", "measured_time_s"] / rows.loc["tr-037", "measured_time_s"]
    predicted = rows.loc["tr-036", "predicted_time_s"] / rows.loc["tr-037", "predicted_time_s"]
    assert measured == pytest.approx(1.157, abs=0.001)
    assert predicted == pytest.approx(measured, rel=0.05)
