"""Rows timed while a harness was still warming up (``load: cold``): kept in the corpus, listed
as skipped with their reason by ``correlate``, and never fitted by ``accelsim priors``."""

from __future__ import annotations

import csv

import pytest

from accelsim.correlate import correlate
from accelsim.correlate.library_fit import derive, library_rows, program_stacks_with_rows
from accelsim.correlate.schema import load_measurements, rows_of
from accelsim.errors import MeasurementError

XLA = "workloads/measurements/parts/nvidia_xla_collective_ptable.csv"


def _rows(tmp_path, loads):
    path = tmp_path / "coll.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "kind", "system", "bytes", "ranks", "stack", "load", "measured_time_s", "source"])
        for i, load in enumerate(loads):
            w.writerow([f"r{i}", "allreduce", "dgx-h100", 2 ** (20 + i), 8, "xla-gpu", load, 1e-4 * (i + 1), "t"])
    return path


def test_a_cold_row_is_skipped_with_its_reason(tmp_path):
    path = _rows(tmp_path, ["cold", "", "burst"])
    rep = correlate(load_measurements(path))
    per = rep.per_row.set_index("id")
    assert per.loc["r0", "skipped"] and "warming up" in per.loc["r0", "reason"]
    assert not per.loc["r1", "skipped"] and not per.loc["r2", "skipped"]


def test_an_unknown_load_names_the_column(tmp_path):
    path = _rows(tmp_path, ["lukewarm"])
    with pytest.raises(MeasurementError, match="load"):
        load_measurements(path)


def test_priors_leave_cold_rows_out(tmp_path):
    rows = rows_of(load_measurements(_rows(tmp_path, ["cold", "", ""])))
    assert [r.id for r in program_stacks_with_rows(rows)["xla-gpu"]] == ["r1", "r2"]
    rows = [r.model_copy(update={"stack": "cuda-native"}) for r in rows]
    assert [r.id for r in library_rows(rows, "cuda-native")] == ["r1", "r2"]


def test_the_xla_tables_first_size_is_marked_cold_by_position():
    # the generator runs the tensor size outermost: the 1 KiB entries (T = bytes, or bytes x ranks for an
    # all-gather, whose bytes are the per-rank input) are the program's first 12 executables
    rows = rows_of(load_measurements(XLA))
    for r in rows:
        total = r.bytes * r.ranks if r.kind == "allgather" else r.bytes
        assert (r.load == "cold") == (total == 1024), r.id
    assert sum(r.load == "cold" for r in rows) == 12


def test_fitting_a_stack_without_its_own_library_is_refused():
    with pytest.raises(MeasurementError, match="no collective library of its own"):
        derive([XLA], ["xla-gpu"], holdout=False)
