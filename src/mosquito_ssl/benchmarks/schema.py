"""The results store's schema: tables, columns, version and the migration of older stores.

    mosquito-ssl benchmarks status runs/demo/results.sqlite   # opens (and migrates) a store

The schema is the contract of DEVELOPERS.md ("results store") between the benchmarks stage,
which writes it (``store.py``), and the reports stage, which reads it (``reports/load.py``).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = "2"  # 2: the method column (stores of version 1 are migrated on open)
# The setting columns a cell shares with both tables (seed last: results put layer before it).
SETTING_COLUMNS = (
    "cell_id",
    "sweep",
    "encoder",
    "method",
    "mask_strength",
    "mask_kind",
    "loss_on",
    "freeze",
    "probe",
    "pooling",
    "seed",
)
CELL_COLUMNS = (
    *SETTING_COLUMNS,
    "status",
    "error",
    "run_dir",
    "pretrain_dir",
    "package_version",
    "git_commit",
    "torch_version",
    "transformers_version",
    "device",
    "wall_time_s",
    "finished_at",
)
RESULT_COLUMNS = (*SETTING_COLUMNS[:-1], "layer", "seed", "split", "metric", "value")
SCHEMA = """
CREATE TABLE IF NOT EXISTS cells(cell_id TEXT PRIMARY KEY, sweep TEXT, encoder TEXT, method TEXT,
  mask_strength REAL, mask_kind TEXT, loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT,
  seed INTEGER, status TEXT, error TEXT, run_dir TEXT, pretrain_dir TEXT, package_version TEXT,
  git_commit TEXT, torch_version TEXT, transformers_version TEXT, device TEXT, wall_time_s REAL,
  finished_at TEXT);
CREATE TABLE IF NOT EXISTS results(cell_id TEXT, sweep TEXT, encoder TEXT, method TEXT, mask_strength REAL,
  mask_kind TEXT, loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT, layer INTEGER,
  seed INTEGER, split TEXT, metric TEXT, value REAL);
CREATE UNIQUE INDEX IF NOT EXISTS results_key
  ON results(cell_id, probe, split, metric, COALESCE(layer, -1));
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
"""


def table_columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f"PRAGMA table_info({table})")}


def migrate(con: sqlite3.Connection) -> None:
    """Bring a version-1 store (no ``method`` column) to version 2: its ssl rows were ``reconstruct``."""
    for table in ("cells", "results"):
        if "method" not in table_columns(con, table):
            con.execute(f"ALTER TABLE {table} ADD COLUMN method TEXT")
            con.execute(f"UPDATE {table} SET method = 'reconstruct' WHERE encoder = 'ssl'")
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))


# Cells of ``src`` that should replace (or add to) ``main``: done over failed, newer over older.
TAKE_SQL = """
CREATE TEMP TABLE take AS
SELECT s.cell_id FROM src.cells s LEFT JOIN main.cells m ON m.cell_id = s.cell_id
WHERE m.cell_id IS NULL
   OR (s.status = 'done' AND m.status != 'done')
   OR (s.status = m.status AND COALESCE(s.finished_at, '') > COALESCE(m.finished_at, ''))
"""
