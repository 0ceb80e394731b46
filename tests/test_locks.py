"""One process builds a run folder or cache entry at a time: real processes wait, reuse, skip,
and take over the lock of a SIGKILLed one (runs.py's helpers, locks.py, lockfiles.py)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mosquito_ssl import lockfiles, locks, runs
from procs import cli_env

HOST = socket.gethostname()

# Builds FOLDER through the skip-if-done helpers; inside the build it records its pid in BUILDS
# and holds the build open until RELEASE exists. With "fork", a forked child outlives it.
BUILDER = """
import logging, os, sys, time
from pathlib import Path
from mosquito_ssl import runs
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
folder, builds, release = map(Path, sys.argv[1:4])
if runs.should_skip(folder):
    print("reused")
else:
    with runs.building(folder):
        if "fork" in sys.argv and os.fork() == 0:  # like a DataLoader worker started by fork
            time.sleep(300)
            os._exit(0)
        with builds.open("a") as fh:
            fh.write(f"{os.getpid()}\\n")
        while not release.exists():
            time.sleep(0.02)
        runs.write_text_atomic(folder / "out.txt", f"{os.getpid()}\\n")
    print("built")
"""

# The real CLI, with runs.begin (where every build starts, under the lock) wrapped so that an
# embeddings entry's build is counted and held open.
CLI = """
import os, sys, time
from pathlib import Path
from mosquito_ssl import runs
builds, release = Path(os.environ["TEST_BUILDS"]), Path(os.environ["TEST_RELEASE"])
real = runs.begin

def counted(folder, clean=True):
    out = real(folder, clean)
    if Path(folder).parent.name == "embeddings":
        with builds.open("a") as fh:
            fh.write(f"{os.getpid()}\\n")
        while not release.exists():
            time.sleep(0.02)
    return out

runs.begin = counted
from mosquito_ssl.cli import main
sys.argv = ["mosquito-ssl", *sys.argv[1:]]
main()
"""


def _start(code: str, args: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)], env=env or cli_env(), stdout=fh, stderr=subprocess.STDOUT
        )


def _until(condition, proc: subprocess.Popen, timeout: float = 240) -> bool:
    """Poll ``condition`` until it holds, ``proc`` exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            return bool(condition())
        time.sleep(0.02)
    return True


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def stop():
    """Processes a test started; SIGKILLed if still running at the end (a failed test's waiters)."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_processes_build_a_folder_once_and_the_second_reuses_it(tmp_path, stop):
    folder, builds, release = tmp_path / "runs" / "entry", tmp_path / "builds", tmp_path / "release"
    first = _start(BUILDER, [folder, builds, release], tmp_path / "first.log")
    stop.append(first)
    assert _until(lambda: _lines(builds), first), (tmp_path / "first.log").read_text()
    second_log = tmp_path / "second.log"
    second = _start(BUILDER, [folder, builds, release], second_log)
    stop.append(second)
    waiting = f"waiting for {folder}, being built by pid {first.pid} on host {HOST}"
    assert _until(lambda: waiting in second_log.read_text(), second), second_log.read_text()
    release.touch()
    assert first.wait(120) == 0 and second.wait(120) == 0
    assert _lines(builds) == [str(first.pid)]  # the build body ran once
    assert f"{folder} finished by another process; reusing it" in second_log.read_text()
    assert _lines(second_log)[-1] == "reused" and _lines(tmp_path / "first.log")[-1] == "built"
    assert runs.is_done(folder) and (folder / "out.txt").read_text() == f"{first.pid}\n"
    assert not locks.lock_path(folder).exists()  # a clean release removes the lock file


def test_a_caller_that_does_not_wait_skips_and_says_so(tmp_path, stop, caplog):
    folder, builds, release = tmp_path / "entry", tmp_path / "builds", tmp_path / "release"
    first = _start(BUILDER, [folder, builds, release], tmp_path / "first.log")
    stop.append(first)
    assert _until(lambda: _lines(builds), first)
    with caplog.at_level(logging.INFO), runs.locked(folder, wait=False) as got:
        assert got is False
    assert f"{folder} is being built by pid {first.pid} on host {HOST}; skipping it" in caplog.text
    release.touch()
    assert first.wait(120) == 0
    with runs.locked(folder, wait=False) as got:  # free again
        assert got is True and not runs.should_skip(folder, force=True)
    assert not locks.holds(folder)


def test_the_lock_of_a_sigkilled_process_is_taken_over(tmp_path, stop, caplog):
    folder, builds, release = tmp_path / "run", tmp_path / "builds", tmp_path / "release"
    killed = _start(BUILDER, [folder, builds, release], tmp_path / "killed.log")
    stop.append(killed)
    assert _until(lambda: _lines(builds), killed)
    killed.send_signal(signal.SIGKILL)  # no cleanup runs: the lock file and its record stay
    killed.wait()
    assert locks.lock_path(folder).exists()
    with caplog.at_level(logging.INFO):
        assert not runs.should_skip(folder)  # takes the lock instead of waiting forever
    assert (
        f"taking over the lock of {folder} left by pid {killed.pid} on host {HOST} (no longer running)" in caplog.text
    )
    with runs.building(folder):
        assert not (folder / locks.lock_path(folder).name).exists()  # the lock lives beside the folder
        assert locks.lock_path(folder).exists()
    assert runs.is_done(folder) and not locks.holds(folder) and not locks.lock_path(folder).exists()


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path, stop):
    folder, builds, release = tmp_path / "run", tmp_path / "builds", tmp_path / "release"
    parent = _start(BUILDER, [folder, builds, release, "fork"], tmp_path / "parent.log")
    stop.append(parent)
    assert _until(lambda: _lines(builds), parent)
    child = _children(parent.pid)
    assert child, "the builder forked no child"
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        with runs.locked(folder, wait=False) as got:  # the child is alive, yet the lock is free
            assert got is True and _alive(child[0])
    finally:
        if _alive(child[0]):
            os.kill(child[0], signal.SIGKILL)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("no /proc children list here")
    return [int(p) for p in path.read_text().split()]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_reentrant_in_one_process_and_released_by_a_failing_stage(tmp_path):
    folder = tmp_path / "run"
    with runs.locked(folder) as got:
        assert got and not runs.should_skip(folder)  # held already: no waiting for ourselves
        with runs.building(folder):
            pass
        assert locks.holds(folder)  # building inside a locked block leaves the lock to the block
    assert not locks.holds(folder) and runs.should_skip(folder)

    @runs.lock_scope()
    def failing_stage(where: Path) -> None:
        assert not runs.should_skip(where)
        raise RuntimeError("failed after should_skip took the lock")

    with pytest.raises(RuntimeError):
        failing_stage(tmp_path / "other")
    assert not locks.holds(tmp_path / "other") and not locks.lock_path(tmp_path / "other").exists()


def test_ranks_above_zero_and_dataloader_workers_take_no_lock(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("RANK", "1")
    assert not runs.should_skip(tmp_path / "run") and not locks.holds(tmp_path / "run")
    monkeypatch.setenv("RANK", "0")
    loader = torch.utils.data.DataLoader(_MayLock(), num_workers=1, batch_size=None)
    assert [bool(x) for x in loader] == [False]  # inside the worker
    assert locks.may_lock()


class _MayLock(list):
    def __init__(self) -> None:
        super().__init__([0])

    def __getitem__(self, i):
        return locks.may_lock()


@pytest.fixture
def no_flock(monkeypatch):
    monkeypatch.setattr(locks, "flock_works", lambda directory: False)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _left_lock(folder: Path, pid: int, host: str, age: float = 0.0) -> Path:
    path = locks.lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"pid": {pid}, "host": "{host}", "started": "then"}}\n')
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_without_flock_a_dead_holder_on_this_host_is_taken_over(tmp_path, no_flock, caplog):
    folder, pid = tmp_path / "entry", _dead_pid()
    _left_lock(folder, pid, HOST)
    with caplog.at_level(logging.INFO), runs.building(folder):
        assert f'"pid": {os.getpid()}' in locks.lock_path(folder).read_text()
    assert f"left by pid {pid} on host {HOST} (no longer running)" in caplog.text
    assert runs.is_done(folder) and not locks.lock_path(folder).exists()


def test_without_flock_another_hosts_lock_holds_until_it_goes_stale(tmp_path, no_flock, caplog, monkeypatch):
    folder = tmp_path / "entry"
    _left_lock(folder, 4242, "elsewhere", age=120)
    monkeypatch.setenv("MOSQUITO_SSL_LOCK_TIMEOUT", "3600")
    with caplog.at_level(logging.INFO), runs.locked(folder, wait=False) as got:
        assert got is False  # a pid on another host cannot be asked: its lock is trusted
    assert "being built by pid 4242 on host elsewhere; skipping it" in caplog.text
    monkeypatch.setenv("MOSQUITO_SSL_LOCK_TIMEOUT", "60")
    with caplog.at_level(logging.INFO), runs.locked(folder, wait=False) as got:
        assert got is True
    assert "left by pid 4242 on host elsewhere (not touched for" in caplog.text


def test_a_lock_file_that_cannot_be_created_names_the_folder_and_the_fix(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the runs folder should be\n")
    with pytest.raises(lockfiles.LockError, match=r"not-a-folder/run.*writable"):
        runs.should_skip(blocked / "run")


@pytest.mark.slow
# Two probe runs that share one embeddings cache entry (two builders of one probe run folder:
# tests/test_bench_concurrent.py, through two sweeps).
def test_two_concurrent_probe_commands_compute_the_embeddings_once(synth, tmp_path, stop):
    builds, release = tmp_path / "builds", tmp_path / "release"
    env = dict(cli_env(), TEST_BUILDS=str(builds), TEST_RELEASE=str(release), MOSQUITO_SSL_CACHE=str(tmp_path / "c"))
    outs = [tmp_path / "a", tmp_path / "b"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]

    def probe(i: int) -> subprocess.Popen:
        args = ["probe", "linear", synth, "--encoder", "random:tiny", "--out", outs[i], "--batch-size", "4"]
        proc = _start(CLI, args, logs[i], env)
        stop.append(proc)
        return proc

    first = probe(0)
    assert _until(lambda: _lines(builds), first), logs[0].read_text()
    second = probe(1)
    waited = "/embeddings/"  # the second waits for the embeddings entry the first is building
    assert _until(lambda: _waits(logs[1], waited, first.pid), second), logs[1].read_text()
    release.touch()
    assert first.wait(240) == 0, logs[0].read_text()[-3000:]
    assert second.wait(240) == 0, logs[1].read_text()[-3000:]
    assert _lines(builds) == [str(first.pid)]  # one embeddings build across both processes
    reuse = [line for line in _lines(logs[1]) if "finished by another process; reusing it" in line]
    assert len(reuse) == 1 and waited in reuse[0]
    tables = [pd.read_csv(next(out.glob("probe-*")) / "results.csv") for out in outs]
    pd.testing.assert_frame_equal(tables[0], tables[1])


def _waits(log: Path, where: str, pid: int) -> bool:
    return any("waiting for" in line and where in line and f"pid {pid} " in line for line in _lines(log))
