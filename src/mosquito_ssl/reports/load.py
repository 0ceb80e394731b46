"""Reading a results store and the run artifacts it points to; nothing here computes results.

    store = load_store(Path("runs/sweep/results.sqlite"))
    store.results   # long format, done cells only; store.cells  # every cell, done and failed
    store.axes      # schema 3: the swept [pretrain]/[probe] settings, one extra column each

The store (SQLite, WAL) is written by the benchmarks stage, possibly while we read it, so it
is opened read-only (``mode=ro``). Artifact readers return None when a file is missing or
unreadable: a failed or cleaned-up cell must never break a report, it only skips a plot.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import StoreError

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
RUN_HINT = "run `mosquito-ssl benchmarks run` first"
# Columns that describe the masking setting of an ssl cell; NULL for baselines.
MASK_COLUMNS = ("mask_strength", "mask_kind", "loss_on")
# Columns that describe how an ssl encoder was pretrained; NULL for baselines.
SSL_COLUMNS = ("method", *MASK_COLUMNS)
# The setting columns of every schema version (DEVELOPERS.md), usable as table keys; schema 3 adds
# one column per swept setting (``Store.axes``).
FIXED_SETTINGS = ("encoder", *SSL_COLUMNS, "freeze", "probe", "pooling", "seed")
# The results table of schema 2; schema 3 adds the axes' columns to it.
RESULT_FIXED_COLUMNS = ("cell_id", "sweep", *FIXED_SETTINGS[:-1], "layer", "seed", "split", "metric", "value")
BASELINE_LABELS = {
    "random": "no pretraining",
    "handcrafted": "hand-crafted features",
    "logmel": "log-mel mean/std",
    "audioset": "AudioSet AST (supervised)",
}


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


def _read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The ``cells`` table, the result rows of done cells and the ``meta`` key/values ({} if none)."""
    try:
        with closing(_connect_ro(path)) as con:
            tables = set(pd.read_sql("SELECT name FROM sqlite_master WHERE type='table'", con)["name"])
            missing = {"cells", "results"} - tables
            if missing:
                raise StoreError(
                    f"{path} has no table(s) {', '.join(sorted(missing))}: it is not a results "
                    f"store written by the benchmarks stage; {RUN_HINT}"
                )
            cells = pd.read_sql("SELECT * FROM cells", con)
            results = pd.read_sql(
                "SELECT r.* FROM results r JOIN cells c ON r.cell_id = c.cell_id WHERE c.status = 'done'", con
            )
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read results store {path} ({exc}): {RUN_HINT}") from exc
    return cells, results, meta


def parse_axes(text: str | None, path: Path) -> dict[str, dict]:
    """``meta.axes`` (schema 3) -> {column: {"table", "key", "numeric"}}; {} when absent (schema 1-2)."""
    if not text:
        return {}
    try:
        axes = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"results store {path}: meta 'axes' is not JSON ({exc}); re-run the sweep") from exc
    if not isinstance(axes, dict) or not all(isinstance(v, dict) for v in axes.values()):
        raise StoreError(f"results store {path}: meta 'axes' must map column -> {{table, key, numeric}}")
    return {
        str(col): {"table": v.get("table"), "key": v.get("key", col), "numeric": bool(v.get("numeric", False))}
        for col, v in axes.items()
    }


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
    cells, results, meta = _read(path)
    if cells.empty:
        raise StoreError(f"results store {path} has no cells: {RUN_HINT}")
    if results.empty:
        failed = cells[cells["status"] != "done"]
        first = f"; first error: {failed['error'].iloc[0]}" if len(failed) else ""
        raise StoreError(
            f"results store {path} has no results from done cells ({len(failed)} failed{first}): "
            f"fix the failure and {RUN_HINT.replace(' first', ' again')}"
        )
    if "method" not in cells.columns:
        cells["method"] = cells["encoder"].map({"ssl": "reconstruct"})
    axes = parse_axes(meta.get("axes"), path)
    cells = _axis_columns(cells, axes, path, "cells")
    results = _axis_columns(_normalise(results), axes, path, "results")
    return Store(path=path, cells=cells, results=results, axes=axes)


def _normalise(results: pd.DataFrame) -> pd.DataFrame:
    """Nullable integer layer/seed (SQLite returns floats when NULLs are present)."""
    out = results.copy()
    if "method" not in out.columns:  # a store written before the method axis: ssl meant reconstruct
        out.insert(out.columns.get_loc("encoder") + 1, "method", None)
        out.loc[out["encoder"] == "ssl", "method"] = "reconstruct"
    for col in ("layer", "seed"):
        out[col] = pd.to_numeric(out[col]).astype("Int64")
    out["mask_strength"] = pd.to_numeric(out["mask_strength"]).astype(float)
    return out


def _existing(directory: str | None, name: str) -> Path | None:
    if directory is None or (isinstance(directory, float) and pd.isna(directory)) or not directory:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def read_confusion(run_dir: str | None, split: str = "test") -> pd.DataFrame | None:
    """``confusion_<split>.csv`` (rows true class, columns predicted) or None when absent."""
    path = _existing(run_dir, f"confusion_{split}.csv")
    if path is None:
        return None
    try:
        return pd.read_csv(path, index_col=0)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None


def read_predictions(run_dir: str | None) -> pd.DataFrame | None:
    """``predictions.csv`` (path, group, label, pred, split, prob:<class>...) or None."""
    path = _existing(run_dir, "predictions.csv")
    if path is None:
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None
    needed = {"path", "label", "pred", "split"}
    if not needed <= set(frame.columns):
        log.warning("skipping %s: columns %s missing", path, sorted(needed - set(frame.columns)))
        return None
    return frame


def read_log_history(pretrain_dir: str | None) -> list[dict] | None:
    """The Trainer's ``log_history.json`` (list of dicts) of a pretraining, or None."""
    path = _existing(pretrain_dir, "log_history.json")
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None
    return data if isinstance(data, list) else None


def read_loss_name(pretrain_dir: str | None) -> str | None:
    """The pretraining's ``loss_name`` from its metrics.json (e.g. "masked-patch MSE"); None for
    runs made before it was written."""
    name = _metrics(pretrain_dir).get("loss_name")
    return str(name) if name else None


PROTOCOL_OPTIONS = ("classes", "exclude_classes", "max_clips_per_group", "min_groups_per_class")


def protocol_summary(run_dirs) -> dict[str, str]:
    """Report header lines from the probes' ``metrics.json``: classes used, protocol, front end.

    Every cell of a sweep reads the same data with the same ``[probe]`` protocol, so the union of
    ``used_classes`` is the class list; ``left_out`` names classes dropped by ``--min-groups-per-class``;
    the front ends (sample rate, mel bins, normalisation) are listed as the encoders' checkpoints set them.
    """
    used: set[str] = set()
    left_out: dict[str, int] = {}
    options: dict[str, str] = {}
    front_ends: set[str] = set()
    for run_dir in run_dirs:
        metrics = _metrics(run_dir)
        protocol, features = metrics.get("protocol"), metrics.get("features")
        if features:
            front_ends.add(f"{features['sample_rate']} Hz, {features['num_mel_bins']} mel bins, "
                           f"{features.get('normalize', 'audioset')} mean/std")  # fmt: skip
        if not protocol:  # run made before the protocol options
            continue
        used.update(protocol.get("used_classes", []))
        left_out.update(protocol.get("left_out", {}))
        options.update({k: str(protocol[k]) for k in PROTOCOL_OPTIONS if protocol.get(k) is not None})
    header = {"Front end": "; ".join(sorted(front_ends))} if front_ends else {}
    if not used:
        return header
    classes = ", ".join(sorted(used))
    if left_out:
        classes += "; left out: " + ", ".join(f"{c} ({n} groups)" for c, n in sorted(left_out.items()))
    return {"Classes": classes, "Protocol": ", ".join(f"{k}={v}" for k, v in options.items()) or "all clips", **header}


def _metrics(run_dir) -> dict:
    path = _existing(run_dir, "metrics.json")
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return {}
