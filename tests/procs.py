"""Helpers for tests that run the CLI in real subprocesses and kill them."""

from __future__ import annotations

import os
import signal
import subprocess
import time


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
