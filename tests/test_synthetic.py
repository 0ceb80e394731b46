"""The synthetic species generator: layout, determinism, species-typical fundamentals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mosquito_ssl.data import synthetic
from mosquito_ssl.errors import ConfigError


def small(out, seed=0, **kw):
    return synthetic.synthesize(out, recordings_per_species=2, clips_per_recording=2, seed=seed, **kw)


def test_layout_and_manifest(tmp_path):
    out = small(tmp_path / "s")
    table = pd.read_csv(out / "manifest.csv")
    assert list(table.columns) == ["path", "label", "group"]
    assert len(table) == 4 * 2 * 2
    assert sorted(table.label.unique()) == sorted(synthetic.DEFAULT_SPECIES)
    assert table.groupby("group").label.nunique().max() == 1
    assert table.group.nunique() == 8
    for rel in table.path:
        info = sf.info(out / rel)
        assert info.samplerate == 16000 and info.frames == 16000 and info.subtype == "PCM_16"


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = small(tmp_path / "a"), small(tmp_path / "b"), small(tmp_path / "c", seed=1)
    rels = pd.read_csv(a / "manifest.csv").path
    assert all((a / r).read_bytes() == (b / r).read_bytes() for r in rels)
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    assert any((a / r).read_bytes() != (c / r).read_bytes() for r in rels)


@pytest.mark.parametrize("name", synthetic.DEFAULT_SPECIES)
def test_fundamental_in_species_range(tmp_path, name):
    out = synthetic.synthesize(tmp_path, species=[name], recordings_per_species=3, clips_per_recording=1, seed=3)
    lo, hi = synthetic.CATALOGUE[name].f0_range
    for rel in pd.read_csv(out / "manifest.csv").path:
        x, sr = sf.read(out / rel)
        peak = _peak(x, sr)
        # 1% per-clip drift and up to 2% FM around the recording's f0
        assert lo * 0.96 <= peak <= hi * 1.04, (rel, peak)


# Wingbeat fundamentals, fastest first (the literature ranges in synthetic.py's docstring).
FASTEST_FIRST = [
    "aedes_aegypti",
    "anopheles_gambiae",
    "anopheles_arabiensis",
    "culex_quinquefasciatus",
    "culex_pipiens",
]


def _peak(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    band = (freqs > 250) & (freqs < 1000)  # above mains hum harmonics
    return float(freqs[band][spec[band].argmax()])


def test_species_means_are_ordered():
    assert sorted(synthetic.CATALOGUE) == sorted(FASTEST_FIRST)
    means = [synthetic.CATALOGUE[s].f0_mean for s in FASTEST_FIRST]
    assert means == sorted(means, reverse=True) and len(set(means)) == len(means)
    # ...and the generated audio keeps that order: mean spectral peak per species over recordings.
    generated = []
    for name in FASTEST_FIRST:
        peaks = []
        for rec in range(12):
            _, clips = synthetic.synthesize_recording(
                synthetic.CATALOGUE[name], 1, 1.0, 16000, 10.0, synthetic._rng(0, name, rec)
            )
            peaks.append(_peak(clips[0], 16000))
        generated.append(np.mean(peaks))
    assert generated == sorted(generated, reverse=True), dict(zip(FASTEST_FIRST, generated, strict=True))


def test_unknown_species_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown species"):
        synthetic.synthesize(tmp_path, species=["aedes_nonexistus"])
