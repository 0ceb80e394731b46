"""Every file the data layer does not use is counted and listed with a reason; files read from
outside the data folder are allowed and recorded; the feature cache's summary carries both lists."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest

from mosquito_ssl.data.feature_cache import build_features
from mosquito_ssl.data.items import OUTSIDE, records_csv
from mosquito_ssl.data.manifest import read_dataset
from test_manifest import wav


def _reasons(dataset_or_log) -> dict[str, str]:
    skipped = getattr(dataset_or_log, "skipped", dataset_or_log)
    return {Path(e["path"]).name: e["reason"] for e in skipped.entries}


@pytest.fixture()
def blocked_folder(monkeypatch):
    """``block(path)``: listing that folder fails as it does without read permission (tests run as root)."""
    real, blocked = os.scandir, set()

    def scandir(path="."):
        if os.path.abspath(path) in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return lambda path: blocked.add(os.path.abspath(path))


def test_flat_folder_lists_every_candidate_it_leaves_out(tmp_path, blocked_folder):
    data = tmp_path / "data"
    for name in ("a.wav", "sub/b.wav", "locked/c.wav"):
        wav(data / name)
    (data / "gone.wav").symlink_to(tmp_path / "nowhere.wav")  # broken symlink
    (data / "x.wav").mkdir()  # a folder named like audio
    wav(tmp_path / "elsewhere" / "d.wav")
    (data / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (data / ".hidden.wav").write_bytes(b"")  # hidden and non-audio names are no candidates
    (data / "notes.txt").write_text("field notes")
    blocked_folder(data / "locked")
    ds = read_dataset(data)
    assert sorted(Path(i.path).name for i in ds.items) == ["a.wav", "b.wav"]
    assert _reasons(ds) == {
        "gone.wav": "broken_symlink",
        "x.wav": "not_a_file",
        "locked": "unreadable_folder",
        "linked": "symlinked_folder",
    }
    assert all(Path(e["path"]).is_absolute() and e["detail"] for e in ds.skipped.entries)
    summary = build_features(ds, progress=False).summary()  # what pretraining's data_summary.json holds
    assert {Path(f["path"]).name: f["reason"] for f in summary["skipped_files"]} == _reasons(ds)
    assert summary["skipped"] == {"broken_symlink": 1, "not_a_file": 1, "symlinked_folder": 1, "unreadable_folder": 1}


def test_folders_layout_records_strays_and_bad_entries(tmp_path, caplog):
    for label in ("aedes", "culex"):
        for i in range(2):
            wav(tmp_path / label / f"{i}.wav")
    (tmp_path / "culex" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "aedes" / "x.wav").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = read_dataset(tmp_path, layout="folders")
        wav(tmp_path / "stray.wav")
        again = read_dataset(tmp_path, layout="folders")
    assert ds.classes == ["aedes", "culex"] and len(ds.items) == 4
    assert _reasons(ds) == {"gone.wav": "broken_symlink", "x.wav": "not_a_file"}
    assert _reasons(again) == {**_reasons(ds), "stray.wav": "no_label_folder"}
    assert "1 audio file(s) at the top" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file and folder")
def test_real_permissions(tmp_path):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "locked" / "b.wav")
    wav(tmp_path / "secret.wav").chmod(0)
    (tmp_path / "locked").chmod(0)
    try:
        ds = read_dataset(tmp_path)
        cache = build_features(ds, progress=False)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert _reasons(ds) == {"locked": "unreadable_folder"}
    assert _reasons(cache.skipped) == {"locked": "unreadable_folder", "secret.wav": "unreadable"}


def _manifest(folder: Path, rows: list[tuple[str, str]]) -> Path:
    path = folder / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(path, index=False)
    return path


def test_manifest_rows_outside_the_data_folder_are_read_and_recorded_once(tmp_path, caplog):
    data, other = tmp_path / "project" / "data", tmp_path / "other"
    for name in ("a.wav", "b.wav"):
        wav(data / name)
    for name in ("up.wav", "abs.wav"):
        wav(other / name)
    (data / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (data / "dir.wav").mkdir()
    rows = [
        ("a.wav", "x"), ("b.wav", "y"), ("../../other/up.wav", "x"), (str(other / "abs.wav"), "y"),
        ("gone.wav", "x"), ("dir.wav", "y"), ("a.wav/inner.wav", "x"), ("lost.wav", "y"),
    ]  # fmt: skip
    _manifest(data, rows)
    with caplog.at_level(logging.INFO, logger="mosquito_ssl.data.manifest"):
        ds = read_dataset(data, window=0.5)  # two clips per file: each file is still recorded once
    assert len(ds.items) == 8
    assert sorted(Path(p).name for p in ds.outside) == ["abs.wav", "up.wav"]
    assert _reasons(ds) == {
        "gone.wav": "broken_symlink", "dir.wav": "not_a_file", "inner.wav": "missing", "lost.wav": "missing",
    }  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if "outside the data folder" in r.getMessage()]
    assert len(lines) == 1 and "2 file(s)" in lines[0], caplog.text
    summary = build_features(ds, progress=False).summary()
    assert sorted(Path(p).name for p in summary["outside_data_folder"]) == ["abs.wav", "up.wav"]
    table = pd.read_csv(pd.io.common.StringIO(records_csv(summary["skipped_files"], summary["outside_data_folder"])))
    assert list(table.columns) == ["path", "reason", "used"]
    assert sorted(table[table["used"] == "yes"]["reason"]) == [OUTSIDE, OUTSIDE]
    assert len(table[table["used"] == "no"]) == 4


def test_a_listed_file_its_permissions_hide_is_recorded_not_raised(tmp_path, monkeypatch):
    """Path.is_file lets EACCES through (a parent folder without permission): a reason, no traceback."""
    from mosquito_ssl.data import audio

    data = tmp_path / "data"
    for name in ("a.wav", "b.wav", "hidden/c.wav"):
        wav(data / name)
    _manifest(data, [("a.wav", "x"), ("b.wav", "y"), ("hidden/c.wav", "x")])
    real = Path.stat

    def stat(self, *args, **kwargs):
        if "hidden" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert _reasons(read_dataset(data)) == {"c.wav": "unreadable"}
    with pytest.raises(audio.BadAudio) as info:
        audio.load_audio(data / "hidden" / "c.wav")
    assert info.value.reason == "unreadable"
