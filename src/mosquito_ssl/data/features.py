"""Log-mel features for AST, computed once per (settings, files) and cached as a memmap.

Owns ``FeatureSettings`` (the one place clip length becomes a frame count), the feature cache
layout and ``FeatureDataset``. ``mosquito-ssl data inspect DATA`` builds the cache::

    CACHE/features/<key>/
      features.npy   (N, max_length, num_mel_bins) float32, read back with mmap_mode="r"
      items.json     kept clips (indices into the dataset's items)
      skipped.json   clips that failed to decode, with reasons
      settings.json
      DONE           written last

The key hashes the settings and every (path, offset, size, mtime), so a changed file or
setting makes a new cache, and a hit decodes nothing.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import runs
from ..errors import CheckpointError, ConfigError, DataError
from . import audio
from .manifest import Dataset, Item, SkipLog

log = logging.getLogger(__name__)

PATCH = 16  # AST patch size: fewer frames than this cannot form one patch
FRAMES_PER_SECOND = 100  # the extractor's 10 ms hop at 16 kHz
CACHE_VERSION = 1


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    num_mel_bins: int = 128
    mean: float = -4.2677393
    std: float = 4.5689974

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or self.sample_rate <= 0 or self.num_mel_bins <= 0 or self.std <= 0:
            raise ConfigError(f"invalid feature settings {self}: clip_seconds, sample_rate, num_mel_bins, std > 0")

    @property
    def max_length(self) -> int:
        """Frames per clip: 100 for 1 s, never AudioSet's 1024 default."""
        return max(PATCH, round(self.clip_seconds * FRAMES_PER_SECOND))

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def extractor(self):
        from transformers import ASTFeatureExtractor

        with warnings.catch_warnings():  # 128 kaldi mel bins on a 512-point FFT leave one empty
            warnings.simplefilter("ignore", UserWarning)
            return ASTFeatureExtractor(
                sampling_rate=self.sample_rate,
                num_mel_bins=self.num_mel_bins,
                max_length=self.max_length,
                mean=self.mean,
                std=self.std,
                do_normalize=True,
            )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FeatureSettings:
        """Settings from a checkpoint folder's ``preprocessor_config.json``."""
        from transformers import ASTFeatureExtractor

        directory = Path(directory)
        if not (directory / "preprocessor_config.json").is_file():
            raise CheckpointError(f"{directory} has no preprocessor_config.json: pass a saved AST checkpoint folder")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fe = ASTFeatureExtractor.from_pretrained(str(directory))
        return cls(
            sample_rate=int(fe.sampling_rate),
            clip_seconds=fe.max_length / FRAMES_PER_SECOND,
            num_mel_bins=int(fe.num_mel_bins),
            mean=float(fe.mean),
            std=float(fe.std),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "max_length": self.max_length}


def default_cache_dir() -> Path:
    """``$MOSQUITO_SSL_CACHE`` or ``~/.cache/mosquito-ssl``."""
    return Path(os.environ.get("MOSQUITO_SSL_CACHE") or Path.home() / ".cache" / "mosquito-ssl").expanduser()


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

    bar = tqdm(dataset.items, desc="features", unit="clip", disable=not progress, leave=False)
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


def _load(path: Path, dataset: Dataset, settings: FeatureSettings) -> FeatureCache:
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
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
    path = root / cache_key(dataset, settings)
    if not runs.is_done(path):
        path.mkdir(parents=True, exist_ok=True)
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
        runs.mark_done(path)
    else:
        log.info("feature cache hit: %s", path)
    cache = _load(path, dataset, settings)
    s = cache.summary()
    log.info("features: %d clips used, %d skipped %s (%s)", s["used"], len(cache.skipped), s["skipped"], path)
    return cache


def _nothing_usable(dataset: Dataset, skipped: SkipLog) -> str:
    counts = ", ".join(f"{n} {r}" for r, n in skipped.counts().items())
    return (
        f"no usable audio in {dataset.source or dataset.root}: all {len(dataset.items)} clips were skipped "
        f"({counts}); replace the bad files (run `mosquito-ssl data inspect` to list them)"
    )


class FeatureDataset(torch.utils.data.Dataset):
    """Rows ``indices`` of a feature cache as ``{"input_values": (T, F)}`` (plus ``labels`` if given).

    A cache on disk is read row by row with ``readinto`` rather than through the memmap: pages a
    memmap touches stay mapped and count in the process's RSS until the whole file (5 GB for
    100k clips) looks resident, and a memmap is pickled whole into spawned DataLoader workers.
    Only (path, offset, shape) travel to workers; each opens its own handle on first use.
    """

    def __init__(self, cache: FeatureCache, indices=None, label_ids=None) -> None:
        features = cache.features
        # Exactly one of ``features`` (in-memory arrays are indexed directly) and ``file`` is set.
        self.features: np.ndarray | None = features
        self.file: tuple[str, int] | None = None
        if isinstance(features, np.memmap) and features.filename is not None:
            self.features = None
            self.file = (features.filename, features.offset)
        self.row_shape = features.shape[1:]
        self._handle: io.FileIO | None = None
        self.indices = np.arange(len(cache)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.label_ids = None if label_ids is None else np.asarray(label_ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None}  # file handles do not cross processes

    def _row(self, row: int) -> np.ndarray:
        if self.file is None:
            assert self.features is not None  # set whenever file is not
            return np.array(self.features[row])
        if self._handle is None:
            # kept open across rows (closed with the dataset): a context manager per row would reopen it
            self._handle = open(self.file[0], "rb", buffering=0)  # noqa: SIM115
        out = np.empty(self.row_shape, dtype=np.float32)
        self._handle.seek(self.file[1] + row * out.nbytes)
        if self._handle.readinto(out.data.cast("B")) != out.nbytes:
            raise DataError(f"{self.file[0]} is shorter than its header says: delete the cache folder")
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.indices[i])
        out = {"input_values": torch.from_numpy(self._row(row))}
        if self.label_ids is not None:
            out["labels"] = torch.tensor(self.label_ids[row])
        return out


def inspect_data(
    source: str | Path, clip_seconds: float = 1.0, cache_dir: str | Path | None = None, **read_kwargs
) -> dict[str, Any]:
    """Read ``source``, build its feature cache and summarise it (``mosquito-ssl data inspect``)."""
    from collections import Counter

    from .manifest import read_dataset

    dataset = read_dataset(source, clip_seconds=clip_seconds, **read_kwargs)
    cache = build_features(dataset, FeatureSettings(clip_seconds=clip_seconds), cache_dir=cache_dir)
    summary = cache.summary()
    groups = cache.groups
    return {
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
