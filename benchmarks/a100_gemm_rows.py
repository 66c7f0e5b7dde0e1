"""Predict the A100 GEMM rows of the shared measurement file with the analytical tier, using
the a100-sxm-80gb preset as shipped (neutral calibration: nothing fitted). Prints a markdown
table with the per-row error and the MAPE.

Run: ``python benchmarks/a100_gemm_rows.py [PATH/TO/a100_calibration.csv]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from accelsim.arch import load_system
from accelsim.sim.costs import ChipModel, op_cost
from accelsim.workload.ops import MatMul

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "measurements" / "a100_calibration.csv"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    rows = pd.read_csv(path)
    rows = rows[rows["kind"] == "gemm"]
    cm = ChipModel(load_system("a100-sxm-80gb"))
    out = []
    for r in rows.itertuples():
        op = MatMul(m=int(r.m), n=int(r.n), k=int(r.k), dtype_a=r.dtype, dtype_b=r.dtype, dtype_out=r.dtype, b_shared=True)
        c = op_cost(cm, op)
        ape = abs(c.time_s - r.measured_time_s) / r.measured_time_s
        out.append({"id": r.id, "m": int(r.m), "n": int(r.n), "k": int(r.k), "measured_us": 1e6 * r.measured_time_s,
                    "predicted_us": 1e6 * c.time_s, "error_pct": 100 * (c.time_s / r.measured_time_s - 1),
                    "ape_pct": 100 * ape, "bound": c.bound, "mapping": c.mapping})
    df = pd.DataFrame(out)
    print(df.drop(columns="mapping").to_markdown(index=False, floatfmt=".1f"))
    print(f"\nMAPE {df['ape_pct'].mean():.1f}%  median APE {df['ape_pct'].median():.1f}%  "
          f"worst {df['ape_pct'].max():.1f}%  n={len(df)}")


if __name__ == "__main__":
    main()
