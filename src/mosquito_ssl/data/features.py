"""Features for training: ``FeatureDataset`` over a feature cache, and the data stage's public names.

    mosquito-ssl data inspect data/synth

``FeatureSettings`` lives in ``feature_settings.py``, the cache (``load_features``,
``build_features``, ``FeatureCache``) in ``feature_cache.py``, ``inspect_data`` in
``inspection.py``; all are re-exported here, so other stages import everything feature-related
from ``data.features``. This module owns the torch ``Dataset`` the Trainer reads rows from.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ..errors import DataError
from .feature_cache import CACHE_VERSION, FeatureCache, build_features, cache_key, load_features
from .feature_settings import FRAMES_PER_SECOND, PATCH, FeatureSettings
from .inspection import inspect_data

__all__ = [
    "CACHE_VERSION",
    "FRAMES_PER_SECOND",
    "PATCH",
    "FeatureCache",
    "FeatureDataset",
    "FeatureSettings",
    "build_features",
    "cache_key",
    "inspect_data",
    "load_features",
]


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
