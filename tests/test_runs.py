"""Run directories and caches: the one skip-if-done / --force / DONE rule, and the one cache root
that pretraining and probes share."""

from __future__ import annotations

from pathlib import Path

import pytest

from mosquito_ssl import runs
from mosquito_ssl.data import audio
from mosquito_ssl.data.synthetic import synthesize


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth"), recordings_per_species=3, clips_per_recording=2)


def _finished(folder: Path) -> Path:
    with runs.building(folder):
        runs.write_text_atomic(folder / "out.txt", "first\n")
    return folder


def test_done_folder_is_skipped_unless_forced(tmp_path):
    folder = tmp_path / "entry"
    assert not runs.should_skip(folder)  # nothing there yet: do the work
    _finished(folder)
    assert runs.should_skip(folder)
    assert not runs.should_skip(folder, force=True)
    runs.clear_done(folder)
    assert not runs.should_skip(folder)  # unfinished: redo


def test_force_redo_replaces_old_output(tmp_path):
    folder = _finished(tmp_path / "entry")
    with runs.building(folder):
        assert not (folder / "out.txt").exists()  # the old output is gone before the new is written
        assert not runs.is_done(folder)
        runs.write_text_atomic(folder / "new.txt", "second\n")
    assert runs.is_done(folder) and sorted(p.name for p in folder.iterdir()) == ["DONE", "new.txt"]


def test_stale_partial_folder_is_cleaned(tmp_path):
    folder = tmp_path / "entry"
    folder.mkdir()
    (folder / ".half.npy.tmp").write_bytes(b"killed mid-write")
    (folder / runs.DONE).write_text("stale\n")  # a DONE that must not survive a redo
    runs.begin(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_begin_without_clean_keeps_files_but_not_done(tmp_path):
    folder = _finished(tmp_path / "entry")
    runs.begin(folder, clean=False)  # a pretraining's checkpoints stay for --resume
    assert (folder / "out.txt").exists() and not runs.is_done(folder)


def test_done_is_written_last_and_never_after_a_failure(tmp_path):
    folder = tmp_path / "entry"
    with runs.building(folder):
        runs.write_text_atomic(folder / "a.txt", "a\n")
        assert not runs.is_done(folder)
    assert runs.is_done(folder)
    done_at = (folder / runs.DONE).stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= done_at for p in folder.iterdir())
    with pytest.raises(RuntimeError), runs.building(folder):
        raise RuntimeError("killed")
    assert not runs.is_done(folder)


def test_prepare_run_dir_skips_done_runs(tmp_path):
    folder = _finished(tmp_path / "run")
    assert runs.prepare_run_dir(folder, {"a": 1}) is False
    assert runs.prepare_run_dir(folder, {"a": 2}, force=True, clean=True) is True
    assert runs.read_json(folder / runs.CONFIG) == {"a": 2} and not (folder / "out.txt").exists()


def test_cache_root_and_fixed_sub_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSQUITO_SSL_CACHE", str(tmp_path / "env"))
    assert runs.cache_root() == tmp_path / "env"
    assert runs.cache_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("MOSQUITO_SSL_CACHE")
    assert runs.cache_root() == Path.home() / ".cache" / "mosquito-ssl"
    for kind in runs.CACHE_KINDS:
        assert runs.cache_folder(kind, tmp_path) == tmp_path / kind
    with pytest.raises(ValueError, match="unknown cache kind"):
        runs.cache_folder("feature", tmp_path)


def test_pretraining_and_probe_share_the_feature_cache(synth, tmp_path):
    from mosquito_ssl.pretrain.train import PretrainConfig, load_pretrain_data
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.inputs import load_inputs

    cache_dir = tmp_path / "cache"
    before = audio.DECODES
    pretrain_cache, _, _ = load_pretrain_data(PretrainConfig(data=synth, preset="tiny", cache_dir=cache_dir))
    decoded = audio.DECODES - before
    assert decoded == len(pretrain_cache) > 0
    probe_cache = load_inputs(ProbeConfig(data=synth, encoder="random:tiny", cache_dir=cache_dir)).cache
    assert audio.DECODES - before == decoded  # the probe decoded nothing
    assert probe_cache.path == pretrain_cache.path
    assert probe_cache.path.parent == cache_dir / "features"


def test_atomic_files_get_the_umask_mode_and_vanish_on_error(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = runs.write_text_atomic(tmp_path / "a.json", "{}")
        assert (path.stat().st_mode & 0o777) == 0o644  # mkstemp alone gives 0600
        with pytest.raises(RuntimeError), runs.atomic_file(tmp_path / "b.bin") as fh:
            fh.write(b"partial")
            raise RuntimeError("killed mid-write")
    finally:
        os.umask(umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
