"""A sweep's results store (one SQLite file, a row per point, committed as each point finishes) and
its CSV / Parquet export.

Several sweeps may write one store at once: the table is created with IF NOT EXISTS, new columns are
added inside an immediate (write-locked) transaction after re-reading the columns another writer may
have added, and a busy store is waited for. A write that fails (a full disk) raises one
:class:`PlannerInputError`; the rows committed before it stay.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from planner.errors import PlannerInputError

FIXED_COLUMNS = ("key", "point", "status", "error", "elapsed_s")
BUSY_TIMEOUT_S = 60.0
"""How long a writer waits for another writer's lock on the same store."""


class Store:
    """One SQLite file: table ``points``, a row per point, columns added as new fields appear.
    ``readonly`` opens an existing file without creating, converting or locking anything in it."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?mode=ro", uri=True)
            else:
                self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
                if self.path != ":memory:":
                    self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS points (key TEXT PRIMARY KEY, point INTEGER, status TEXT,"
                    " error TEXT, elapsed_s REAL)"
                )
                self.db.commit()
            self.columns = self._read_columns()
        except sqlite3.Error as e:
            raise PlannerInputError("out", f"cannot open the results store {self.path}: {e}") from None

    def _read_columns(self) -> list[str]:
        return [row[1] for row in self.db.execute("PRAGMA table_info(points)")]

    def done(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT key FROM points")}

    def put(self, key: str, index: int, inputs: dict[str, Any], results: dict[str, Any] | None, error: str | None,
            elapsed_s: float) -> None:  # fmt: skip
        row: dict[str, Any] = {
            "key": key,
            "point": index,
            "status": "error" if error else "ok",
            "error": error,
            "elapsed_s": elapsed_s,
        }
        for k, v in {**inputs, **(results or {})}.items():
            if k not in row:
                row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
        try:
            if any(k not in self.columns for k in row):
                self.db.execute("BEGIN IMMEDIATE")  # another writer may have added some meanwhile
                self.columns = self._read_columns()
                for k in row:
                    if k not in self.columns:
                        self.db.execute(f"ALTER TABLE points ADD COLUMN {_q(k)}")
                        self.columns.append(k)
            cols = ", ".join(_q(k) for k in row)
            marks = ", ".join("?" for _ in row)
            self.db.execute(f"INSERT OR REPLACE INTO points ({cols}) VALUES ({marks})", list(row.values()))
            self.db.commit()
        except sqlite3.Error as e:
            self._rollback()
            raise PlannerInputError(
                "out", f"cannot write to the results store {self.path}: {e}; the rows committed so far are kept"
            ) from None

    def _rollback(self) -> None:
        try:
            self.db.rollback()
        except sqlite3.Error:
            pass

    def rows(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (every column; None where a row has no value), in the order of ``keys`` when given."""
        cur = self.db.execute("SELECT * FROM points")
        names = [c[0] for c in cur.description]
        by_key = {}
        for values in cur:
            by_key[values[0]] = dict(zip(names, values, strict=True))
        if keys is None:
            return sorted(by_key.values(), key=lambda r: r["point"])
        return [by_key[k] for k in keys if k in by_key]

    def close(self) -> None:
        self.db.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
EXPORT_SUFFIXES = (".csv", ".parquet")


def store_path(out: str | os.PathLike[str]) -> tuple[str, str | None]:
    """(SQLite store, export file or None) for ``--out``: a ``.csv``/``.parquet`` export keeps its
    store next to it as ``OUT.sqlite``; any other name is the store itself."""
    p = str(out)
    suffix = Path(p).suffix.lower()
    if suffix in EXPORT_SUFFIXES:
        if suffix == ".parquet":
            _require_parquet()
        return p + ".sqlite", p
    if suffix and suffix not in STORE_SUFFIXES:
        raise PlannerInputError("out", f"must end in .db, .sqlite, .sqlite3 (the store), .csv or .parquet; got {p}")
    return p, None


def _require_parquet() -> None:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise PlannerInputError("out", ".parquet needs pandas and pyarrow installed; use .csv or .sqlite") from None


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of ``rows``, the fixed ones first, then in order of first appearance."""
    cols: dict[str, None] = dict.fromkeys(FIXED_COLUMNS)
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def export(rows: list[dict[str, Any]], path: str) -> None:
    """Write rows as CSV or Parquet (by the suffix)."""
    cols = columns(rows)
    try:
        if path.lower().endswith(".parquet"):
            _require_parquet()
            import pandas as pd

            pd.DataFrame(rows, columns=cols).to_parquet(path)
            return
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    except OSError as e:
        raise PlannerInputError("out", f"cannot write {path}: {e.strerror}") from None
