"""Training is a function of the seed, not of data-loader workers or of a kill and ``--resume``.

Masks and augmentations of a batch are drawn from (seed, optimizer step, the batch's clip
indices) (``SSLModel.batch_generator``), not from the global RNG that worker seeding consumes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mosquito_ssl.pretrain.trainer import last_complete_checkpoint
from procs import cli_env, kill_when

pytestmark = pytest.mark.slow


def _cmd(data, out, workers, *extra):
    return [
        sys.executable, "-m", "mosquito_ssl", "pretrain", str(data), "--out", str(out), "--run-name", "r",
        "--preset", "tiny", "--epochs", "2", "--batch-size", "4", "--grad-accum", "2", "--workers", str(workers),
        "--lr", "1e-3", "--method", "mae", "--patience", "100", *extra,
    ]  # fmt: skip


def _weights(out):
    return torch.load(out / "r" / "final" / "model.pth", weights_only=True)


def _run(cmd):
    done = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_workers_and_a_kill_with_resume_give_the_same_weights(synth, tmp_path):
    """One run with no workers; one with 2 workers, SIGKILLed after its first checkpoint and resumed."""
    _run(_cmd(synth, tmp_path / "w0", 0))
    reference = _weights(tmp_path / "w0")

    killed_dir = tmp_path / "killed" / "r"
    proc = subprocess.Popen(
        _cmd(synth, tmp_path / "killed", 2), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert kill_when(proc, lambda: last_complete_checkpoint(killed_dir) is not None, timeout=240)
    assert "resuming from" in _run(_cmd(synth, tmp_path / "killed", 2, "--resume"))
    resumed = _weights(tmp_path / "killed")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference), "workers or kill + --resume changed it"
