"""The feature cache: log-mel features computed once per (settings, files), kept as a memmap.

    mosquito-ssl data inspect data/synth

Owns ``load_features`` (the one entry point of every stage: ``--normalize dataset`` included),
``build_features`` (decode each clip once; bad clips are skipped and counted, never fatal) and
``FeatureCache`` (``inspect_data`` of ``data inspect`` is in ``inspection.py``). One entry per key::

    CACHE/features/<key>/      CACHE = runs.cache_root(cache_dir), the same for every stage
      features.npy   (N, max_length, num_mel_bins) float32, read back with mmap_mode="r"
      items.json     kept clips (indices into the dataset's items)
      skipped.json   clips that failed to decode, with reasons
      settings.json  the settings, and ``upsampled``: {own rate: files} below --sample-rate
      DONE           written last, once the entry is verified (``cache_entry.build_entry``)

The key hashes the settings, the decoding rules and every (path, offset, size, mtime), so a
changed file or setting makes a new entry, and a hit decodes nothing. A hit is checked first
(``entry_problem``: rows, clip count, a sample of values); one that fails is rebuilt with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import runs
from ..errors import DataError
from . import audio
from .cache_entry import array_problem, build_entry, entry_ok, tmp_file
from .feature_settings import FeatureSettings
from .items import Dataset, Item, SkipLog

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: entries verified before DONE, own sample rates recorded
Indices = Sequence[int] | np.ndarray  # rows of a FeatureCache


@dataclass
class FeatureCache:
    features: np.ndarray  # read-only memmap (N, max_length, num_mel_bins)
    items: list[Item]
    skipped: SkipLog
    settings: FeatureSettings
    path: Path
    source: str = ""
    outside: list[str] = dataclasses.field(default_factory=list)  # files read from outside the data folder

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[str] | None:
        if not (self.items and all(i.label is not None for i in self.items)):
            return None
        return [i.label for i in self.items if i.label is not None]  # checked above: none is None

    @property
    def groups(self) -> list[str | None] | None:
        """Every item's group when any item has one (an item without one keeps None)."""
        return [i.group for i in self.items] if any(i.group is not None for i in self.items) else None

    def summary(self) -> dict[str, Any]:
        """Clips used, skip counts, every file or clip left out and every file read from outside
        the data folder (pretraining's data_summary.json; ``items.records_csv`` writes the lists)."""
        files = [{"path": e["path"], "reason": e["reason"]} for e in self.skipped.entries]
        return {
            "used": len(self.items),
            "skipped": self.skipped.counts(),
            "skipped_files": files,
            "outside_data_folder": list(self.outside),
        }


def cache_key(dataset: Dataset, settings: FeatureSettings) -> str:
    files: list[tuple[str, float, int | None, int | None]] = []
    for item in dataset.items:
        try:
            st = os.stat(item.path)
            files.append((item.path, item.offset, st.st_size, st.st_mtime_ns))
        except OSError:
            files.append((item.path, item.offset, None, None))
    rules = {"silence_peak": audio.SILENCE_PEAK}  # what decoding rejects changes the rows
    return runs.settings_hash(
        {"version": CACHE_VERSION, "settings": settings.to_dict(), "rules": rules, "files": files}
    )


def _decode(item: Item, settings: FeatureSettings, skipped: SkipLog, rates: dict[str, int]) -> np.ndarray | None:
    """The clip's samples at the settings' rate (None: skipped); ``rates`` gets each file's own rate."""
    try:
        wave, rates[item.path] = audio.read_clip(item.path, settings.sample_rate, item.offset, settings.clip_seconds)
    except audio.BadAudio as exc:
        skipped.add(item.path if not item.offset else f"{item.path}@{item.offset:g}s", exc.reason, exc.detail)
        return None
    return audio.fix_length(wave, settings.clip_samples)


def _write_features(
    dataset: Dataset, settings: FeatureSettings, tmp: Path, batch_size: int, progress: bool, rates: dict[str, int]
) -> tuple[list[int], SkipLog]:
    """Decode and featurise clip by clip into a memmap of len(items) rows; returns (kept idx, skips)."""
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} < 1")
    extractor = settings.extractor()
    shape = (len(dataset.items), settings.max_length, settings.num_mel_bins)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    kept: list[int] = []
    skipped = SkipLog()
    waves: list[np.ndarray] = []

    def flush() -> None:
        if waves:
            feats = extractor(waves, sampling_rate=settings.sample_rate, return_tensors="np")["input_values"]
            out[len(kept) - len(waves) : len(kept)] = feats
            waves.clear()

    # disable=None: no bar when stderr is no terminal (a log file gets no line per update)
    bar = tqdm(dataset.items, desc="features", unit="clip", disable=None if progress else True, leave=False)
    for i, item in enumerate(bar):
        wave = _decode(item, settings, skipped, rates)
        if wave is not None:
            kept.append(i)
            waves.append(wave)
        if len(waves) >= batch_size:
            flush()
    flush()
    out.flush()  # the memmap is released when this function returns (flush holds it till then)
    return kept, skipped


def _compact(tmp: Path, final: Path, n: int, chunk: int = 1024) -> None:
    """Copy the first ``n`` rows of ``tmp`` into ``final`` in chunks (never all in RAM)."""
    src = np.load(tmp, mmap_mode="r")
    part = tmp_file(final.parent, final.name + ".part")
    dst = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(n, *src.shape[1:]))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        dst[start:stop] = src[start:stop]
    dst.flush()
    del dst, src
    os.replace(part, final)
    tmp.unlink()


def load_entry(path: Path, dataset: Dataset, settings: FeatureSettings) -> FeatureCache:
    kept = runs.read_json(path / "items.json")["kept"]
    skipped = SkipLog(list(dataset.skipped.entries)).merge(SkipLog.from_dict(runs.read_json(path / "skipped.json")))
    features = np.load(path / "features.npy", mmap_mode="r")
    # Labels/groups come from today's dataset, so relabelling never needs a re-decode.
    items = [dataset.items[i] for i in kept]
    read = {i.path for i in dataset.items}  # a file the protocol left out was not read
    outside = [f for f in dataset.outside if f in read]
    return FeatureCache(features, items, skipped, settings, path, dataset.source, outside)


def entry_problem(path: Path, dataset: Dataset, settings: FeatureSettings, sample: bool = True) -> str | None:
    """What is wrong with the entry ``path`` for ``dataset``, or None (``cache_entry.array_problem``).

    Kept and skipped clips must add up to the dataset's clips; one row per kept clip.
    """
    kept = runs.read_json(path / "items.json")["kept"]
    skipped = len(runs.read_json(path / "skipped.json")["entries"])
    n = len(dataset.items)
    if len(kept) + skipped != n or any(not 0 <= k < n for k in kept):
        return f"{len(kept)} kept + {skipped} skipped clips for a data set of {n}"
    features = np.load(path / "features.npy", mmap_mode="r")
    if features.shape[1:] != (settings.max_length, settings.num_mel_bins):
        return f"rows of shape {features.shape[1:]}, expected {(settings.max_length, settings.num_mel_bins)}"
    return array_problem(features, len(kept), sample)


def build_features(
    dataset: Dataset,
    settings: FeatureSettings | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    batch_size: int = 64,
) -> FeatureCache:
    """Features for every usable clip of ``dataset``, from the cache when it is there."""
    settings = settings or FeatureSettings()
    if dataset.window is not None and abs(dataset.window - settings.clip_seconds) > 1e-9:
        log.warning(
            "window %.3gs differs from clip_seconds %.3gs: clips are cut/padded", dataset.window, settings.clip_seconds
        )
    # One layout for every stage: pretraining and probes given the same cache_dir share entries.
    path = runs.cache_folder("features", cache_dir) / cache_key(dataset, settings)
    if runs.should_skip(path) and entry_ok(path, lambda: entry_problem(path, dataset, settings), "feature cache"):
        log.info("feature cache hit: %s", path)
    else:
        # clean=False: sweep shards may fill the same entry at once (per-process temporary names)
        verify = lambda: entry_problem(path, dataset, settings, sample=False)  # noqa: E731
        with build_entry(path, verify, "the feature cache", clean=False):
            _fill(path, dataset, settings, batch_size, progress)
    cache = load_entry(path, dataset, settings)
    s = cache.summary()
    log.info("features: %d clips used, %d skipped %s (%s)", s["used"], len(cache.skipped), s["skipped"], path)
    warn_upsampled(runs.read_json(path / "settings.json").get("upsampled"), settings.sample_rate)
    return cache


def warn_upsampled(upsampled: dict[str, int] | None, sample_rate: int) -> None:
    """One warning per run (a cache hit too) when files are upsampled: {own rate: files}.

    Not at AST's own 16 kHz: AudioSet checkpoints expect it, so upsampling 8-kHz recordings to it
    is the documented default rather than a choice to question.
    """
    if not upsampled or sample_rate == audio.SAMPLE_RATE:
        return
    rates = sorted(int(r) for r in upsampled)
    files = sum(upsampled.values())
    per_rate = ", ".join(f"{upsampled[str(r)]} at {r} Hz" for r in rates)
    log.warning(
        "features at %d Hz (--sample-rate) upsample %d file(s) recorded at a lower rate (%s): upsampling "
        "adds nothing above half a file's own rate; a front end at %d Hz uses them as recorded",
        sample_rate,
        files,
        per_rate,
        rates[0],
    )


def load_features(
    dataset: Dataset,
    settings: FeatureSettings,
    cache_dir: str | Path | None = None,
    stats_indices: Indices | Callable[[FeatureCache], Indices] | None = None,
) -> FeatureCache:
    """``dataset``'s features under ``settings``; statistics measured first when ``settings.needs_stats``.

    ``--normalize dataset`` (``data/normalize.py``): the cache built with ``settings.raw()``,
    re-normalised with the mean/std of its rows ``stats_indices`` (the training clips; every
    clip when None). Which clips are usable is known only once the raw cache exists, so
    ``stats_indices`` may be a function of it. Any other settings, a checkpoint's measured
    ones included, are built as they are.
    """
    if not settings.needs_stats:
        return build_features(dataset, settings, cache_dir=cache_dir)
    from .normalize import dataset_normalized  # it builds on this module

    raw = build_features(dataset, settings.raw(), cache_dir=cache_dir)
    rows = stats_indices(raw) if callable(stats_indices) else stats_indices
    return dataset_normalized(dataset, raw, rows, cache_dir=cache_dir)


def _fill(path: Path, dataset: Dataset, settings: FeatureSettings, batch_size: int, progress: bool) -> None:
    """Write features.npy, items.json, skipped.json and settings.json of one cache entry."""
    tmp = tmp_file(path, "features.npy")
    rates: dict[str, int] = {}
    kept, skipped = _write_features(dataset, settings, tmp, batch_size, progress, rates)
    if not kept:
        raise DataError(_nothing_usable(dataset, skipped))
    if len(kept) < len(dataset.items):
        _compact(tmp, path / "features.npy", len(kept))
    else:
        os.replace(tmp, path / "features.npy")
    runs.write_json_atomic(
        path / "items.json", {"kept": kept, "items": [dataclasses.asdict(dataset.items[i]) for i in kept]}
    )
    runs.write_json_atomic(path / "skipped.json", skipped.to_dict())
    low = [r for r in rates.values() if r < settings.sample_rate]
    upsampled = {str(r): low.count(r) for r in sorted(set(low))}  # {own rate: files}, for warn_upsampled
    runs.write_json_atomic(
        path / "settings.json", {**settings.to_dict(), "source": dataset.source, "upsampled": upsampled}
    )


def _nothing_usable(dataset: Dataset, skipped: SkipLog) -> str:
    counts = ", ".join(f"{n} {r}" for r, n in skipped.counts().items())
    return (
        f"no usable audio in {dataset.source or dataset.root}: all {len(dataset.items)} clips were skipped "
        f"({counts}); replace the bad files (run `mosquito-ssl data inspect` to list them)"
    )
