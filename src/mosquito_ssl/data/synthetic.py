"""Synthetic mosquito flight tones: the embedded data set for demos and tests.

Owns the species catalogue and the generator. Run it with::

    mosquito-ssl data synth data/synth --seed 0

Each simulated *recording* is one insect near one microphone: its own wingbeat fundamental
(drawn from its species' distribution), harmonic profile, background noise colour and mains
hum. A recording is cut into clips, and clips of one recording share a ``group`` so splits
never leak an individual across train and val.

Wingbeat fundamentals of free-flying females at ~25 C. These are approximate, rounded
ranges, not measurements: frequencies rise with temperature and fall with body size and age,
and studies disagree by tens of Hz (check the papers before quoting a number):
  * Aedes aegypti          ~450-600 Hz (Cator et al. 2009, Science, "Harmonic convergence in
                                        the love songs of the dengue vector mosquito";
                                        Mukundarajan et al. 2017, eLife 6:e27854)
  * Anopheles gambiae      ~420-520 Hz (Pennetier et al. 2010, Curr. Biol., "Singing on the
                                        wing..."; cf. Gibson & Russell 2006, Curr. Biol., on
                                        flight-tone matching in mosquitoes)
  * Anopheles arabiensis   ~380-480 Hz (Mukundarajan et al. 2017; close to An. gambiae s.s.)
  * Culex quinquefasciatus ~330-420 Hz (Warren et al. 2009, J. Exp. Biol., mating duets in
                                        Culex; Mukundarajan et al. 2017)
  * Culex pipiens          ~300-400 Hz (rough, from the same surveys; not a default)
The default four overlap at their edges but are separable on average, as real species are.
Harmonic profiles are illustrative (real spectra show strong 2nd/3rd harmonics that vary by
species and by microphone), not measured values.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ..errors import ConfigError
from ..runs import write_text_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Species:
    name: str
    f0_mean: float  # Hz
    f0_sd: float  # between-individual spread, Hz
    f0_range: tuple[float, float]  # draws are clipped here (the literature range above)
    harmonics: tuple[float, ...]  # relative amplitudes of harmonics 1..K (fundamental = 1)


CATALOGUE: dict[str, Species] = {
    s.name: s
    for s in (
        Species("aedes_aegypti", 520.0, 30.0, (450.0, 600.0), (1.0, 0.55, 0.35, 0.2, 0.12, 0.06)),
        Species("anopheles_gambiae", 465.0, 22.0, (420.0, 520.0), (1.0, 0.7, 0.25, 0.15, 0.05)),
        Species("anopheles_arabiensis", 430.0, 22.0, (380.0, 480.0), (1.0, 0.4, 0.45, 0.1, 0.08)),
        Species("culex_quinquefasciatus", 375.0, 20.0, (330.0, 420.0), (1.0, 0.8, 0.5, 0.3, 0.2, 0.1)),
        Species("culex_pipiens", 350.0, 22.0, (300.0, 400.0), (1.0, 0.75, 0.6, 0.25, 0.15, 0.1)),
    )
}
DEFAULT_SPECIES = ("aedes_aegypti", "anopheles_gambiae", "anopheles_arabiensis", "culex_quinquefasciatus")


def _rng(seed: int, species: str, recording: int) -> np.random.Generator:
    # Seeded per (seed, species, recording) so adding a species never changes the others.
    return np.random.default_rng([seed, zlib.crc32(species.encode()), recording])


def _flight_tone(sp: Species, f0: float, n_clips: int, n: int, sr: int, rng) -> np.ndarray:
    """Harmonic wingbeat with slow FM (manoeuvres, Doppler) and approach/recede AM."""
    t = np.arange(n) / sr
    clip_f0 = f0 * (1.0 + rng.normal(0.0, 0.01, (n_clips, 1)))
    fm_depth = rng.uniform(0.005, 0.02, (n_clips, 1))
    fm_rate = rng.uniform(0.5, 4.0, (n_clips, 1))
    inst_f = clip_f0 * (1.0 + fm_depth * np.sin(2 * np.pi * fm_rate * t + rng.uniform(0, 2 * np.pi, (n_clips, 1))))
    phase = 2 * np.pi * np.cumsum(inst_f, axis=1) / sr
    amps = np.asarray(sp.harmonics) * rng.uniform(0.8, 1.2, len(sp.harmonics))
    amps[0] = 1.0  # the fundamental stays the strongest partial
    k = np.arange(1, len(amps) + 1)
    keep = k * f0 * 1.05 < sr / 2  # no aliasing
    offsets = rng.uniform(0, 2 * np.pi, len(amps))
    tone = np.einsum("k,kcn->cn", amps[keep], np.sin(k[keep, None, None] * phase[None] + offsets[keep, None, None]))
    centre = rng.uniform(0.0, 1.0, (n_clips, 1)) * t[-1]
    width = rng.uniform(0.3, 1.5, (n_clips, 1)) * max(t[-1], 1e-3)
    envelope = 0.35 + 0.65 * np.exp(-(((t - centre) / width) ** 2))
    return tone * envelope


def _background(n_clips: int, n: int, sr: int, rng) -> np.ndarray:
    """Pink-to-brown noise (exponent per recording) plus 50/60 Hz mains hum and harmonics."""
    alpha = rng.uniform(1.0, 2.0)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    shape = 1.0 / np.maximum(freqs, 20.0) ** (alpha / 2)
    spectrum = np.fft.rfft(rng.standard_normal((n_clips, n)), axis=1) * shape
    noise = np.fft.irfft(spectrum, n=n, axis=1)
    noise /= noise.std(axis=1, keepdims=True) + 1e-12
    mains = rng.choice([50.0, 60.0])
    t = np.arange(n) / sr
    hum_amps = rng.uniform(0.2, 1.0) * 0.5 ** np.arange(4)
    hum = sum(a * np.sin(2 * np.pi * mains * (h + 1) * t + rng.uniform(0, 2 * np.pi)) for h, a in enumerate(hum_amps))
    background = noise + hum[None, :]
    return background / (background.std(axis=1, keepdims=True) + 1e-12)


def synthesize_recording(
    sp: Species, n_clips: int, clip_seconds: float, sample_rate: int, snr_db: float, rng
) -> tuple[float, np.ndarray]:
    """Clips (n_clips, samples) of one simulated insect; returns (its f0, clips in [-1, 1])."""
    n = round(clip_seconds * sample_rate)
    f0 = float(np.clip(rng.normal(sp.f0_mean, sp.f0_sd), *sp.f0_range))
    tone = _flight_tone(sp, f0, n_clips, n, sample_rate, rng)
    background = _background(n_clips, n, sample_rate, rng)
    tone_rms = tone.std(axis=1, keepdims=True) + 1e-12
    mix = tone / tone_rms * 10 ** (snr_db / 20) + background
    gain = rng.uniform(0.3, 0.9)  # distance to the microphone
    mix *= gain / (np.abs(mix).max(axis=1, keepdims=True) + 1e-12)
    return f0, mix.astype(np.float32)


def _check(species: list[str], recordings: int, clips: int, clip_seconds: float, sample_rate: int) -> None:
    unknown = [s for s in species if s not in CATALOGUE]
    if unknown:
        raise ConfigError(f"unknown species {', '.join(unknown)}: choose from {', '.join(CATALOGUE)}")
    if recordings < 1 or clips < 1:
        raise ConfigError("--recordings and --clips must be at least 1")
    if clip_seconds <= 0 or sample_rate < 2000:
        raise ConfigError("--clip-seconds must be > 0 and the sample rate at least 2000 Hz")


def synthesize(
    out_dir: str | Path,
    species: list[str] | tuple[str, ...] | None = None,
    recordings_per_species: int = 6,
    clips_per_recording: int = 8,
    clip_seconds: float = 1.0,
    sample_rate: int = 16000,
    snr_db: float = 10.0,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/<species>/<recording>_<clip>.wav`` and ``out_dir/manifest.csv``.

    Deterministic: the same arguments give byte-identical files.
    """
    species = list(species or DEFAULT_SPECIES)
    _check(species, recordings_per_species, clips_per_recording, clip_seconds, sample_rate)
    out_dir = Path(out_dir)
    rows = []
    for name in species:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        for rec in range(recordings_per_species):
            rng = _rng(seed, name, rec)
            _, clips = synthesize_recording(
                CATALOGUE[name], clips_per_recording, clip_seconds, sample_rate, snr_db, rng
            )
            for c, clip in enumerate(clips):
                rel = f"{name}/rec{rec:02d}_{c:02d}.wav"
                sf.write(out_dir / rel, clip, sample_rate, subtype="PCM_16")
                rows.append({"path": rel, "label": name, "group": f"{name}/rec{rec:02d}"})
    write_text_atomic(out_dir / "manifest.csv", pd.DataFrame(rows).to_csv(index=False))
    log.info("wrote %d clips of %d species to %s", len(rows), len(species), out_dir)
    return out_dir
