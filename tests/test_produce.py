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


def test_hidden_state_targets_by_hand():
    from accelsim.codesign.produce import hidden_loss_s
    from accelsim.sim.analytical import chip_model

    spec = load_system("dgx-h100")
    sysr = realize(spec, resolve(None, spec.stack, "realistic"))
    cm = chip_model(sysr)
    T = 2 ** 19  # tokens on one chip per step
    # Llama-3-8B student (hidden 4096, 32 layers) against Llama-3-70B (hidden 8192): per layer a
    # 4096 -> 8192 projection, forward and its two backward GEMMs, 3 x 2 x T x 4096 x 8192 FLOPs,
    # compute-bound at these sizes: the H100's BF16 peak times its achievable fraction
    # and the squared error against the teacher's state, memory-bound: forward and backward each
    # stream three bf16 tensors of T x 8192 (two read, one written)
    flops = 32 * 3 * 2 * T * 4096 * 8192
    peak = sysr.chip.peak_flops("bf16") * sysr.chip.calibration.tensor_efficiency
    hbm = sysr.chip.hbm.bandwidth_Bps * sysr.chip.calibration.hbm_efficiency
    mse = 32 * 2 * 3 * 2 * T * 8192 / hbm
    got = hidden_loss_s(cm, "llama-3-8b", "llama-3-70b", T)
    assert got == pytest.approx(flops / peak + mse, rel=0.05)
    # equal widths: no projection, only the squared error over T x 4096
    same = hidden_loss_s(cm, "llama-3-8b", "llama-3-8b", T)
    assert same == pytest.approx(32 * 2 * 3 * 2 * T * 4096 / hbm, rel=0.05)
    c = distill_cost("dgx-h100", "llama-3-8b", "llama-3-70b", 10e9, global_batch=64, seq_len=2048, tp=1, dp=8,
                     targets="hidden")
    p = c.parts_s
    assert p["hidden_state_loss"] > 0 and "hidden states" in c.what
    assert c.step_s == pytest.approx(p["student_step"] + p["kl_loss"] + p["hidden_state_loss"] + p["teacher_forward"])


def test_pruning_and_healing_cost():
    from accelsim.codesign.produce import prune_heal_cost

    recipe = "workloads/recipes/minitron-depth-half.yaml"  # Llama-3.1-8B: 32 -> 16 layers
    heal = prune_heal_cost("dgx-h100", "llama-3.1-8b", recipe, 10e9, global_batch=64, seq_len=4096, dp=8)
    full = qat_cost("dgx-h100", "llama-3.1-8b", "w8a8", 10e9, global_batch=64, seq_len=4096, dp=8)
    # half the layers: the healing step is about half the unpruned training step (the embedding
    # and the 128k-vocabulary LM head stay whole, so somewhat more than half)
    ratio = heal.parts_s["student_step"] / full.parts_s["student_step"]
    assert 0.5 < ratio < 0.62
    # the importance estimate is a forward pass of the unpruned model over 1,024 sequences: about a
    # third of a training step (forward + backward = 3 forwards) over the same 1,024 sequences,
    # i.e. 1024 / 64 / 3 of the 64-sequence step
    imp = heal.once_s["importance_estimate"]
    assert imp == pytest.approx(full.parts_s["student_step"] * 1024 / 64 / 3, rel=0.35)
    steps = 10e9 / (64 * 4096)
    assert heal.chip_hours == pytest.approx((steps * heal.step_s + imp) * 8 / 3600)
    distilled = prune_heal_cost("dgx-h100", "llama-3.1-8b", recipe, 10e9, global_batch=64, seq_len=4096,
                                teacher="llama-3.1-8b", dp=8)
    assert distilled.chip_hours > heal.chip_hours and "distillation from llama-3.1-8b" in distilled.what
    res = CliRunner().invoke(main, ["run", "dgx-h100", "llama-3.1-8b", "--phase", "train", "--prune", recipe,
                                    "--distill-from", "llama-3.1-8b", "--dp", "8", "--batch", "64", "--seq", "4096",
                                    "--tokens", "94e9"])
    assert res.exit_code == 0, res.output
    assert "pruning (minitron-depth-half) and healing by distillation" in res.output and "importance estimate" in res.output
    res = CliRunner().invoke(main, ["run", "dgx-h100", "llama-3-8b", "--phase", "train", "--prune", "w4a16-g128"])
    assert res.exit_code == 2 and "prune block" in res.output and "Traceback" not in res.output
