"""Helpers for tests that run the CLI in real subprocesses and kill them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def cli_env() -> dict[str, str]:
    """Environment for a child ``python -m mosquito_ssl``: offline, unbuffered, one thread."""
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def kill_when(proc: subprocess.Popen, condition, timeout: float = 240) -> bool:
    """SIGKILL ``proc`` as soon as ``condition()`` holds; True if it was killed, not finished."""
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and time.time() < deadline:
            if condition():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return False


def command() -> list[str]:
    """The console script installed next to this Python (else on PATH); ``-m`` as a last resort."""
    script = Path(sys.executable).with_name("mosquito-ssl")
    if script.exists():
        return [str(script)]
    found = shutil.which("mosquito-ssl")
    return [found] if found else [sys.executable, "-m", "mosquito_ssl"]


def fails(*args: str | Path, cache: Path) -> str:
    """Run the CLI; assert the one-error-line contract; return that line."""
    env = dict(cli_env(), MOSQUITO_SSL_CACHE=str(cache))
    done = subprocess.run([*command(), *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1, done.stderr
    assert len(errors) == 1 and "Traceback" not in done.stderr + done.stdout, done.stderr
    return errors[0]
