"""Locks on run folders and cache entries: one process builds a folder while others wait or skip.

    from mosquito_ssl import runs

    with runs.locked(folder, wait=False) as got:  # got is False while another process builds it
        if got and not runs.should_skip(folder):
            with runs.building(folder):
                ...

``runs.should_skip`` / ``runs.building`` / ``runs.prepare_run_dir`` ... ``runs.finish_run`` lock by
themselves (``claim`` here; released when ``building`` ends or ``finish_run`` runs, or at the end of
an enclosing ``lock_scope`` / ``held``), so every stage and cache is locked without code of its own.

The lock is an ``fcntl.flock`` on ``<folder>.lock`` beside the folder, never inside it (``begin``
clears the folder); ``lockfiles.py`` takes it. The kernel drops a flock when its process dies,
SIGKILL included, so a killed build never blocks the next one (``pretrain --resume`` just takes
it). The file's pid/host record only names the holder in log lines.

Locks are per process and re-entrant: a folder this process holds is not waited for again. torchrun
ranks > 0 and DataLoader workers never lock (rank 0 builds run folders; a worker waiting for its own
parent would hang it), and a forked child drops its copies, so only the parent holds the lock.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .lockfiles import Holder, LockError, flock_works, remove_if, take_file, take_flock

__all__ = ["Acquired", "Holder", "LockError", "acquire", "claim", "held", "holds", "lock_scope", "release"]
REFRESH_S = 60.0  # without flock: how often a holder touches its lock file


@dataclass
class Acquired:
    """What taking a lock involved: the process waited for, if any."""

    waited: Holder | None = None


@dataclass
class _Held:
    path: Path
    fd: int | None  # None without flock (an exclusively created file)
    ino: int
    scopes: int = 0  # open ``held`` blocks: a helper's release leaves the lock to them


_HELD: dict[Path, _Held] = {}
_GUARD = threading.RLock()
_LOCAL = threading.local()  # .scopes: stack of sets of folders claimed inside ``lock_scope``
_HEARTBEAT: list[threading.Thread] = []


def lock_path(folder: str | Path) -> Path:
    """``<folder>.lock`` beside the folder (the path resolved, so every spelling of it agrees)."""
    folder = Path(folder).resolve()
    return folder.with_name(folder.name + ".lock")


def may_lock() -> bool:
    """False in torchrun ranks > 0 and in DataLoader workers: they never take locks."""
    if os.environ.get("RANK", "0").strip() not in ("", "0"):
        return False
    data = sys.modules.get("torch.utils.data")  # never imports torch (reports run without it)
    return data is None or data.get_worker_info() is None


def holds(folder: str | Path) -> bool:
    """Whether this process holds ``folder``'s lock."""
    with _GUARD:
        return Path(folder).resolve() in _HELD


def acquire(folder: str | Path, wait: bool = True) -> Acquired | None:
    """Hold ``folder``'s lock (waiting while another process holds it); None: busy and not ``wait``."""
    key = Path(folder).resolve()
    if holds(key) or not may_lock():
        return Acquired()
    path = lock_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flock = flock_works(path.parent)
        got = take_flock(path, folder, wait) if flock else take_file(path, folder, wait)
    except OSError as exc:  # not writable, not a folder, no space: none is a lock to wait for
        raise LockError(
            f"cannot create the lock file {path} for {folder} ({exc.strerror}): make {path.parent} "
            "a writable folder, or write runs and caches elsewhere (--out, --cache-dir)"
        ) from exc
    if got is None:
        return None
    fd, ino, waited = got
    with _GUARD:
        _HELD[key] = _Held(path, fd, ino)
    if fd is None:
        _start_heartbeat()
    return Acquired(waited)


def claim(folder: str | Path) -> Acquired:
    """``acquire`` (waiting) for a skip-if-done helper; an enclosing ``lock_scope`` releases it."""
    newly = not holds(folder)
    got = acquire(folder, wait=True)
    assert got is not None, "acquire(wait=True) returns only once it holds the lock"
    stack = getattr(_LOCAL, "scopes", None)
    if newly and stack and holds(folder):
        stack[-1].add(Path(folder).resolve())
    return got


def release(folder: str | Path) -> None:
    """Let go of ``folder``'s lock unless a ``held`` block still holds it; a no-op when not held."""
    key = Path(folder).resolve()
    with _GUARD:
        entry = _HELD.get(key)
        if entry is None or entry.scopes:
            return
        del _HELD[key]
    _drop(entry)


@contextlib.contextmanager
def held(folder: str | Path, wait: bool = True) -> Iterator[Acquired | None]:
    """Hold ``folder``'s lock for the block (None: another process holds it and ``wait`` is False)."""
    key = Path(folder).resolve()
    got = acquire(key, wait)
    with _GUARD:
        entry = _HELD.get(key) if got is not None else None
        if entry is not None:
            entry.scopes += 1
    try:
        yield got
    finally:
        if entry is not None:
            with _GUARD:
                entry.scopes -= 1
            release(key)


@contextlib.contextmanager
def lock_scope() -> Iterator[None]:
    """Locks ``claim``ed inside and still held at the end are released, also when it raises.

    Usable as a decorator: a stage function that fails between ``should_skip`` and ``finish_run``
    leaves no lock held in a process that goes on (a sweep, a test session).
    """
    stack = _LOCAL.__dict__.setdefault("scopes", [])
    stack.append(set())
    try:
        yield
    finally:
        for key in stack.pop():
            release(key)


def _drop(entry: _Held) -> None:
    remove_if(entry.path, entry.ino)  # before unlocking: a waiter then finds a new file, not ours
    if entry.fd is not None:
        os.close(entry.fd)


def _start_heartbeat() -> None:
    """Without flock: touch held lock files so that other hosts do not take them over."""
    if _HEARTBEAT and _HEARTBEAT[0].is_alive():
        return

    def beat() -> None:
        while True:
            time.sleep(REFRESH_S)
            with _GUARD:
                paths = [entry.path for entry in _HELD.values() if entry.fd is None]
            for path in paths:
                with contextlib.suppress(OSError):
                    os.utime(path)

    _HEARTBEAT[:] = [threading.Thread(target=beat, name="mosquito-ssl-locks", daemon=True)]
    _HEARTBEAT[0].start()


def _release_all() -> None:
    """At exit: remove our lock files, so the next process does not report a killed holder."""
    with _GUARD:
        entries = list(_HELD.values())
        _HELD.clear()
    for entry in entries:
        _drop(entry)


def _forget_after_fork() -> None:
    """In a forked child: close our copies (closing never unlocks; LOCK_UN would) and hold nothing."""
    global _GUARD
    _GUARD = threading.RLock()  # another thread may have held it at the fork
    for entry in _HELD.values():
        if entry.fd is not None:
            with contextlib.suppress(OSError):
                os.close(entry.fd)
    _HELD.clear()
    _HEARTBEAT.clear()


atexit.register(_release_all)
os.register_at_fork(after_in_child=_forget_after_fork)
