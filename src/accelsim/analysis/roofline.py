"""Roofline: ops as points (arithmetic intensity vs achieved FLOP/s) under the chip's ceilings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..report.results import Results

BOUND_COLORS = {"compute": "tab:red", "memory": "tab:blue", "vector": "tab:green",
                "interconnect": "tab:purple", "overhead": "tab:gray"}


def roofline_figure(results: "Results") -> "Figure":
    """A log-log roofline of one chip: a ceiling per tensor dtype, the HBM slope, and each op
    with FLOPs as a point coloured by its bound (marker area ~ its share of time)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    chip = results.system.chip
    df = results.ops[(results.ops["flops"] > 0) & (results.ops["hbm_bytes"] > 0)]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    bw = chip.hbm.bandwidth_Bps
    x = np.logspace(-1, 4, 200)
    roofs: dict[float, list[str]] = {}
    for dtype in chip.core.tensor.macs_per_cycle:
        roofs.setdefault(chip.peak_flops(dtype), []).append(dtype)
    for peak, dtypes in sorted(roofs.items(), reverse=True):
        ax.plot(x, np.minimum(peak, bw * x), lw=1.2, label=f"{'/'.join(dtypes)} peak {peak / 1e12:.0f} TFLOP/s")
    if len(df):
        achieved = df["flops"] / df["time_s"]
        share = df["time_s"] / results.ops["time_s"].sum()
        for bound, color in BOUND_COLORS.items():
            sel = df["bound"] == bound
            if sel.any():
                ax.scatter(df.loc[sel, "intensity"], achieved[sel], s=20 + 400 * share[sel],
                           color=color, alpha=0.7, edgecolors="k", linewidths=0.3, label=f"{bound}-bound ops")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / HBM byte)")
    ax.set_ylabel("achieved FLOP/s (one chip)")
    s = results.summary
    ax.set_title(f"{s['model']} {s['phase']} on {s['system']}: roofline "
                 f"(HBM {bw / 1e12:.2f} TB/s, ridge {chip.ridge_point(s['dtype'] if s['dtype'] in chip.core.tensor.macs_per_cycle else 'bf16'):.0f} FLOP/B)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    return fig
