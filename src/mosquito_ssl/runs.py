"""Run directories: the one place that knows their layout, ids and done markers.

Every stage writes into a run directory::

    RUN_DIR/
      config.json      resolved configuration (written first)
      metadata.json    versions, device, git commit, timings
      metrics.json     the stage's results
      DONE             written last; a directory without it is unfinished

Files are written to a temporary name in the same folder and renamed, so a kill
at any moment leaves either the old file or the new one, never half of one.

The same DONE rule guards every cache entry, and one skip-if-done / ``--force`` helper serves
probe runs, pretraining and the caches: ``should_skip`` (done and not forced), ``begin`` (clear a
stale DONE and a previous attempt's output) and ``building`` (``begin``, then DONE last). Caches
live under one root, ``cache_root()``, in fixed sub-folders::

    $MOSQUITO_SSL_CACHE (or ~/.cache/mosquito-ssl, or --cache-dir)/
      features/<key>/     log-mel features (data/features.py), shared by pretraining and probes
      embeddings/<key>/   frozen-encoder embeddings (probe/embeddings.py)
      handcrafted/<key>/  hand-crafted baseline features (probe/baselines.py)

One process builds a folder at a time (``locks.py``): ``should_skip`` takes the folder's lock
when it answers "do the work" (waiting while another process builds it, then skipping if that
one finished it), as does ``begin``; ``mark_done`` lets go of it (so ``building`` and
``finish_run`` do), as does ``building`` when its body raises. A caller that would rather move on
than wait asks ``locked(folder, wait=False)``::

    with runs.locked(folder, wait=False) as got:
        if got and not runs.should_skip(folder):
            with runs.building(folder):
                ...
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from . import locks
from .locks import lock_scope as lock_scope  # stage code decorates with ``runs.lock_scope()``

DONE = "DONE"
CONFIG = "config.json"
METADATA = "metadata.json"
METRICS = "metrics.json"
CACHE_KINDS = ("features", "embeddings", "handcrafted")
log = logging.getLogger(__name__)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def file_mode() -> int:
    """The mode a new file gets under the current umask (0644 under the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def umask_modes(folder: Path) -> None:
    """Give the files of ``folder`` the umask's mode: libraries that write through ``mkstemp``
    (safetensors' ``model.safetensors``) leave them 0600, unreadable to the rest of a group."""
    mode = file_mode()
    if not Path(folder).is_dir():  # a rank that saved nothing
        return
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file at a temporary name in ``path``'s folder, fsynced and renamed to ``path`` at the end.

    A reader sees the old file or the whole new one; a body that raises leaves no file behind.
    The file gets the umask's usual mode (``mkstemp`` alone would leave it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def settings_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (dataclasses, dicts, lists)."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).exists()


def mark_done(run_dir: Path) -> None:
    """Write the done marker; call it after every other artifact is on disk. Lets go of the lock."""
    write_text_atomic(Path(run_dir) / DONE, time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
    locks.release(run_dir)  # finished: a waiting process may take it and reuse the result


def clear_done(run_dir: Path) -> None:
    (Path(run_dir) / DONE).unlink(missing_ok=True)


def should_skip(folder: Path, force: bool = False) -> bool:
    """The one skip-if-done rule: a folder with its DONE marker is skipped unless ``force``.

    Answering False (do the work) it holds the folder's lock, first waiting while another process
    builds it: True then if that one finished it. ``mark_done`` (``building``, ``finish_run``)
    releases the lock.
    """
    if is_done(folder) and not force:
        return True
    waited = locks.claim(folder).waited
    if waited is not None and is_done(folder):
        if not force:
            locks.release(folder)
            log.info("%s finished by another process; reusing it", folder)
            return True
        log.info("%s finished by another process; building it again (--force)", folder)
    return False


@contextmanager
def locked(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold ``folder``'s lock for the block; yields False (without it) when another process holds
    it and ``wait`` is False. Re-entrant: ``should_skip`` / ``building`` inside do not wait again."""
    with locks.held(folder, wait) as got:
        if got is not None and got.waited is not None and is_done(folder):
            log.info("%s finished by another process; reusing it", folder)
        elif got is not None and got.waited is not None:
            log.info("%s was left unfinished by %s; going on here", folder, got.waited)
        yield got is not None


def begin(folder: Path, clean: bool = True) -> Path:
    """Make ``folder`` ready for (re)doing its work: no stale DONE; with ``clean``, no old output.

    ``clean=False`` keeps what is there: a pretraining's checkpoints to resume from, or a cache
    entry that torchrun ranks may fill at the same moment (they take no lock; files are written
    under per-process temporary names and renamed).
    """
    folder = Path(folder)
    locks.claim(folder)  # held already after should_skip; else wait for any other builder first
    if clean and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clear_done(folder)
    return folder


@contextmanager
def building(folder: Path, clean: bool = True) -> Iterator[Path]:
    """``begin(folder)``, run the body, then write DONE last (never when the body raises).

    Holds the folder's lock throughout (taken by ``should_skip`` or ``begin``); lets go of it
    also when the body raises.
    """
    try:
        yield begin(folder, clean)
        mark_done(folder)
    finally:
        locks.release(folder)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir`` when given, else ``$MOSQUITO_SSL_CACHE`` or ``~/.cache/mosquito-ssl``."""
    base = cache_dir or os.environ.get("MOSQUITO_SSL_CACHE") or Path.home() / ".cache" / "mosquito-ssl"
    return Path(base).expanduser()


def cache_folder(kind: str, cache_dir: str | Path | None = None) -> Path:
    """The fixed sub-folder of the cache root that holds one kind of cache entry (``CACHE_KINDS``)."""
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}: one of {', '.join(CACHE_KINDS)}")
    return cache_root(cache_dir) / kind


def git_commit() -> str | None:
    """Commit of the source tree this package runs from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def device_name() -> str:
    try:
        import torch
    except ImportError:  # reports never import torch
        return "unknown"
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()}x{os.cpu_count()}"


def run_metadata(started: float | None = None, **extra: Any) -> dict[str, Any]:
    """Versions, device, git commit and timings for a run's ``metadata.json``."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for pkg in ("mosquito-ssl", "torch", "transformers", "scikit-learn", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    meta: dict[str, Any] = {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device_name(),
        "git_commit": git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if started is not None:
        meta["wall_time_s"] = round(time.time() - started, 3)
    meta.update(extra)
    return meta


def finish_run(run_dir: Path, metrics: Any, started: float | None = None, **extra: Any) -> Path:
    """Write ``metrics.json`` and ``metadata.json``, then the done marker (last)."""
    run_dir = Path(run_dir)
    write_json_atomic(run_dir / METRICS, metrics)
    write_json_atomic(run_dir / METADATA, run_metadata(started, **extra))
    mark_done(run_dir)
    return run_dir


def prepare_run_dir(run_dir: Path, config: Any, force: bool = False, clean: bool = False) -> bool:
    """Create ``run_dir`` (``begin``) and write its resolved config.

    Returns False when the run is already done and ``force`` is not set (the caller
    then skips the work); True when work should proceed.
    """
    if should_skip(run_dir, force):
        return False
    write_json_atomic(begin(run_dir, clean) / CONFIG, config)
    return True
