"""Baselines beside the SSL encoder: hand-crafted wingbeat features (and the random encoder).

    mosquito-ssl probe linear data/synth --encoder handcrafted
    mosquito-ssl probe linear data/synth --encoder random:tiny      # no pretraining, same shape

The random-init and AudioSet baselines need no code here: they are encoders
(``random:<preset>``, an HF checkpoint folder) run through the same probes. The hand-crafted
vector of a clip is: log-mel mean and std per band (from the cached AST features), the
wingbeat fundamental f0 (harmonic product spectrum within 200-1000 Hz) and the relative
amplitudes of harmonics 1-4. It is cached like embeddings, as ``handcrafted.npy`` of shape
(N, 1, D) under ``handcrafted/<key>/`` of the cache root, so the waveforms are decoded once; like
every cache entry it is verified before DONE and checked when read back (``data/cache_entry.py``).
The ``logmel`` baseline has no entry of its own: it is one pass over the (checked) feature cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import runs
from ..data.cache_entry import arrays_problem, build_entry, entry_ok, tmp_file
from .embeddings import Embeddings, clip_list_hash

log = logging.getLogger(__name__)

POOLING = "handcrafted"
F0_RANGE = (200.0, 1000.0)
N_HARMONICS = 4
HPS_ORDER = 3  # spectra multiplied in the harmonic product spectrum


def _spectrum(wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    # Zero-pad to >= 1 s so bins are <= 1 Hz apart whatever the clip length.
    n_fft = max(len(wave), sample_rate)
    mag = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=n_fft))
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate), mag


def estimate_f0(wave: np.ndarray, sample_rate: int, f_range=F0_RANGE) -> float:
    """Wingbeat fundamental (Hz) by the harmonic product spectrum, searched within ``f_range``.

    The HPS multiplies the spectrum with copies compressed by 2..HPS_ORDER, so only a
    frequency whose harmonics are also loud wins (robust to a strong 2nd harmonic).
    """
    freqs, mag = _spectrum(np.asarray(wave, dtype=np.float64), sample_rate)
    log_mag = np.log(mag + 1e-12)
    n = len(mag) // HPS_ORDER
    hps = np.sum([log_mag[::h][:n] for h in range(1, HPS_ORDER + 1)], axis=0)
    band = np.flatnonzero((freqs[:n] >= f_range[0]) & (freqs[:n] <= f_range[1]))
    if len(band) == 0:
        return float("nan")
    k = band[np.argmax(hps[band])]
    if 0 < k < len(mag) - 1:  # parabolic interpolation on the log magnitude: sub-bin accuracy
        a, b, c = log_mag[k - 1], log_mag[k], log_mag[k + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom else 0.0
        return float(freqs[k] + np.clip(shift, -0.5, 0.5) * (freqs[1] - freqs[0]))
    return float(freqs[k])


def wingbeat_features(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """[f0, a1..a4]: f0 in Hz, a_h = peak magnitude near h*f0 / sum of the four peaks."""
    f0 = estimate_f0(wave, sample_rate)
    freqs, mag = _spectrum(np.asarray(wave, dtype=np.float64), sample_rate)
    peaks: list[float] = []
    for h in range(1, N_HARMONICS + 1):
        near = np.abs(freqs - h * f0) <= max(3.0, 0.03 * h * f0)  # +-3 %: FM widens the peaks
        peaks.append(mag[near].max() if near.any() and np.isfinite(f0) else 0.0)
    amps = np.asarray(peaks)
    return np.concatenate([[f0], amps / amps.sum() if amps.sum() > 0 else amps]).astype(np.float32)


def logmel_stats(features: np.ndarray) -> np.ndarray:
    """Per-band mean and std over time of (N, T, F) log-mel features -> (N, 2F)."""
    feats = np.asarray(features, dtype=np.float32)
    return np.concatenate([feats.mean(axis=1), feats.std(axis=1)], axis=1)


def logmel_features(cache, chunk: int = 1024) -> np.ndarray:
    """(N, 2F) log-mel mean and std per band of every clip of a FeatureCache, read in chunks."""
    return np.concatenate([logmel_stats(cache.features[i : i + chunk]) for i in range(0, len(cache.items), chunk)])


def handcrafted_features(
    cache, cache_dir: Path | None = None, force: bool = False, chunk: int = 256, progress: bool = True
) -> Embeddings:
    """(N, 1, 2F + 5) hand-crafted features of a FeatureCache's clips, cached on disk."""
    key = {
        "kind": POOLING,
        "features": runs._jsonable(cache.settings),
        "feature_cache": Path(cache.path).name,
        "clips": clip_list_hash(cache.items),
        "n": len(cache.items),
        "f0_range": list(F0_RANGE),
        "harmonics": N_HARMONICS,
        "hps_order": HPS_ORDER,
        "format": 2,  # 2: verified entries
    }
    folder = runs.cache_folder("handcrafted", cache_dir) / runs.settings_hash(key, 20)
    shape = (len(cache.items), 1, 2 * cache.settings.num_mel_bins + 1 + N_HARMONICS)

    def check(sample: bool = True) -> str | None:
        return arrays_problem(folder, {POOLING: shape}, sample)

    if runs.should_skip(folder, force) and entry_ok(folder, check, "hand-crafted features cache"):
        log.info("hand-crafted features cache hit: %s", folder)
        return Embeddings(folder)
    with build_entry(folder, lambda: check(sample=False), "the hand-crafted features"):  # DONE once verified
        values = _compute(cache, chunk, progress)
        tmp = tmp_file(folder, f"{POOLING}.npy")
        with open(tmp, "wb") as fh:
            np.save(fh, values)
        tmp.replace(folder / f"{POOLING}.npy")
        runs.write_json_atomic(folder / "info.json", {**key, "shape": list(values.shape), "poolings": [POOLING]})
    return Embeddings(folder)


def _compute(cache, chunk: int, progress: bool) -> np.ndarray:
    """(N, 1, 2F + 5) float32: log-mel stats from the feature cache, wingbeat features from the audio."""
    from tqdm.auto import tqdm

    from ..data.audio import BadAudio, load_audio

    s = cache.settings
    stats = logmel_features(cache, chunk)
    wing = np.zeros((len(cache.items), 1 + N_HARMONICS), dtype=np.float32)
    # disable=None: no bar when stderr is no terminal (a log file gets no line per update)
    bar = tqdm(cache.items, desc="wingbeat f0", unit="clip", leave=False, disable=None if progress else True)
    for i, item in enumerate(bar):
        try:
            wave = load_audio(item.path, s.sample_rate, offset=item.offset, duration=s.clip_seconds)
        except BadAudio as exc:  # the feature cache decoded it already; a change on disk since
            log.warning("%s: %s; wingbeat features set to 0", item.path, exc)
            continue
        wing[i] = wingbeat_features(wave, s.sample_rate)
    return np.concatenate([stats, wing], axis=1)[:, None, :].astype(np.float32)
