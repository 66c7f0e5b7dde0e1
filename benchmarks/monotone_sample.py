"""Monotonicity sample: more hardware must never be slower (issue 13).

Draws design points from ``tests/test_monotone.py``'s generator (random presets with scaled
HBM and SRAM, one-layer prefill / decode, one knob raised) and checks each at a tolerance of
0.1 %, printing one line per point that got slower and a summary. The README's figures ("200
derandomised SRAM / MAC checks", "seeds 11 and 12") come from this script:

    python benchmarks/monotone_sample.py --checks 200                  # derandomised, SRAM / MACs
    python benchmarks/monotone_sample.py --checks 200 --seed 11        # another sample
    python benchmarks/monotone_sample.py --checks 200 --seeds 11-31    # the wide sample: 22 samples, a total
    python benchmarks/monotone_sample.py --checks 150 --knobs other    # HBM and link bandwidth
    python benchmarks/monotone_sample.py --checks 400 --knobs all --fidelity analytical

The derandomised sample depends on the installed hypothesis version (6.170.27 drew the one the
README reports for 2026-12-05). About 0.2 s a check in the event tier on the 2-core machine.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_monotone as tm  # noqa: E402  (the generator and the check of the property test)
from conftest import without_local_constants  # noqa: E402  (the draws of the CI profile)
from hypothesis import HealthCheck, Phase, given, seed as hseed, settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checks", type=int, default=200, help="points to check")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomised)")
    ap.add_argument("--seeds", default=None, metavar="A-B",
                    help="the derandomised sample and seeds A to B in turn, with a total (the README's wide sample: 11-31)")
    ap.add_argument("--knobs", choices=("mapping", "other", "all"), default="mapping",
                    help="mapping: SRAM and MACs (which can change a GEMM's tiling); other: HBM and link bandwidth")
    ap.add_argument("--fidelity", choices=("event", "analytical"), default="event")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="allowed slow-down (fraction)")
    args = ap.parse_args()
    if args.seeds is not None:
        m = re.fullmatch(r"(\d+)-(\d+)", args.seeds)
        if not m or int(m.group(1)) > int(m.group(2)):
            ap.error(f"--seeds: expected A-B with A <= B, got {args.seeds!r}")
        seeds = [None] + list(range(int(m.group(1)), int(m.group(2)) + 1))
    else:
        seeds = [args.seed]
    without_local_constants()  # the sample depends on the seed and hypothesis alone, not on accelsim's source
    tm.TOLERANCE = tm.MAPPING_RESIDUAL = args.tolerance
    keep = {"mapping": lambda k: k in tm.MAPPING_KNOBS, "other": lambda k: k not in tm.MAPPING_KNOBS,
            "all": lambda k: True}[args.knobs]
    total, bad, worst_all = 0, 0, 0.0
    for seed in seeds:
        n, k, w = sample(args, keep, seed)
        total, bad, worst_all = total + n, bad + k, max(worst_all, w)
    if len(seeds) > 1:
        print(f"all: {total} {args.fidelity}-tier checks, {bad} slower than {100 * args.tolerance:g} %, "
              f"worst {worst_all:+.2f} %")


def sample(args, keep, seed):
    """Run one sample (``seed`` None: derandomised); returns (checks, slower, worst %)."""
    done: list[str | None] = []

    @settings(max_examples=args.checks * 3, deadline=None, derandomize=seed is None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(tm.points())
    def run(p):
        if not keep(p["knob"]) or len(done) >= args.checks:
            return
        try:
            tm.check(**p, fidelity=args.fidelity)
            done.append(None)
        except AssertionError as e:
            done.append(f"{e} | {p['model']} {p['phase']} batch {p['batch']} tokens {p['tokens']} tp {p['tp']}")
            print(done[-1], flush=True)

    t = time.perf_counter()
    (hseed(seed)(run) if seed is not None else run)()
    slower = [d for d in done if d]
    worst = max((float(re.search(r"\(([+-][0-9.]+)%\)", d).group(1)) for d in slower), default=0.0)
    print(f"{len(done)} {args.fidelity}-tier checks ({args.knobs} knobs, seed {seed}): {len(slower)} slower than "
          f"{100 * args.tolerance:g} %, worst {worst:+.2f} % ({time.perf_counter() - t:.0f} s)")
    return len(done), len(slower), worst


if __name__ == "__main__":
    main()
