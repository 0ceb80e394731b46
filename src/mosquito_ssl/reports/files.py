"""File names from store data, and the one way the reports stage writes a file: inside ``--out``.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report

Metric, class, encoder and setting names come from the results store, which anyone can write:
``../../escape`` or ``/tmp/x/abs`` as a metric must not become a path. ``file_stem`` is the one
sanitiser for every file name derived from data (tables, plots); ``write_bytes``/``write_text``
resolve the final path and refuse (``StoreError``) anything outside the folder it was meant for,
and ``subfolder`` refuses a ``tables/`` or ``plots/`` that leads out of ``--out`` (a symlink).
Crafted names therefore still give a report, under sanitised names; only a path that would
leave ``--out`` is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError, StoreError
from ..runs import write_bytes_atomic

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
MAX_STEM = 80  # file names stay far below the 255-byte limit of common file systems, suffixes included


def file_stem(name) -> str:
    """A data-derived name as part of a file name: lower case, only ``[a-z0-9_-]``.

    ``balanced_accuracy`` and ``precision:aedes`` (``:`` -> ``_``: the metric vocabulary's class
    separator) read as themselves; any other name loses something (case, punctuation, ``/``,
    ``..``, length), so an 8-hex hash of the original keeps two such names apart:
    ``Mask.Ratio`` -> ``mask_ratio-<hash>``, ``../../escape`` -> ``escape-<hash>``.
    """
    text = str(name)
    stem = _UNSAFE.sub("_", text.lower())
    if stem and stem == text.replace(":", "_") and len(stem) <= MAX_STEM and not stem.startswith("-"):
        return stem
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{stem[:MAX_STEM].strip('_-') or 'x'}-{digest}"


def _inside(folder: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(Path(folder).resolve())


def subfolder(out: Path, name: str) -> Path:
    """``out/name``, created; ConfigError when it resolves outside ``out`` (a symlink elsewhere)."""
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    if not _inside(out, folder):
        raise ConfigError(
            f"--out {out}: {folder} leads to {folder.resolve()}, outside --out; remove that link or choose another --out"
        )
    return folder


def checked(folder: Path, name: str, source: str) -> Path:
    """``folder/name`` when it resolves inside ``folder``; else StoreError naming the value it came from."""
    path = Path(folder) / name
    if Path(name).is_absolute() or not _inside(folder, path):
        raise StoreError(
            f"refusing to write {path}: the file name from {source!r} leads outside the report folder "
            f"{Path(folder).resolve()}; names from the store must go through reports.files.file_stem"
        )
    return path


def write_bytes(folder: Path, name: str, data: bytes, source: str | None = None) -> Path:
    """Write ``folder/name`` atomically after ``checked``; returns the path as given (not resolved)."""
    return write_bytes_atomic(checked(folder, name, source or name), data)


def write_text(folder: Path, name: str, text: str, source: str | None = None) -> Path:
    return write_bytes(folder, name, text.encode("utf-8"), source)


def check_distinct(paths: Iterable[Path]) -> None:
    """StoreError when two outputs of one build went to the same file (two store names with one
    stem, e.g. ``precision:a`` and ``precision_a``): one would silently have replaced the other."""
    seen: set[Path] = set()
    for path in paths:
        key = Path(path).resolve()
        if key in seen:
            raise StoreError(
                f"two report outputs share the file name {Path(path).name}: the store has two names with "
                f"one file stem; report them in separate builds (--metric, --out)"
            )
        seen.add(key)
