"""Event-tier scaling: wall time and peak memory against tasks, each case in a fresh process.

Run: ``python benchmarks/scaling.py`` (a few minutes on 2 cores). Cases: Llama-3-8B prefill on
trn2 from 2k to 32k tokens (lowering + engine), and a 1 GiB all-reduce on 2D tori of 64 to
1,024 chips (algorithm chosen automatically). Prints one JSON line per case and then, per
family, a markdown table with the exponents of time ~ tasks^a and peak RSS ~ tasks^b fitted by
least squares on log-log axes (target: a <= 1.1, DESIGN / issue 15). The engine is compiled
(or loaded from numba's cache) before the timer starts; peak RSS includes the interpreter and
the imports (~150 MB), so the memory exponent is fitted on RSS above the smallest case's
baseline process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

CASE = r"""
import json, resource, sys, time
from accelsim.arch import load_system
kind, size = sys.argv[1], int(sys.argv[2])
if kind == "prefill":
    from accelsim.api import _stack
    from accelsim.stack.realize import realize
    from accelsim.workload import build, load_model
    from accelsim.lower.lowering import lower
    from accelsim.sim.engine import simulate_schedule
    from accelsim.jit import Kernel
    s = load_system("trn2"); st = _stack(s, None, "realistic"); spec = realize(s, st)
    m = load_model("llama-3-8b")
    simulate_schedule(lower(build(m.model_copy(update={"num_hidden_layers": 1}), "prefill", batch=1, seq_len=128), spec))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    g = build(m, "prefill", batch=1, seq_len=size)
    sch = lower(g, spec, st.collectives if st else None)
    r = simulate_schedule(sch)
    tasks, span = sch.num_tasks, r.makespan_s
else:
    from accelsim.sim.collective import simulate_collective
    side = int(size ** 0.5)
    simulate_collective(load_system("tpu-v5e-256", ["num_chips=16", "interconnect.dims=[4, 4]"]), "allreduce", 2**30, 16)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torus = load_system("tpu-v5e-256", [f"num_chips={size}", f"interconnect.dims=[{side}, {side}]"])
    t = time.perf_counter()
    span, r = simulate_collective(torus, "allreduce", 2**30, size)
    tasks = r.schedule.num_tasks
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"case": kind, "size": size, "tasks": tasks, "wall_s": wall, "peak_rss_MiB": peak / 1024,
                  "base_rss_MiB": base / 1024, "simulated_s": span}))
"""

FAMILIES = {"prefill": (2048, 4096, 8192, 16384, 32768), "allreduce": (64, 256, 1024)}


def fit(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main() -> None:
    for kind, sizes in FAMILIES.items():
        rows = []
        for size in sizes:
            out = subprocess.run([sys.executable, "-c", CASE, kind, str(size)], capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
            print(out, flush=True)
            rows.append(json.loads(out))
        tasks = [r["tasks"] for r in rows]
        a = fit(tasks, [r["wall_s"] for r in rows])
        extra = [max(r["peak_rss_MiB"] - r["base_rss_MiB"], 1.0) for r in rows]
        b = fit(tasks, extra)
        what = "Llama-3-8B prefill on trn2 (tokens)" if kind == "prefill" else "1 GiB all-reduce on a 2D torus (chips)"
        print(f"\n{what}\n\n| size | tasks | wall | peak RSS | above the process before |\n|---|---|---|---|---|")
        for r, e in zip(rows, extra):
            print(f"| {r['size']:,} | {r['tasks']:,} | {r['wall_s']:.2f} s | {r['peak_rss_MiB']:,.0f} MiB | {e:,.0f} MiB |")
        print(f"\nfitted: time ~ tasks^{a:.2f}, memory ~ tasks^{b:.2f} (target <= 1.1)\n", flush=True)
        print(json.dumps({"case": f"scaling_{kind}", "time_exponent": a, "memory_exponent": b,
                          "meets_target": a <= 1.1}), flush=True)


if __name__ == "__main__":
    main()
