"""Silicon microbenchmarks (optional, PyTorch: ``pip install -e ".[bench]"``) that write measured
kernel times in the correlate measurement schema; see :mod:`accelsim.bench.runner`.

``accelsim bench --device cpu --quick -o measurements.csv`` from the command line, or::

    from accelsim.bench import run_bench, write_csv
    rows, _ = run_bench("cuda")
    write_csv(rows, "h100.csv")

Importing this package does not import PyTorch.
"""

from .runner import ATTENTION_COLUMNS, COLUMNS, BenchError, make_plan, preset_for, require_torch, run_bench, write_csv

__all__ = ["ATTENTION_COLUMNS", "COLUMNS", "BenchError", "make_plan", "preset_for", "require_torch", "run_bench",
           "write_csv"]
