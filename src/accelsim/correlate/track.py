"""Regression tracking: correlation runs stored in a SQLite database.

Each :func:`record` call stores one correlation run (what was predicted, against which files,
with which simulator version and system specs) and its per-row errors, so that a later run can
be compared with the previous ones: :func:`history` gives the MAPE per kind per run and
:func:`regressions` the runs where a kind's MAPE grew by more than a threshold.

Units: ``ape``, ``error`` (p / m - 1) and ``mape`` are stored as fractions, exactly as the
correlation result gives them (0.25 means 25%); ``bias`` is the geometric mean of p / m (1 =
unbiased); thresholds are in absolute percentage points.

The schema is versioned: ``schema_version`` lists the applied migrations, and :func:`connect`
applies the missing ones in order (see ``MIGRATIONS``), so an old database keeps its data.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import subprocess
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MeasurementError

#: fraction -> percentage points (``mape`` is stored as a fraction)
PERCENT = 100.0
DEFAULT_THRESHOLD_PP = 5.0


# --------------------------------------------------------------------------------------------
# schema and migrations


def _v1_create(conn: sqlite3.Connection) -> None:
    conn.execute("""CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        timestamp TEXT NOT NULL,          -- UTC, ISO 8601
        accelsim_version TEXT,
        git_commit TEXT,                  -- HEAD of the accelsim working tree, NULL outside git
        spec_hashes TEXT NOT NULL,        -- JSON {system name: sha256 of its canonical JSON}
        files TEXT NOT NULL,              -- JSON [{"path": ..., "sha256": ...}]
        label TEXT,
        mape REAL                         -- overall MAPE, fraction
    )""")
    conn.execute("""CREATE TABLE rows (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        row_id TEXT NOT NULL,
        kind TEXT,
        system TEXT,
        predicted_time_s REAL,
        measured_time_s REAL,
        ape REAL,
        error REAL,
        bound TEXT,
        skipped INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        PRIMARY KEY (run_id, row_id)
    )""")


def _v2_columns(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE rows ADD COLUMN model TEXT")
    conn.execute("ALTER TABLE rows ADD COLUMN phase TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN git_dirty INTEGER")
    conn.execute("ALTER TABLE runs ADD COLUMN meta TEXT")  # JSON: overall stats, fidelity, calibration
    conn.execute("CREATE INDEX rows_kind ON rows (kind, run_id)")


def _v3_kind_stats(conn: sqlite3.Connection) -> None:
    conn.execute("""CREATE TABLE kind_stats (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        n INTEGER NOT NULL,
        mape REAL, median_ape REAL, max_ape REAL, bias REAL,
        PRIMARY KEY (run_id, kind)
    )""")
    # backfill the runs recorded before this table existed from their rows
    df = pd.read_sql_query("SELECT run_id, kind, ape, error FROM rows WHERE skipped = 0 AND ape IS NOT NULL", conn)
    for (run_id, kind), g in df.groupby(["run_id", "kind"]):
        conn.execute("INSERT INTO kind_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (int(run_id), kind, len(g), float(g["ape"].mean()), float(g["ape"].median()),
                      float(g["ape"].max()), _geomean_ratio(g["error"])))


def _v4_op(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE rows ADD COLUMN op TEXT")


def _geomean_ratio(error: pd.Series) -> float | None:
    """Geometric mean of predicted / measured (= 1 + error)."""
    r = (1.0 + error.dropna().astype(float))
    r = r[r > 0]
    return float(np.exp(np.log(r).mean())) if len(r) else None


#: ordered migrations: (version, description, function); never edit a released one, append.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite3.Connection], None]]] = [
    (1, "create runs and rows", _v1_create),
    (2, "rows.model/phase, runs.git_dirty/meta, index on rows(kind)", _v2_columns),
    (3, "kind_stats per run (backfilled from rows)", _v3_kind_stats),
    (4, "rows.op (layer_op rows)", _v4_op),
]
LATEST_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to ``conn`` (0 for an empty database)."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if not has:
        return 0
    v = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return int(v or 0)


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply the missing migrations in order; returns the version. Everything happens in one
    write transaction taken before the schema is read (``BEGIN IMMEDIATE``), so processes that
    open a new database at the same moment create it once: the others wait for the lock (the
    connection's busy timeout) and find it done. A SQLite file with tables but no
    ``schema_version`` (someone else's database) is refused before anything is written."""
    upto = LATEST_VERSION if upto is None else upto
    if schema_version(conn) >= upto:  # the common case: nothing to do, no write lock
        return _check_version(schema_version(conn))
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current == 0:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if tables:
                raise MeasurementError(f"not an accelsim tracking database (it has tables {', '.join(sorted(tables))} "
                                       f"and no schema_version); nothing was written")
            conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at TEXT)")
        _check_version(current)
        for version, description, fn in MIGRATIONS:
            if current < version <= upto:
                fn(conn)
                conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (version, description, _now()))
                current = version
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return current


def _check_version(current: int) -> int:
    if current > LATEST_VERSION:
        raise MeasurementError(f"tracking database has schema version {current}, newer than this accelsim "
                               f"understands ({LATEST_VERSION}); upgrade accelsim")
    return current


def connect(db_path: str | Path, upto: int | None = None) -> sqlite3.Connection:
    """Open (creating if needed) a tracking database and bring its schema up to date."""
    path = Path(db_path)
    if path.parent and not path.parent.exists():
        raise MeasurementError(f"{db_path}: directory {path.parent} does not exist")
    if path.exists() and not path.is_file():
        raise MeasurementError(f"{db_path}: not a regular file")
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, upto)
    except MeasurementError as e:
        raise MeasurementError(f"{db_path}: {e}") from None
    except sqlite3.DatabaseError as e:
        raise MeasurementError(f"{db_path}: not a usable accelsim tracking database ({e})") from None
    return conn


BUSY_TIMEOUT_S = 60.0
"""How long a writer waits for another's lock (concurrent ``track`` runs on one database)."""


# --------------------------------------------------------------------------------------------
# recording


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _float(x: Any) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _text(x: Any) -> str | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return str(x)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def spec_hash(spec: Any) -> str:
    """sha256 of a system spec's canonical JSON (sorted keys, no whitespace)."""
    data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
    canon = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


def git_commit(path: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty?) of the accelsim git checkout this package runs from, (None, None)
    when it is not one (an installed wheel, or a package inside some other repository)."""
    pkg = Path(path) if path else Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=pkg, capture_output=True,
                             text=True, timeout=10)
        lines = top.stdout.split()
        if top.returncode != 0 or len(lines) != 2:
            return None, None
        if path is None and (Path(lines[0]) / "src" / "accelsim").resolve() != pkg:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=pkg,
                               capture_output=True, text=True, timeout=30)
        return lines[1], (bool(dirty.stdout.strip()) if dirty.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def _specs_used(result: Any, systems: Iterable[str], system_specs: Mapping[str, Any] | None) -> dict[str, str | None]:
    if system_specs is None:
        system_specs = getattr(result, "systems", None) if isinstance(getattr(result, "systems", None), Mapping) else {}
    out: dict[str, str | None] = {}
    for name in sorted({s for s in systems if s}):
        spec = system_specs.get(name)
        if spec is None:
            from ..arch.presets import load_system
            from ..errors import AccelsimError

            try:
                spec = load_system(name)
            except AccelsimError:
                spec = None
        out[name] = spec_hash(spec) if spec is not None else None
    return out


ROW_COLUMNS = ["id", "kind", "system", "model", "phase", "op", "predicted_time_s", "measured_time_s", "ape", "error",
               "bound", "skipped", "reason"]


def record(result: Any, db_path: str | Path, label: str | None = None, files: Iterable[str | Path] = (),
           system_specs: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> int:
    """Store a correlation result (``per_row``, ``by_kind``, ``overall``) as a new run; returns its id.

    ``files`` are the measurement files it was computed from (stored with their sha256);
    ``system_specs`` maps system names to the specs used (default: the shipped presets);
    ``meta`` is extra JSON-serializable context (fidelity, calibration file, ...).
    """
    per_row: pd.DataFrame = result.per_row
    missing = [c for c in ("id", "kind", "measured_time_s") if c not in per_row.columns]
    if missing:
        raise MeasurementError(f"correlation result lacks per_row column(s) {', '.join(missing)}")
    per_row = per_row.reindex(columns=ROW_COLUMNS)
    files_json = [{"path": str(f), "sha256": sha256_file(f)} for f in files]
    specs = _specs_used(result, per_row["system"].dropna().astype(str), system_specs)
    commit, dirty = git_commit()
    overall = dict(getattr(result, "overall", {}) or {})
    from ..version import __version__

    meta_json = {"overall": overall, **(meta or {})}
    conn = connect(db_path)
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO runs (timestamp, accelsim_version, git_commit, spec_hashes, files, label, mape, "
                "git_dirty, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), __version__, commit, json.dumps(specs, sort_keys=True), json.dumps(files_json), label,
                 _float(overall.get("mape")), None if dirty is None else int(dirty),
                 json.dumps(meta_json, sort_keys=True, default=str)))
            run_id = int(cur.lastrowid)
            conn.executemany(
                "INSERT INTO rows (run_id, row_id, kind, system, model, phase, op, predicted_time_s, measured_time_s, "
                "ape, error, bound, skipped, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, str(r.id), _text(r.kind), _text(r.system), _text(r.model), _text(r.phase), _text(r.op),
                  _float(r.predicted_time_s), _float(r.measured_time_s), _float(r.ape), _float(r.error),
                  _text(r.bound), int(bool(r.skipped)) if _text(r.skipped) is not None else 0, _text(r.reason))
                 for r in per_row.itertuples(index=False)])
            by_kind = getattr(result, "by_kind", None)
            if by_kind is None or len(by_kind) == 0:
                by_kind = _kind_stats(per_row)
            conn.executemany(
                "INSERT INTO kind_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, str(r["kind"]), int(r["n"]), _float(r.get("mape")), _float(r.get("median_ape")),
                  _float(r.get("max_ape")), _float(r.get("bias"))) for _, r in by_kind.iterrows()])
    finally:
        conn.close()
    return run_id


def _kind_stats(per_row: pd.DataFrame) -> pd.DataFrame:
    ok = per_row[~per_row["skipped"].fillna(False).astype(bool) & per_row["ape"].notna()]
    g = ok.groupby("kind")
    return pd.DataFrame({"n": g.size(), "mape": g["ape"].mean(), "median_ape": g["ape"].median(),
                         "max_ape": g["ape"].max(), "bias": g["error"].agg(_geomean_ratio)}).reset_index()


# --------------------------------------------------------------------------------------------
# queries


def _query(db_path: str | Path, sql: str, params: tuple = ()) -> pd.DataFrame:
    conn = connect(db_path)
    try:
        return pd.read_sql_query(sql, conn, params=params)
    finally:
        conn.close()


def runs(db_path: str | Path) -> pd.DataFrame:
    """All runs, oldest first: id, timestamp, accelsim_version, git_commit, git_dirty, label, mape,
    rows, predicted, spec_hashes (dict), files (list)."""
    df = _query(db_path, "SELECT id, timestamp, accelsim_version, git_commit, git_dirty, label, mape, spec_hashes, "
                         "files, meta FROM runs ORDER BY id")
    meta = df.pop("meta").map(lambda s: json.loads(s) if isinstance(s, str) else {})
    overall = meta.map(lambda m: m.get("overall", {}))
    df["rows"] = overall.map(lambda o: o.get("rows"))
    df["predicted"] = overall.map(lambda o: o.get("predicted"))
    df["spec_hashes"] = df["spec_hashes"].map(json.loads)
    df["files"] = df["files"].map(json.loads)
    df["meta"] = meta
    df["config"] = [configuration(f, m) for f, m in zip(df["files"], meta)]
    return df


def configuration(files: list, meta: Mapping[str, Any]) -> str:
    """What makes two runs comparable, as a short readable key: the measurement files (by path;
    their rows may change), the fidelity, the mode, the calibration (by content) and the
    software stacks the rows ran under (by name). The model, the presets and the stacks' data
    are what a regression is looked for in, so they are not part of it."""
    names = sorted(Path(str(f.get("path", f)) if isinstance(f, dict) else str(f)).name for f in files)
    cal = meta.get("calibration") or {}
    parts = [",".join(names) or "-", str(meta.get("fidelity") or "analytical"), str(meta.get("mode") or "-"),
             "calibrated " + str(cal.get("sha256", ""))[:12] if cal else "uncalibrated",
             "stacks " + ",".join(sorted(meta.get("stacks") or {})) if meta.get("stacks") else "stacks -"]
    return " | ".join(parts)


def history(db_path: str | Path, run_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """MAPE per kind per run, oldest first: run_id, timestamp, label, config (the run's
    ``configuration``), kind, n, mape, median_ape, max_ape (fractions), bias (geometric mean of
    p / m); one row per run and kind. ``run_table``: ``runs(db_path)`` if the caller has it."""
    h = _query(db_path, "SELECT r.id AS run_id, r.timestamp, r.label, k.kind, k.n, k.mape, k.median_ape, "
                        "k.max_ape, k.bias FROM kind_stats k JOIN runs r ON r.id = k.run_id "
                        "ORDER BY r.id, k.kind")
    configs = (runs(db_path) if run_table is None else run_table).set_index("id")["config"]
    h.insert(3, "config", h["run_id"].map(configs))
    return h


def latest_run_id(db_path: str | Path) -> int | None:
    df = _query(db_path, "SELECT MAX(id) AS id FROM runs")
    v = df["id"].iloc[0]
    return None if pd.isna(v) else int(v)


def latest_rows(db_path: str | Path, run_id: int | None = None) -> pd.DataFrame:
    """The per-row table of ``run_id`` (default: the latest run), in the correlation result's
    columns (``id`` is the measurement row id); empty if there are no runs."""
    run_id = latest_run_id(db_path) if run_id is None else run_id
    df = _query(db_path, "SELECT row_id AS id, kind, system, model, phase, op, predicted_time_s, measured_time_s, ape, "
                         "error, bound, skipped, reason FROM rows WHERE run_id = ? ORDER BY rowid",
                (-1 if run_id is None else int(run_id),))
    df["skipped"] = df["skipped"].astype(bool)
    return df


def regressions(db_path: str | Path, threshold: float = DEFAULT_THRESHOLD_PP,
                hist: pd.DataFrame | None = None) -> pd.DataFrame:
    """Runs where a kind's MAPE grew by more than ``threshold`` percentage points over the previous
    run of the same configuration (files, fidelity, mode, calibration, stacks) that measured
    that kind: run_id, prev_run_id, label, config, kind, mape, prev_mape (fractions), delta_pp
    (percentage points). A run of another configuration is never its baseline. ``hist``:
    ``history(db_path)`` if the caller has it."""
    h = (history(db_path) if hist is None else hist).dropna(subset=["mape"])
    out = []
    for (config, kind), g in h.groupby(["config", "kind"], sort=True):
        g = g.sort_values("run_id")
        prev = g.shift(1)
        for (_, cur), (_, p) in zip(g.iterrows(), prev.iterrows()):
            if pd.isna(p["run_id"]):
                continue
            delta = PERCENT * (cur["mape"] - p["mape"])
            if delta > threshold:
                out.append({"run_id": int(cur["run_id"]), "prev_run_id": int(p["run_id"]), "label": cur["label"],
                            "config": config, "kind": kind, "mape": cur["mape"], "prev_mape": p["mape"],
                            "delta_pp": delta})
    cols = ["run_id", "prev_run_id", "label", "config", "kind", "mape", "prev_mape", "delta_pp"]
    return pd.DataFrame(out, columns=cols).sort_values(["run_id", "kind"], ignore_index=True)


# --------------------------------------------------------------------------------------------
# correlate + record (the CLI's ``accelsim track``)


def _stack_hashes(files: list[Path]) -> dict[str, str]:
    """sha256 (12 hex digits) of each stack the rows of ``files`` run under (their ``stack``
    column, else their system's default stack)."""
    import hashlib

    from ..arch.presets import load_system
    from ..errors import AccelsimError
    from ..stack.presets import load_stack
    from .schema import load_measurements

    try:
        df = load_measurements(files)
    except AccelsimError:
        return {}
    names = set(df["stack"].dropna()) if "stack" in df else set()
    for system in set(df["system"]) - set(df.loc[df["stack"].notna(), "system"] if "stack" in df else []):
        try:
            if load_system(system).stack:
                names.add(load_system(system).stack)
        except AccelsimError:
            continue
    out = {}
    for n in sorted(names):
        try:
            st = load_stack(n)
        except AccelsimError:
            continue
        out[n] = hashlib.sha256(json.dumps(st.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    return out


def track(files: Iterable[str | Path], db_path: str | Path, label: str | None = None,
          fidelity: str = "analytical", calibration: str | Path | None = None,
          mode: str | None = None) -> tuple[int, Any]:
    """Correlate the measurement ``files`` and record the run; returns (run id, result). The run's
    meta records the mode and a sha256 of every software stack the rows ran under, next to the
    system spec hashes, so a change of stack data shows up as such in the history."""
    from .compare import correlate  # the correlation itself lives in compare.py

    files = [Path(f) for f in files]
    for f in files:
        if not f.is_file():
            raise MeasurementError(f"{f}: no such measurement file")
    result = correlate(files, fidelity=fidelity, calibration=calibration, **({"mode": mode} if mode else {}))
    meta = {"fidelity": fidelity, "mode": (getattr(result, "overall", None) or {}).get("mode"),
            "stacks": _stack_hashes(files)}
    if calibration:
        meta["calibration"] = {"path": str(calibration), "sha256": sha256_file(calibration)}
    run_id = record(result, db_path, label=label, files=files, meta=meta)
    return run_id, result
