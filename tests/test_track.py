"""Regression tracking store (SQLite, migrations, queries), the HTML dashboard and their CLI."""

from __future__ import annotations

import re
import sqlite3
import sys
import types
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from accelsim.cli import main
from accelsim.correlate import dashboard, track
from accelsim.errors import MeasurementError


@dataclass
class FakeResult:
    """Stands in for accelsim.correlate.compare.CorrelationResult (same attributes and columns)."""

    per_row: pd.DataFrame
    by_kind: pd.DataFrame
    overall: dict = field(default_factory=dict)


def make_result(cases: list[tuple], skipped: int = 0) -> FakeResult:
    """cases: (id, kind, predicted_s, measured_s); ``skipped`` extra rows that could not be predicted."""
    rows = []
    for rid, kind, p, m in cases:
        rows.append({"id": rid, "kind": kind, "system": "a100-sxm-80gb", "model": None, "phase": None, "op": None,
                     "predicted_time_s": p, "measured_time_s": m, "ape": abs(p - m) / m, "error": (p - m) / m,
                     "bound": "compute", "skipped": False, "reason": None})
    for i in range(skipped):
        rows.append({"id": f"s{i}", "kind": "layer", "system": "a100x4-nvlink", "model": "gpt3-175b",
                     "phase": "decode", "op": "attn_score", "predicted_time_s": float("nan"), "measured_time_s": 1e-3,
                     "ape": float("nan"), "error": float("nan"), "bound": None, "skipped": True,
                     "reason": "unsupported <case> & more"})
    per_row = pd.DataFrame(rows)
    ok = per_row[~per_row["skipped"]]
    g = ok.groupby("kind")
    import numpy as np

    by_kind = pd.DataFrame({"n": g.size(), "mape": g["ape"].mean(), "median_ape": g["ape"].median(),
                            "max_ape": g["ape"].max(),
                            "bias": g["error"].agg(lambda e: float(np.exp(np.log(1 + e).mean())))}).reset_index()
    return FakeResult(per_row, by_kind, {"mape": float(ok["ape"].mean()), "rows": len(per_row),
                                         "predicted": len(ok)})


# run 1: gemm 10% / 30% (MAPE 20%), softmax 10%; run 2: gemm MAPE 30% (+10 pp), softmax 12% (+2 pp)
RUN1 = [("g1", "gemm", 1.1e-3, 1e-3), ("g2", "gemm", 1.3e-4, 1e-4), ("s1", "softmax", 9e-6, 1e-5)]
RUN2 = [("g1", "gemm", 1.2e-3, 1e-3), ("g2", "gemm", 1.4e-4, 1e-4), ("s1", "softmax", 8.8e-6, 1e-5)]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "track.db"
    csv = tmp_path / "m.csv"
    csv.write_text("id,kind\ng1,gemm\n")
    track.record(make_result(RUN1, skipped=1), path, label="baseline", files=[csv])
    track.record(make_result(RUN2, skipped=1), path, label="after <change>", files=[csv])
    return path


def test_record_stores_run_and_rows(db, tmp_path):
    runs = track.runs(db)
    assert list(runs["id"]) == [1, 2]
    assert list(runs["label"]) == ["baseline", "after <change>"]
    assert runs["mape"].iloc[0] == pytest.approx((0.1 + 0.3 + 0.1) / 3)
    assert list(runs["rows"]) == [4, 4] and list(runs["predicted"]) == [3, 3]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", runs["timestamp"].iloc[0])
    f = runs["files"].iloc[0]
    assert f[0]["path"].endswith("m.csv") and len(f[0]["sha256"]) == 64
    import hashlib

    assert f[0]["sha256"] == hashlib.sha256((tmp_path / "m.csv").read_bytes()).hexdigest()
    hashes = runs["spec_hashes"].iloc[0]
    assert set(hashes) == {"a100-sxm-80gb", "a100x4-nvlink"}
    from accelsim.arch.presets import load_system

    assert hashes["a100-sxm-80gb"] == track.spec_hash(load_system("a100-sxm-80gb"))
    import accelsim

    assert runs["accelsim_version"].iloc[0] == accelsim.__version__
    commit = runs["git_commit"].iloc[0]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)

    rows = track.latest_rows(db)
    assert list(rows["id"]) == ["g1", "g2", "s1", "s0"]
    assert rows.loc[0, "predicted_time_s"] == pytest.approx(1.2e-3)
    assert rows.loc[3, "skipped"] and pd.isna(rows.loc[3, "predicted_time_s"])
    assert rows.loc[3, "reason"] == "unsupported <case> & more"
    assert list(track.latest_rows(db, 1)["predicted_time_s"].iloc[:1]) == [pytest.approx(1.1e-3)]


def test_spec_hash_is_canonical():
    from accelsim.arch.presets import load_system

    a = load_system("trn2")
    assert track.spec_hash(a) == track.spec_hash(load_system("trn2"))
    assert track.spec_hash(a) != track.spec_hash(load_system("trn2", ["chip.hbm.bandwidth_Bps=4e12"]))
    assert track.spec_hash({"b": 1, "a": 2}) == track.spec_hash({"a": 2, "b": 1})


def test_history_and_regressions(db):
    h = track.history(db)
    assert list(zip(h["run_id"], h["kind"])) == [(1, "gemm"), (1, "softmax"), (2, "gemm"), (2, "softmax")]
    assert h["mape"].tolist() == pytest.approx([0.2, 0.1, 0.3, 0.12])
    reg = track.regressions(db)  # default 5 pp
    assert list(zip(reg["run_id"], reg["prev_run_id"], reg["kind"])) == [(2, 1, "gemm")]
    assert reg["delta_pp"].iloc[0] == pytest.approx(10.0)
    assert len(track.regressions(db, threshold=1.0)) == 2
    assert track.regressions(db, threshold=10.5).empty


def test_regression_compares_with_previous_run_of_that_kind(tmp_path):
    path = tmp_path / "t.db"
    track.record(make_result([("s1", "softmax", 1.1e-5, 1e-5)]), path)
    track.record(make_result([("g1", "gemm", 1.1e-3, 1e-3)]), path)          # no softmax in run 2
    track.record(make_result([("s1", "softmax", 1.2e-5, 1e-5)]), path)       # softmax 10% -> 20%
    reg = track.regressions(path)
    assert list(zip(reg["run_id"], reg["prev_run_id"], reg["kind"])) == [(3, 1, "softmax")]


def test_migrations_upgrade_v1_database_without_losing_data(tmp_path):
    path = tmp_path / "old.db"
    conn = track.connect(path, upto=1)
    assert track.schema_version(conn) == 1
    with conn:
        conn.execute("INSERT INTO runs (timestamp, accelsim_version, git_commit, spec_hashes, files, label, mape) "
                     "VALUES ('2024-01-01T00:00:00+00:00', '0.0.1', NULL, '{}', '[]', 'old', 0.15)")
        conn.executemany("INSERT INTO rows VALUES (1, ?, ?, 'a100-sxm-80gb', ?, ?, ?, ?, 'memory', ?, ?)",
                         [("g1", "gemm", 1.1, 1.0, 0.1, 0.1, 0, None), ("g2", "gemm", 0.8, 1.0, 0.2, -0.2, 0, None),
                          ("x", "layer", None, 1.0, None, None, 1, "no model")])
    conn.close()

    conn = track.connect(path)  # upgrades
    assert track.schema_version(conn) == track.LATEST_VERSION >= 2
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, track.LATEST_VERSION + 1))
    cols = {r[1] for r in conn.execute("PRAGMA table_info(rows)")}
    assert {"model", "phase", "op"} <= cols
    assert conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND name='rows_kind'").fetchone()
    conn.close()

    runs = track.runs(path)
    assert runs[["id", "label", "mape"]].values.tolist() == [[1, "old", 0.15]]
    rows = track.latest_rows(path)
    assert rows["id"].tolist() == ["g1", "g2", "x"] and rows["skipped"].tolist() == [False, False, True]
    assert rows["model"].isna().all()
    h = track.history(path)  # kind_stats back-filled from the v1 rows
    assert h[["kind", "n"]].values.tolist() == [["gemm", 2]]
    assert h["mape"].iloc[0] == pytest.approx(0.15) and h["bias"].iloc[0] == pytest.approx((1.1 * 0.8) ** 0.5)

    # a new run on the upgraded database; reopening applies nothing twice
    track.record(make_result(RUN1), path)
    assert track.runs(path)["id"].tolist() == [1, 2]
    conn = track.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == track.LATEST_VERSION
    conn.close()


def test_newer_or_foreign_database_is_refused(tmp_path):
    path = tmp_path / "new.db"
    track.connect(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 'x')")
    conn.close()
    with pytest.raises(MeasurementError, match="newer"):
        track.runs(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(MeasurementError, match="not a usable"):
        track.runs(junk)


# ------------------------------------------------------------------------------------------
# dashboard


VOID = {"meta", "img", "br", "hr", "link", "input"}


class Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.imgs, self.text, self.ids = [], [], [], [], {}
        self._id = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in VOID:
            return
        self.stack.append(tag)
        if "id" in a:
            self._id = a["id"]
            self.ids[a["id"]] = ""

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()
        self._id = None

    def handle_data(self, data):
        self.text.append(data)
        if self._id:
            self.ids[self._id] += data


def parse(html: str) -> Checker:
    c = Checker()
    c.feed(html)
    c.close()
    assert not c.errors and not c.stack, (c.errors, c.stack)
    return c


def test_dashboard_is_self_contained_and_matches_db(db, tmp_path):
    out = dashboard.write(db, tmp_path / "report.html")
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    c = parse(html)
    assert "http://" not in html and "https://" not in html and 'src="http' not in html
    assert "<script" not in html and "<link" not in html
    assert len(c.imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in c.imgs)
    import base64

    assert all(base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n" for s in c.imgs)
    runs = track.runs(db)
    assert c.ids["latest-run"] == str(runs["id"].iloc[-1])
    assert c.ids["latest-mape"] == f"{100 * runs['mape'].iloc[-1]:.2f}%"
    assert c.ids["latest-predicted"] == "3"
    # escaped user text, regression flagged and highlighted
    assert "after &lt;change&gt;" in html and "after <change>" not in html
    assert "unsupported &lt;case&gt; &amp; more" in html
    text = " ".join(c.text)
    assert "+10.00 pp" in text
    flagged = re.findall(r'<tr class="flag">(.*?)</tr>', html)
    assert len(flagged) == 2  # the regressions table row and the gemm row of the latest kind table
    assert "30.00%" in flagged[1] and "20.00%" in flagged[1] and "+10.00 pp" in flagged[1]
    assert re.search(r'<td class="flag">30\.00%</td>', html)  # run history cell
    # latest per-row table: worst first, skipped last
    table = html.split("rows (worst error first)")[1]
    order = [m for m in re.findall(r"<tr[^>]*><td class=\"l\">([^<]+)</td>", table)]
    assert order[:4] == ["g2", "g1", "s1", "s0"]


def test_dashboard_threshold_and_empty_db(db, tmp_path):
    html = dashboard.render(db, threshold=20)
    parse(html)
    assert '<tr class="flag">' not in html and "None: no kind" in html
    empty = dashboard.render(tmp_path / "empty.db")
    parse(empty)
    assert "No runs recorded yet" in empty


# ------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def fake_correlate(monkeypatch):
    """A stand-in accelsim.correlate.compare whose correlate() returns RUN1, then RUN2."""
    results = [make_result(RUN1), make_result(RUN2)]
    calls = []

    def correlate(files, fidelity="analytical", calibration=None):
        calls.append((list(files), fidelity, calibration))
        return results[len(calls) - 1]

    mod = types.ModuleType("accelsim.correlate.compare")
    mod.correlate = correlate
    monkeypatch.setitem(sys.modules, "accelsim.correlate.compare", mod)
    return calls


def test_cli_track_and_dashboard(fake_correlate, tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("id\n")
    cal = tmp_path / "cal.yaml"
    cal.write_text("{}\n")
    db = tmp_path / "t.db"
    r = CliRunner().invoke(main, ["track", str(csv), "--db", str(db), "--label", "first"])
    assert r.exit_code == 0, r.output
    assert "run 1" in r.output and "MAPE 16.67%" in r.output
    # another configuration (event tier, calibrated) is never compared with the first run
    r = CliRunner().invoke(main, ["track", str(csv), "--db", str(db), "--fidelity", "event", "--calibration", str(cal)])
    assert r.exit_code == 0, r.output
    assert "run 2" in r.output and "regression" not in r.output
    assert fake_correlate[1][1:] == ("event", str(cal))
    meta = track.runs(db)["meta"].iloc[1]
    assert meta["fidelity"] == "event" and meta["calibration"]["path"] == str(cal)
    out = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["dashboard", "--db", str(db), "-o", str(out), "--threshold", "5"])
    assert r.exit_code == 0, r.output
    assert "0 regression" in r.output or "no regression" in r.output, r.output
    parse(out.read_text())


def test_cli_track_errors(fake_correlate, tmp_path):
    r = CliRunner().invoke(main, ["track", str(tmp_path / "missing.csv"), "--db", str(tmp_path / "t.db")])
    assert r.exit_code == 2 and "no such measurement file" in r.output
    r = CliRunner().invoke(main, ["dashboard", "--db", str(tmp_path / "nope" / "t.db"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_track_with_the_real_correlate(tmp_path):
    """End to end: accelsim.correlate.compare.correlate on a small measurement file, CLI included."""
    cols = ("id,kind,system,chips,dtype,m,n,k,batch,rows,cols,elements,bytes,ranks,model,op,phase,seq_len,"
            "context_len,tp,pp,dp,compression,measured_time_s,source,notes")
    csv = tmp_path / "m.csv"
    csv.write_text(cols + "\n" + "\n".join([
        "g1,gemm,a100-sxm-80gb,1,fp16,4096,4096,4096,,,,,,,,,,,,,,,,0.0005,test,",
        "g2,gemm,a100-sxm-80gb,1,fp16,1,4096,4096,,,,,,,,,,,,,,,,0.00004,test,",
        "s1,softmax,a100-sxm-80gb,1,fp16,,,,,4096,4096,,,,,,,,,,,,,0.00008,test,"]) + "\n")
    db = tmp_path / "t.db"
    run_id, res = track.track([csv], db, label="a100")
    assert run_id == 1 and res.overall["predicted"] == 3
    runs = track.runs(db)
    assert runs["mape"].iloc[0] == pytest.approx(res.overall["mape"])
    assert runs["files"].iloc[0][0]["path"] == str(csv) and runs["meta"].iloc[0]["fidelity"] == "analytical"
    rows = track.latest_rows(db)
    assert rows["id"].tolist() == ["g1", "g2", "s1"]
    assert rows["predicted_time_s"].tolist() == pytest.approx(res.per_row["predicted_time_s"].tolist())
    h = track.history(db).set_index("kind")
    assert h.loc["gemm", "mape"] == pytest.approx(res.by_kind.set_index("kind").loc["gemm", "mape"])
    r = CliRunner().invoke(main, ["track", str(csv), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert f"MAPE {100 * res.overall['mape']:.2f}% (3 of 3 rows predicted)" in r.output
    html = dashboard.render(db)
    parse(html)
    assert f">{100 * res.overall['mape']:.2f}%<" in html


def test_a_run_records_mode_and_stack_hashes(tmp_path):
    import json as _json
    import sqlite3
    from pathlib import Path

    from accelsim.correlate import track as tracking

    parts = Path(__file__).resolve().parents[1] / "workloads" / "measurements" / "parts" / "a100_llmcompass.csv"
    db = tmp_path / "t.sqlite"
    tracking.track([parts], db)
    meta = _json.loads(sqlite3.connect(db).execute("SELECT meta FROM runs").fetchone()[0])
    assert meta["mode"] == "realistic" and set(meta["stacks"]) == {"cuda-eager", "inductor-cuda"}
    assert len(meta["stacks"]["cuda-eager"]) == 12


def _record_one(args):
    path, i, barrier = args
    barrier.wait()
    return track.record(make_result(RUN1), path, label=f"writer {i}")


def test_twenty_concurrent_writers_on_a_new_database_all_record(tmp_path):
    """Processes that open a new database at the same moment create its schema once (one write
    transaction taken before the schema is read) and every run is kept."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    path = tmp_path / "new.db"
    n = 20
    with ctx.Manager() as mgr:
        barrier = mgr.Barrier(n)
        with ctx.Pool(n) as pool:
            ids = pool.map(_record_one, [(path, i, barrier) for i in range(n)])
    assert sorted(ids) == list(range(1, n + 1))
    assert len(track.runs(path)) == n
    assert sorted(track.runs(path)["label"]) == sorted(f"writer {i}" for i in range(n))


def test_a_foreign_sqlite_file_is_refused_before_anything_is_written(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    with conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(MeasurementError, match=r"other\.db: not an accelsim tracking database.*customers"):
        track.record(make_result(RUN1), other)
    assert other.read_bytes() == before
    with pytest.raises(MeasurementError, match="not a regular file"):
        track.runs(tmp_path)


def test_regressions_only_within_a_configuration(tmp_path):
    """Three runs of one file, uncalibrated / calibrated / event tier, flag nothing although their
    errors differ widely; a fourth uncalibrated run that is 20 points worse is flagged against the
    first, not against the event-tier run before it."""
    path = tmp_path / "t.db"
    csv = tmp_path / "m.csv"
    csv.write_text("id,kind\ng1,gemm\n")
    cal = {"calibration": {"path": "cal.yaml", "sha256": "ab" * 32}}
    track.record(make_result([("g1", "gemm", 1.1e-3, 1e-3)]), path, files=[csv], meta={"fidelity": "analytical"})
    track.record(make_result([("g1", "gemm", 1.01e-3, 1e-3)]), path, files=[csv], meta={"fidelity": "analytical", **cal})
    track.record(make_result([("g1", "gemm", 1.3e-3, 1e-3)]), path, files=[csv], meta={"fidelity": "event"})
    assert track.regressions(path).empty
    assert track.runs(path)["config"].nunique() == 3
    track.record(make_result([("g1", "gemm", 1.3e-3, 1e-3)]), path, files=[csv], meta={"fidelity": "analytical"})
    reg = track.regressions(path)
    assert list(zip(reg["run_id"], reg["prev_run_id"], reg["kind"])) == [(4, 1, "gemm")]
    assert reg["delta_pp"].iloc[0] == pytest.approx(20.0)
    html = dashboard.render(path)
    assert len(parse(html).imgs) == 3 + 1  # one history per configuration, one scatter


def test_dashboard_end_to_end_calibrations_and_a_preset_regression(tmp_path):
    """The issue's case with the real pipeline: rows on a copy of the A100 preset whose measured
    times sit within 2 % of the model; three runs of that file (uncalibrated, calibrated, event
    tier) flag nothing; then the preset's HBM bandwidth is cut by 20 %: the memory-bound rows
    come out 25 % slower and the next uncalibrated run is flagged against the first."""
    import shutil

    from accelsim.correlate import correlate
    from accelsim.correlate.calibrate import calibrate

    root = Path(__file__).resolve().parents[1]
    preset = tmp_path / "a100.yaml"
    shutil.copy(root / "arch_configs" / "a100-sxm-80gb.yaml", preset)
    src = pd.read_csv(root / "workloads" / "measurements" / "parts" / "a100_llmcompass.csv")
    src = src[src["stack"] == "cuda-eager"]  # one stack, as a calibration needs
    rows = pd.concat([src[src["kind"] == k].head(3) for k in ("gemm", "softmax")])
    rows = rows.assign(system=str(preset))
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    pred = correlate([csv]).per_row.set_index("id")["predicted_time_s"]
    wiggle = np.resize([0.99, 1.02, 1.0], len(rows))
    rows["measured_time_s"] = rows["id"].map(pred).to_numpy() * wiggle
    rows.to_csv(csv, index=False)
    db = tmp_path / "t.db"
    track.track([csv], db, label="uncalibrated")
    cal = tmp_path / "cal.yaml"
    calibrate([csv], str(preset), k=2).write(cal)
    track.track([csv], db, label="calibrated", calibration=cal)
    track.track([csv], db, label="event", fidelity="event")
    assert track.regressions(db).empty
    text = preset.read_text()
    assert "bandwidth_Bps: 2.039 TB/s" in text
    preset.write_text(text.replace("bandwidth_Bps: 2.039 TB/s", "bandwidth_Bps: 1.6312 TB/s"))
    track.track([csv], db, label="hbm -20 %")
    reg = track.regressions(db)
    assert set(reg["run_id"]) == {4} and set(reg["prev_run_id"]) == {1}
    assert "softmax" in set(reg["kind"])
    assert parse(dashboard.render(db)).ids["latest-run"] == "4"
