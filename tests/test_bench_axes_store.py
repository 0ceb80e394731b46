"""Swept settings in the results store: schema version 3, their columns, migration, merging, a real run."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from mosquito_ssl import runs
from mosquito_ssl.benchmarks import sweep
from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.errors import StoreError
from mosquito_ssl.store import schema
from mosquito_ssl.store.write import ResultsStore, merge_stores
from test_bench_store import cell, rows

# The schema of version 2 as the code before setting axes wrote it (git 6c12c96, schema.py).
V2_SCHEMA = """
CREATE TABLE cells(cell_id TEXT PRIMARY KEY, sweep TEXT, encoder TEXT, method TEXT,
  mask_strength REAL, mask_kind TEXT, loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT,
  seed INTEGER, status TEXT, error TEXT, run_dir TEXT, pretrain_dir TEXT, package_version TEXT,
  git_commit TEXT, torch_version TEXT, transformers_version TEXT, device TEXT, wall_time_s REAL,
  finished_at TEXT);
CREATE TABLE results(cell_id TEXT, sweep TEXT, encoder TEXT, method TEXT, mask_strength REAL,
  mask_kind TEXT, loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT, layer INTEGER,
  seed INTEGER, split TEXT, metric TEXT, value REAL);
CREATE UNIQUE INDEX results_key ON results(cell_id, probe, split, metric, COALESCE(layer, -1));
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
INSERT INTO meta VALUES ('schema_version', '2'), ('sweep', 'old');
INSERT INTO cells(cell_id, sweep, encoder, method, status) VALUES ('old', 'old', 'ssl', 'mae', 'done');
INSERT INTO results(cell_id, sweep, encoder, method, split, metric, value)
  VALUES ('old', 'old', 'ssl', 'mae', 'test', 'accuracy', 0.5);
"""
MAE = {"mask_ratio": {"table": "pretrain", "key": "mask_ratio", "numeric": True}}


def v2_store(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as con:
        con.executescript(V2_SCHEMA)
    return path


def column_types(path: Path, table: str) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as con:
        return {row[1]: row[2] for row in con.execute(f"PRAGMA table_info({table})")}


@pytest.mark.parametrize("create", [False, True])
def test_version_two_store_migrates_and_keeps_its_rows(tmp_path, create):
    store = ResultsStore(v2_store(tmp_path / "v2.sqlite"), create=create)
    meta = dict(store.frame("meta").values)
    assert (meta["schema_version"], meta["axes"], meta["sweep"]) == ("3", "{}", "old")
    assert store.done_ids() == {"old"} and store.count_rows("old") == 1
    store.commit_cell(cell("new", method="mae", mask_ratio=0.6, balance="none"), rows(1))
    results = store.frame().set_index("cell_id")
    assert results.loc["new", "mask_ratio"].tolist() == [0.6, 0.6] and pd.isna(results.loc["old", "mask_ratio"])
    assert (
        column_types(store.path, "cells")["mask_ratio"] == "REAL"
        and column_types(store.path, "results")["balance"] == "TEXT"
    )
    assert pd.isna(store.frame("cells").set_index("cell_id").loc["old", "balance"])


def test_axes_are_described_in_meta_and_columns_typed(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.record_axes(MAE | {"norm_pix_loss": {"table": "pretrain", "key": "norm_pix_loss", "numeric": False}})
    store.record_axes({"probe_epochs": {"table": "probe", "key": "epochs", "numeric": True}})
    assert set(store.axes()) == {"mask_ratio", "norm_pix_loss", "probe_epochs"}  # merged, not replaced
    assert column_types(store.path, "results")["probe_epochs"] == "REAL"
    store.commit_cell(cell("a", norm_pix_loss=False, classes=("x", "y")), rows(1))
    got = store.frame("cells").iloc[0]
    assert (got["norm_pix_loss"], json.loads(got["classes"])) == ("false", ["x", "y"]) and pd.isna(got["mask_ratio"])
    store.record_failure(cell("f", mask_ratio=0.6, probe_epochs=3), "RuntimeError: boom")
    failed = store.frame("cells").set_index("cell_id").loc["f"]
    assert (failed["status"], failed["mask_ratio"], failed["probe_epochs"]) == ("failed", 0.6, 3)
    with pytest.raises(StoreError, match="cannot be a swept setting's column"):
        store.commit_cell(cell("b", **{"Bad-Name": 1}), rows(1))


def test_merge_carries_axis_columns_and_meta(tmp_path):
    a = ResultsStore(tmp_path / "a.sqlite")
    a.record_axes(MAE)
    a.commit_cell(cell("x", mask_ratio=0.8), rows(1))
    b = ResultsStore(tmp_path / "b.sqlite")
    b.record_axes({"max_clips_per_group": {"table": "probe", "key": "max_clips_per_group", "numeric": True}})
    b.commit_cell(cell("y", max_clips_per_group=5), rows(1))
    out = tmp_path / "merged.sqlite"
    merge_stores(out, [a.path, v2_store(tmp_path / "old.sqlite"), b.path])
    merged = ResultsStore(out)
    assert set(merged.axes()) == {"mask_ratio", "max_clips_per_group"}
    cells = merged.frame("cells").set_index("cell_id")
    assert cells.loc["x", "mask_ratio"] == 0.8 and cells.loc["y", "max_clips_per_group"] == 5
    assert pd.isna(cells.loc["old", "mask_ratio"])
    results = merged.frame().set_index("cell_id")
    assert set(results.loc["x", "mask_ratio"]) == {0.8} and pd.isna(results.loc["old", "max_clips_per_group"])
    assert merge_stores(out, [a.path, b.path]) == {str(a.path): 0, str(b.path): 0}  # idempotent


def test_schema_module_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, mosquito_ssl.store.schema; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert schema.SCHEMA_VERSION == "3"


SPEC = """
[sweep]
name = "axes"
out = "{out}"
pretrain_data = "{data}"
probe_data = "{data}"

[grid]
method = ["mae"]
"pretrain.mask_ratio" = [0.6, 0.8]
"probe.max_clips_per_group" = [2, 3]
freeze = ["frozen"]
probe = ["linear"]
seed = [0]

[pretrain]
preset = "tiny"
epochs = 1
batch_size = 8
grad_accum = 1
workers = 0

[probe]
batch_size = 8
"""


@pytest.mark.slow
def test_real_sweep_stores_one_column_per_swept_setting(tmp_path):
    from mosquito_ssl.data.synthetic import synthesize

    data = synthesize(tmp_path / "data", recordings_per_species=3, clips_per_recording=3, seed=3,
                      species=["aedes_aegypti", "anopheles_gambiae", "culex_quinquefasciatus"])  # fmt: skip
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(out=tmp_path / "out", data=data))
    spec = SweepSpec.load(path)
    summary = sweep.run_sweep(spec, echo=lambda s: None)
    assert (summary.ran, summary.failed) == (6, 0), summary.errors
    store = ResultsStore(spec.store_path, create=False)
    assert store.axes() == MAE | {
        "max_clips_per_group": {"table": "probe", "key": "max_clips_per_group", "numeric": True}
    }
    cells = store.frame("cells")
    ssl, random = cells[cells["encoder"] == "ssl"], cells[cells["encoder"] == "random"]
    assert sorted(zip(ssl["mask_ratio"], ssl["max_clips_per_group"], strict=True)) == [
        (0.6, 2),
        (0.6, 3),
        (0.8, 2),
        (0.8, 3),
    ]
    assert random["mask_ratio"].isna().all() and sorted(random["max_clips_per_group"]) == [2, 3]
    assert ssl["mask_strength"].isna().all()  # a reconstruct setting: NULL for mae
    results = store.frame()
    assert results.groupby("cell_id")["mask_ratio"].nunique(dropna=False).eq(1).all()
    assert set(results["max_clips_per_group"]) == {2, 3}
    assert len(list((spec.out / "pretrain").iterdir())) == 2  # one pretraining per mask ratio
    for run_dir, clips in zip(cells["run_dir"], cells["max_clips_per_group"], strict=True):
        assert runs.read_json(Path(run_dir) / "config.json")["max_clips_per_group"] == clips
