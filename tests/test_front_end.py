"""The front end: rate-matched log-mel frames, dataset normalisation, settings through final/ into probes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mosquito_ssl.data.feature_settings import AUDIOSET_MEAN, AUDIOSET_STD, FeatureSettings
from mosquito_ssl.errors import ConfigError


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _features(settings: FeatureSettings, wave: np.ndarray) -> np.ndarray:
    return settings.extractor()([wave], sampling_rate=settings.sample_rate, return_tensors="np")["input_values"][0]


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050])
def test_every_rate_gives_ast_frames_of_10_ms(rate):
    settings = FeatureSettings(sample_rate=rate)
    feats = _features(settings, _tone(600.0, rate))
    assert feats.shape == (settings.max_length, 128)
    padding = (0.0 - settings.mean) / (2 * settings.std)  # a zero-padded frame, normalised
    real = ~np.all(np.isclose(feats, padding), axis=1)
    assert real.sum() == 98  # (1 s - 25 ms) / 10 ms + 1, as Kaldi's fbank at any rate


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_tone_peaks_in_the_mel_band_at_its_frequency(rate):
    settings = FeatureSettings(sample_rate=rate)
    extractor = settings.extractor()
    freqs = np.linspace(0, rate / 2, extractor.mel_filters.shape[0])
    centres = freqs[np.argmax(extractor.mel_filters, axis=0)]  # each band's peak frequency
    band = int(np.argmax(_features(settings, _tone(1500.0, rate))[:90].mean(axis=0)))
    assert abs(centres[band] - 1500.0) < 40.0


def test_16_khz_is_ast_own_extractor_bit_for_bit():
    from transformers import ASTFeatureExtractor

    settings = FeatureSettings()
    assert type(settings.extractor()) is ASTFeatureExtractor
    stock = ASTFeatureExtractor(max_length=100)
    wave = _tone(500.0, 16000)
    np.testing.assert_array_equal(
        _features(settings, wave), stock([wave], sampling_rate=16000, return_tensors="np")["input_values"][0]
    )


def test_settings_round_trip_through_preprocessor_config(tmp_path):
    settings = FeatureSettings(sample_rate=8000, num_mel_bins=64, mean=-9.5, std=3.25, normalize="dataset")
    settings.extractor().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["normalization"] == "dataset"
    assert FeatureSettings.from_pretrained(tmp_path) == settings


@pytest.mark.parametrize(
    "kwargs, flag", [({"normalize": "minmax"}, "--normalize"), ({"sample_rate": 1000}, "--sample-rate")]
)
def test_bad_front_end_names_the_flag(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        FeatureSettings(**kwargs)


@pytest.fixture()
def clips(tmp_path):
    """Six hand-made clips of two classes (3 recordings each) at 8 kHz: tones and noise."""
    rng = np.random.default_rng(0)
    for k in range(6):
        label = "a" if k < 3 else "b"
        wave = _tone(400.0 + 100 * k, 8000, 0.5 + 0.1 * k) + 0.05 * rng.standard_normal(round((0.5 + 0.1 * k) * 8000))
        (tmp_path / label).mkdir(exist_ok=True)
        sf.write(tmp_path / label / f"rec{k}.wav", wave.astype(np.float32), 8000)
    return tmp_path


def test_dataset_statistics_match_numpy(clips):
    from transformers import ASTFeatureExtractor

    from mosquito_ssl.data.features import build_features
    from mosquito_ssl.data.manifest import read_dataset
    from mosquito_ssl.data.normalize import dataset_normalized, feature_stats

    settings = FeatureSettings(sample_rate=16000)
    dataset = read_dataset(clips)
    cache = build_features(dataset, settings)
    rows = np.array([0, 2, 5])
    # reference: the extractor's un-normalised output (padding included), numpy's mean and std
    raw_extractor = ASTFeatureExtractor(max_length=100, do_normalize=False)
    from mosquito_ssl.data.audio import fix_length, load_audio

    waves = [fix_length(load_audio(cache.items[i].path, 16000), 16000) for i in rows]
    raw = raw_extractor(waves, sampling_rate=16000, return_tensors="np")["input_values"].astype(np.float64)
    mean, std = feature_stats(cache, rows)
    assert mean == pytest.approx(raw.mean(), rel=1e-5)
    assert std == pytest.approx(raw.std(), rel=1e-5)

    normalized = dataset_normalized(dataset, cache, rows)
    assert (normalized.settings.mean, normalized.settings.std, normalized.settings.normalize) == pytest.approx(
        (mean, std, "dataset")
    )
    expected = (np.asarray(cache.features) * 2 * AUDIOSET_STD + AUDIOSET_MEAN - mean) / (2 * std)
    np.testing.assert_allclose(normalized.features, expected, rtol=1e-4, atol=1e-5)
    # the entry is the one build_features gives those settings: a hit, nothing decoded again
    again = build_features(dataset, normalized.settings)
    assert again.path == normalized.path


def test_load_features_measures_only_unmeasured_dataset_settings(clips):
    from mosquito_ssl.data import audio
    from mosquito_ssl.data.features import build_features, load_features
    from mosquito_ssl.data.manifest import read_dataset
    from mosquito_ssl.data.normalize import dataset_normalized

    dataset = read_dataset(clips)
    wanted = FeatureSettings(normalize="dataset")
    assert wanted.needs_stats and not wanted.raw().needs_stats
    raw = build_features(dataset, wanted.raw())
    rows = np.array([0, 3, 4])
    expected = dataset_normalized(dataset, raw, rows)
    before = audio.DECODES
    given = load_features(dataset, wanted, stats_indices=rows)
    called = load_features(dataset, wanted, stats_indices=lambda cache: rows if cache.path == raw.path else None)
    assert audio.DECODES - before == 0  # the raw entry is a hit: no clip decoded twice
    for cache in (given, called):
        assert (cache.path, cache.settings) == (expected.path, expected.settings)
        np.testing.assert_array_equal(cache.features, expected.features)
    every = load_features(dataset, wanted)  # no indices: the statistics of every clip
    assert every.settings == dataset_normalized(dataset, raw).settings != expected.settings
    # measured settings (a checkpoint's) and AudioSet's are built as they are, never re-measured
    assert not expected.settings.needs_stats
    assert load_features(dataset, expected.settings).path == expected.path
    assert load_features(dataset, FeatureSettings()).path == build_features(dataset, FeatureSettings()).path


def test_front_end_travels_from_pretraining_into_the_probe(clips, tmp_path):
    from mosquito_ssl.data.normalize import feature_stats
    from mosquito_ssl.model.encoder import load_encoder
    from mosquito_ssl.pretrain.train import PretrainConfig, load_pretrain_data, pretrain
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.run import run_probe

    cfg = PretrainConfig(
        data=clips, out=tmp_path / "runs", preset="tiny", method="mae", epochs=1, batch_size=2, grad_accum=1,
        workers=0, sample_rate=8000, num_mel_bins=64, normalize="dataset", val_fraction=0.34,
    )  # fmt: skip
    run_dir = pretrain(cfg)
    cache, train_idx, _ = load_pretrain_data(cfg)
    raw_mean, raw_std = feature_stats(cache, train_idx)  # of the normalised cache: undo its own numbers
    encoder, settings = load_encoder(run_dir)
    assert (settings.sample_rate, settings.num_mel_bins, settings.normalize) == (8000, 64, "dataset")
    assert (settings.mean, settings.std) == pytest.approx((raw_mean, raw_std), rel=1e-4)
    assert encoder.config.num_mel_bins == 64

    probe = ProbeConfig(data=clips, encoder=str(run_dir), out=tmp_path / "probes", fractions=(0.34, 0.33, 0.33))
    result = run_probe(probe)
    assert result.metrics["features"] == json.loads(json.dumps(settings.__dict__))


def test_front_end_flags_are_for_random_and_baseline_encoders_only(tmp_path):
    from mosquito_ssl.probe.config import ProbeConfig

    ok = ProbeConfig(data=tmp_path, encoder="random:tiny", sample_rate=8000, normalize="dataset")
    assert ok.front_end() == FeatureSettings(sample_rate=8000, normalize="dataset")
    with pytest.raises(ConfigError, match="--sample-rate"):
        ProbeConfig(data=tmp_path, encoder=str(tmp_path / "run"), sample_rate=8000)


def test_logmel_baseline_is_band_mean_and_std_per_clip(clips):
    from mosquito_ssl.data.features import build_features
    from mosquito_ssl.data.manifest import read_dataset
    from mosquito_ssl.probe.run import encoder_embeddings

    cache = build_features(read_dataset(clips), FeatureSettings(sample_rate=8000))
    E, _ = encoder_embeddings("logmel", None, cache, "freq_stack")
    feats = np.asarray(cache.features, dtype=np.float64)
    expected = np.concatenate([feats.mean(axis=1), feats.std(axis=1)], axis=1)
    assert E.shape == (6, 1, 256)
    np.testing.assert_allclose(E[:, 0, :], expected, rtol=1e-5, atol=1e-6)
