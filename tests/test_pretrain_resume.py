"""Real subprocesses: SIGKILL at several points then --resume finishes; 2-process gloo launch."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mosquito_ssl import runs
from mosquito_ssl.pretrain.trainer import last_complete_checkpoint
from procs import cli_env, kill_when

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        species=["aedes_aegypti", "culex_quinquefasciatus"],
        recordings_per_species=3,
        clips_per_recording=3,
        seed=2,
    )


def _cmd(data, out, epochs, *extra):
    return [
        sys.executable,
        "-m",
        "mosquito_ssl",
        "pretrain",
        str(data),
        "--out",
        str(out),
        "--run-name",
        "r",
        "--preset",
        "tiny",
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--grad-accum",
        "1",
        "--workers",
        "0",
        "--patience",
        "100",
        "--lr",
        "1e-3",
        *extra,
    ]


def _run_until(cmd, condition, timeout=120):
    """Start ``cmd``, SIGKILL it as soon as ``condition()`` holds; True if it was killed."""
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return kill_when(proc, condition, timeout)


def _resume(data, out, epochs):
    done = subprocess.run(
        _cmd(data, out, epochs, "--resume"), env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_sigkill_then_resume_finishes(synth, tmp_path):
    """Killed as soon as a checkpoint folder appears (possibly half-written). Killed after a complete
    checkpoint and resumed: tests/test_determinism.py (bit-identical weights)."""
    epochs = 5
    run_dir = tmp_path / "r"
    killed = _run_until(_cmd(synth, tmp_path, epochs), lambda: any(run_dir.glob("checkpoint-*")))
    assert killed, "the run finished before it could be killed; make it longer"
    assert not runs.is_done(run_dir)
    before = last_complete_checkpoint(run_dir)
    log = _resume(synth, tmp_path, epochs)
    assert runs.is_done(run_dir)
    history = runs.read_json(run_dir / "log_history.json")
    evals = [h["epoch"] for h in history if "eval_loss" in h]
    assert evals == sorted(evals) and round(evals[-1]) == epochs
    assert len(evals) == epochs  # no epoch evaluated twice or lost
    if before is not None:
        assert f"resuming from {before}" in log


def test_kill_before_any_checkpoint_starts_fresh(synth, tmp_path):
    run_dir = tmp_path / "r"
    killed = _run_until(_cmd(synth, tmp_path, 3), lambda: (run_dir / "config.json").exists())
    assert killed
    _resume(synth, tmp_path, 3)
    assert runs.is_done(run_dir)


def _free_port() -> int:
    """A port nothing listens on now (the OS picks it), so parallel runs do not collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_process_gloo_launch(synth, tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not on PATH")
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "mosquito_ssl",
        *_cmd(synth, tmp_path, 2)[3:],
    ]
    done = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: ") == 1  # one closing line per launch, not per process
    run_dir = tmp_path / "r"
    assert runs.is_done(run_dir)
    assert (run_dir / "final" / "model.safetensors").is_file()
    state = runs.read_json(Path(last_complete_checkpoint(run_dir)) / "trainer_state.json")
    # 15 training clips shared by 2 processes (8 each) at batch 4: 2 optimizer steps per epoch,
    # where a single process would take 4
    assert state["global_step"] == 4
