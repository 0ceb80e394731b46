"""The results store: one SQLite file (WAL) with tables ``cells`` and ``results``.

    mosquito-ssl benchmarks status runs/demo/results.sqlite
    mosquito-ssl benchmarks merge runs/all.sqlite runs/demo/results.shard-*-of-4.sqlite

Owns the writes and the sweep's own bookkeeping reads: the one-transaction commit of a
finished cell (stale rows deleted, new rows inserted, ``cells`` row upserted with status
``done``; a swept setting's column added on demand), failure records, expected cells,
``meta.axes`` (``record_axes``) and merging shard stores. The schema and its migration are
``schema.py``'s, reading for reports ``read.py``'s. Writers from several processes are safe:
WAL, ``busy_timeout`` and a retry with backoff on "database is locked".
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from ..errors import StoreError
from . import schema
from .schema import CELL_COLUMNS, RESULT_COLUMNS, SCHEMA, SCHEMA_VERSION, TAKE_SQL, migrate, table_columns

__all__ = ["CELL_COLUMNS", "RESULT_COLUMNS", "SCHEMA_VERSION", "ResultsStore", "merge_stores"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
RETRIES = 8


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _placeholders(columns: Iterable[str]) -> str:
    columns = list(columns)
    return f"({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


class ResultsStore:
    """A results store file; every method opens a short-lived connection (fork/process safe)."""

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(
                f"results store {self.path} does not exist: run `mosquito-ssl benchmarks run` "
                "first or pass the store's path"
            )
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._retry(self._init_schema)
        else:
            self._retry(self._check_tables)

    # ---- connections and transactions ----------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store {self.path} ({exc}): check the path and permissions") from exc
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return con

    def _retry(self, fn, *args):
        """Run ``fn(con, *args)``; on 'database is locked' back off and try again."""
        for attempt in range(RETRIES):
            try:
                with closing(self._connect()) as con:
                    return fn(con, *args)
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or attempt == RETRIES - 1:
                    raise StoreError(f"results store {self.path}: {exc}") from exc
                delay = min(0.05 * 2**attempt, 2.0) * (1 + random.random())
                log.debug("store locked (%s); retry %d in %.2fs", exc, attempt + 1, delay)
                time.sleep(delay)
            except sqlite3.IntegrityError:
                raise  # bad rows (e.g. a repeated result row), not a bad store: the caller decides
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"{self.path} is not a usable results store ({exc}): "
                    "pass a store written by `mosquito-ssl benchmarks run`"
                ) from exc
        raise AssertionError("unreachable")

    @staticmethod
    @contextmanager
    def _transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a busy writer waits here, not mid-way.
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _init_schema(self, con: sqlite3.Connection) -> None:
        con.execute("PRAGMA journal_mode=WAL")
        with self._transaction(con):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            migrate(con)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (time.strftime("%Y-%m-%dT%H:%M:%S%z"),))

    def _check_tables(self, con: sqlite3.Connection) -> None:
        con.execute("PRAGMA busy_timeout = 1000")  # fail fast on files that are not SQLite
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"cells", "results"} <= names:
            raise StoreError(
                f"{self.path} has no cells/results tables: it is not a results store "
                "written by `mosquito-ssl benchmarks run`"
            )
        if "method" not in table_columns(con, "results") or schema.version(con) < int(SCHEMA_VERSION):
            with self._transaction(con):
                migrate(con)

    # ---- writing ----------------------------------------------------------------------------
    def commit_cell(self, cell: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Store a finished cell in ONE transaction: old rows out, new rows in, status done."""
        self._retry(self._write_cell, dict(cell, status="done", error=None), rows)

    def record_failure(self, cell: dict[str, Any], error: str) -> None:
        """Mark a cell failed (its rows, if any, are removed: only done cells have rows)."""
        line = " ".join(str(error).split())[:500] or "unknown error"
        self._retry(self._write_cell, dict(cell, status="failed", error=line), [])

    def _write_cell(self, con: sqlite3.Connection, cell: dict, rows: list[dict]) -> None:
        # Keys beyond the fixed columns are swept settings (Cell.columns()): their own columns.
        axes = {k: schema.stored_value(v) for k, v in cell.items() if k not in CELL_COLUMNS and v is not None}
        cell = {k: v for k, v in cell.items() if k in CELL_COLUMNS} | axes
        result_columns, cell_columns = (*RESULT_COLUMNS, *axes), (*CELL_COLUMNS, *axes)
        setting = {k: cell.get(k) for k in result_columns if k in cell_columns}
        values = [tuple({**setting, **_row_values(r)}.get(k) for k in result_columns) for r in rows]
        with self._transaction(con):
            self._add_columns(con, {k: schema.column_type(v) for k, v in axes.items()})
            con.execute("DELETE FROM results WHERE cell_id = ?", (cell["cell_id"],))
            con.executemany(f"INSERT INTO results {_placeholders(result_columns)}", values)
            con.execute(
                f"INSERT OR REPLACE INTO cells {_placeholders(cell_columns)}", tuple(cell.get(k) for k in cell_columns)
            )

    def _add_columns(self, con: sqlite3.Connection, types: dict[str, str], where: str = "main") -> None:
        try:
            schema.add_columns(con, types, where)
        except ValueError as exc:
            raise StoreError(f"{self.path}: {exc}; swept settings need lower-case names of their own") from exc

    def record_axes(self, axes: dict[str, dict[str, Any]]) -> None:
        """Describe the swept settings in ``meta.axes`` (merged with what is there) and add their columns."""

        def write(con):
            with self._transaction(con):
                merged = schema.merge_axes(schema.read_axes(con), axes)
                types = {k: "REAL" if v.get("numeric") else "TEXT" for k, v in axes.items()}
                self._add_columns(con, types)
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (schema.AXES_KEY, json.dumps(merged)))

        self._retry(write)

    def axes(self) -> dict[str, dict[str, Any]]:
        """``meta.axes``: column -> {"table", "key", "numeric"} of every swept setting."""
        return self._retry(schema.read_axes)

    def set_meta(self, key: str, value: str) -> None:
        def write(con):
            with self._transaction(con):
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

        self._retry(write)

    def add_expected(self, cell_ids: Iterable[str]) -> None:
        """Remember which cells the sweep (or shard) expects, so ``status`` can count pending ones."""

        def write(con):
            with self._transaction(con):
                row = con.execute("SELECT value FROM meta WHERE key = 'expected_cells'").fetchone()
                ids = set(json.loads(row[0])) if row else set()
                con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('expected_cells', ?)",
                    (json.dumps(sorted(ids | set(cell_ids))),),
                )

        self._retry(write)

    def expected_ids(self) -> set[str] | None:
        rows = self._query("SELECT value FROM meta WHERE key = 'expected_cells'")
        return set(json.loads(rows[0][0])) if rows else None

    # ---- reading ----------------------------------------------------------------------------
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._retry(lambda con: con.execute(sql, params).fetchall())

    def done_ids(self) -> set[str]:
        return {r[0] for r in self._query("SELECT cell_id FROM cells WHERE status = 'done'")}

    def cell_status(self) -> dict[str, tuple[str, str | None]]:
        """cell_id -> (status, error) for every recorded cell."""
        return {r[0]: (r[1], r[2]) for r in self._query("SELECT cell_id, status, error FROM cells")}

    def count_rows(self, cell_id: str | None = None) -> int:
        if cell_id is None:
            return self._query("SELECT COUNT(*) FROM results")[0][0]
        return self._query("SELECT COUNT(*) FROM results WHERE cell_id = ?", (cell_id,))[0][0]

    def frame(self, table: str = "results"):
        """A table as a pandas DataFrame (``results``, ``cells`` or ``meta``)."""
        import pandas as pd

        if table not in ("results", "cells", "meta"):
            raise StoreError(f"unknown table {table!r}: use results, cells or meta")
        with closing(self._connect()) as con:
            return pd.read_sql(f"SELECT * FROM {table}", con)

    # ---- merging ----------------------------------------------------------------------------
    def merge_from(self, other: Path) -> int:
        """Copy another store's cells in one transaction; returns how many cells were taken.

        Idempotent. A done cell beats a failed one; between two done (or two failed) copies
        the later ``finished_at`` wins, so merging the same shard twice changes nothing.
        """
        other = Path(other)
        if not other.is_file():
            raise StoreError(f"shard store {other} does not exist: pass the results.shard-I-of-N.sqlite files")
        if other.resolve() == self.path.resolve():
            log.warning("skipping %s: it is the output store itself", other)
            return 0
        ResultsStore(other, create=False)  # fails cleanly if it is not a results store
        taken = self._retry(self._merge, str(other))
        expected = ResultsStore(other, create=False).expected_ids()
        if expected:
            self.add_expected(expected)
        return taken

    def _merge(self, con: sqlite3.Connection, other: str) -> int:
        con.execute("ATTACH DATABASE ? AS src", (other,))
        try:
            with self._transaction(con):
                extra = self._merge_axes(con)
                con.execute("DROP TABLE IF EXISTS temp.take")
                con.execute(TAKE_SQL)
                cols = ", ".join((*RESULT_COLUMNS, *extra["results"]))
                con.execute("DELETE FROM main.results WHERE cell_id IN (SELECT cell_id FROM temp.take)")
                con.execute(
                    f"INSERT INTO main.results ({cols}) SELECT {cols} FROM src.results "
                    "WHERE cell_id IN (SELECT cell_id FROM temp.take)"
                )
                ccols = ", ".join((*CELL_COLUMNS, *extra["cells"]))
                con.execute(
                    f"INSERT OR REPLACE INTO main.cells ({ccols}) SELECT {ccols} FROM src.cells "
                    "WHERE cell_id IN (SELECT cell_id FROM temp.take)"
                )
                taken = con.execute("SELECT COUNT(*) FROM temp.take").fetchone()[0]
                con.execute("DROP TABLE temp.take")
        finally:
            con.execute("DETACH DATABASE src")
        return taken

    def _merge_axes(self, con: sqlite3.Connection) -> dict[str, list[str]]:
        """The attached store's swept-setting columns, added to this one; ``meta.axes`` merged."""
        extra: dict[str, list[str]] = {}
        for table, fixed in (("cells", CELL_COLUMNS), ("results", RESULT_COLUMNS)):
            info = con.execute(f"PRAGMA src.table_info({table})").fetchall()
            types = {row[1]: schema.sql_type(row[2]) for row in info if row[1] not in fixed}
            self._add_columns(con, types)
            extra[table] = list(types)
        merged = schema.merge_axes(schema.read_axes(con), schema.read_axes(con, "src"))
        con.execute("INSERT OR REPLACE INTO main.meta VALUES (?, ?)", (schema.AXES_KEY, json.dumps(merged)))
        return extra


def _row_values(row: dict[str, Any]) -> dict[str, Any]:
    """The per-row columns of a probe result row; the other settings come from the cell.

    ``probe`` is kept from the row: a layerwise cell also reports its learned layer-weighted
    combination as probe ``weighted`` next to its own headline.
    """
    layer = row.get("layer")
    extra = {"probe": str(row["probe"])} if row.get("probe") else {}
    return {
        **extra,
        "layer": None if layer is None or layer != layer else int(layer),  # NaN -> NULL
        "split": str(row["split"]),
        "metric": str(row["metric"]),
        "value": _float(row["value"]),
    }


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def merge_stores(out: Path, shards: list[Path]) -> dict[str, int]:
    """Merge shard stores into ``out`` (created if needed); returns cells taken per shard."""
    store = ResultsStore(out)
    return {str(s): store.merge_from(s) for s in shards}
