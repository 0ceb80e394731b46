"""SIGKILL a real ``python -m mosquito_ssl benchmarks run`` at several points, then finish it.

The finished store must equal an uninterrupted reference run row for row (one row per
(cell, probe, split, metric, layer), no partial cells) and the pretraining must have resumed
from the checkpoint written before the kill.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from mosquito_ssl import runs
from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.benchmarks.sweep import run_sweep
from mosquito_ssl.pretrain.trainer import last_complete_checkpoint
from procs import cli_env, kill_when
from test_bench_spec import write_spec

pytestmark = pytest.mark.slow
# 4 pretraining epochs leave room to kill after the first checkpoint; 4 cells in all.
GRID = ["grid.mask_strength=[1.0]", "grid.freeze=['frozen']", "grid.seed=[0]", "pretrain.epochs=4"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        recordings_per_species=3,
        clips_per_recording=3,
        species=["aedes_aegypti", "anopheles_gambiae", "culex_quinquefasciatus"],
        seed=4,
    )


def _start(spec: Path, log: Path) -> subprocess.Popen:
    env = cli_env()
    cmd = [sys.executable, "-m", "mosquito_ssl", "benchmarks", "run", str(spec)]
    for override in GRID:
        cmd += ["--set", override]
    with log.open("w") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)


def _done_cells(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with closing(sqlite3.connect(store, timeout=1)) as con:
            return con.execute("SELECT COUNT(*) FROM cells WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _rows(store: Path) -> list[tuple]:
    with closing(sqlite3.connect(store)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return con.execute("SELECT cell_id, probe, split, metric, layer FROM results").fetchall()


def test_sigkill_at_several_points_then_the_same_command_completes(tmp_path, tiny_data):
    (tmp_path / "ref").mkdir()
    reference = SweepSpec.load(write_spec(tmp_path / "ref", tiny_data), GRID)  # same cells, other out
    assert run_sweep(reference, echo=lambda s: None).failed == 0
    spec_file = write_spec(tmp_path, tiny_data)
    spec = SweepSpec.load(spec_file, GRID)
    pretrain_dir = spec.pretrain_config(next(c for c in spec.cells() if c.encoder == "ssl")).run_dir()

    # 1. during pretraining, right after its first complete checkpoint
    killed = kill_when(
        _start(spec_file, tmp_path / "run1.log"), lambda: last_complete_checkpoint(pretrain_dir) is not None
    )
    assert killed and not runs.is_done(pretrain_dir)
    checkpoint = Path(last_complete_checkpoint(pretrain_dir))
    step_at_kill = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    assert step_at_kill > 0

    # 2. as soon as the first cell is committed
    log2 = tmp_path / "run2.log"
    assert kill_when(_start(spec_file, log2), lambda: _done_cells(spec.store_path) > 0)
    assert f"resuming from {checkpoint}" in log2.read_text()  # continued, not restarted
    final_state = json.loads((pretrain_dir / "log_history.json").read_text())
    assert max(e.get("step", 0) for e in final_state) > step_at_kill

    # 3. at a random early moment (start-up, embedding, probing or writing)
    delay = random.Random(7).uniform(0.5, 6.0)
    started = time.time()
    kill_when(_start(spec_file, tmp_path / "run3.log"), lambda: time.time() - started > delay)

    # 4. the same command finishes the sweep
    proc = _start(spec_file, tmp_path / "run4.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "run4.log").read_text()[-2000:]
    got, want = _rows(spec.store_path), _rows(reference.store_path)
    assert len(got) == len(set(got)) and sorted(got, key=repr) == sorted(want, key=repr)
    assert {r[0] for r in got} == {c.cell_id for c in spec.cells()}
    assert _done_cells(spec.store_path) == len(spec.cells())
