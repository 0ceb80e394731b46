"""Reading a data source into clips: layouts, labels, groups, windows and the skip log.

Owns ``Item``, ``SkipLog``, ``Dataset`` and ``read_dataset``; ``mosquito-ssl data inspect DATA``
runs it. Layouts:

* ``flat``     a folder of audio files (searched recursively), unlabelled
* ``folders``  one subfolder per label (label = folder name)
* ``csv``      ``path,label[,group][,split]``; the CSV file or a folder holding ``manifest.csv``
* ``humbugdb`` the HumBugDB metadata table (see ``humbugdb_table``)

Files listed but absent are skipped with reason ``missing``; nothing usable is a ``DataError``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .audio import AUDIO_SUFFIXES, BadAudio, recording_duration

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "flat", "folders", "csv", "humbugdb")
HUMBUGDB_COLUMNS = {"id", "name", "sound_type", "species", "sample_rate"}
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class Item:
    """One clip: ``offset`` seconds into the audio file at absolute ``path``."""

    path: str
    label: str | None = None
    group: str | None = None
    offset: float = 0.0
    split: str | None = None


class SkipLog:
    """Files or clips left out, each with a reason (``BadAudio`` reasons, ``no_label``)."""

    def __init__(self, entries: list[dict[str, Any]] | None = None) -> None:
        self.entries: list[dict[str, Any]] = list(entries or [])

    def add(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.entries.append({"path": str(path), "reason": reason, "detail": detail})

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e["reason"] for e in self.entries).items()))

    def merge(self, other: SkipLog) -> SkipLog:
        self.entries.extend(other.entries)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "entries": self.entries}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkipLog:
        return cls(data.get("entries", []))

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class Dataset:
    items: list[Item]
    layout: str
    root: Path
    skipped: SkipLog = field(default_factory=SkipLog)
    source: str = ""
    window: float | None = None

    @property
    def labels(self) -> list[str] | None:
        if not self.has_labels:
            return None
        return [i.label for i in self.items if i.label is not None]  # has_labels: none is None

    @property
    def groups(self) -> list[str | None] | None:
        """Every item's group when any item has one (an item without one keeps None)."""
        return [i.group for i in self.items] if any(i.group is not None for i in self.items) else None

    @property
    def has_labels(self) -> bool:
        return bool(self.items) and all(i.label is not None for i in self.items)

    @property
    def classes(self) -> list[str]:
        return sorted({i.label for i in self.items if i.label is not None})

    def class_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(i.label for i in self.items if i.label is not None).items()))

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(i) for i in self.items]


def _is_audio(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")


def _audio_files(folder: Path, recursive: bool = True) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in found if _is_audio(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _csv_columns(path: Path) -> list[str]:
    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


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
    top = [p for p in source.iterdir() if _is_audio(p)]
    if top:
        return "flat"
    if _audio_files(source):
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


def _read_flat(root: Path) -> tuple[list[Item], SkipLog]:
    return [Item(str(p.resolve())) for p in _audio_files(root)], SkipLog()


def _read_folders(root: Path) -> tuple[list[Item], SkipLog]:
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        items += [Item(str(p.resolve()), label=sub.name) for p in _audio_files(sub)]
    stray = [p for p in root.iterdir() if _is_audio(p)]
    if stray:
        log.warning("%d audio file(s) at the top of %s have no label folder and are ignored", len(stray), root)
    return items, SkipLog()


def _rows_to_items(paths: list[Path], labels, groups, splits, skipped: SkipLog) -> list[Item]:
    items = []
    for i, path in enumerate(paths):
        label = _clean(labels[i]) if labels is not None else None
        if labels is not None and label is None:
            skipped.add(path, "no_label", "empty label cell")
            continue
        if not path.is_file():
            skipped.add(path, "missing", "listed in the CSV but not on disk")
            continue
        group = _clean(groups[i]) if groups is not None else None
        split = _clean(splits[i]) if splits is not None else None
        items.append(Item(str(path.resolve()), label=label, group=group, split=split))
    return items


def _read_csv(source: Path, label_column, group_column, split_column, audio_dir) -> tuple[list[Item], SkipLog]:
    csv_path = source / MANIFEST if source.is_dir() else source
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=True)
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
    skipped = SkipLog()
    return _rows_to_items(paths, col(label_column), col(group_column), col(split_column), skipped), skipped


def humbugdb_table(csv_path: Path, label_column: str | None = None, group_column: str | None = None) -> pd.DataFrame:
    """The HumBugDB metadata with resolved ``label`` and ``group`` columns (no file access).

    Default label: ``species`` for mosquito rows that have one, else ``sound_type``
    (``background``, ``audio``, or ``mosquito`` for unidentified species). Default group: ``id``.
    """
    table = pd.read_csv(csv_path)
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


def _read_humbugdb(source: Path, label_column, group_column, split_column, audio_dir) -> tuple[list[Item], SkipLog]:
    csv_path = source
    if source.is_dir():
        csv_path = next(p for p in sorted(source.glob("*.csv")) if set(_csv_columns(p)) >= HUMBUGDB_COLUMNS)
    table = humbugdb_table(csv_path, label_column, group_column)
    _check_column(split_column, [str(c) for c in table.columns], "--split-column", csv_path)
    folder = _humbugdb_audio_dir(csv_path, audio_dir)
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
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
    skipped = SkipLog()
    return _rows_to_items(paths, table["label"].tolist(), table["group"].tolist(), splits, skipped), skipped


def window_items(items: list[Item], root: Path, window: float, hop: float, skipped: SkipLog) -> list[Item]:
    """Cut each file into clips of ``window`` s every ``hop`` s; a shorter file gives one clip."""
    out = []
    for item in items:
        try:
            length = recording_duration(item.path)
        except BadAudio as exc:
            skipped.add(item.path, exc.reason, exc.detail)
            continue
        n = 1 + max(0, int(np.floor((length - window) / hop + 1e-9)))
        try:
            rel = Path(item.path).relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = item.path
        group = item.group or rel
        out += [Item(item.path, item.label, group, round(k * hop, 6), item.split) for k in range(n)]
    return out


def _check_window(window: float | None, hop: float | None, clip_seconds: float) -> None:
    if hop is not None and window is None:
        raise ConfigError("--hop needs --window: pass --window SECONDS as well")
    if window is not None and window <= 0:
        raise ConfigError(f"--window must be positive, got {window}")
    if hop is not None and hop <= 0:
        raise ConfigError(f"--hop must be positive, got {hop}")
    if clip_seconds <= 0:
        raise ConfigError(f"--clip-seconds must be positive, got {clip_seconds}")


def read_dataset(
    source: str | Path,
    layout: str = "auto",
    clip_seconds: float = 1.0,
    window: float | None = None,
    hop: float | None = None,
    label_column: str | None = None,
    group_column: str | None = None,
    split_column: str | None = None,
    audio_dir: str | Path | None = None,
) -> Dataset:
    """Read ``source`` (folder or CSV) into a ``Dataset`` of clips; see the module docstring."""
    source = Path(source).expanduser()
    layout = layout or "auto"
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    _check_window(window, hop, clip_seconds)
    if not source.exists():
        raise DataError(f"data source {source} does not exist: pass an existing folder or CSV file")
    if layout == "auto":
        layout = detect_layout(source)
    if layout in ("flat", "folders") and not source.is_dir():
        raise DataError(f"layout {layout} needs a folder, but {source} is a file")
    if layout == "flat":
        items, skipped = _read_flat(source)
    elif layout == "folders":
        items, skipped = _read_folders(source)
    elif layout == "csv":
        items, skipped = _read_csv(source, label_column, group_column, split_column, audio_dir)
    else:
        items, skipped = _read_humbugdb(source, label_column, group_column, split_column, audio_dir)
    root = source if source.is_dir() else source.parent
    if window is not None:
        items = window_items(items, root, window, hop or window, skipped)
    if not items:
        raise DataError(_nothing_found(source, layout, skipped))
    log.info("%s: %d clips (%s layout), %d skipped %s", source, len(items), layout, len(skipped), skipped.counts())
    return Dataset(items, layout, root.resolve(), skipped, str(source), window)


def _nothing_found(source: Path, layout: str, skipped: SkipLog) -> str:
    if not skipped:
        return (
            f"no audio files found in {source} ({layout} layout): add .wav/.flac/.ogg files "
            "(a subfolder per label for labelled data) or point to a manifest.csv"
        )
    counts = ", ".join(f"{n} {r}" for r, n in skipped.counts().items())
    return (
        f"no usable files in {source} ({layout} layout): all {len(skipped)} listed entries were skipped "
        f"({counts}); check the paths, or pass --audio-dir with the folder that holds the audio"
    )
