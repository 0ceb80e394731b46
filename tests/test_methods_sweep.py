"""The ``method`` axis of sweeps: grid expansion, per-method settings, cell ids, store schema migration."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.store.write import SCHEMA_VERSION, ResultsStore
from test_bench_spec import SPEC, write_spec

METHOD_SPEC = SPEC.replace('method = ["reconstruct"]', 'method = ["reconstruct", "mae", "teacher"]')


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def test_method_axis_expands_only_reconstruct_over_mask_settings(tmp_path, data):
    cells = [c for c in SweepSpec.load(write_spec(tmp_path, data, METHOD_SPEC)).cells() if c.encoder == "ssl"]
    per_method = {m: [c for c in cells if c.method == m] for m in ("reconstruct", "mae", "teacher")}
    # 2 mask strengths for reconstruct, one setting for each other method; x 4 probe/freeze pairs x 2 seeds
    assert [len(v) for v in per_method.values()] == [2 * 4 * 2, 4 * 2, 4 * 2]
    assert all(c.mask_strength is None and c.loss_on is None for c in per_method["mae"])
    assert len({c.cell_id for c in cells}) == len(cells)
    assert "-mae-" in per_method["mae"][0].name


def test_each_cell_pretrains_its_own_method_with_its_own_settings(tmp_path, data):
    text = METHOD_SPEC.replace("[pretrain]\n", "[pretrain]\nmask_ratio = 0.7\nviews = 2\n")
    spec = SweepSpec.load(write_spec(tmp_path, data, text))
    cells = {c.method: c for c in spec.cells() if c.encoder == "ssl"}
    mae, teacher = spec.pretrain_config(cells["mae"]), spec.pretrain_config(cells["teacher"])
    assert (mae.method, mae.method_settings().mask_ratio) == ("mae", 0.7)
    assert teacher.method_settings().views == 2  # views is teacher-only: mae's config never sees it
    reconstruct = spec.pretrain_config(cells["reconstruct"])
    assert (reconstruct.mask_ratio, reconstruct.views) == (None, None)  # mae's and teacher's settings
    assert len({spec.encoder_source(c) for c in cells.values()}) == 3


def test_method_setting_of_no_swept_method_is_an_error(tmp_path, data):
    text = SPEC.replace("[pretrain]\n", "[pretrain]\nmin_crop = 0.5\n")
    with pytest.raises(ConfigError, match=r"pretrain\.min_crop is a setting of method byol"):
        SweepSpec.load(write_spec(tmp_path, data, text))
    with pytest.raises(ConfigError, match=r"grid\.method: 'simclr'"):
        SweepSpec.load(write_spec(tmp_path, data, SPEC.replace('method = ["reconstruct"]', 'method = ["simclr"]')))


def test_reconstruct_cell_ids_do_not_change_with_the_method_axis(tmp_path, data):
    before = {c.cell_id for c in SweepSpec.load(write_spec(tmp_path, data)).cells()}
    with_axis = SweepSpec.load(write_spec(tmp_path, data, METHOD_SPEC, name="m.toml")).cells()
    assert before <= {c.cell_id for c in with_axis}


def test_version_one_store_is_migrated_with_reconstruct(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as con:
        con.executescript(
            "CREATE TABLE cells(cell_id TEXT PRIMARY KEY, sweep TEXT, encoder TEXT, mask_strength REAL,"
            " mask_kind TEXT, loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT, seed INTEGER, status TEXT,"
            " error TEXT, run_dir TEXT, pretrain_dir TEXT, package_version TEXT, git_commit TEXT,"
            " torch_version TEXT, transformers_version TEXT, device TEXT, wall_time_s REAL, finished_at TEXT);"
            "CREATE TABLE results(cell_id TEXT, sweep TEXT, encoder TEXT, mask_strength REAL, mask_kind TEXT,"
            " loss_on TEXT, freeze TEXT, probe TEXT, pooling TEXT, layer INTEGER, seed INTEGER, split TEXT,"
            " metric TEXT, value REAL);"
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO meta VALUES ('schema_version', '1');"
            "INSERT INTO cells(cell_id, encoder, status) VALUES ('a', 'ssl', 'done'), ('b', 'random', 'done');"
            "INSERT INTO results(cell_id, encoder, metric, value) VALUES ('a', 'ssl', 'accuracy', 0.5),"
            " ('b', 'random', 'accuracy', 0.4);"
        )
        con.commit()
    store = ResultsStore(path, create=False)
    results = store.frame("results").set_index("cell_id")
    assert results.loc["a", "method"] == "reconstruct" and results["method"].isna().sum() == 1
    assert store.frame("cells").set_index("cell_id").loc["a", "method"] == "reconstruct"
    meta = dict(store.frame("meta").values)
    assert meta["schema_version"] == SCHEMA_VERSION == "3" and meta["axes"] == "{}"


def test_method_axis_defaults_to_pretrainings_default_even_when_masking_is_swept(tmp_path, data):
    plain = SPEC.replace('method = ["reconstruct"]\n', "").replace("mask_strength = [0.5, 1.0]\n", "")
    cells = SweepSpec.load(write_spec(tmp_path, data, plain, name="plain.toml")).cells()
    assert {c.method for c in cells if c.encoder == "ssl"} == {"mae"}
    masking = SPEC.replace('method = ["reconstruct"]\n', "")  # sweeps mask_strength, a reconstruct setting
    with pytest.raises(ConfigError, match=r'grid\.mask_strength is a setting of method reconstruct.*add "reconstruct"'):
        SweepSpec.load(write_spec(tmp_path, data, masking, name="masking.toml"))
