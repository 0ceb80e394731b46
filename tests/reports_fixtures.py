"""A hand-made results store (schema of DEVELOPERS.md) with fake run artifacts, for report tests.

    from reports_fixtures import make_store
    store = make_store(tmp_path)              # 2 mask strengths x 3 freeze x 3 seeds + baselines
    store = make_store(tmp_path, methods=("reconstruct", "mae"))   # schema 2, with a method column

Without ``methods`` the store has schema version 1 (no method column), as stores written before
the method axis: reading it must treat its ssl cells as ``reconstruct``.

    store = make_store_v3(tmp_path)   # schema 3: mae x mask_ratio 0.6/0.8 next to reconstruct x
                                      # mask_strength 0.5/1.0, 3 seeds, random baseline
    store = make_store_v3(tmp_path, axes=(MASK_RATIO, CLIPS))   # plus a swept [probe] setting

Schema 3 adds one column per swept setting to both tables (REAL for numbers, TEXT otherwise,
NULL where it does not apply) and ``meta.axes`` describing them.

Values are known: ``value = base + small seeded noise``; tests recompute expectations from the
``results`` table with plain pandas, independently of the report code.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# One string per table keeps the column lists short; they follow SCHEMA below.
CELL_COLUMNS = (  # noqa: SIM905
    "cell_id sweep encoder mask_strength mask_kind loss_on freeze probe pooling seed status error run_dir "
    "pretrain_dir package_version git_commit torch_version transformers_version device wall_time_s finished_at"
).split()
RESULT_COLUMNS = (  # noqa: SIM905
    "cell_id sweep encoder mask_strength mask_kind loss_on freeze probe pooling layer seed split metric value"
).split()
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


def _log_history(pretrain_dir: Path, mask_strength: float, epochs: int = 6, loss_name: str | None = None) -> None:
    """Old runs log the selection loss as ``eval_mse``; runs that name their loss (metrics.json
    ``loss_name``) log it as ``eval_loss``."""
    pretrain_dir.mkdir(parents=True, exist_ok=True)
    history = []
    for epoch in range(1, epochs + 1):
        loss = 1.0 / epoch + 0.1 * (mask_strength or 0.0)
        history.append({"epoch": float(epoch), "step": epoch * 10, "loss": loss, "learning_rate": 1e-4})
        key = "eval_loss" if loss_name else "eval_mse"
        history.append({"epoch": float(epoch), "step": epoch * 10, key: loss * 1.1})
    (pretrain_dir / "log_history.json").write_text(json.dumps(history))
    if loss_name:
        (pretrain_dir / "metrics.json").write_text(json.dumps({"loss_name": loss_name}))


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


def write_store(
    path: Path, cells: pd.DataFrame, results: pd.DataFrame, with_method: bool = False, axes: tuple = ()
) -> Path:
    """Create the two tables with the exact schema (version 2 ``with_method``, else 1; version 3 with
    ``axes``: one more column each in both tables and ``meta``) and insert the rows."""
    extra = [a.column for a in axes]
    cell_columns = [*(CELL_COLUMNS_V2 if with_method or axes else CELL_COLUMNS), *extra]
    result_columns = [*(RESULT_COLUMNS_V2 if with_method or axes else RESULT_COLUMNS), *extra]
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(SCHEMA_V2 if with_method or axes else SCHEMA)
        if axes:
            _schema_v3(con, axes)
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


@dataclass(frozen=True)
class Axis:
    """A swept setting of a schema-3 store: its column, ``[pretrain]``/``[probe]`` table, values
    and, for a pretrain setting, the methods it applies to (NULL for the others and baselines)."""

    column: str
    table: str
    key: str
    values: tuple
    methods: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float)) for v in self.values)

    def applies(self, encoder: str, method) -> bool:
        if self.table == "probe":
            return True
        return encoder == "ssl" and (not self.methods or method in self.methods)


MASK_RATIO = Axis("mask_ratio", "pretrain", "mask_ratio", (0.6, 0.8), methods=("mae",))
CLIPS = Axis("max_clips_per_group", "probe", "max_clips_per_group", (5, 20, 500))
NORMALIZE = Axis("normalize", "probe", "normalize", ("audioset", "dataset"))
LOSS_NAMES = {"mae": "masked-patch MSE", "reconstruct": "reconstruction MSE"}


def _schema_v3(con: sqlite3.Connection, axes) -> None:
    for axis in axes:
        kind = "REAL" if axis.numeric else "TEXT"
        for table in ("cells", "results"):
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{axis.column}" {kind}')
    con.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    meta = {a.column: {"table": a.table, "key": a.key, "numeric": a.numeric} for a in axes}
    con.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "3"), ("axes", json.dumps(meta))])


def axis_effect(axis: Axis, value) -> float:
    """Known effect of a swept value on every metric: +0.04 per step along the axis's values."""
    return 0.04 * axis.values.index(value) if value is not None else 0.0


def _v3_cells(methods, mask_strengths, axes, baselines, freezes, probes, seeds):
    settings = [dict(encoder="ssl", **ssl) for ssl in _ssl_settings(mask_strengths, ("specaugment",), methods)]
    settings += [dict(encoder=b, method=None, mask_strength=None, mask_kind=None, loss_on=None) for b in baselines]
    for seed, probe, freeze, base in itertools.product(seeds, probes, freezes, settings):
        used = [a for a in axes if a.applies(base["encoder"], base["method"])]
        for values in itertools.product(*(a.values for a in used)):
            swept = {a.column: None for a in axes} | {a.column: v for a, v in zip(used, values, strict=True)}
            yield dict(base, **swept, freeze=freeze, probe=probe, seed=seed)


def make_store_v3(
    tmp_path: Path,
    axes: tuple[Axis, ...] = (MASK_RATIO,),
    methods=("reconstruct", "mae"),
    mask_strengths=(0.5, 1.0),
    baselines=("random",),
    freezes=("frozen", "full"),
    probes=("linear",),
    seeds=(0, 1, 2),
    loss_names: dict | None = None,
    name: str = "results.sqlite",
) -> Path:
    """A schema-3 store: every cell done, test and val headline rows, predictions and (with
    ``loss_names`` = {method: loss_name}) pretrain runs that name their loss."""
    rng = np.random.default_rng(99)
    cells, results = [], []
    for i, cell in enumerate(_v3_cells(methods, mask_strengths, axes, baselines, freezes, probes, seeds)):
        cell_id = f"v{i:04d}"
        run_dir, pretrain_dir = tmp_path / "runs" / cell_id, None
        if cell["encoder"] == "ssl":
            swept = "-".join(f"{a.column}{cell[a.column]}" for a in axes if a.table == "pretrain")
            pretrain_dir = tmp_path / "pretrain" / f"{cell['method']}-ms{cell['mask_strength']}-{swept}-s{cell['seed']}"
            if not (pretrain_dir / "log_history.json").exists():
                _log_history(pretrain_dir, cell["mask_strength"], loss_name=(loss_names or {}).get(cell["method"]))
        row = dict(cell, cell_id=cell_id, sweep="v3", pooling="mean", status="done", run_dir=str(run_dir),
                   pretrain_dir=str(pretrain_dir) if pretrain_dir else None, finished_at="2026-01-01T00:00:00")  # fmt: skip
        cells.append(row)
        effect = sum(axis_effect(a, cell[a.column]) for a in axes if a.numeric)
        for metric in METRICS:
            value = base_value(cell["encoder"], cell["mask_strength"], cell["freeze"], metric, cell["method"])
            value += effect + rng.normal(0, 0.015)
            common = {k: row[k] for k in (*RESULT_COLUMNS_V2, *(a.column for a in axes)) if k in row}
            results.append(dict(common, layer=None, split="test", metric=metric, value=value))
            results.append(dict(common, layer=None, split="val", metric=metric, value=value + 0.01))
        _artifacts(run_dir, 0.6, rng)
    return write_store(tmp_path / name, pd.DataFrame(cells), pd.DataFrame(results), axes=axes)
