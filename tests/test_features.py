"""Feature settings, the memmap cache (reuse, read-only, keys, verified entries), skips, upsampling
warnings and the data CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mosquito_ssl import runs
from mosquito_ssl.data import audio
from mosquito_ssl.data.cli import app
from mosquito_ssl.data.features import FeatureDataset, FeatureSettings, build_features, load_features
from mosquito_ssl.data.manifest import read_dataset
from mosquito_ssl.data.synthetic import synthesize
from mosquito_ssl.errors import DataError
from test_audio import make_bad_files


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth"), recordings_per_species=2, clips_per_recording=2)


def test_settings_frames_and_extractor(tmp_path):
    s = FeatureSettings()
    assert s.max_length == 100 and FeatureSettings(clip_seconds=0.05).max_length == 16
    fe = s.extractor()
    assert fe.max_length == 100 and fe.num_mel_bins == 128 and fe.do_normalize
    fe.save_pretrained(tmp_path)
    back = FeatureSettings.from_pretrained(tmp_path)
    assert back == s
    assert FeatureSettings(clip_seconds=2.0).to_dict()["max_length"] == 200


def test_shape_and_cache_reuse(synth_dir):
    ds = read_dataset(synth_dir)
    before = audio.DECODES
    cache = build_features(ds, FeatureSettings(), progress=False)
    assert audio.DECODES - before == len(ds.items) == 16
    assert cache.features.shape == (16, 100, 128) and cache.features.dtype == np.float32
    assert cache.labels == ds.labels and len(cache) == 16
    assert (cache.path / "DONE").exists()
    assert cache.path.parent == runs.cache_folder("features")  # $MOSQUITO_SSL_CACHE/features/<key>
    first = np.array(cache.features)
    again = build_features(ds, FeatureSettings(), progress=False)
    assert audio.DECODES - before == 16  # the second call decoded nothing
    assert again.path == cache.path and np.array_equal(np.asarray(again.features), first)
    assert isinstance(again.features, np.memmap) and not again.features.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        again.features[0, 0, 0] = 1.0


def test_no_progress_bar_when_stderr_is_no_terminal(synth_dir, tmp_path, capfd):
    build_features(read_dataset(synth_dir), FeatureSettings(), cache_dir=tmp_path, progress=True)
    err = capfd.readouterr().err
    assert "clip/s" not in err and "\r" not in err, err  # a log file gets no bar and no line per update


def test_cache_dir_is_a_cache_root(synth_dir, tmp_path):
    cache = build_features(read_dataset(synth_dir), FeatureSettings(), cache_dir=tmp_path, progress=False)
    assert cache.path.parent == tmp_path / "features"  # the layout pretraining and probes share


def test_changed_setting_makes_new_key(synth_dir, tmp_path):
    ds = read_dataset(synth_dir)
    a = build_features(ds, FeatureSettings(), cache_dir=tmp_path, progress=False)
    b = build_features(ds, FeatureSettings(num_mel_bins=64), cache_dir=tmp_path, progress=False)
    c = build_features(ds, FeatureSettings(clip_seconds=0.5), cache_dir=tmp_path, progress=False)
    assert len({a.path, b.path, c.path}) == 3
    assert b.features.shape == (16, 100, 64) and c.features.shape == (16, 50, 128)


def test_bad_files_are_skipped_and_reported(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    expected = make_bad_files(data)
    ds = read_dataset(data)
    cache = build_features(ds, progress=False)
    summary = cache.summary()
    assert summary["used"] == 1 and cache.features.shape[0] == 1
    assert summary["skipped"] == {r: 1 for r in expected.values()}
    assert {(f["path"].split("/")[-1], f["reason"]) for f in summary["skipped_files"]} == set(expected.items())
    again = build_features(ds, progress=False)
    assert again.summary()["skipped"] == summary["skipped"]


def test_nothing_usable_is_a_data_error(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "x.wav").write_text("not audio")
    with pytest.raises(DataError, match=f"{data}.*not_audio"):
        build_features(read_dataset(data), progress=False)


def test_feature_dataset_copies_out(synth_dir):
    cache = build_features(read_dataset(synth_dir), progress=False)
    fd = FeatureDataset(cache, [3, 1], label_ids=list(range(16)))
    item = fd[0]
    assert len(fd) == 2 and item["input_values"].shape == (100, 128)
    assert item["input_values"].dtype == torch.float32 and int(item["labels"]) == 3
    item["input_values"] += 1  # writable copy, memmap untouched
    assert np.allclose(np.asarray(cache.features[3]), item["input_values"].numpy() - 1, atol=1e-5)


def test_cli_synth_and_inspect(tmp_path):
    runner = CliRunner()
    out = tmp_path / "s"
    res = runner.invoke(
        app,
        [
            "synth",
            str(out),
            "--species",
            "aedes_aegypti",
            "--species",
            "culex_pipiens",
            "--recordings",
            "2",
            "--clips",
            "2",
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and "8 clips" in res.output
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{") :])
    assert report["layout"] == "csv" and report["clips"] == 8 and report["groups"] == 4
    assert report["classes"] == {"aedes_aegypti": 4, "culex_pipiens": 4}
    res = runner.invoke(app, ["inspect", str(out)])
    assert "aedes_aegypti (4 clips, 2 groups)" in res.output


def test_cli_inspect_error_is_a_user_error(tmp_path):
    from mosquito_ssl.errors import MosquitoSSLError

    res = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert res.exit_code != 0 and isinstance(res.exception, MosquitoSSLError)


def test_rows_stay_aligned_when_clips_are_skipped(synth_dir, tmp_path):
    import shutil

    data = tmp_path / "mixed"
    shutil.copytree(synth_dir / "aedes_aegypti", data)
    make_bad_files(data)  # bad files sort between and after the good ones
    mixed = build_features(read_dataset(data), batch_size=2, progress=False)
    clean = build_features(read_dataset(synth_dir / "aedes_aegypti"), progress=False)
    kept = {i.path.split("/")[-1]: row for row, i in enumerate(mixed.items)}
    for row, item in enumerate(clean.items):
        name = item.path.split("/")[-1]
        assert np.allclose(mixed.features[kept[name]], clean.features[row])


def test_windowed_clips_read_their_own_offset(tmp_path):
    import soundfile as sf

    sr = 8000
    t = np.arange(sr) / sr
    x = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in (300, 900, 2000)]).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, sr)
    ds = read_dataset(tmp_path, window=1.0)
    cache = build_features(ds, progress=False)
    assert [i.offset for i in cache.items] == [0.0, 1.0, 2.0] and set(cache.groups) == {"long.wav"}
    peaks = [int(np.asarray(cache.features[k])[10:80].mean(axis=0).argmax()) for k in range(3)]
    assert peaks[0] < peaks[1] < peaks[2]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _tmp_files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_a_poisoned_feature_entry_is_rebuilt_with_a_warning(synth_dir, tmp_path, caplog):
    ds = read_dataset(synth_dir)
    cache = build_features(ds, cache_dir=tmp_path, progress=False)
    clean = np.array(cache.features)
    poisoned = np.load(cache.path / "features.npy", mmap_mode="r+")
    poisoned[3] = 0  # one row as a build that never wrote it leaves it
    poisoned.flush()
    del poisoned
    before = audio.DECODES
    with caplog.at_level(logging.WARNING):
        again = build_features(ds, cache_dir=tmp_path, progress=False)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "1 rows are all zero" in warnings[0] and str(cache.path) in warnings[0]
    assert audio.DECODES - before == 16  # decoded again, not read back
    np.testing.assert_array_equal(np.asarray(again.features), clean)


def test_a_feature_build_that_raises_midway_leaves_no_tmp(synth_dir, tmp_path, monkeypatch):
    read_clip, calls = audio.read_clip, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise MemoryError("killed")
        return read_clip(*args, **kwargs)

    monkeypatch.setattr(audio, "read_clip", failing)
    with pytest.raises(MemoryError):
        build_features(read_dataset(synth_dir), cache_dir=tmp_path, batch_size=2, progress=False)
    entries = [e for e in (tmp_path / "features").iterdir() if e.is_dir()]
    assert len(entries) == 1, [(e, list(e.iterdir())) for e in entries]
    entry = entries[0]
    assert _tmp_files(entry) == [] and not (entry / "DONE").exists()
    monkeypatch.setattr(audio, "read_clip", read_clip)
    assert len(build_features(read_dataset(synth_dir), cache_dir=tmp_path, progress=False)) == 16


def test_a_poisoned_dataset_normalised_entry_is_rebuilt(synth_dir, tmp_path, caplog):
    ds = read_dataset(synth_dir)
    settings = FeatureSettings(normalize="dataset")
    cache = load_features(ds, settings, cache_dir=tmp_path)
    assert cache.settings.normalize == "dataset" and not cache.settings.needs_stats
    clean = np.array(cache.features)
    poisoned = np.load(cache.path / "features.npy", mmap_mode="r+")
    poisoned[0, 0, 0] = np.inf
    poisoned.flush()
    del poisoned
    with caplog.at_level(logging.WARNING):
        again = load_features(ds, settings, cache_dir=tmp_path)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "dataset-normalised" in warnings[0] and "NaN or inf" in warnings[0], warnings
    np.testing.assert_array_equal(np.asarray(again.features), clean)


def test_upsampling_is_one_warning_per_run(tmp_path, caplog):
    from test_manifest import wav

    for i in range(3):
        wav(tmp_path / "d" / f"{i}.wav", sr=8000)
    ds = read_dataset(tmp_path / "d")
    for _ in range(2):  # built, then a cache hit: each run says it once
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            build_features(ds, FeatureSettings(sample_rate=32000), cache_dir=tmp_path, progress=False)
        warnings = _warnings(caplog)
        assert len(warnings) == 1 and "3 file(s)" in warnings[0] and "3 at 8000 Hz" in warnings[0], warnings
        assert "32000 Hz" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_features(ds, FeatureSettings(sample_rate=8000), cache_dir=tmp_path, progress=False)
        build_features(ds, FeatureSettings(), cache_dir=tmp_path, progress=False)  # AST's 16 kHz: by design
    assert _warnings(caplog) == []
