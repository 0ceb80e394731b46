"""The data layouts: how a folder or CSV becomes a list of ``Item`` (no windowing, no decoding).

    mosquito-ssl data inspect data/synth --layout folders

Owns ``detect_layout`` and one reader per layout:

* ``flat``     a folder of audio files (searched recursively), unlabelled
* ``folders``  one subfolder per label (label = folder name)
* ``csv``      ``path,label[,group][,split]``; the CSV file or a folder holding ``manifest.csv``
* ``humbugdb`` the HumBugDB metadata table (see ``humbugdb_table``)

Every candidate left out is recorded with a reason (``files.py``: ``missing``, ``broken_symlink``,
``not_a_file``, ``unreadable_folder``...); a CSV that cannot be parsed is a ``DataError`` naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .files import audio_files, file_problem, is_audio, label_folders, outside_folder
from .items import Item, SkipLog

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "flat", "folders", "csv", "humbugdb")
HUMBUGDB_COLUMNS = {"id", "name", "sound_type", "species", "sample_rate"}
MANIFEST = "manifest.csv"


# What a layout reader returns: the items, what was left out, the files read from outside the data folder.
Read = tuple[list[Item], SkipLog, list[str]]


def read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv(path)``; a file that is not UTF-8, empty, malformed or unreadable is a DataError."""
    try:
        return pd.read_csv(path, **kwargs)
    except UnicodeDecodeError:
        fix = _not_utf8(path)
    except pd.errors.EmptyDataError:
        fix = "the file is empty: write a header row (path,label[,group]) and one row per audio file"
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        fix = f"it is not valid CSV ({detail}): close every quote and give each row the header's columns"
    except OSError as exc:
        fix = f"it cannot be read ({exc.strerror or exc}): check that it is a readable file"
    raise DataError(f"{path}: {fix}")


def _not_utf8(path: Path) -> str:
    """Where ``path`` stops being UTF-8 (pandas reports an offset into its own buffer)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return f"line {line} holds byte {raw[exc.start]:#04x}, which is not UTF-8: save the file as UTF-8 CSV"
    return "it is not UTF-8 text: save the file as UTF-8 CSV"


def _listing(folder: Path) -> list[Path]:
    """The entries of a folder the data set needs; one it may not list is a DataError naming it."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc}): give read permission") from None


def _csv_columns(path: Path) -> list[str]:
    return [str(c) for c in read_table(path, nrows=0).columns]


def detect_layout(source: Path) -> str:
    """Guess the layout of ``source`` (see the module docstring for the rules)."""
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DataError(f"{source} is a file but not a CSV: pass a folder of audio files or a manifest CSV")
        cols = set(_csv_columns(source))
        if cols >= HUMBUGDB_COLUMNS:
            return "humbugdb"
        if "path" in cols:
            return "csv"
        raise DataError(
            f"{source}: cannot tell the layout from columns {', '.join(sorted(cols))}: "
            "a manifest needs a 'path' column (or the HumBugDB columns id,name,sound_type,species,...)"
        )
    if (source / MANIFEST).is_file():
        return "csv"
    top = [p for p in _listing(source) if is_audio(p)]
    if top:
        return "flat"
    if audio_files(source):
        return "folders"
    csvs = [p for p in source.glob("*.csv") if set(_csv_columns(p)) >= HUMBUGDB_COLUMNS]
    if len(csvs) == 1:
        return "humbugdb"
    raise DataError(
        f"no audio files found in {source}: put .wav/.flac/.ogg files there (a subfolder per label for "
        "labelled data) or a manifest.csv with path,label[,group] columns"
    )


def _check_column(name: str | None, columns: list[str], flag: str, source: Path) -> None:
    if name is not None and name not in columns:
        raise ConfigError(f"{flag} {name!r} is not a column of {source}; available columns: {', '.join(columns)}")


def _clean(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _read_flat(root: Path) -> Read:
    skipped = SkipLog()
    return [Item(str(p.resolve())) for p in audio_files(root, skipped)], skipped, []


def _read_folders(root: Path) -> Read:
    items, skipped = [], SkipLog()
    for sub in label_folders(root, skipped):
        items += [Item(str(p.resolve()), label=sub.name) for p in audio_files(sub, skipped)]
    stray = [e["path"] for e in skipped.entries if e["reason"] == "no_label_folder"]
    if stray:
        log.warning("%d audio file(s) at the top of %s have no label folder and are left out", len(stray), root)
    return items, skipped, []


def _rows_to_items(paths: list[Path], labels, groups, splits, base: Path) -> Read:
    """Items of the usable rows; ``base`` is the data folder (a row outside it is read and recorded)."""
    items, skipped, outside = [], SkipLog(), []
    for i, path in enumerate(paths):
        label = _clean(labels[i]) if labels is not None else None
        if labels is not None and label is None:
            skipped.add(path, "no_label", "empty label cell")
            continue
        problem = file_problem(path)
        if problem is not None:
            skipped.add(path, *problem)
            continue
        group = _clean(groups[i]) if groups is not None else None
        split = _clean(splits[i]) if splits is not None else None
        items.append(Item(str(path.resolve()), label=label, group=group, split=split))
        if outside_folder(path, base):
            outside.append(items[-1].path)
    return items, skipped, sorted(set(outside))


def _read_csv(source: Path, label_column, group_column, split_column, audio_dir) -> Read:
    csv_path = source / MANIFEST if source.is_dir() else source
    table = read_table(csv_path, dtype=str, keep_default_na=True)
    columns = [str(c) for c in table.columns]
    _check_column("path", columns, "the manifest column", csv_path)
    for name, flag in (
        (label_column, "--label-column"),
        (group_column, "--group-column"),
        (split_column, "--split-column"),
    ):
        _check_column(name, columns, flag, csv_path)
    label_column = label_column or ("label" if "label" in columns else None)
    group_column = group_column or ("group" if "group" in columns else None)
    split_column = split_column or ("split" if "split" in columns else None)
    base = Path(audio_dir) if audio_dir else csv_path.parent
    paths = [base / str(p).strip() for p in table["path"]]
    col = lambda c: table[c].tolist() if c else None  # noqa: E731
    return _rows_to_items(paths, col(label_column), col(group_column), col(split_column), base)


def humbugdb_table(csv_path: Path, label_column: str | None = None, group_column: str | None = None) -> pd.DataFrame:
    """The HumBugDB metadata with resolved ``label`` and ``group`` columns (no file access).

    Default label: ``species`` for mosquito rows that have one, else ``sound_type``
    (``background``, ``audio``, or ``mosquito`` for unidentified species). Default group: ``id``.
    """
    table = read_table(csv_path)
    columns = [str(c) for c in table.columns]
    _check_column(label_column, columns, "--label-column", csv_path)
    _check_column(group_column, columns, "--group-column", csv_path)
    if label_column:
        labels = table[label_column]
    else:
        is_mosquito = (table["sound_type"] == "mosquito") & table["species"].notna()
        labels = table["species"].where(is_mosquito, table["sound_type"])
    table["label"] = [_clean(v) for v in labels]
    ids = table["id"].astype(str)
    if group_column:
        # A recording without a value is its own group, so it can never leak across splits.
        table["group"] = [_clean(g) or f"id:{i}" for g, i in zip(table[group_column], ids, strict=False)]
    else:
        table["group"] = ids
    return table


def _humbugdb_audio_dir(csv_path: Path, audio_dir: Path | None) -> Path:
    if audio_dir is not None:
        return Path(audio_dir)
    return csv_path.parent / "audio" if (csv_path.parent / "audio").is_dir() else csv_path.parent


def _read_humbugdb(source: Path, label_column, group_column, split_column, audio_dir) -> Read:
    csv_path = source
    if source.is_dir():
        csv_path = next(p for p in sorted(source.glob("*.csv")) if set(_csv_columns(p)) >= HUMBUGDB_COLUMNS)
    table = humbugdb_table(csv_path, label_column, group_column)
    _check_column(split_column, [str(c) for c in table.columns], "--split-column", csv_path)
    folder = _humbugdb_audio_dir(csv_path, audio_dir)
    present = {p.name for p in _listing(folder)} if folder.is_dir() else set()
    paths = []
    for rid, name in zip(table["id"].astype(str), table["name"].astype(str), strict=False):
        # The Zenodo release stores each row as <id>.wav (names repeat across rows); a user's
        # own export may keep the original names instead.
        stem = Path(name).stem
        candidates = [f"{rid}{ext}" for ext in (".wav", ".flac", ".ogg", ".mp3")]
        candidates += [name] + [f"{stem}{ext}" for ext in (".wav", ".flac", ".ogg", ".mp3")]
        found = next((c for c in candidates if c in present), name)
        paths.append(folder / found)
    splits = table[split_column].tolist() if split_column else None
    return _rows_to_items(paths, table["label"].tolist(), table["group"].tolist(), splits, folder)


def read_layout(source: Path, layout: str, label_column, group_column, split_column, audio_dir) -> Read:
    """The items of ``source`` read with a known (not ``auto``) ``layout``."""
    if layout in ("flat", "folders") and not source.is_dir():
        raise DataError(f"layout {layout} needs a folder, but {source} is a file")
    if layout == "flat":
        return _read_flat(source)
    if layout == "folders":
        return _read_folders(source)
    if layout == "csv":
        return _read_csv(source, label_column, group_column, split_column, audio_dir)
    return _read_humbugdb(source, label_column, group_column, split_column, audio_dir)
