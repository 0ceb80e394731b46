"""Reading a data source into clips: the public entry ``read_dataset`` plus windowing.

    mosquito-ssl data inspect DATA

``read_dataset`` picks the layout (``layouts.py``: flat, folders, csv, humbugdb), reads it,
cuts long files into windows and checks that something usable is left (nothing usable is a
``DataError``). ``Item``, ``SkipLog`` and ``Dataset`` live in ``items.py`` and are re-exported
here, as are the layout names, so callers import everything from ``data.manifest``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .audio import BadAudio, recording_duration
from .items import OUTSIDE, Dataset, Item, SkipLog
from .layouts import HUMBUGDB_COLUMNS, LAYOUTS, MANIFEST, detect_layout, humbugdb_table, read_layout

__all__ = [
    "HUMBUGDB_COLUMNS",
    "LAYOUTS",
    "MANIFEST",
    "Dataset",
    "Item",
    "SkipLog",
    "detect_layout",
    "humbugdb_table",
    "read_dataset",
    "window_items",
]

log = logging.getLogger(__name__)


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
    items, skipped, outside = read_layout(source, layout, label_column, group_column, split_column, audio_dir)
    root = source if source.is_dir() else source.parent
    if window is not None:
        items = window_items(items, root, window, hop or window, skipped)
    if not items:
        raise DataError(_nothing_found(source, layout, skipped))
    log.info("%s: %d clips (%s layout), %d skipped %s", source, len(items), layout, len(skipped), skipped.counts())
    if outside:  # allowed (absolute paths are normal in manifests), so one line, not one per file
        log.info(
            "%s: %d file(s) outside the data folder, e.g. %s: read, and listed as %s",
            source,
            len(outside),
            outside[0],
            OUTSIDE,
        )
    return Dataset(items, layout, root.resolve(), skipped, str(source), window, outside)


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
