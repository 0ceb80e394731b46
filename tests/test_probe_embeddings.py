"""Embedding cache: shapes of every layer and pooling, reuse by counter, entries verified before
DONE and rebuilt when a hit fails its check, hand-crafted features and f0 recovery."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging

import numpy as np
import pytest
import torch

from mosquito_ssl import runs
from mosquito_ssl.data.features import build_features
from mosquito_ssl.data.manifest import read_dataset
from mosquito_ssl.data.synthetic import synthesize
from mosquito_ssl.errors import ConfigError, DataError
from mosquito_ssl.model.encoder import encoder_fingerprint, load_encoder
from mosquito_ssl.model.presets import patch_grid
from mosquito_ssl.probe import embeddings
from mosquito_ssl.probe.baselines import N_HARMONICS, estimate_f0, handcrafted_features, wingbeat_features
from mosquito_ssl.probe.config import POOLINGS


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(
        tmp_path_factory.mktemp("synth"),
        species=["aedes_aegypti", "culex_pipiens"],
        recordings_per_species=2,
        clips_per_recording=3,
    )


@pytest.fixture()
def encoded(synth):
    model, settings = load_encoder("random:tiny")
    cache = build_features(read_dataset(synth), settings)
    return model.eval(), cache


def test_every_layer_and_pooling(encoded):
    model, cache = encoded
    emb = embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=4)
    n, layers, hidden = len(cache), model.config.num_hidden_layers + 1, model.config.hidden_size
    for pooling in POOLINGS:
        arr = emb.load(pooling)
        assert isinstance(arr, np.memmap)
        assert arr.shape == (n, layers, embeddings.pooling_width(pooling, hidden, patch_grid(model.config)))
    with torch.inference_mode():
        out = model(torch.from_numpy(np.array(cache.features[:2])))
    # The last layer's cls_dist is exactly the HF ASTModel pooler output.
    np.testing.assert_allclose(emb.load("cls_dist")[:2, -1], out.pooler_output.numpy(), atol=1e-5)
    np.testing.assert_allclose(emb.load("cls+mean")[:, :, :hidden], emb.load("cls"))
    # freq_stack: patch tokens of each frequency row averaged over time, rows side by side.
    f_dim, t_dim = patch_grid(model.config)
    patches = out.last_hidden_state[:, 2:].numpy().reshape(2, f_dim, t_dim, hidden)
    np.testing.assert_allclose(emb.load("freq_stack")[:2, -1], patches.mean(axis=2).reshape(2, -1), atol=1e-5)
    top = emb.load("freq_mean_max")[:2, -1, f_dim * hidden :]
    np.testing.assert_allclose(top, patches.max(axis=2).reshape(2, -1), atol=1e-5)
    assert (emb.folder / "DONE").exists()


def test_second_request_runs_no_forward(encoded):
    model, cache = encoded
    embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=4)
    before = embeddings.EMBED_FORWARDS
    embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=4)
    assert before == embeddings.EMBED_FORWARDS


def test_unfinished_entry_is_redone_from_clean(encoded):
    model, cache = encoded
    folder = embeddings.compute_embeddings(model, cache, encoder_fingerprint(model)).folder
    assert folder.parent == runs.cache_folder("embeddings")  # <cache root>/embeddings/<key>
    (folder / "DONE").unlink()  # as if killed before the marker
    (folder / ".mean.npy.tmp").write_bytes(b"half")
    before = embeddings.EMBED_FORWARDS
    again = embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), progress=False)
    assert again.folder == folder and (folder / "DONE").exists() and not (folder / ".mean.npy.tmp").exists()
    assert before < embeddings.EMBED_FORWARDS  # recomputed, not read back


def _tmp_files(folder):
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _poison(path, how: str) -> None:
    """Write into a finished array the way a broken build or a bad disk would."""
    if how == "empty":  # a file cut to nothing (a full disk)
        path.write_bytes(b"")
        return
    array = np.load(path, mmap_mode="r+")
    if how == "zeros":
        array[:] = 0
    elif how == "nan_row":
        array[-1, 0, 0] = np.nan
    else:  # "short": one row fewer than there are clips
        np.save(path, np.array(array[:-1]))
        return
    array.flush()


@pytest.mark.parametrize("how", ["zeros", "nan_row", "short", "empty"])
def test_a_poisoned_entry_is_rebuilt_with_a_warning(encoded, caplog, how):
    model, cache = encoded
    emb = embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=4)
    clean = np.array(emb.load("freq_stack"))
    _poison(emb.folder / "freq_stack.npy", how)
    before = embeddings.EMBED_FORWARDS
    with caplog.at_level(logging.WARNING):
        again = embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failed its check" in warnings[0] and str(emb.folder) in warnings[0], warnings
    assert before < embeddings.EMBED_FORWARDS  # recomputed, not read back
    np.testing.assert_allclose(again.load("freq_stack"), clean, atol=1e-6)
    assert (again.folder / "DONE").exists()


def test_a_tampered_info_file_is_rebuilt(encoded, caplog):
    model, cache = encoded
    emb = embeddings.compute_embeddings(model, cache, encoder_fingerprint(model))
    info = json.loads((emb.folder / "info.json").read_text())
    info["shape"][2] = 32
    (emb.folder / "info.json").write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING):
        embeddings.compute_embeddings(model, cache, encoder_fingerprint(model))
    assert "[12, 4, 32], the encoder and clips give [12, 4, 64]" in caplog.text
    assert json.loads((emb.folder / "info.json").read_text())["shape"] == [12, 4, 64]


def test_a_build_that_raises_midway_leaves_no_tmp_and_no_done(encoded, monkeypatch):
    model, cache = encoded
    calls = []
    forward = model.forward

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=4, progress=False)
    folder = next(p for p in runs.cache_folder("embeddings").iterdir() if p.is_dir())
    assert _tmp_files(folder) == [] and not (folder / "DONE").exists()
    monkeypatch.setattr(model, "forward", forward)
    assert (embeddings.compute_embeddings(model, cache, encoder_fingerprint(model)).folder / "DONE").exists()


def test_an_encoder_giving_nan_is_never_cached(encoded):
    model, cache = encoded
    with torch.no_grad():
        model.embeddings.patch_embeddings.projection.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match=r"failed its check \(cls\.npy: 12 rows hold NaN or inf\)"):
        embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), progress=False)
    folder = next(p for p in runs.cache_folder("embeddings").iterdir() if p.is_dir())
    assert not (folder / "DONE").exists() and _tmp_files(folder) == []


def test_batch_size_below_one_is_refused_before_any_entry(encoded):
    model, cache = encoded
    with pytest.raises(ConfigError, match="--batch-size -5"):
        embeddings.compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=-5)
    assert not runs.cache_folder("embeddings").exists()


def test_the_key_holds_the_architecture_and_the_clips(encoded):
    model, cache = encoded
    key = embeddings.embedding_key("f", cache, model.config)
    strided = copy.deepcopy(model.config)
    strided.time_stride = 16  # same weights, another patch grid: other numbers
    assert embeddings.embedding_key("f", cache, strided) != key
    fewer = dataclasses.replace(cache, items=cache.items[:-1])
    assert embeddings.embedding_key("f", fewer, model.config) != key
    assert set(POOLINGS) <= set(key["poolings"])


def test_f0_recovered_from_a_harmonic_tone():
    sr = 16000
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    for f0 in (310.0, 452.5, 640.0):
        wave = sum(a * np.sin(2 * np.pi * h * f0 * t) for h, a in zip(range(1, 5), (1.0, 1.2, 0.5, 0.3), strict=True))
        wave = wave + 0.2 * rng.normal(size=sr)
        assert estimate_f0(wave, sr) == pytest.approx(f0, abs=1.0)
        feats = wingbeat_features(wave, sr)
        assert feats[2] > feats[1] > feats[3] > feats[4]  # relative harmonic amplitudes, in order
        assert feats[1:].sum() == pytest.approx(1.0, abs=1e-5)


def test_handcrafted_shape_and_cache(synth, monkeypatch):
    from mosquito_ssl.data import audio

    _, settings = load_encoder("random:tiny")
    cache = build_features(read_dataset(synth), settings)
    feats = handcrafted_features(cache).load("handcrafted")
    assert feats.shape == (len(cache), 1, 2 * settings.num_mel_bins + 1 + N_HARMONICS)
    assert np.isfinite(feats).all()
    f0 = feats[:, 0, 2 * settings.num_mel_bins]
    assert ((f0 > 250) & (f0 < 700)).all()  # synthetic species fly at 300-600 Hz
    decodes = audio.DECODES
    again = handcrafted_features(cache)
    assert decodes == audio.DECODES  # cached: no waveform decoded again
    assert again.folder.parent.name == "handcrafted"  # its own sub-folder of the cache root
    handcrafted_features(cache, force=True, progress=False)
    assert decodes < audio.DECODES  # --force recomputes


def test_handcrafted_entry_poisoned_or_failing_midway(synth, monkeypatch, caplog):
    from mosquito_ssl.probe import baselines

    _, settings = load_encoder("random:tiny")
    cache = build_features(read_dataset(synth), settings)
    clean = np.array(handcrafted_features(cache).load("handcrafted"))
    folder = handcrafted_features(cache).folder
    _poison(folder / "handcrafted.npy", "zeros")
    with caplog.at_level(logging.WARNING):
        again = handcrafted_features(cache, progress=False)
    assert "hand-crafted features cache" in caplog.text and "all zero" in caplog.text
    np.testing.assert_array_equal(again.load("handcrafted"), clean)

    def broken(wave, sample_rate):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(baselines, "wingbeat_features", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        handcrafted_features(cache, force=True, progress=False)
    assert _tmp_files(folder) == [] and not (folder / "DONE").exists()
