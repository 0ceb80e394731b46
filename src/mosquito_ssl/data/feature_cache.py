"""The feature cache: log-mel features computed once per (settings, files), kept as a memmap.

    mosquito-ssl data inspect data/synth

Owns ``build_features`` (decode each clip once; bad clips are skipped and counted, never fatal),
``FeatureCache`` and ``inspect_data``. One entry per key::

    CACHE/features/<key>/      CACHE = runs.cache_root(cache_dir), the same for every stage
      features.npy   (N, max_length, num_mel_bins) float32, read back with mmap_mode="r"
      items.json     kept clips (indices into the dataset's items)
      skipped.json   clips that failed to decode, with reasons
      settings.json
      DONE           written last (runs.building)

The key hashes the settings and every (path, offset, size, mtime), so a changed file or
setting makes a new entry, and a hit decodes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import runs
from ..errors import DataError
from . import audio
from .feature_settings import FeatureSettings
from .items import Dataset, Item, SkipLog

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class FeatureCache:
    features: np.ndarray  # read-only memmap (N, max_length, num_mel_bins)
    items: list[Item]
    skipped: SkipLog
    settings: FeatureSettings
    path: Path
    source: str = ""

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
        files = [{"path": e["path"], "reason": e["reason"]} for e in self.skipped.entries]
        return {"used": len(self.items), "skipped": self.skipped.counts(), "skipped_files": files}


def cache_key(dataset: Dataset, settings: FeatureSettings) -> str:
    files: list[tuple[str, float, int | None, int | None]] = []
    for item in dataset.items:
        try:
            st = os.stat(item.path)
            files.append((item.path, item.offset, st.st_size, st.st_mtime_ns))
        except OSError:
            files.append((item.path, item.offset, None, None))
    return runs.settings_hash({"version": CACHE_VERSION, "settings": settings.to_dict(), "files": files})


def _decode(item: Item, settings: FeatureSettings, skipped: SkipLog) -> np.ndarray | None:
    try:
        wave = audio.load_audio(item.path, settings.sample_rate, item.offset, settings.clip_seconds)
    except audio.BadAudio as exc:
        skipped.add(item.path if not item.offset else f"{item.path}@{item.offset:g}s", exc.reason, exc.detail)
        return None
    return audio.fix_length(wave, settings.clip_samples)


def _write_features(dataset: Dataset, settings: FeatureSettings, tmp: Path, batch_size: int, progress: bool):
    """Decode and featurise clip by clip into a memmap of len(items) rows; returns (kept idx, skips)."""
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
        wave = _decode(item, settings, skipped)
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
    part = final.with_name(f".{final.name}.{os.getpid()}.part")
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
    return FeatureCache(features, items, skipped, settings, path, dataset.source)


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
    if runs.should_skip(path):
        log.info("feature cache hit: %s", path)
    else:
        # clean=False: sweep shards may fill the same entry at once (per-process temporary names)
        with runs.building(path, clean=False):
            _fill(path, dataset, settings, batch_size, progress)
    cache = load_entry(path, dataset, settings)
    s = cache.summary()
    log.info("features: %d clips used, %d skipped %s (%s)", s["used"], len(cache.skipped), s["skipped"], path)
    return cache


def _fill(path: Path, dataset: Dataset, settings: FeatureSettings, batch_size: int, progress: bool) -> None:
    """Write features.npy, items.json, skipped.json and settings.json of one cache entry."""
    tmp = path / f".features.{os.getpid()}.npy"
    kept, skipped = _write_features(dataset, settings, tmp, batch_size, progress)
    if not kept:
        tmp.unlink(missing_ok=True)
        raise DataError(_nothing_usable(dataset, skipped))
    if len(kept) < len(dataset.items):
        _compact(tmp, path / "features.npy", len(kept))
    else:
        os.replace(tmp, path / "features.npy")
    runs.write_json_atomic(
        path / "items.json", {"kept": kept, "items": [dataclasses.asdict(dataset.items[i]) for i in kept]}
    )
    runs.write_json_atomic(path / "skipped.json", skipped.to_dict())
    runs.write_json_atomic(path / "settings.json", {**settings.to_dict(), "source": dataset.source})


def _nothing_usable(dataset: Dataset, skipped: SkipLog) -> str:
    counts = ", ".join(f"{n} {r}" for r, n in skipped.counts().items())
    return (
        f"no usable audio in {dataset.source or dataset.root}: all {len(dataset.items)} clips were skipped "
        f"({counts}); replace the bad files (run `mosquito-ssl data inspect` to list them)"
    )


def inspect_data(
    source: str | Path, clip_seconds: float = 1.0, cache_dir: str | Path | None = None, protocol=None, **read_kwargs
) -> dict[str, Any]:
    """Read ``source``, apply the evaluation ``protocol``, build the feature cache and summarise it."""
    from collections import Counter

    from .manifest import read_dataset
    from .protocol import apply_protocol

    dataset = read_dataset(source, clip_seconds=clip_seconds, **read_kwargs)
    left_out: dict[str, int] = {}
    if protocol is not None and protocol.active and dataset.has_labels:
        dataset, report = apply_protocol(dataset, protocol)
        left_out = report["left_out"]
    cache = build_features(dataset, FeatureSettings(clip_seconds=clip_seconds), cache_dir=cache_dir)
    summary = cache.summary()
    groups = cache.groups
    per_class: dict[str, set] = {}
    for item in cache.items if groups is not None and cache.labels else []:
        per_class.setdefault(str(item.label), set()).add(item.group)
    return {
        "groups_per_class": {c: len(g) for c, g in sorted(per_class.items())},
        "left_out": left_out,
        "source": str(source),
        "layout": dataset.layout,
        "clips": summary["used"],
        "classes": dict(sorted(Counter(cache.labels).items())) if cache.labels else {},
        "groups": len(set(groups)) if groups is not None else None,
        "skipped": summary["skipped"],
        "skipped_total": len(cache.skipped),
        "skipped_files": summary["skipped_files"],
        "cache": str(cache.path),
    }
