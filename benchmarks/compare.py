"""Speed of accelsim's analytical evaluation beside llm-analysis and GenZ on the same cases.

Runs in accelsim's environment; the peers run in their own (benchmarks/PEERS.md):

    .venv/bin/python benchmarks/compare.py --peer-python .venv-peers/bin/python --rounds 5 --json out.json

Each round times accelsim in this process (``accelsim.evaluate`` with preset systems and
models) and the peers through ``benchmarks/peers.py`` in a subprocess, in alternating order.
Cases, design points, warm-up and timing helpers come from peers.py, so every tool is timed on
the same points: one warm-up call outside the timed set, then one call per distinct design
point (each round its own points, so no cache from an earlier round answers). The figure per
(tool, case) is the median over rounds of each round's median seconds per call; ``sweep`` is
design points per CPU second over a batch x context grid. Without --peer-python (or when it
is missing) only accelsim's column is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # stdlib only at import time; the peer tools load inside its runners

PEER_TOOLS = ("llm-analysis", "GenZ")


def accelsim_rows(round_: int, points: int) -> list[dict]:
    """accelsim's rows for one round, in the same shape as peers.py's JSON lines."""
    from accelsim import __version__, evaluate
    from accelsim.arch import load_system
    from accelsim.jit import compile_all
    from accelsim.workload import load_model

    compile_all()  # the numba kernels compiled (or loaded from their cache) before any timer starts

    def make(cfg):
        # A fresh system object per case and round: accelsim keeps op costs per system object,
        # so no case or round starts with costs another one computed.
        spec, model = load_system(cfg["system"]), load_model(cfg["model"])
        tokens = "context_len" if cfg.get("phase", "decode") == "decode" else "seq_len"
        phase, tp = cfg.get("phase", "decode"), cfg["tp"]
        return lambda b, t: evaluate(spec, model, phase=phase, batch=b, tp=tp, **{tokens: t}).summary["latency_s"]

    rows = []
    for case, cfg in peers.CASES.items():
        call = make(cfg)
        per = peers.time_points(call, peers.design_points(cfg["phase"], points, round_ * points),
                                peers.WARMUP[cfg["phase"]])
        rows.append({"tool": "accelsim", "case": case, "per_point_s": per, "points": points,
                     "latency_ms": 1e3 * call(*peers.NOMINAL[cfg["phase"]]), "version": __version__})
    call, grid = make(peers.SWEEP), peers.sweep_grid(round_)
    call(*peers.WARMUP["decode"])
    rate = peers.cpu_rate(call, grid)
    rows.append({"tool": "accelsim", "case": "sweep", "per_point_s": 1 / rate, "points_per_cpu_s": rate,
                 "points": len(grid), "version": __version__})
    return rows


def peer_rows(python: str, round_: int, points: int) -> list[dict]:
    """peers.py's JSON lines for one round (raises with its stderr if it fails)."""
    out = subprocess.run([python, str(HERE / "peers.py"), "--rounds", "1", "--points", str(points),
                          "--offset", str(round_ * points)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"peers.py exited {out.returncode}:\n{out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def fmt_ms(s: float) -> str:
    ms = 1e3 * s
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms / 1e3:.3g} s"


def ratio(acc: float, ref: float) -> str:
    """accelsim's seconds per point against the reference's, as 'N× slower' / 'N× faster'."""
    return f"{acc / ref:.2g}× slower" if acc >= ref else f"{ref / acc:.2g}× faster"


def table(summary: dict, tools: list[str]) -> str:
    cols = [t for t in ("llm-analysis", "accelsim", "GenZ") if t in tools]
    lines = ["| case | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for case in list(peers.CASES) + ["sweep"]:
        cells = []
        for tool in cols:
            r = summary.get(case, {}).get(tool)
            if r is None:
                cells.append("—")
            elif "error" in r:
                cells.append("error: " + r["error"][:60])
            else:
                cell = (f"{r['points_per_cpu_s']:.4g} pts/CPU-s" if case == "sweep" else fmt_ms(r["per_point_s"]))
                ref = summary[case].get("llm-analysis")
                if tool == "accelsim" and ref and "per_point_s" in ref:
                    cell += f" ({ratio(r['per_point_s'], ref['per_point_s'])})"
                cells.append(cell)
        label = "sweep (decode grid, points per CPU-second)" if case == "sweep" else case
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", help="python of the peer venv, e.g. .venv-peers/bin/python")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--points", type=int, default=20, help="timed design points per (tool, case) per round")
    ap.add_argument("--json", help="write the medians and every round's figures here")
    args = ap.parse_args()

    peer_python = args.peer_python
    if peer_python and not (os.path.isfile(peer_python) and os.access(peer_python, os.X_OK)):
        print(f"peer python {peer_python} not found", file=sys.stderr)
        peer_python = None

    samples: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in range(args.rounds):
        steps = [lambda r=r: accelsim_rows(r, args.points)]
        if peer_python:
            steps.append(lambda r=r: peer_rows(peer_python, r, args.points))
        for step in steps if r % 2 == 0 else steps[::-1]:
            for row in step():
                samples[(row["tool"], row["case"])].append(row)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    summary: dict[str, dict[str, dict]] = defaultdict(dict)
    for (tool, case), rows in samples.items():
        ok = [x for x in rows if "error" not in x]
        if not ok:
            summary[case][tool] = {"error": rows[0]["error"]}
            continue
        entry = {"per_point_s": statistics.median(x["per_point_s"] for x in ok),
                 "rounds_per_point_s": [x["per_point_s"] for x in ok],
                 "points": ok[0]["points"], "version": ok[0].get("version")}
        if case == "sweep":
            entry["points_per_cpu_s"] = 1 / entry["per_point_s"]
        else:
            entry["latency_ms"] = ok[0]["latency_ms"]
        summary[case][tool] = entry

    found = [t for t in PEER_TOOLS if any("per_point_s" in c.get(t, {}) for c in summary.values())]
    tools = ["accelsim"] + found
    if not found:
        print("peers not found (give --peer-python; see benchmarks/PEERS.md): accelsim only\n")
    for t in (t for t in PEER_TOOLS if t not in found and any(t in c for c in summary.values())):
        print(f"{t} failed on every case: {next(c[t]['error'] for c in summary.values() if t in c)}\n")
    print(f"seconds per design point, median of {args.rounds} rounds x {args.points} points "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)\n")
    print(table(summary, tools))
    cols = [t for t in ("llm-analysis", "accelsim", "GenZ") if t in tools]
    print("\npredicted step latency at the nominal point (ms; decode batch 8 context 2048, prefill 2048 tokens):")
    for case in peers.CASES:
        print(f"  {case}: " + ", ".join(f"{t} {summary[case][t]['latency_ms']:.2f}" for t in cols
                                        if "latency_ms" in summary[case].get(t, {})))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rounds": args.rounds, "points": args.points, "peers_found": found,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "results": summary}, indent=2))


if __name__ == "__main__":
    main()
