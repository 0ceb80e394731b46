"""Running sweeps: shared work, skip-done on re-run, failing cells, shards and merging."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mosquito_ssl import runs
from mosquito_ssl.benchmarks import sweep
from mosquito_ssl.benchmarks.plan import parse_shard, select_shard, shard_store_path
from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.store.write import ResultsStore, merge_stores
from test_bench_spec import write_spec

SMALL = ["grid.mask_strength=[1.0]", "grid.freeze=['frozen']", "grid.seed=[0]"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        recordings_per_species=3,
        clips_per_recording=3,
        species=["aedes_aegypti", "anopheles_gambiae", "culex_quinquefasciatus"],
        seed=3,
    )


class FakeRunner:
    """Stands in for ``sweep.run_cell``: records calls, fails the cells it is told to."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, spec, cell, force, pretrained):
        self.calls.append(cell.cell_id)
        if cell.cell_id in self.fail:
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
        value = 0.5 + 0.1 * cell.seed + 0.2 * (cell.encoder == "ssl")
        return (
            [
                dict(split=s, metric=m, layer=None, value=value, probe=cell.probe)
                for s in ("val", "test")
                for m in ("accuracy", "balanced_accuracy", "macro_f1")
            ],
            {"run_dir": None, "pretrain_dir": None},
        )


@pytest.mark.slow
def test_real_sweep_shares_pretraining_and_skips_done_cells(tmp_path, tiny_data, monkeypatch):
    spec = SweepSpec.load(write_spec(tmp_path, tiny_data), SMALL)
    summary = sweep.run_sweep(spec, echo=lambda s: None)
    cells = spec.cells()
    assert (summary.ran, summary.failed, summary.total) == (4, 0, 4), summary.errors
    store = ResultsStore(spec.store_path)
    assert store.done_ids() == {c.cell_id for c in cells}
    frame = store.frame()
    assert frame.groupby("cell_id").size().min() > 0
    assert not frame.duplicated(["cell_id", "probe", "split", "metric", "layer"]).any()
    assert set(frame["encoder"]) == {"ssl", "random"}
    pretrain_dirs = list((spec.out / "pretrain").iterdir())
    assert len(pretrain_dirs) == 1 and runs.is_done(pretrain_dirs[0])  # one pretraining for 2 cells
    assert set(store.frame("cells")["pretrain_dir"].dropna()) == {str(pretrain_dirs[0])}

    runner = FakeRunner()
    monkeypatch.setattr(sweep, "run_cell", runner)
    again = sweep.run_sweep(SweepSpec.load(write_spec(tmp_path, tiny_data), SMALL), echo=lambda s: None)
    assert runner.calls == [] and (again.skipped, again.ran) == (4, 0)
    forced = sweep.run_sweep(spec, force=True, echo=lambda s: None)
    assert len(runner.calls) == 4 and forced.ran == 4


def test_failing_cell_is_recorded_and_retried(tmp_path, tiny_data, monkeypatch):
    spec = SweepSpec.load(write_spec(tmp_path, tiny_data))
    cells = spec.cells()
    bad = cells[3].cell_id
    monkeypatch.setattr(sweep, "run_cell", FakeRunner(fail=[bad]))
    summary = sweep.run_sweep(spec, echo=lambda s: None)
    assert (summary.failed, summary.ran) == (1, len(cells) - 1)
    assert "1 failed" in summary.format() and cells[3].name in summary.format()
    status = ResultsStore(spec.store_path).cell_status()
    assert status[bad] == ("failed", "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB")
    assert ResultsStore(spec.store_path).count_rows(bad) == 0
    retry = FakeRunner()
    monkeypatch.setattr(sweep, "run_cell", retry)
    assert sweep.run_sweep(spec, echo=lambda s: None).failed == 0
    assert retry.calls == [bad]


def test_failed_pretraining_fails_its_cells_once(tmp_path, tiny_data, monkeypatch):
    import mosquito_ssl.pretrain.train as train
    import mosquito_ssl.probe.run as probe_run

    calls = []

    def broken(cfg):
        calls.append(cfg)
        raise RuntimeError("pretraining exploded")

    monkeypatch.setattr(train, "pretrain", broken)
    monkeypatch.setattr(probe_run, "run_probe", lambda cfg: pytest.fail("probe must not run"))
    spec = SweepSpec.load(write_spec(tmp_path, tiny_data), SMALL)
    ssl = [c for c in spec.cells() if c.encoder == "ssl"]
    monkeypatch.setattr(sweep, "select_shard", lambda cells, shard: ssl)
    summary = sweep.run_sweep(spec, echo=lambda s: None)
    assert summary.failed == len(ssl) == 2 and len(calls) == 1
    assert {e for _, e in summary.errors} == {"RuntimeError: pretraining exploded"}


def test_shards_partition_cells_by_pretraining(tmp_path, tiny_data):
    spec = SweepSpec.load(write_spec(tmp_path, tiny_data, baselines='["handcrafted"]'))
    cells = spec.cells()
    for n in (1, 2, 3, 5):
        shards = [select_shard(cells, (i, n)) for i in range(n)]
        ids = [c.cell_id for s in shards for c in s]
        assert sorted(ids) == sorted(c.cell_id for c in cells)  # every cell in exactly one shard
        shuffled = random.Random(n).sample(cells, len(cells))  # deterministic, order-independent
        assert [{c.cell_id for c in s} for s in shards] == [
            {c.cell_id for c in select_shard(shuffled, (i, n))} for i in range(n)
        ]
        owner = {c.encoder_key: i for i, s in enumerate(shards) for c in s}
        assert all(
            owner[c.encoder_key] == i for i, s in enumerate(shards) for c in s
        )  # an encoder is never split over shards
    assert all(len(select_shard(cells, (i, 3))) > 0 for i in range(3))
    assert shard_store_path(spec, (1, 4)).name == "results.shard-1-of-4.sqlite"
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


def test_sharded_sweep_merges_to_the_unsharded_result(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(sweep, "run_cell", FakeRunner())
    spec = SweepSpec.load(write_spec(tmp_path, tiny_data))
    for i in range(3):
        sweep.run_sweep(spec, shard=(i, 3), echo=lambda s: None)
    merged = tmp_path / "merged.sqlite"
    merge_stores(merged, [shard_store_path(spec, (i, 3)) for i in range(3)])
    sweep.run_sweep(spec, echo=lambda s: None)
    whole, parts = ResultsStore(spec.store_path), ResultsStore(merged)
    assert parts.done_ids() == whole.done_ids() == {c.cell_id for c in spec.cells()}
    assert parts.count_rows() == whole.count_rows()
    assert parts.expected_ids() == whole.expected_ids()
