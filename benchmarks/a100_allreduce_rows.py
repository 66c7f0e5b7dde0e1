"""Predict the A100 all-reduce rows of the shared measurement file (nccl-tests latencies on 4 x
A100 NVLink, ``a100x4-nvlink``, 4 ranks) with the analytical tier, using the preset as shipped
(neutral calibration: nothing fitted). Prints a markdown table with the per-row error and the
MAPE.

Run: ``python benchmarks/a100_allreduce_rows.py [PATH/TO/a100_calibration.csv]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from accelsim.arch import load_system
from accelsim.lower.collectives import collective_cost

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "measurements" / "a100_calibration.csv"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    rows = pd.read_csv(path)
    rows = rows[rows["kind"] == "allreduce"]
    out = []
    for r in rows.itertuples():
        system = load_system(r.system)
        c = collective_cost(system, "allreduce", float(r.bytes), int(r.ranks))
        measured = float(r.measured_time_s)
        out.append({"id": r.id, "bytes": int(r.bytes), "ranks": int(r.ranks), "measured_us": 1e6 * measured,
                    "predicted_us": 1e6 * c.time_s, "error_pct": 100 * (c.time_s / measured - 1),
                    "ape_pct": 100 * abs(c.time_s - measured) / measured,
                    "measured_busbw_GBps": float(r.bytes) / measured * 2 * (r.ranks - 1) / r.ranks / 1e9,
                    "predicted_busbw_GBps": c.busbw_Bps / 1e9, "algorithm": c.algorithm})
    df = pd.DataFrame(out)
    print(df.to_markdown(index=False, floatfmt=".1f"))
    print(f"\nMAPE {df['ape_pct'].mean():.1f}%  median APE {df['ape_pct'].median():.1f}%  "
          f"worst {df['ape_pct'].max():.1f}%  n={len(df)}")


if __name__ == "__main__":
    main()
