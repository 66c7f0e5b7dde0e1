"""Parquet storage of sweep results that survives a killed run.

While a sweep runs, every batch of rows is written as its own small parquet file in
``OUT.parts/`` (written to a temporary name, then renamed, so a kill never leaves half a
file). When the sweep ends, all rows are consolidated into ``OUT`` (again via a temporary
file) and the parts folder is removed. ``load`` reads ``OUT`` and any parts, so a resumed
sweep sees every row that was flushed before the kill.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

from ..errors import ConfigError


def require_pyarrow() -> None:
    """Raise a ConfigError that says how to install pyarrow when it is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError('writing sweep results to parquet needs pyarrow: pip install -e ".[parquet]" '
                          '(or pip install pyarrow)') from None


def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (an axis of numbers and strings) become strings."""
    out = df
    for c in df.columns:
        if df[c].dtype != object:
            continue
        kinds = {type(v) for v in df[c] if v is not None and not (isinstance(v, float) and v != v)}
        numeric = kinds <= {int, float} and kinds != set()
        if len(kinds) > 1 and not numeric:
            if out is df:
                out = df.copy()
            out[c] = [None if v is None else str(v) for v in df[c]]
    return out


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        parquet_safe(df).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Store:
    """Results of one sweep at ``path`` (a parquet file) plus its in-progress parts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.run = uuid.uuid4().hex[:8]
        self.seq = 0

    def load(self) -> pd.DataFrame:
        """Every stored row (the consolidated file and any parts), parts in write order; a file
        that is not a readable sweep result (truncated, or something else) is refused by name."""
        frames = []
        if self.path.exists():
            frames.append(_read(self.path))
        if self.parts.is_dir():
            for f in sorted(self.parts.glob("part-*.parquet"), key=lambda f: (f.stat().st_mtime_ns, f.name)):
                frames.append(_read(f))
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def check_overwrite(self, hashes: set[str]) -> None:
        """Refuse to replace ``path`` unless it is a sweep result of the same space (some of its
        point hashes are among ``hashes``): -o on the wrong file must not destroy it."""
        if not self.path.exists():
            return
        try:
            old = _read(self.path)
        except ConfigError as e:
            raise ConfigError(f"{e}; refusing to overwrite it (choose another -o, or remove it)") from None
        if "point_hash" not in old.columns:
            raise ConfigError(f"{self.path}: not a sweep result (no point_hash column); refusing to overwrite it "
                              f"(choose another -o, or remove it)")
        if len(old) and not set(old["point_hash"]) & hashes:
            raise ConfigError(f"{self.path}: results of another design space; refusing to overwrite them "
                              f"(choose another -o, remove it, or pass --overwrite)")

    def clear(self) -> None:
        """Forget earlier results (a fresh sweep)."""
        if self.path.exists():
            self.path.unlink()
        if self.parts.is_dir():
            shutil.rmtree(self.parts)

    def append(self, df: pd.DataFrame) -> None:
        """Flush a batch of rows as one part file."""
        if not len(df):
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        write_parquet(df, self.parts / f"part-{self.run}-{self.seq:06d}.parquet")

    def finish(self, df: pd.DataFrame) -> None:
        """Write all rows to ``path`` and drop the parts."""
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(df, self.path)
        if self.parts.is_dir():
            shutil.rmtree(self.parts)


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise ConfigError(f"{path}: not a readable parquet sweep result (truncated or another kind of file: "
                          f"{type(e).__name__})") from None


__all__ = ["Store", "require_pyarrow", "write_parquet", "parquet_safe"]
