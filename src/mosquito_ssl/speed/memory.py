"""Memory: resident memory while a large feature cache is read (``benchmarks speed --memory-clips
N``), and the activation memory of a training step (what ``--equal-memory`` matches).

memory_footprint(100_000, Path("/tmp/big"), batch=8)   # 5.1 GB memmap; peak RSS parts
with ActivationMeter(model) as meter:                  # bytes saved for the backward
    loss = model(input_values=x)["loss"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _status_mb() -> dict[str, float]:
    """Resident anonymous (private heap) and file-backed (memmap page cache) memory, MB."""
    out = {"RssAnon": 0.0, "RssFile": 0.0}
    if not Path("/proc/self/status").is_file():  # not Linux: total RSS, unsplit
        import psutil

        return {**out, "RssAnon": psutil.Process().memory_info().rss / 2**20}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def memory_footprint(n_clips: int, folder: Path, batch: int, frames: int = 100, bins: int = 128) -> dict:
    """Iterate a shuffled DataLoader over an ``n_clips`` feature memmap; report peak RSS parts.

    The cache file is written directly in ``features.py``'s layout (no audio is decoded).
    File-backed pages of the memmap count in RSS but belong to the page cache (the kernel drops
    them under pressure); the anonymous part is what the process itself holds.
    """
    from ..data.features import FeatureCache, FeatureDataset, FeatureSettings
    from ..data.manifest import SkipLog
    from .timing import stack

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "features.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_clips, frames, bins))
    chunk = np.random.default_rng(0).standard_normal((1024, frames, bins), dtype=np.float32)
    for start in range(0, n_clips, len(chunk)):  # real pages on disk, not a sparse file
        out[start : start + len(chunk)] = chunk[: n_clips - start]
    out.flush()
    del out
    cache = FeatureCache(np.load(path, mmap_mode="r"), [], SkipLog(), FeatureSettings(), folder)
    data = FeatureDataset(cache, np.arange(n_clips))
    base = _status_mb()
    peak = dict(base)
    for i, _ in enumerate(torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, collate_fn=stack)):
        if i % 64 == 0:
            peak = {k: max(v, peak[k]) for k, v in _status_mb().items()}
    return {
        "memory_clips": n_clips,
        "memory_cache_mb": path.stat().st_size / 2**20,
        "memory_anon_growth_mb": peak["RssAnon"] - base["RssAnon"],
        "memory_file_growth_mb": peak["RssFile"] - base["RssFile"],
        "memory_peak_anon_mb": peak["RssAnon"],
        "memory_peak_file_mb": peak["RssFile"],
    }


class ActivationMeter:
    """Counts the bytes autograd saves for the backward while active: the activation memory of a step.

    Parameters (and views of them, e.g. a transposed weight) are not counted: they are the same
    at every batch size. A storage saved by several operations counts once.
    """

    def __init__(self, model: nn.Module) -> None:
        self._params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda saved: saved)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self._params:
            self._storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def nbytes(self) -> int:
        return sum(self._storages.values())

    def __enter__(self) -> ActivationMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
