"""Lock files: taking ``<folder>.lock`` with flock, or exclusively where flock is missing.

    fd, ino, waited = take_flock(Path("runs/r.lock"), "runs/r", wait=True)

The mechanics under ``locks.py`` (which owns who holds what in this process). A lock file holds
one JSON record ``{"pid", "host", "started", "folder"}`` of its holder: log lines name the holder
from it ("waiting for runs/r, being built by pid 12 on host h"), and a record still there when
the flock is free was left by a killed holder (a clean release removes the file).

Without flock (``NO_FLOCK`` errors, e.g. NFS without lockd) the file is created with O_EXCL and
is taken over when its holder is a dead pid on this host, or, on another host, when it has not
been touched for ``MOSQUITO_SSL_LOCK_TIMEOUT`` seconds (default 3600; holders touch it every
minute, ``locks.py``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, MosquitoSSLError

log = logging.getLogger("mosquito_ssl.locks")
HOST = socket.gethostname()
POLL_S = 0.5  # file mode: how often a waiter looks again
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
_FLOCK_OK: dict[int, bool] = {}  # per device


class LockError(MosquitoSSLError):
    """A lock file that cannot be created."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lock, as its file records it."""

    pid: int | None = None
    host: str | None = None
    started: str | None = None

    def __str__(self) -> str:
        return f"pid {self.pid} on host {self.host}" if self.pid else "another process"

    def dead(self) -> bool:
        """On this host and no such process (a pid on another host cannot be asked)."""
        if self.host != HOST or not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def flock_works(directory: Path) -> bool:
    """Whether ``directory``'s file system supports flock (asked once per device)."""
    dev = directory.stat().st_dev
    if dev not in _FLOCK_OK:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".flock-test.")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _FLOCK_OK[dev] = True
        except OSError as exc:
            if exc.errno not in NO_FLOCK:
                raise
            log.warning("%s has no flock (%s): locks are files with a pid record", directory, exc.strerror)
            _FLOCK_OK[dev] = False
        finally:
            os.close(fd)
            os.unlink(tmp)
    return _FLOCK_OK[dev]


def take_flock(path: Path, folder: str | Path, wait: bool) -> tuple[int, int, Holder | None] | None:
    """(open fd holding the flock, inode, holder waited for) or None: busy and not ``wait``."""
    waited: Holder | None = None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse(os.pread(fd, 4096, 0))
                if not wait:
                    log.info("%s is being built by %s; skipping it", folder, holder)
                    os.close(fd)
                    return None
                if holder != waited:
                    log.info("waiting for %s, being built by %s", folder, holder)
                waited = holder
                fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel wakes us when the holder lets go or dies
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            left = _parse(os.pread(fd, 4096, 0))  # a record here outlived its holder: a kill
            if left.pid and (left.pid, left.host) != (os.getpid(), HOST):
                log.info("taking over the lock of %s left by %s (%s)", folder, left, _gone(left))
            _write_record(fd, folder)
            return fd, os.fstat(fd).st_ino, waited
        os.close(fd)  # its holder removed the file on release: lock the one at the path now


def take_file(path: Path, folder: str | Path, wait: bool) -> tuple[None, int, Holder | None] | None:
    """``take_flock`` without flock: (None, inode, holder waited for) or None."""
    waited: Holder | None = None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                stat = path.stat()
                holder = _parse(path.read_bytes()[:4096])
            except FileNotFoundError:
                continue  # released just now
            age = time.time() - stat.st_mtime
            if holder.dead() or (holder.host != HOST and age > timeout()):
                log.info("taking over the lock of %s left by %s (%s)", folder, holder, _gone(holder, age))
                remove_if(path, stat.st_ino)
                continue
            if not wait:
                log.info("%s is being built by %s; skipping it", folder, holder)
                return None
            if holder != waited:
                log.info("waiting for %s, being built by %s", folder, holder)
            waited = holder
            time.sleep(POLL_S)
            continue
        _write_record(fd, folder)
        ino = os.fstat(fd).st_ino
        os.close(fd)
        return None, ino, waited


def timeout() -> float:
    """Seconds without a touch after which another host's lock file counts as left behind."""
    value = os.environ.get("MOSQUITO_SSL_LOCK_TIMEOUT", "3600")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"MOSQUITO_SSL_LOCK_TIMEOUT={value!r} is not a number of seconds: fix or unset it") from None


def remove_if(path: Path, ino: int) -> None:
    """Remove ``path`` if it is still the file ``ino`` (another process may have replaced it)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_ino == ino:
            path.unlink()


def _gone(holder: Holder, age: float | None = None) -> str:
    if holder.dead():
        return "no longer running"
    return f"not touched for {age:.0f} s" if age is not None else "its lock was released"


def _parse(raw: bytes) -> Holder:
    try:  # empty or half-written while its holder writes it
        data = json.loads(raw)
        return Holder(int(data["pid"]), str(data["host"]), data.get("started"))
    except (ValueError, KeyError, TypeError):
        return Holder()


def _write_record(fd: int, folder: str | Path) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data = json.dumps({"pid": os.getpid(), "host": HOST, "started": started, "folder": str(folder)})
    os.ftruncate(fd, 0)
    os.pwrite(fd, data.encode() + b"\n", 0)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False
