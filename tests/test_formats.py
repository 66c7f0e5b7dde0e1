"""Number formats: exact storage bits (hand-derived), RNE / saturation on hand-picked values, and
the SQNR accuracy proxy against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.compress.formats import DTYPE_BYTES
from accelsim.compress.formats import fake_quant, get_format, group_int, quant_float
from accelsim.compress.sqnr import float_sqnr_closed_form, int_sqnr_closed_form, sqnr, sqnr_db

# bits per element by hand: element bits + scale bits / block (+ zero point bits / group)
BITS = {
    "fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8_e4m3": 8, "fp8_e5m2": 8, "fp8": 8, "int8": 8, "int4": 4,
    "fp6_e2m3": 6, "fp6_e3m2": 6, "fp4_e2m1": 4, "fp4": 4,
    "mxfp8": 8 + 8 / 32, "mxfp8_e5m2": 8.25, "mxfp6": 6 + 8 / 32, "mxfp6_e3m2": 6.25, "mxfp4": 4.25,
    "mxint8": 8.25, "nvfp4": 4 + 8 / 16,
    "int4-g128": 4 + 16 / 128, "int4-g64": 4 + 16 / 64, "int4-g128-zp": 4 + (16 + 4) / 128,
    "int8-g32-bf16": 8 + 16 / 32, "int4-g32-e8m0": 4 + 8 / 32, "int4-g128-fp32": 4 + 32 / 128,
}


@pytest.mark.parametrize("name,bits", sorted(BITS.items()))
def test_bits_per_element_exact(name, bits):
    f = get_format(name)
    assert f.bits_per_element == bits
    assert DTYPE_BYTES[name] == bits / 8


def test_nvfp4_per_tensor_scale_and_named_values():
    nv = get_format("nvfp4")
    assert nv.storage_bits(1024) == 1024 * 4.5 + 32  # + one fp32 tensor scale
    assert get_format("mxfp4").bits_per_element == 4.25
    assert group_int(4, 128).bits_per_element == 4.125
    assert get_format("mxfp4").compute == "fp4" and get_format("nvfp4").compute == "fp4"
    assert get_format("mxfp8").compute == "fp8" and get_format("int4-g128").compute == "int4"
    with pytest.raises(ValueError, match="unknown number format"):
        get_format("fp5")


def test_float_rounding_ties_to_even_and_saturation():
    e4m3 = get_format("fp8_e4m3")
    # step at [1, 2) is 1/8: 1.0625 is a tie -> 1.0 (even); 1.1875 tie -> 1.25 (even mantissa 010)
    x = np.array([1.0625, 1.1875, 500.0, -1e6, 2.0 ** -9, 2.0 ** -10 * 1.01])
    assert list(quant_float(x, e4m3)) == [1.0, 1.25, 448.0, -448.0, 2.0 ** -9, 2.0 ** -9]
    e2m1 = get_format("fp4")  # values 0, 0.5, 1, 1.5, 2, 3, 4, 6
    assert list(quant_float(np.array([0.25, 0.75, 2.5, 5.0, 7.0, 100.0]), e2m1)) == [0.0, 1.0, 2.0, 4.0, 6.0, 6.0]
    e5m2 = get_format("fp8_e5m2")  # IEEE-like: overflow past max + half ulp goes to inf
    assert quant_float(np.array([57344.0, 61440.0]), e5m2).tolist() == [57344.0, math.inf]
    assert quant_float(np.array([65504.0, 65519.0, 65520.0]), get_format("fp16")).tolist() == [65504.0, 65504.0, math.inf]
    assert get_format("fp6_e2m3").max_value == 7.5 and get_format("fp6_e3m2").max_value == 28.0


def test_block_formats_by_hand():
    # MXFP4 block of 32 with max 5: shared exp = floor(log2 5) - 2 = 0, scale 1 -> elements as fp4
    x = np.zeros(32)
    x[:4] = [5.0, 0.3, -2.6, 1.2]
    q = fake_quant(x, "mxfp4")
    assert q[:4].tolist() == [4.0, 0.5, -3.0, 1.0]  # 5 -> tie 4|6 -> 4 (even); 0.3 -> 0.5; 2.6 -> 3
    # int4 group 4, fp32 scale: scale = 7/7 = 1
    assert fake_quant(np.array([[7.0, 2.4, -3.5, 0.2]]), "int4-g4-fp32").tolist() == [[7.0, 2.0, -4.0, 0.0]]
    # NVFP4: the block max maps onto 6 exactly
    y = np.array([[6.0, 3.1] + [0.0] * 14])
    assert fake_quant(y, "nvfp4")[0, :2].tolist() == pytest.approx([6.0, 3.0])


@pytest.mark.parametrize("name,mbits", [("fp16", 10), ("bf16", 7), ("fp8_e4m3", 3), ("fp8_e5m2", 2)])
def test_float_sqnr_matches_closed_form(name, mbits):
    x = np.random.default_rng(1).standard_normal((256, 1024))
    # closed form: 6.02 m + 10 log10(12 * E[x^2] / E[4^floor(log2|x|)]); the Gaussian constant
    assert float_sqnr_closed_form(0) == pytest.approx(13.45, abs=0.02)  # (7/3 for uniform mantissas: 14.47)
    assert abs(sqnr(name, x) - float_sqnr_closed_form(mbits)) < 1.0


@pytest.mark.parametrize("bits,group", [(8, 128), (8, 32), (4, 128), (4, 32)])
def test_int_sqnr_matches_closed_form(bits, group):
    x = np.random.default_rng(2).standard_normal((256, 1024))
    blocks = x.reshape(-1, group)
    kappa = math.sqrt(np.mean(np.max(np.abs(blocks), axis=1) ** 2) / np.mean(x ** 2))  # max / rms
    got = sqnr(group_int(bits, group, "fp32"), x)
    assert abs(got - int_sqnr_closed_form(bits, kappa)) < 1.0
    assert int_sqnr_closed_form(8, 1.0) == pytest.approx(10.79 + 20 * math.log10(127), abs=0.01)


def test_outliers_hurt_per_tensor_int_more_than_blocks():
    clean = sqnr("int8", rows=64, cols=1024)
    dirty = sqnr("int8", rows=64, cols=1024, outlier_channels=4)
    assert dirty < clean - 10  # a 20x outlier channel costs ~20 dB of per-tensor range
    assert sqnr("mxfp8", rows=64, cols=1024, outlier_channels=4) > dirty
    assert sqnr_db(np.ones(3), np.ones(3)) == math.inf
