"""A hand-made results store (schema of DEVELOPERS.md) with fake run artifacts, for report tests.

    from reports_fixtures import make_store
    store = make_store(tmp_path)              # 2 mask strengths x 3 freeze x 3 seeds + baselines
    store = make_store(tmp_path, methods=("reconstruct", "mae"))   # schema 2, with a method column

Without ``methods`` the store has schema version 1 (no method column), as stores written before
the method axis: reading it must treat its ssl cells as ``reconstruct``.

Values are known: ``value = base + small seeded noise``; tests recompute expectations from the
``results`` table with plain pandas, independently of the report code.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

CELL_COLUMNS = [
    "cell_id",
    "sweep",
    "encoder",
    "mask_strength",
    "mask_kind",
    "loss_on",
    "freeze",
    "probe",
    "pooling",
    "seed",
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
]
RESULT_COLUMNS = [
    "cell_id",
    "sweep",
    "encoder",
    "mask_strength",
    "mask_kind",
    "loss_on",
    "freeze",
    "probe",
    "pooling",
    "layer",
    "seed",
    "split",
    "metric",
    "value",
]
SCHEMA = """
CREATE TABLE cells(cell_id TEXT PRIMARY KEY, sweep TEXT, encoder TEXT, mask_strength REAL,
  mask_kind TEXT, loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT, seed INTEGER, status TEXT,
  error TEXT, run_dir TEXT, pretrain_dir TEXT, package_version TEXT, git_commit TEXT,
  torch_version TEXT, transformers_version TEXT, device TEXT, wall_time_s REAL, finished_at TEXT);
CREATE TABLE results(cell_id TEXT, sweep TEXT, encoder TEXT, mask_strength REAL, mask_kind TEXT,
  loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT, layer INTEGER, seed INTEGER, split TEXT,
  metric TEXT, value REAL);
"""
# Schema version 2 adds the method column after encoder.
CELL_COLUMNS_V2 = ["cell_id", "sweep", "encoder", "method", *CELL_COLUMNS[3:]]
RESULT_COLUMNS_V2 = ["cell_id", "sweep", "encoder", "method", *RESULT_COLUMNS[3:]]
SCHEMA_V2 = SCHEMA.replace("encoder TEXT,", "encoder TEXT, method TEXT,")
CLASSES = ("aedes", "anopheles", "culex")
FREEZES = ("frozen", "partial:2", "full")
BASELINES = ("random", "handcrafted", "audioset")
METRICS = ("balanced_accuracy", "macro_f1", "accuracy")


def base_value(encoder: str, mask_strength, freeze: str, metric: str, method=None) -> float:
    """The noise-free value of a cell: pretraining helps, more unfreezing helps, mae helps more."""
    value = {"ssl": 0.70, "random": 0.50, "handcrafted": 0.55, "audioset": 0.80}[encoder]
    value += 0.06 if method == "mae" else 0.0
    if encoder == "ssl":
        value += 0.05 * (mask_strength or 0)
    value += 0.03 * FREEZES.index(freeze)
    return value - (0.02 if metric == "macro_f1" else 0.0)


def _artifacts(run_dir: Path, value: float, rng: np.random.Generator, n_clips: int = 60) -> None:
    """predictions.csv and confusion_test.csv whose accuracy is about ``value``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    labels = rng.choice(CLASSES, n_clips)
    wrong = rng.random(n_clips) > value
    preds = np.where(wrong, np.roll(labels, 1), labels)
    preds = np.where(wrong & (preds == labels), CLASSES[0], preds)
    frame = pd.DataFrame(
        {
            "path": [f"/clips/{i}.wav" for i in range(n_clips)],
            "group": [f"g{i % 5}" for i in range(n_clips)],
            "label": labels,
            "pred": preds,
            "split": "test",
        }
    )
    for cls in CLASSES:
        frame[f"prob:{cls}"] = np.where(preds == cls, 0.8, 0.1)
    frame.to_csv(run_dir / "predictions.csv", index=False)
    confusion = pd.crosstab(frame["label"], frame["pred"]).reindex(index=CLASSES, columns=CLASSES, fill_value=0)
    confusion.to_csv(run_dir / "confusion_test.csv")


def _log_history(pretrain_dir: Path, mask_strength: float, epochs: int = 6) -> None:
    pretrain_dir.mkdir(parents=True, exist_ok=True)
    history = []
    for epoch in range(1, epochs + 1):
        loss = 1.0 / epoch + 0.1 * (mask_strength or 0.0)
        history.append({"epoch": float(epoch), "step": epoch * 10, "loss": loss, "learning_rate": 1e-4})
        history.append({"epoch": float(epoch), "step": epoch * 10, "eval_mse": loss * 1.1})
    (pretrain_dir / "log_history.json").write_text(json.dumps(history))


def _ssl_settings(mask_strengths, mask_kinds, methods):
    for method in methods:
        masks = [(ms, kind) for kind in mask_kinds for ms in mask_strengths] if method == "reconstruct" else [None]
        for mask in masks:
            ms, kind = mask or (None, None)
            yield dict(method=method, mask_strength=ms, mask_kind=kind, loss_on="masked" if mask else None)


def _cells(mask_strengths, seeds, probes, baselines, mask_kinds, methods):
    for seed in seeds:
        for probe in probes:
            for freeze in FREEZES:
                for ssl in _ssl_settings(mask_strengths, mask_kinds, methods):
                    yield dict(encoder="ssl", **ssl, freeze=freeze, probe=probe, seed=seed)
                for enc in baselines:
                    yield dict(
                        encoder=enc,
                        method=None,
                        mask_strength=None,
                        mask_kind=None,
                        loss_on=None,
                        freeze=freeze,
                        probe=probe,
                        seed=seed,
                    )


def make_store(
    tmp_path: Path,
    mask_strengths=(0.5, 2.0),
    seeds=(0, 1, 2),
    probes=("linear",),
    baselines=BASELINES,
    failed: int = 1,
    layerwise: bool = True,
    artifacts: bool = True,
    mask_kinds=("specaugment",),
    name: str = "results.sqlite",
    methods: tuple[str, ...] | None = None,
) -> Path:
    """Write ``tmp_path/name`` (and run artifacts under ``tmp_path``) and return its path."""
    rng = np.random.default_rng(1234)
    cells, results = [], []
    for i, cell in enumerate(_cells(mask_strengths, seeds, probes, baselines, mask_kinds, methods or ("reconstruct",))):
        cell_id = f"c{i:03d}"
        run_dir = tmp_path / "runs" / cell_id
        pretrain_dir = None
        if cell["encoder"] == "ssl":
            setting = f"{cell['method']}-ms{cell['mask_strength']}-{cell['mask_kind']}"
            pretrain_dir = tmp_path / "pretrain" / f"{setting}-s{cell['seed']}"
        status = "failed" if i < failed else "done"
        row = dict(
            cell,
            cell_id=cell_id,
            sweep="test",
            pooling="mean",
            status=status,
            error="RuntimeError: out of memory" if status == "failed" else None,
            run_dir=str(run_dir),
            pretrain_dir=str(pretrain_dir) if pretrain_dir else None,
            package_version="0.1.0",
            git_commit="abc",
            torch_version="2.13.0",
            transformers_version="4.50",
            device="cpu",
            wall_time_s=1.0,
            finished_at="2026-01-01T00:00:00",
        )
        cells.append(row)
        if status != "done":
            continue
        common = {k: row[k] for k in RESULT_COLUMNS_V2 if k in row}
        for metric in METRICS:
            value = base_value(cell["encoder"], cell["mask_strength"], cell["freeze"], metric, cell["method"])
            value += rng.normal(0, 0.015)
            results.append(dict(common, layer=None, split="test", metric=metric, value=value))
            results.append(dict(common, layer=None, split="val", metric=metric, value=value + 0.01))
            if layerwise and cell["freeze"] == "frozen" and cell["encoder"] in ("ssl", "random"):
                for layer in range(5):
                    results.append(
                        dict(common, layer=layer, split="test", metric=metric, value=value - 0.02 * abs(layer - 3))
                    )
        if artifacts:
            _artifacts(run_dir, base_value(cell["encoder"], cell["mask_strength"], cell["freeze"], "accuracy"), rng)
            if pretrain_dir is not None and not (pretrain_dir / "log_history.json").exists():
                _log_history(pretrain_dir, cell["mask_strength"])
    frame = pd.DataFrame(results, columns=RESULT_COLUMNS_V2)
    return write_store(tmp_path / name, pd.DataFrame(cells), frame, with_method=methods is not None)


def write_store(path: Path, cells: pd.DataFrame, results: pd.DataFrame, with_method: bool = False) -> Path:
    """Create the two tables with the exact schema (version 2 ``with_method``, else 1) and insert the rows."""
    cell_columns = CELL_COLUMNS_V2 if with_method else CELL_COLUMNS
    result_columns = RESULT_COLUMNS_V2 if with_method else RESULT_COLUMNS
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(SCHEMA_V2 if with_method else SCHEMA)
        cells = cells.reindex(columns=cell_columns).astype(object).where(cells.notna(), None)
        results = results.reindex(columns=result_columns).astype(object)
        results = results.where(results.notna(), None)
        con.executemany(
            f"INSERT INTO cells VALUES ({','.join('?' * len(cell_columns))})", cells.itertuples(index=False, name=None)
        )
        con.executemany(
            f"INSERT INTO results VALUES ({','.join('?' * len(result_columns))})",
            results.itertuples(index=False, name=None),
        )
        con.commit()
    finally:
        con.close()
    return path


def read_results(path: Path) -> pd.DataFrame:
    """The results table straight from SQLite (for independent expectations in tests)."""
    con = sqlite3.connect(path)
    try:
        return pd.read_sql("SELECT * FROM results", con)
    finally:
        con.close()
