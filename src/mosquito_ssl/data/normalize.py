"""``--normalize dataset``: log-mel mean and std of the training clips instead of AudioSet's.

    mosquito-ssl pretrain field/ --window 1 --sample-rate 8000 --normalize dataset

The AST authors normalise a new data set with its own statistics (their ``get_norm_stats``):
one mean and one standard deviation of every log-mel cell of the training clips, applied as
``(x - mean) / (2 * std)`` like AudioSet's. ``feature_stats`` takes them from a cache built
with AudioSet's numbers (``FeatureSettings.raw()``), undoing that normalisation exactly; the
padded frames of short clips count, as the encoder sees them. ``dataset_normalized`` then
writes the re-normalised cache entry under the key ``build_features`` gives those settings, by
an affine map of the cached rows (no audio is decoded twice; verified before DONE, and checked
when read back, like every cache entry: ``cache_entry.py``), and the settings travel with the
checkpoint in ``preprocessor_config.json``. Stages reach this through
``feature_cache.load_features``, which decides when statistics are to be measured.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from .. import runs
from .cache_entry import build_entry, entry_ok, tmp_file
from .feature_cache import FeatureCache, cache_key, entry_problem, load_entry
from .feature_settings import FeatureSettings
from .items import Dataset

log = logging.getLogger(__name__)


def feature_stats(cache: FeatureCache, indices=None, chunk: int = 1024) -> tuple[float, float]:
    """(mean, std) of the un-normalised log-mel cells of ``cache`` rows ``indices`` (all rows by default)."""
    s = cache.settings
    rows = np.arange(len(cache)) if indices is None else np.sort(np.asarray(indices))
    total = square = 0.0
    for start in range(0, len(rows), chunk):
        raw = np.asarray(cache.features[rows[start : start + chunk]], dtype=np.float64) * (2 * s.std) + s.mean
        total += raw.sum()
        square += np.square(raw).sum()
    n = len(rows) * cache.features.shape[1] * cache.features.shape[2]
    mean = total / n
    return float(mean), float(np.sqrt(max(square / n - mean * mean, 0.0)))


def dataset_normalized(
    dataset: Dataset, raw: FeatureCache, indices=None, cache_dir=None, chunk: int = 1024
) -> FeatureCache:
    """``raw`` (``dataset``'s cache under ``FeatureSettings.raw()``) normalised with the statistics of its rows ``indices``."""
    mean, std = feature_stats(raw, indices, chunk)
    target = dataclasses.replace(raw.settings, mean=mean, std=std, normalize="dataset")
    log.info(
        "--normalize dataset: log-mel mean %.4f, std %.4f (AudioSet: %.4f, %.4f)",
        mean,
        std,
        raw.settings.mean,
        raw.settings.std,
    )
    path = runs.cache_folder("features", cache_dir) / cache_key(dataset, target)
    check = lambda: entry_problem(path, dataset, target)  # noqa: E731
    if not (runs.should_skip(path) and entry_ok(path, check, "dataset-normalised feature cache")):
        verify = lambda: entry_problem(path, dataset, target, sample=False)  # noqa: E731
        with build_entry(path, verify, "the dataset-normalised feature cache", clean=False):
            _write_affine(raw, target, path, chunk)
    return load_entry(path, dataset, target)


def _write_affine(raw: FeatureCache, target: FeatureSettings, path, chunk: int) -> None:
    """Rows of ``raw`` re-normalised for ``target``, with raw's items, skips and settings files."""
    s = raw.settings
    scale = s.std / target.std  # (x*2s + m - m') / (2s') = x*s/s' + (m - m')/(2s')
    shift = (s.mean - target.mean) / (2 * target.std)
    part = tmp_file(path, "features.npy")
    out = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=raw.features.shape)
    for start in range(0, len(raw), chunk):
        out[start : start + chunk] = raw.features[start : start + chunk] * scale + shift
    out.flush()
    del out
    os.replace(part, path / "features.npy")
    for name in ("items.json", "skipped.json"):
        runs.write_json_atomic(path / name, runs.read_json(raw.path / name))
    runs.write_json_atomic(path / "settings.json", {**target.to_dict(), "source": raw.source})
