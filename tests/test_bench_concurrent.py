"""Two ``mosquito-ssl benchmarks run`` of one sweep at once: each pretraining and each probe is built
by one of them (the run-folder locks of ``locks.py``); the other waits and reuses it, and says so."""

from __future__ import annotations

import subprocess

import pytest

from procs import cli_env, command

pytestmark = pytest.mark.slow


def test_two_sweeps_at_once_build_each_run_once(synth, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'[sweep]\nname = "cc"\nout = "{tmp_path / "out"}"\npretrain_data = "{synth}"\n'
        '[grid]\nseed = [0, 1]\nprobe = ["linear"]\n'
        '[pretrain]\npreset = "tiny"\nepochs = 1\nbatch_size = 8\ngrad_accum = 1\nworkers = 0\n'
    )
    env = dict(cli_env(), MOSQUITO_SSL_CACHE=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen(
            [*command(), "benchmarks", "run", str(spec)], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    text = "\n".join(logs)
    pretrain_dirs = sorted((tmp_path / "out" / "pretrain").iterdir())
    assert len(pretrain_dirs) == 2
    for run in pretrain_dirs:  # one TensorBoard writer per run folder: one trainer trained it
        assert len(list((run / "tensorboard").glob("events.*"))) == 1, run
        assert text.count(f"pretraining {run}: ") == 1, text
    probes = sorted((tmp_path / "out" / "probe").iterdir())
    assert len(probes) == 4
    assert text.count("mosquito_ssl.probe.inputs: ") == len(probes), text  # each probe ran once
