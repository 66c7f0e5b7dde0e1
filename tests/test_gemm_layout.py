"""A gemm row's ``layout``: a BLAS harness (cuBLASLt, hipBLASLt) stores column-major matrices,
C[m,n] with m contiguous, so the row is predicted as the row-major product it stores, C^T[n,m]
= B^T A^T, and the tensor engine's alignment applies to the output's m."""

from __future__ import annotations

import pytest

from accelsim.correlate.predict import Predictor
from accelsim.correlate.schema import MeasurementRow, load_measurements
from accelsim.errors import MeasurementError


def _gemm(m, n, k, **kw):
    return MeasurementRow(**{**dict(id="g", kind="gemm", system="h100-sxm-80gb", dtype="fp8", m=m, n=n, k=k,
                                    stack="cuda-native", measured_time_s=1e-5), **kw})


def test_a_column_major_row_is_its_transposed_row_major_product():
    pr = Predictor()
    col = pr.predict(_gemm(1024, 2145, 1024, layout="col")).time_s
    # C^T[2145, 1024] = B^T A^T: the same prediction as the row-major row with m and n swapped
    assert col == pr.predict(_gemm(2145, 1024, 1024)).time_s
    # read row-major, the output's stride (2145 one-byte elements) misses Hopper's 16-byte
    # alignment and the GEMM runs at the misaligned-kernel rate; column-major its stride is
    # 1,024 elements, aligned
    row = pr.predict(_gemm(1024, 2145, 1024)).time_s
    assert row > 2.0 * col
    assert pr.predict(_gemm(1024, 2145, 1024, layout="row")).time_s == row


def test_layout_is_for_unbatched_gemm_rows(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("id,kind,system,elements,dtype,layout,measured_time_s\n"
                 "a,copy,a100-sxm-80gb,4096,fp32,col,1e-5\n")
    with pytest.raises(MeasurementError, match="layout.*gemm row, not a copy row"):
        load_measurements(f)
    f.write_text("id,kind,system,m,n,k,batch,dtype,layout,measured_time_s\n"
                 "a,gemm,h100-sxm-80gb,64,64,64,4,bf16,col,1e-5\n")
    with pytest.raises(MeasurementError, match="layout"):
        load_measurements(f)
    f.write_text("id,kind,system,m,n,k,dtype,layout,measured_time_s\n"
                 "a,gemm,h100-sxm-80gb,64,64,64,bf16,diagonal,1e-5\n")
    with pytest.raises(MeasurementError, match="layout"):
        load_measurements(f)
