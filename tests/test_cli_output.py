"""What a user's log file gets: a tiny pretrain and the probe it suggests, stderr sent to a file.

No raw Trainer dictionaries, no line per progress update, one readable line per epoch, a
bounded log, and one closing line on stdout whose ``next:`` command really runs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from procs import cli_env

pytestmark = pytest.mark.slow

EPOCHS = 2
# The Trainer's PrinterCallback / ProgressCallback print its log dictionaries like this.
RAW_DICT = re.compile(r"\{'(?:loss|eval_loss|eval_mse|train_runtime|train_loss|grad_norm|learning_rate|epoch)'")


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "mosquito_ssl", *map(str, args)]


def _run(cmd: list[str], log: Path) -> str:
    """Run ``cmd`` with stderr redirected to ``log`` (not a terminal); return its stdout."""
    # the module-scoped fixture runs before conftest's per-test cache: give the runs their own
    env = dict(cli_env(), MOSQUITO_SSL_CACHE=str(log.parent / "cache"))
    with open(log, "w") as err:
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=300)
    assert done.returncode == 0, log.read_text()[-3000:]
    return done.stdout


def _lines(log: Path) -> list[str]:
    # splitlines also splits on "\r": a progress bar redrawn in a file counts once per update
    return log.read_text().splitlines()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-output")
    data = tmp / "synth"
    _run(_cli("data", "synth", data, "--recordings", "3", "--clips", "2", "--seed", "0"), tmp / "synth.log")
    args = ("--preset", "tiny", "--epochs", EPOCHS, "--batch-size", "4", "--grad-accum", "1", "--workers", "0")
    stdout = _run(_cli("pretrain", data, "--out", tmp / "runs", "--run-name", "t", *args), tmp / "pretrain.log")
    return tmp, stdout


def test_pretrain_log_has_epoch_lines_and_no_raw_dictionaries(pretrained):
    tmp, _ = pretrained
    log = tmp / "pretrain.log"
    text, lines = log.read_text(), _lines(log)
    assert not RAW_DICT.search(text), text
    epochs = [
        line
        for line in lines
        if re.search(r"epoch \d+/2: train loss \S+, validation masked-patch MSE \S+ \(best \S+\)", line)
    ]
    assert len(epochs) == EPOCHS, text
    assert "step/s" not in text and "it/s" not in text, text  # no training / Trainer progress bar in a file
    assert "Writing model shards" not in text, text
    assert len(lines) <= 15, text


def test_pretrain_ends_with_one_line_whose_next_command_runs(pretrained):
    tmp, stdout = pretrained
    assert len(stdout.splitlines()) == 1, stdout
    match = re.fullmatch(r"done: (\S+); next: (mosquito-ssl probe linear .+)\n", stdout)
    assert match, stdout
    assert Path(match.group(1)) == tmp / "runs" / "t" / "final" and Path(match.group(1)).is_dir()
    command = shlex.split(match.group(2))
    log = tmp / "probe.log"
    _run(_cli(*command[1:], "--out", tmp / "probes"), log)
    text, lines = log.read_text(), _lines(log)
    assert not RAW_DICT.search(text), text
    assert "Loading weights" not in text, text  # transformers' loading bar is off
    assert len(lines) <= 20, text


def test_finetune_prints_no_trainer_dictionaries(pretrained):
    tmp, _ = pretrained
    log = tmp / "finetune.log"
    args = ("--encoder", tmp / "runs" / "t", "--epochs", "2", "--batch-size", "4", "--out", tmp / "probes")
    stdout = _run(_cli("probe", "finetune", tmp / "synth", *args), log)
    assert not RAW_DICT.search(stdout + log.read_text()), stdout + log.read_text()
    assert stdout.splitlines()[-1].startswith("done: "), stdout  # the results table, then one line
