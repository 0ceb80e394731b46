"""Which files a data source offers, and a reason for every candidate the data layer leaves out.

    mosquito-ssl data inspect recordings/        # the skipped: line counts these reasons

Owns the folder walk of the ``flat`` and ``folders`` layouts (``audio_files``, ``label_folders``),
the check of a path a manifest lists (``file_problem``) and the rule for manifest rows outside
the data folder (``outside_folder``). A candidate left out goes into the ``SkipLog`` with a reason:

* ``broken_symlink``     a link whose target is gone
* ``not_a_file``         a folder (or pipe, device) named like audio, e.g. a folder ``x.wav``
* ``unreadable_folder``  a folder that cannot be listed (permissions)
* ``symlinked_folder``   a linked folder below the data folder: not followed (a link may loop)
* ``no_label_folder``    an audio file at the top of a ``folders`` source, outside every label
* ``missing``            a manifest row whose file is not there
* ``unreadable``         a path its permissions hide

Hidden names (``.x``, macOS's ``._x.wav``) and files without an audio extension are no candidates
and are not listed. A manifest row may point outside the data folder (``../other/x.wav``, an
absolute path): such a file is read, and recorded in ``Dataset.outside``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .audio import AUDIO_SUFFIXES
from .items import SkipLog

NOT_FOLLOWED = "not followed: point the data source at it, or copy its files in"


def is_audio(path: Path) -> bool:
    """A visible regular file with an audio extension."""
    try:
        return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")
    except OSError:  # is_file lets EACCES through
        return False


def _entries(folder: Path, skipped: SkipLog | None) -> list[os.DirEntry]:
    """The visible entries of ``folder`` by name; a folder that cannot be listed is recorded."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        if skipped is not None:
            skipped.add(folder, "unreadable_folder", f"cannot be listed: {exc.strerror or exc}")
        return []


def _kind(entry: os.DirEntry) -> str:
    """``dir``, ``linked_dir``, ``file``, ``broken_symlink``, ``unreadable`` or ``other``."""
    try:
        if entry.is_symlink():
            if not os.path.exists(entry.path):
                return "broken_symlink"
            return "linked_dir" if entry.is_dir() else ("file" if entry.is_file() else "other")
        if entry.is_dir(follow_symlinks=False):
            return "dir"
        return "file" if entry.is_file(follow_symlinks=False) else "other"
    except OSError:
        return "unreadable"


def _audio_named(name: str) -> bool:
    return Path(name).suffix.lower() in AUDIO_SUFFIXES


def audio_files(folder: Path, skipped: SkipLog | None = None) -> list[Path]:
    """The audio files under ``folder`` (recursively, sorted); each candidate left out is recorded."""
    found: list[Path] = []
    pending = [Path(os.path.abspath(folder))]  # records name absolute paths, like the items
    while pending:
        for entry in _entries(pending.pop(), skipped):
            path, kind = Path(entry.path), _kind(entry)
            if kind == "dir":
                pending.append(path)
            if kind == "file" and _audio_named(entry.name):
                found.append(path)
            elif skipped is not None:
                _record(skipped, path, kind, entry.name)
    return sorted(found)


def _record(skipped: SkipLog, path: Path, kind: str, name: str) -> None:
    if kind == "broken_symlink":
        skipped.add(path, "broken_symlink", f"points to {os.readlink(path)}, which does not exist")
    elif kind == "linked_dir":
        skipped.add(path, "symlinked_folder", NOT_FOLLOWED)
    elif kind == "unreadable":
        skipped.add(path, "unreadable", "its permissions hide it")
    elif kind in ("dir", "other") and _audio_named(name):
        skipped.add(path, "not_a_file", "named like audio but a folder or special file")


def label_folders(root: Path, skipped: SkipLog) -> list[Path]:
    """The label folders at the top of a ``folders`` source; stray entries there are recorded."""
    folders = []
    for entry in _entries(Path(os.path.abspath(root)), skipped):
        path, kind = Path(entry.path), _kind(entry)
        if kind in ("dir", "linked_dir"):  # a linked label folder is the user's choice: followed
            folders.append(path)
        elif kind == "file" and _audio_named(entry.name):
            skipped.add(path, "no_label_folder", "audio at the top level: move it into its label's folder")
        else:
            _record(skipped, path, kind, entry.name)
    return folders


def file_problem(path: Path) -> tuple[str, str] | None:
    """(reason, detail) when a listed ``path`` is no readable regular file, else None."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            return "broken_symlink", f"points to {os.readlink(path)}, which does not exist"
        return "missing", "listed but not on disk"
    except OSError as exc:
        return "unreadable", f"cannot be looked at: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    return "not_a_file", "a folder or special file, not an audio file"


def outside_folder(path: Path, folder: Path) -> bool:
    """``path`` lies outside ``folder`` once ``..`` is resolved (links are not followed: a link the
    user put in the data folder belongs to it)."""
    return not Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(folder)))
