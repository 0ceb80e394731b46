"""Reading a results store for reports: read-only, migrated in memory by ``schema.migrate``.

    store = load_store(Path("runs/sweep/results.sqlite"))
    store.results   # long format, done cells only; store.cells  # every cell, done and failed
    store.axes      # schema 3: the swept [pretrain]/[probe] settings, one extra column each

The store (SQLite, WAL) is written by the benchmarks stage, possibly while we read it, so it is
opened read-only (``mode=ro``) and copied into memory, where the one migration (``schema.py``)
brings a store of any version to the current one: reports see one schema.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import StoreError
from .schema import FIXED_SETTINGS, SSL_COLUMNS, migrate, parse_axes, read_meta

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
RUN_HINT = "run `mosquito-ssl benchmarks run` first"


@dataclass(frozen=True)
class Store:
    """A loaded results store: ``cells`` (all), ``results`` (rows of done cells only) and ``axes``
    (schema 3: swept setting column -> {"table": "pretrain"|"probe", "key": ..., "numeric": bool};
    ``{}`` for older stores)."""

    path: Path
    cells: pd.DataFrame
    results: pd.DataFrame
    axes: dict[str, dict] = field(default_factory=dict)

    @property
    def setting_columns(self) -> list[str]:
        """Every column usable as a table key or in ``--reference``: the fixed ones, then the axes."""
        return list(dict.fromkeys([*FIXED_SETTINGS, *self.axes]))

    @property
    def numeric_axes(self) -> list[str]:
        return [col for col, axis in self.axes.items() if axis["numeric"]]

    @property
    def pretrain_settings(self) -> list[str]:
        """Settings of the pretraining (NULL for baselines): a reference need not share them."""
        return [*SSL_COLUMNS, *(col for col, axis in self.axes.items() if axis["table"] == "pretrain")]

    @property
    def done(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] == "done"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] != "done"]


def _connect_ro(path: Path) -> sqlite3.Connection:
    # as_uri() percent-encodes '?' and '#' in the path, which a bare "file:" string would not.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise StoreError(f"results store {path} does not exist: {RUN_HINT}, or pass the store's path")
    if path.is_dir():
        hint = path / "results.sqlite"
        more = f" (did you mean {hint}?)" if hint.exists() else ""
        raise StoreError(f"results store {path} is a directory, not a SQLite file{more}")
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    # An empty file is what sqlite3.connect leaves behind when pointed at a wrong path.
    if head != SQLITE_MAGIC:
        what = "is empty" if not head else "is not a SQLite results store"
        raise StoreError(f"{path} {what}: {RUN_HINT} to create one")


def _migrated_copy(path: Path) -> sqlite3.Connection:
    """The store copied into memory (read-only on disk: a sweep may be writing) and migrated."""
    memory = sqlite3.connect(":memory:")
    with closing(_connect_ro(path)) as disk:
        disk.backup(memory)
    migrate(memory)
    return memory


def _read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """The ``cells`` table, the result rows of done cells and the swept settings (``meta.axes``)."""
    try:
        with closing(_connect_ro(path)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"cells", "results"} - tables
        if missing:
            raise StoreError(
                f"{path} has no table(s) {', '.join(sorted(missing))}: it is not a results "
                f"store written by the benchmarks stage; {RUN_HINT}"
            )
        with closing(_migrated_copy(path)) as con:
            cells = pd.read_sql("SELECT * FROM cells", con)
            results = pd.read_sql(
                "SELECT r.* FROM results r JOIN cells c ON r.cell_id = c.cell_id WHERE c.status = 'done'", con
            )
            axes = parse_axes(read_meta(con, "axes"))
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read results store {path} ({exc}): {RUN_HINT}") from exc
    except ValueError as exc:
        raise StoreError(f"results store {path}: {exc}; re-run the sweep") from exc
    return cells, results, axes


def _axis_columns(frame: pd.DataFrame, axes: dict[str, dict], path: Path, table: str) -> pd.DataFrame:
    """Numeric axes as float (NULL -> NaN); an axis the table lacks reads as not applicable."""
    out = frame.copy()
    for col, axis in axes.items():
        if col not in out.columns:
            log.warning("%s: axis column %s missing from table %s; read as NULL", path, col, table)
            out[col] = None
        if axis["numeric"]:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out


def load_store(path: Path) -> Store:
    """Read ``cells``, ``results`` and the axes from a store; StoreError when there is nothing to report."""
    path = Path(path)
    _check_file(path)
    cells, results, axes = _read(path)
    if cells.empty:
        raise StoreError(f"results store {path} has no cells: {RUN_HINT}")
    if results.empty:
        failed = cells[cells["status"] != "done"]
        first = f"; first error: {failed['error'].iloc[0]}" if len(failed) else ""
        raise StoreError(
            f"results store {path} has no results from done cells ({len(failed)} failed{first}): "
            f"fix the failure and {RUN_HINT.replace(' first', ' again')}"
        )
    cells = _axis_columns(cells, axes, path, "cells")
    results = _axis_columns(_normalise(results), axes, path, "results")
    return Store(path=path, cells=cells, results=results, axes=axes)


def _normalise(results: pd.DataFrame) -> pd.DataFrame:
    """Nullable integer layer/seed (SQLite returns floats when NULLs are present)."""
    out = results.copy()
    for col in ("layer", "seed"):
        out[col] = pd.to_numeric(out[col]).astype("Int64")
    out["mask_strength"] = pd.to_numeric(out["mask_strength"]).astype(float)
    return out
