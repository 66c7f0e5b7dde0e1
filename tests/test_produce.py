"""What producing a compressed model costs (accelsim.codesign.produce): QAT and distillation as
training runs. The fake-quantization work of Llama-3-8B is derived by hand from the published
architecture (hidden 4096, 32 layers, 32 query / 8 KV heads of 128, MLP 14336)."""

import pytest
from click.testing import CliRunner

from accelsim.arch import load_system
from accelsim.cli import main
from accelsim.codesign.produce import (FAKE_QUANT_OPS, FAKE_QUANT_PASSES, STE_OPS, distill_cost,
                                       fake_quant_elements, qat_cost)
from accelsim.stack.presets import resolve
from accelsim.stack.realize import realize


def test_fake_quant_elements_by_hand():
    d, kv, f, layers = 4096, 8 * 128, 14336, 32
    attn = d * d + 2 * d * kv + d * d  # q, k, v, o
    mlp = 3 * d * f  # gate, up, down
    assert attn == 41_943_040 and mlp == 176_160_768
    w, a = fake_quant_elements("llama-3-8b", tp=1, pp=1, microbatch_tokens=4096, quantize_activations=True)
    assert w == layers * (attn + mlp) == 6_979_321_856
    # inputs of the four weight GEMMs per token: hidden (qkv), hidden (o), hidden (up), MLP (down)
    assert a == 4096 * (d + d + d + f) * layers == 3_489_660_928
    w2, a2 = fake_quant_elements("llama-3-8b", tp=4, pp=2, microbatch_tokens=4096, quantize_activations=False)
    assert a2 == 0 and w2 == pytest.approx(w / 8, rel=1e-3)  # k / v are split 4 ways too (8 KV heads)


def test_qat_step_adds_fake_quantization_by_hand():
    c = qat_cost("dgx-h100", "llama-3-8b", "w4a8", 10e9, global_batch=64, seq_len=4096, tp=1, dp=8)
    # 64 sequences over dp 8 at microbatch 1: 8 microbatches a step on each chip
    elems = (6_979_321_856 + 3_489_660_928) * 8
    spec = load_system("dgx-h100")
    chip = realize(spec, resolve(None, spec.stack, "realistic")).chip
    vec = chip.core.vector.ops_per_cycle["bf16"] * chip.engine_hz("vector") * chip.calibration.vector_efficiency
    hbm = chip.hbm.bandwidth_Bps * chip.calibration.hbm_efficiency
    fq = max(elems * (FAKE_QUANT_OPS + STE_OPS) / vec, elems * FAKE_QUANT_PASSES * 2 / hbm)
    assert c.parts_s["fake_quantization"] == pytest.approx(fq, rel=1e-9)
    assert c.step_s == pytest.approx(c.parts_s["student_step"] + fq)
    steps = 10e9 / (64 * 4096)
    assert c.chip_hours == pytest.approx(steps * c.step_s * 8 / 3600)
    assert c.energy_J > 0


def test_distillation_adds_the_teacher_and_the_loss():
    same = distill_cost("dgx-h100", "llama-3-8b", "llama-3-70b", 10e9, global_batch=64, seq_len=2048, tp=1, dp=8)
    p = same.parts_s
    assert same.step_s == pytest.approx(p["student_step"] + p["kl_loss"] + p["teacher_forward"])
    assert p["teacher_forward"] > p["student_step"] > 0  # a 70B forward outweighs an 8B training step
    apart = distill_cost("dgx-h100", "llama-3-8b", "llama-3-70b", 10e9, global_batch=64, seq_len=2048,
                         teacher_system="dgx-h100", tp=1, dp=8)
    assert apart.chips == 16 and apart.step_s == pytest.approx(max(p["student_step"] + p["kl_loss"],
                                                                   apart.parts_s["teacher_forward"]))


def test_cli_prices_qat_and_distillation_on_trn2():
    res = CliRunner().invoke(main, ["run", "trn2-48xl", "llama-3-8b", "--phase", "train", "--batch", "64", "--seq",
                                    "4096", "--tp", "4", "--dp", "16", "--qat", "w4a8", "--distill-from", "llama-3-70b",
                                    "--tokens", "10e9"])
    assert res.exit_code == 0, res.output
    assert "QAT to weights int4" in res.output and "distillation from llama-3-70b" in res.output
    assert "(16 chips)" in res.output and "chip-hours" in res.output
    res = CliRunner().invoke(main, ["run", "trn2", "llama-3-8b", "--qat", "w4a8"])
    assert res.exit_code != 0 and "--phase train" in res.output
