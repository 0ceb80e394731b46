"""The SQLite results store: schema, one-transaction commits, failures, concurrency, merging."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from contextlib import closing

import pandas as pd
import pytest

from mosquito_ssl.errors import StoreError
from mosquito_ssl.store.write import CELL_COLUMNS, RESULT_COLUMNS, ResultsStore, merge_stores


def cell(cell_id: str, **kw) -> dict:
    base = dict(
        cell_id=cell_id,
        sweep="t",
        encoder="ssl",
        mask_strength=1.0,
        mask_kind="specaugment",
        loss_on="all",
        freeze="frozen",
        probe="linear",
        pooling="mean",
        seed=0,
        finished_at="2026-01-01T00:00:00",
    )
    return {**base, **kw}


def rows(n_metrics: int = 3, value: float = 0.5, layers=(None,)) -> list[dict]:
    return [
        dict(split=split, metric=f"m{k}", layer=layer, value=value, probe="linear")
        for split in ("val", "test")
        for k in range(n_metrics)
        for layer in layers
    ]


def test_schema_matches_the_contract_and_pandas_reads_it(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.commit_cell(cell("a", wall_time_s=1.0), rows(layers=(None, 0, 1)))
    with closing(sqlite3.connect(store.path)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cells = pd.read_sql("SELECT * FROM cells", con)
        results = pd.read_sql("SELECT * FROM results", con)
    assert tuple(cells.columns) == CELL_COLUMNS and tuple(results.columns) == RESULT_COLUMNS
    assert len(results) == 2 * 3 * 3 and cells.loc[0, "status"] == "done"
    assert results["layer"].isna().sum() == 6 and set(results["encoder"]) == {"ssl"}


def test_recommit_replaces_rows_and_failure_removes_them(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.commit_cell(cell("a"), rows(3))
    store.commit_cell(cell("a"), rows(2, value=0.9))
    assert store.count_rows("a") == 4
    assert set(store.frame()["value"]) == {0.9}
    store.record_failure(cell("a"), "RuntimeError: out of memory\n  at line 3")
    assert store.count_rows("a") == 0
    assert store.cell_status() == {"a": ("failed", "RuntimeError: out of memory at line 3")}
    assert store.done_ids() == set()


def test_a_commit_that_fails_midway_leaves_the_old_rows(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.commit_cell(cell("a"), rows(2))
    duplicated = rows(2) + rows(1)  # the unique index rejects the repeated (split, metric) row
    with pytest.raises(sqlite3.IntegrityError):
        store.commit_cell(cell("a", wall_time_s=5.0), duplicated)
    assert store.count_rows("a") == 4  # delete + partial inserts rolled back together
    assert store.frame("cells").loc[0, "wall_time_s"] is None


def _writer(path: str, worker: int, n_cells: int) -> None:
    store = ResultsStore(path)
    for i in range(n_cells):
        store.commit_cell(cell(f"w{worker}-{i}", seed=worker), rows(4))


@pytest.mark.slow
def test_concurrent_writers_lose_no_rows(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = ResultsStore(path)
    assert len(store.done_ids()) == 120 and store.count_rows() == 120 * 8


def test_merge_is_idempotent_and_done_beats_failed(tmp_path):
    a, b = ResultsStore(tmp_path / "a.sqlite"), ResultsStore(tmp_path / "b.sqlite")
    a.commit_cell(cell("x"), rows(2))
    a.record_failure(cell("y"), "boom")
    b.commit_cell(cell("y", finished_at="2025-01-01T00:00:00"), rows(3))  # older, but done
    b.record_failure(cell("x", finished_at="2027-01-01T00:00:00"), "later failure")
    b.add_expected(["x", "y", "z"])
    out = tmp_path / "merged.sqlite"
    assert merge_stores(out, [a.path, b.path]) == {str(a.path): 2, str(b.path): 1}
    merged = ResultsStore(out)
    before = merged.frame().sort_values(list(RESULT_COLUMNS)).reset_index(drop=True)
    assert merged.cell_status() == {"x": ("done", None), "y": ("done", None)}
    assert merged.count_rows("x") == 4 and merged.count_rows("y") == 6
    assert merge_stores(out, [b.path, a.path]) == {str(b.path): 0, str(a.path): 0}
    after = merged.frame().sort_values(list(RESULT_COLUMNS)).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
    assert merged.expected_ids() == {"x", "y", "z"}


def test_not_a_store_is_a_store_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("hello")
    with pytest.raises(StoreError, match="is not a usable results store"):
        ResultsStore(junk, create=False)
    with pytest.raises(StoreError, match="does not exist"):
        merge_stores(tmp_path / "out.sqlite", [tmp_path / "missing.sqlite"])
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="not a results store"):
        ResultsStore(empty, create=False)
