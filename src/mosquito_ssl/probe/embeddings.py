"""Frozen-encoder embeddings of every hidden layer and pooling, computed once, cached on disk.

    mosquito-ssl probe layerwise data/synth --encoder runs/pretrain-tiny   # fills the cache

Layout of one cache entry (``<MOSQUITO_SSL_CACHE or ~/.cache/mosquito-ssl>/embeddings/<key>/``)::

    <pooling>.npy   float32 (N, L+1, width) for every pooling of ``POOLINGS``
    info.json       key parts, shape, clip list
    DONE            written last, once every array is verified; an entry without it is recomputed

Layer 0 is the embedding output (patches + CLS/distillation tokens + positions), layer i the
output of block i, and layer L the encoder output after its final LayerNorm (what ASTModel's
pooler reads). Every layer and pooling is in one entry, so the key holds what changes the
numbers: the encoder fingerprint (weights) and its architecture (strides, depth), the feature
settings and feature cache, the clip list, the poolings. A second probe on the same encoder and
data runs no forward pass (``EMBED_FORWARDS`` counts them). Entries are built and read back
through ``data/cache_entry.py``: verified before DONE (one row per clip, finite, no row all zero),
checked on every hit, and rebuilt with a warning when that check fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from .. import runs
from ..data.cache_entry import arrays_problem, build_entry, entry_ok, tmp_file
from ..errors import ConfigError
from .config import POOLINGS

log = logging.getLogger(__name__)

# Encoder forward batches run since import; a cache hit adds none (tests read it).
EMBED_FORWARDS = 0


def clip_list_hash(items) -> str:
    """Hash of the clips (path, offset) in order: the rows of every cached array."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.path}|{float(item.offset or 0.0):.6f}\n".encode())
    return digest.hexdigest()[:16]


# ASTConfig fields that change a forward pass beyond the weights (the fingerprint covers those)
ARCHITECTURE = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act", "layer_norm_eps",
    "patch_size", "frequency_stride", "time_stride", "max_length", "num_mel_bins", "qkv_bias",
)  # fmt: skip


def embedding_key(fingerprint: str, cache, config=None) -> dict:
    """Encoder weights and architecture + feature settings + feature cache (its key covers file
    sizes/mtimes) + the clips + the poolings: everything the cached numbers depend on."""
    return {
        "encoder": fingerprint,
        "architecture": {k: getattr(config, k, None) for k in ARCHITECTURE} if config is not None else None,
        "features": runs._jsonable(cache.settings),
        "feature_cache": Path(cache.path).name,
        "clips": clip_list_hash(cache.items),
        "n": len(cache.items),
        "poolings": list(POOLINGS),
        "format": 3,  # 3: verified entries, architecture in the key
    }


def pooling_width(pooling: str, hidden: int, grid: tuple[int, int]) -> int:
    """Width of one pooled vector: D, 2D, f*D (freq_stack) or 2*f*D (freq_mean_max)."""
    return {"cls+mean": 2 * hidden, "freq_stack": grid[0] * hidden, "freq_mean_max": 2 * grid[0] * hidden}.get(
        pooling, hidden
    )


def pool_tokens(hidden, grid: tuple[int, int]) -> dict:
    """Every pooling of token sequences (..., S, D) -> {pooling: (..., width)}; grid = (f, t) patches.

    Token 0 is CLS, token 1 the distillation token, the rest patches. The fine-tuning head
    pools with this too, so frozen probes and fine-tunes read the same representation.
    """
    import torch

    from ..model.pooling import freq_mean_max, freq_stack

    cls, dist, patches = hidden[..., 0, :], hidden[..., 1, :], hidden[..., 2:, :].mean(dim=-2)
    return {
        "cls": cls,
        "dist": dist,
        "cls_dist": (cls + dist) / 2,
        "mean": patches,
        "cls+mean": torch.cat([cls, patches], dim=-1),
        "freq_stack": freq_stack(hidden, grid),
        "freq_mean_max": freq_mean_max(hidden, grid),
    }


def pool(hidden, last, grid: tuple[int, int]):
    """All poolings of stacked hidden states (B, L+1, S, D) -> {pooling: (B, L+1, D|2D)}."""
    import torch

    # layer L is taken after the final LayerNorm, as ASTModel's pooler reads it
    return pool_tokens(torch.cat([hidden[:, :-1], last[:, None]], dim=1), grid)


class Embeddings:
    """A finished cache entry; ``load(pooling)`` memory-maps (N, L+1, D) float32."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.info = runs.read_json(self.folder / "info.json")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.info["shape"])

    def load(self, pooling: str) -> np.ndarray:
        return np.load(self.folder / f"{pooling}.npy", mmap_mode="r")


def entry_problem(folder: Path, n: int, layers: int, hidden: int, grid: tuple[int, int], sample: bool) -> str | None:
    """What is wrong with the entry ``folder`` for ``n`` clips through this encoder, or None."""
    shape = runs.read_json(folder / "info.json")["shape"]
    if list(shape) != [n, layers, hidden]:
        return f"info.json says shape {shape}, the encoder and clips give {[n, layers, hidden]}"
    shapes = {p: (n, layers, pooling_width(p, hidden, grid)) for p in POOLINGS}
    return arrays_problem(folder, shapes, sample)


def compute_embeddings(
    model,
    cache,
    fingerprint: str,
    batch_size: int = 32,
    cache_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> Embeddings:
    """Embeddings of every clip of ``cache`` (a FeatureCache) under the frozen ``model``."""
    from ..model.presets import patch_grid

    if batch_size < 1:  # range(0, n, batch_size) would run no batch and leave every row zero
        raise ConfigError(f"--batch-size {batch_size} is not valid: use >= 1")
    key = embedding_key(fingerprint, cache, model.config)
    folder = runs.cache_folder("embeddings", cache_dir) / runs.settings_hash(key, 20)
    n, hidden, layers = len(cache.items), model.config.hidden_size, model.config.num_hidden_layers + 1
    grid = patch_grid(model.config)

    def check(sample: bool = True) -> str | None:
        return entry_problem(folder, n, layers, hidden, grid, sample)

    if runs.should_skip(folder, force) and entry_ok(folder, check, "embeddings cache"):
        log.info("embeddings cache hit: %s", folder)
        return Embeddings(folder)
    with build_entry(folder, lambda: check(sample=False), "the embeddings"):  # start clean, DONE once verified
        _write_arrays(model, cache.features, folder, hidden, layers, batch_size, progress)
        runs.write_json_atomic(folder / "info.json", {**key, "shape": [n, layers, hidden]})
    return Embeddings(folder)


def _write_arrays(
    model, features, folder: Path, hidden: int, layers: int, batch_size: int, progress: bool = True
) -> None:
    global EMBED_FORWARDS
    import torch
    from tqdm.auto import tqdm

    n = len(features)
    from ..model.presets import patch_grid

    grid = patch_grid(model.config)
    widths = {p: pooling_width(p, hidden, grid) for p in POOLINGS}
    tmp = {p: tmp_file(folder, f"{p}.npy") for p in POOLINGS}  # build_entry removes them if this fails
    arrays = {
        p: np.lib.format.open_memmap(tmp[p], mode="w+", dtype=np.float32, shape=(n, layers, widths[p]))
        for p in POOLINGS
    }
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        # disable=None: no bar when stderr is no terminal (a log file gets no line per update)
        bar = tqdm(
            range(0, n, batch_size), desc="embeddings", unit="batch", leave=False, disable=None if progress else True
        )
        for start in bar:
            x = torch.from_numpy(np.array(features[start : start + batch_size])).to(device)  # copy off the memmap
            out = model(x, output_hidden_states=True)
            EMBED_FORWARDS += 1
            pooled = pool(torch.stack(out.hidden_states, dim=1), out.last_hidden_state, grid)
            for p, value in pooled.items():
                arrays[p][start : start + len(x)] = value.float().cpu().numpy()
    for p, array in arrays.items():
        array.flush()
        del array
        os.replace(tmp[p], folder / f"{p}.npy")  # atomic: a reader sees no half-written array
