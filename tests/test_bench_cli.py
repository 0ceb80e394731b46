"""``mosquito-ssl benchmarks run|merge|status``: plan, dry run, exit codes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mosquito_ssl.benchmarks import sweep
from mosquito_ssl.benchmarks.plan import select_shard
from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.cli import app
from test_bench_spec import write_spec
from test_bench_sweep import FakeRunner


@pytest.fixture
def data(tmp_path) -> Path:
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path / "data",
        recordings_per_species=3,
        clips_per_recording=2,
        species=["aedes_aegypti", "culex_quinquefasciatus"],
        seed=5,
    )


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path, data):
    spec = write_spec(tmp_path, data, baselines='["handcrafted"]')
    result = invoke("benchmarks", "run", spec, "--dry-run", "--set", "pretrain.epochs=3")
    assert result.exit_code == 0, result.output
    assert "cells: 26 (handcrafted 2, random 8, ssl 16)" in result.output
    assert "pretrainings: 4 distinct" in result.output
    assert "4 pretrainings x 3 epochs x 12 clips = 144 clip-passes" in result.output
    assert "embedding caches: 8 encoders" in result.output
    assert result.output.strip().splitlines()[-1].startswith("done: plan only, nothing written; next: ")
    assert not (tmp_path / "out").exists()


def test_user_mistakes_exit_1_with_one_line(tmp_path, data):
    spec = write_spec(tmp_path, data)
    for args in (
        ["run", spec, "--set", "grid.freeze=['half']"],
        ["run", tmp_path / "nope.toml"],
        ["run", spec, "--shard", "3/2"],
        ["status", tmp_path / "missing.sqlite"],
    ):
        result = invoke("benchmarks", *args)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception  # no traceback leaks out
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: ")


def test_run_status_merge_and_failed_exit_code(tmp_path, data, monkeypatch):
    spec_file = write_spec(tmp_path, data)
    cells = SweepSpec.load(spec_file).cells()
    bad = select_shard(cells, (0, 2))[0]
    monkeypatch.setattr(sweep, "run_cell", FakeRunner(fail=[bad.cell_id]))
    result = invoke("benchmarks", "run", spec_file, "--shard", "0/2")
    shard0 = tmp_path / "out" / "results.shard-0-of-2.sqlite"
    assert result.exit_code == 1 and "1 failed" in result.output
    assert last_line(result) == f"done: {shard0} (1 cells failed); next: mosquito-ssl benchmarks status {shard0}"
    monkeypatch.setattr(sweep, "run_cell", FakeRunner())
    result = invoke("benchmarks", "run", spec_file, "--shard", "1/2")
    assert result.exit_code == 0
    whole = tmp_path / "out" / "results.sqlite"
    assert last_line(result).endswith(
        f"mosquito-ssl benchmarks merge {whole} {whole.parent}/results.shard-*-of-2.sqlite"
    )
    shards = sorted((tmp_path / "out").glob("results.shard-*-of-2.sqlite"))
    assert len(shards) == 2
    merged = tmp_path / "merged.sqlite"
    result = invoke("benchmarks", "merge", merged, *shards)
    assert result.exit_code == 0 and f"{len(cells)} cells, {len(cells) - 1} done, 1 failed" in result.output
    assert last_line(result) == f"done: {merged}; next: mosquito-ssl reports build {merged}"
    status = invoke("benchmarks", "status", merged, "--spec", spec_file)
    assert status.exit_code == 0
    assert f"failed {bad.cell_id}: RuntimeError: CUDA out of memory" in status.output
    assert "pending (expected by the sweep, not recorded yet): 0" in status.output
    assert f"{len(cells)} cells, 1 pending" in status.output
    assert last_line(status).startswith(f"done: {merged}; next: mosquito-ssl benchmarks run {spec_file} again")


def last_line(result) -> str:
    return result.output.strip().splitlines()[-1]
