"""Figures of a result, all in one place: the roofline of an evaluation and the timeline of a
simulated run (a Gantt chart of the trace's tracks above utilization over time per engine
class)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..lower.schedule import CATEGORY_NAMES
from .trace import ENGINE, ENGINE_CLASSES, OVERHEAD, track_layout

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..sim.result import SimResult
    from .results import Results

CATEGORY_COLORS = {"tensor": "tab:red", "vector": "tab:green", "scalar": "tab:olive", "dma_in": "tab:blue",
                   "dma_out": "tab:cyan", "link": "tab:purple", "overhead": "tab:gray"}
CLASS_COLORS = {"tensor": "tab:red", "vector": "tab:green", "scalar": "tab:olive", "dma": "tab:blue",
                "link": "tab:purple"}
MAX_OP_ROWS = 8
"""With more chips than this, all op slices share one "ops" row."""
PIXELS = 3000
"""Bars closer than span / PIXELS on one row and of one category are drawn as one."""


def merge_intervals(start: np.ndarray, end: np.ndarray, gap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals, also joining those separated by at most ``gap``: (starts, ends)."""
    if not start.size:
        return start, end
    o = np.argsort(start, kind="stable")
    st, en = start[o], end[o]
    reach = np.maximum.accumulate(en)
    new = np.ones(st.size, dtype=bool)
    new[1:] = st[1:] > reach[:-1] + gap
    first = np.flatnonzero(new)
    return st[first], np.maximum.reduceat(en, first)


def _time_unit(span: float) -> tuple[float, str]:
    if span >= 1.0:
        return 1.0, "s"
    if span >= 1e-3:
        return 1e3, "ms"
    return 1e6, "us"


def timeline_figure(result: "SimResult", max_tracks: int = 40, bins: int = 200, detail: str = "class") -> "Figure":
    """A Gantt chart (bars coloured by task category, a top row hinting op boundaries) above the
    busy fraction of each engine class over time. ``detail="class"`` (default): one row per
    engine class (and chip), a bar wherever any of its servers is busy; ``"queue"``: one row
    per engine server / overhead track as in the full trace, the ``max_tracks`` busiest when
    there are more. Bars closer than a pixel are merged, so 100k+ tasks stay cheap to draw."""
    if detail not in ("class", "queue"):
        raise ValueError(f"unknown timeline detail {detail!r}; use 'class' or 'queue'")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    s = result.schedule
    lay = track_layout(result)
    span = result.makespan_s or 1.0
    scale, unit = _time_unit(span)
    gap = span / PIXELS

    # rows: engine / overhead tracks that ran something, busiest first when there are too many
    tracks = [t for t in lay.tracks if t.kind in (ENGINE, OVERHEAD)]
    key = lay.task_pid * (1 << 32) + lay.task_tid
    track_key = np.array([t.pid * (1 << 32) + t.tid for t in tracks], dtype=np.int64)
    busy = np.zeros(len(tracks))
    if tracks and s.num_tasks:
        order = np.argsort(track_key)
        pos = order[np.searchsorted(track_key[order], key)]
        busy = np.bincount(pos, weights=result.end_s - result.start_s, minlength=len(tracks))
        used = np.zeros(len(tracks), dtype=bool)
        used[pos] = True
    else:
        used = np.zeros(len(tracks), dtype=bool)
        pos = np.zeros(0, dtype=np.int64)
    shown = np.flatnonzero(used)
    hidden = 0
    if shown.size > max_tracks:
        hidden = shown.size - max_tracks
        keep = shown[np.argsort(-busy[shown], kind="stable")[:max_tracks]]
        shown = np.sort(keep)  # back to display order
    multi_chip = len(lay.processes) > 1
    # op rows on top: one per chip (up to MAX_OP_ROWS chips), else one for all
    chips = [p.chip for p in lay.processes]
    per_chip = multi_chip and len(chips) <= MAX_OP_ROWS
    op_rows = [f"c{c} ops" for c in chips] if per_chip else ["ops"]
    labels = op_rows + [(f"c{tracks[i].chip} " if multi_chip else "") + tracks[i].name for i in shown]
    row_of_track = np.full(len(tracks), -1, dtype=np.int64)
    row_of_track[shown] = np.arange(len(op_rows), len(op_rows) + shown.size)
    if detail == "class":  # one row per (chip, engine class): busy wherever any server is
        cls_of = [s.res_class[t.resource] if t.kind == ENGINE else "overhead" for t in tracks]
        used_idx = np.flatnonzero(used)
        keys = sorted({((tracks[i].chip if multi_chip else 0), cls_of[i]) for i in used_idx},
                      key=lambda k: (k[0], ENGINE_CLASSES.index(k[1]) if k[1] in ENGINE_CLASSES else 99, k[1]))
        index = {k: len(op_rows) + n for n, k in enumerate(keys)}
        row_of_track[:] = -1
        count = {k: 0 for k in keys}
        for i in used_idx:
            k = ((tracks[i].chip if multi_chip else 0), cls_of[i])
            row_of_track[i] = index[k]
            count[k] += 1
        labels = op_rows + [(f"c{c} " if multi_chip else "") + f"{cls} ({count[(c, cls)]})" for c, cls in keys]
        hidden = 0
    nrows = len(labels)

    fig = Figure(figsize=(12, 2.5 + 0.22 * nrows + 2.5), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 1, height_ratios=[max(2.0, 0.22 * nrows), 2.5])
    ax = fig.add_subplot(gs[0])
    ax_u = fig.add_subplot(gs[1], sharex=ax)

    # task bars per (row, category)
    if pos.size:
        row = row_of_track[pos]
        cat = s.category.astype(np.int64)
        sel = np.flatnonzero(row >= 0)
        grp = row[sel] * len(CATEGORY_NAMES) + cat[sel]
        o = np.argsort(grp, kind="stable")
        sel, grp = sel[o], grp[o]
        cuts = np.flatnonzero(np.diff(grp)) + 1
        for idx in np.split(sel, cuts):
            if not idx.size:
                continue
            r, c = int(row[idx[0]]), int(cat[idx[0]])
            st, en = merge_intervals(result.start_s[idx], result.end_s[idx], gap)
            ax.broken_barh(np.column_stack([st * scale, np.maximum(en - st, gap / 4) * scale]),
                           (r - 0.4, 0.8), facecolors=CATEGORY_COLORS.get(CATEGORY_NAMES[c], "k"),
                           edgecolors="none")

    # op boundaries: op slices on the top row in alternating shades, and faint lines if few
    if lay.op_op.size:
        st, en = lay.op_start_s, lay.op_end_s
        o = np.argsort(st, kind="stable")
        groups = [o[lay.op_chip[o] == c] for c in chips] if per_chip else [o]
        for r, grp in enumerate(groups):
            for parity, shade in ((0, "0.55"), (1, "0.8")):
                idx = grp[parity::2]
                ax.broken_barh(np.column_stack([st[idx] * scale, np.maximum(en[idx] - st[idx], gap / 4) * scale]),
                               (r - 0.4, 0.8), facecolors=shade, edgecolors="none")
        starts = np.unique(st)
        if starts.size <= 60:
            for x in starts:
                ax.axvline(x * scale, color="0.85", lw=0.5, zorder=0)
        if st.size <= 12:  # few ops: name them in their row
            for r, grp in enumerate(groups):
                for i in grp.tolist():
                    ax.text(st[i] * scale, r, " " + s.op_names[int(lay.op_op[i])], fontsize=6, va="center",
                            ha="left", clip_on=True)

    ax.set_yticks(range(nrows), labels, fontsize=7 if nrows <= 40 else 5)
    ax.set_ylim(nrows - 0.5, -0.5)
    ax.set_xlim(0, span * scale)
    title = f"{s.num_tasks} tasks, {len(s.op_names)} ops, makespan {span * scale:.4g} {unit}"
    if hidden:
        title += f" ({shown.size} busiest of {shown.size + hidden} tracks shown)"
    if detail == "class":
        title += "; one row per engine class (servers in brackets)"
    ax.set_title(title, fontsize=9, loc="left")
    present = sorted(set(s.category.tolist()))
    ax.legend(handles=[Patch(color=CATEGORY_COLORS[CATEGORY_NAMES[c]], label=CATEGORY_NAMES[c]) for c in present],
              fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=min(len(present), 7) or 1,
              frameon=False)
    ax.tick_params(labelbottom=False)

    # utilization over time
    edges, util = result.utilization_over_time(bins)
    for cls, frac in util.items():
        ax_u.stairs(frac, edges * scale, label=cls, color=CLASS_COLORS.get(cls), lw=1.2)
    ax_u.set_ylim(0, 1.05)
    ax_u.set_ylabel("busy fraction")
    ax_u.set_xlabel(f"time ({unit})")
    if util:
        ax_u.legend(fontsize=7, loc="upper right", ncols=len(util))
    ax_u.grid(alpha=0.3)
    return fig


BOUND_COLORS = {"compute": "tab:red", "memory": "tab:blue", "vector": "tab:green",
                "interconnect": "tab:purple", "overhead": "tab:gray"}


def roofline_figure(results: "Results") -> "Figure":
    """A log-log roofline of one chip: a ceiling per tensor dtype, the HBM slope, and each op
    with FLOPs as a point coloured by its bound (marker area ~ its share of time)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chip = results.system.chip
    df = results.ops[(results.ops["flops"] > 0) & (results.ops["hbm_bytes"] > 0)]
    fig = Figure(figsize=(7.5, 5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bw = chip.hbm.bandwidth_Bps
    x = np.logspace(-1, 4, 200)
    roofs: dict[float, list[str]] = {}
    for dtype in chip.core.tensor.macs_per_cycle:
        roofs.setdefault(chip.peak_flops(dtype), []).append(dtype)
    for peak, dtypes in sorted(roofs.items(), reverse=True):
        ax.plot(x, np.minimum(peak, bw * x), lw=1.2, label=f"{'/'.join(dtypes)} peak {peak / 1e12:.0f} TFLOP/s")
    # the memory levels' roofs, on the same axis of FLOP per HBM byte: a level that moves each
    # HBM byte r times (operand re-reads) bounds an op at (its bandwidth / r) x intensity, so
    # its slope is an upper bound reached when every byte crosses it once
    top = max(roofs) if roofs else 1.0
    levels = [("HBM", bw, "k")]
    if chip.shared_sram is not None:
        levels.append((f"shared SRAM (L2) {chip.shared_sram.bandwidth_Bps / 1e12:.1f} TB/s",
                       chip.shared_sram.bandwidth_Bps, "0.45"))
    for name, lbw, color in levels[1:]:
        ax.plot(x, np.minimum(top, lbw * x), lw=1.0, ls="--", color=color, label=f"{name} roof")
    if len(df):
        achieved = df["flops"] / df["time_s"]
        share = df["time_s"] / results.ops["time_s"].sum()
        # a memory-bound op is labelled by the level the cost model says set its memory time:
        # HBM, or the chip-shared SRAM (operands re-read through L2)
        level = df["memory_level"] if "memory_level" in df else "hbm"
        onchip = (df["bound"] == "memory") & (level == "shared")
        label = df["bound"].mask(df["bound"] == "memory", "hbm").mask(onchip, "onchip")
        colors = {**BOUND_COLORS, "hbm": BOUND_COLORS["memory"], "onchip": "tab:cyan"}
        names = {"hbm": "HBM-bound", "onchip": "on-chip-memory-bound (L2 / SRAM)"}
        for bound in ["compute", "hbm", "onchip", "vector", "interconnect", "overhead"]:
            sel = label == bound
            if sel.any():
                ax.scatter(df.loc[sel, "intensity"], achieved[sel], s=20 + 400 * share[sel],
                           color=colors[bound], alpha=0.7, edgecolors="k", linewidths=0.3,
                           label=f"{names.get(bound, bound + '-bound')} ops")
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


def collective_sweep_figure(rows: list[dict], title: str = "") -> "Figure":
    """Time and bus bandwidth of a collective against the per-rank size (log-log time, log-x
    bandwidth), as nccl-tests curves are read: a latency plateau, a knee, a bandwidth plateau."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax_t, ax_b = fig.subplots(1, 2)
    n = np.array([r["bytes_per_rank"] for r in rows])
    t = np.array([r["time_s"] for r in rows])
    bw = np.array([r["busbw_Bps"] for r in rows])
    ax_t.loglog(n, t * 1e6, "o-", ms=3)
    ax_t.set_xlabel("bytes per rank")
    ax_t.set_ylabel("time (us)")
    ax_b.semilogx(n, bw / 1e9, "o-", ms=3, color="tab:purple")
    ax_b.set_xlabel("bytes per rank")
    ax_b.set_ylabel("bus bandwidth (GB/s)")
    for ax in (ax_t, ax_b):
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
