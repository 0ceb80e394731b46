"""The results store's schema: tables, columns, version and the migration of older stores.

    mosquito-ssl benchmarks status runs/demo/results.sqlite   # opens (and migrates) a store

The schema is the contract of DEVELOPERS.md ("results store") between the benchmarks stage,
which writes it (``write.py``), and the reports stage, which reads it (``read.py``).
Besides the fixed columns below, a sweep adds one column per setting it sweeps (a grid key
``"pretrain.mask_ratio"`` -> column ``mask_ratio``) to both tables, described in ``meta.axes``:
``{column: {"table": "pretrain" | "probe", "key": KEY, "numeric": bool}}`` (REAL when numeric,
else TEXT; NULL where the setting does not apply). Torch-free: reports import it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

# 2: the method column; 3: meta.axes and the swept settings' columns (older stores migrate on open)
SCHEMA_VERSION = "3"
AXES_KEY = "axes"  # the meta key describing the swept settings' columns
AXIS_COLUMN = re.compile(r"^[a-z][a-z0-9_]*$")  # safe to splice into SQL as an identifier
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
# Reading side: the masking settings of an ssl cell and how its encoder was pretrained (NULL for
# baselines); the fixed setting columns usable as table keys (schema 3 adds one per swept setting).
MASK_COLUMNS = ("mask_strength", "mask_kind", "loss_on")
SSL_COLUMNS = ("method", *MASK_COLUMNS)
FIXED_SETTINGS = SETTING_COLUMNS[2:]
FIXED_COLUMNS = frozenset(CELL_COLUMNS) | frozenset(RESULT_COLUMNS)  # a swept setting may not take these
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


def read_meta(con: sqlite3.Connection, key: str, schema: str = "main") -> str | None:
    if "meta" not in {r[0] for r in con.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}:
        return None
    row = con.execute(f"SELECT value FROM {schema}.meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def read_axes(con: sqlite3.Connection, schema: str = "main") -> dict[str, dict[str, Any]]:
    """``meta.axes`` of a store of any version ({} before version 3 or when nothing was swept)."""
    return parse_axes(read_meta(con, AXES_KEY, schema))


def parse_axes(text: str | None) -> dict[str, dict[str, Any]]:
    """``meta.axes`` text -> {column: {"table", "key", "numeric"}}; ValueError when it is not that."""
    if not text:
        return {}
    axes = json.loads(text)
    if not isinstance(axes, dict) or not all(isinstance(v, dict) for v in axes.values()):
        raise ValueError("meta 'axes' must map column -> {table, key, numeric}")
    return {
        str(col): {"table": v.get("table"), "key": v.get("key", col), "numeric": bool(v.get("numeric", False))}
        for col, v in axes.items()
    }


def merge_axes(old: dict[str, dict], new: dict[str, dict]) -> dict[str, dict]:
    """Both descriptions; a column numeric in one and not the other is not numeric."""
    out = {k: dict(v) for k, v in old.items()}
    for column, entry in new.items():
        numeric = bool(entry.get("numeric")) and bool(out.get(column, entry).get("numeric"))
        out[column] = dict(entry, numeric=numeric)
    return out


def column_type(value: Any) -> str:
    """REAL for numbers, TEXT for anything else (strings, booleans, lists)."""
    return "REAL" if isinstance(value, (int, float)) and not isinstance(value, bool) else "TEXT"


def sql_type(declared: str | None) -> str:
    """REAL or TEXT for a column type another store declared (SQLite's numeric affinities -> REAL)."""
    return "REAL" if (declared or "").upper() in ("REAL", "INTEGER", "NUMERIC", "FLOAT", "DOUBLE") else "TEXT"


def stored_value(value: Any) -> Any:
    """A swept setting's value as stored: booleans as TOML spells them, lists as JSON, paths as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), default=str)
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def add_columns(con: sqlite3.Connection, types: dict[str, str], schema: str = "main") -> None:
    """Add the swept settings' columns (name -> REAL/TEXT) missing from ``cells`` and ``results``."""
    for table in ("cells", "results"):
        have = {row[1] for row in con.execute(f"PRAGMA {schema}.table_info({table})")}
        for column, sql_type in types.items():
            if not AXIS_COLUMN.match(column) or column in FIXED_COLUMNS or sql_type not in ("REAL", "TEXT"):
                raise ValueError(f"{column!r} ({sql_type}) cannot be a swept setting's column")
            if column not in have:
                con.execute(f"ALTER TABLE {schema}.{table} ADD COLUMN {column} {sql_type}")


def version(con: sqlite3.Connection) -> int:
    text = read_meta(con, "schema_version")
    return int(text) if text and text.isdigit() else 1


def migrate(con: sqlite3.Connection) -> None:
    """Bring a store of any older version to this one, in order (call it inside a transaction).

    1 -> 2: the ``method`` column; the ssl rows of version 1 were ``reconstruct``.
    2 -> 3: ``meta.axes`` (``{}``: a store made before setting axes has no swept-setting column).
    """
    con.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
    for table in ("cells", "results"):
        if "method" not in table_columns(con, table):
            con.execute(f"ALTER TABLE {table} ADD COLUMN method TEXT")
            con.execute(f"UPDATE {table} SET method = 'reconstruct' WHERE encoder = 'ssl'")
    con.execute("INSERT OR IGNORE INTO meta VALUES (?, '{}')", (AXES_KEY,))
    if version(con) < int(SCHEMA_VERSION):  # a newer store keeps its own number
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))


# Cells of ``src`` that should replace (or add to) ``main``: done over failed, newer over older.
TAKE_SQL = """
CREATE TEMP TABLE take AS
SELECT s.cell_id FROM src.cells s LEFT JOIN main.cells m ON m.cell_id = s.cell_id
WHERE m.cell_id IS NULL
   OR (s.status = 'done' AND m.status != 'done')
   OR (s.status = m.status AND COALESCE(s.finished_at, '') > COALESCE(m.finished_at, ''))
"""
