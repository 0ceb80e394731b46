"""Layouts, auto-detection, windowing, groups and missing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import shared_data
from mosquito_ssl.data.manifest import Item, SkipLog, read_dataset
from mosquito_ssl.data.synthetic import synthesize
from mosquito_ssl.errors import ConfigError, DataError


def wav(path, seconds=1.0, sr=8000, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def test_flat(tmp_path):
    for i in range(3):
        wav(tmp_path / f"c{i}.wav")
    ds = read_dataset(tmp_path)
    assert ds.layout == "flat" and len(ds.items) == 3
    assert ds.labels is None and ds.groups is None and not ds.has_labels
    assert all(Path(i.path).is_absolute() for i in ds.items)


def test_folders(tmp_path):
    for label in ("aedes", "culex"):
        for i in range(2):
            wav(tmp_path / label / f"{i}.wav")
    ds = read_dataset(tmp_path)
    assert ds.layout == "folders"
    assert ds.classes == ["aedes", "culex"] and ds.labels.count("aedes") == 2
    assert ds.groups is None


def test_csv_with_group_and_split(tmp_path):
    rows = []
    for i in range(4):
        wav(tmp_path / "audio" / f"{i}.wav")
        rows.append(
            {
                "path": f"audio/{i}.wav",
                "label": "a" if i % 2 else "b",
                "group": f"g{i // 2}",
                "split": "train" if i < 2 else "validation",
            }
        )
    rows.append({"path": "audio/gone.wav", "label": "a", "group": "g9", "split": "train"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    ds = read_dataset(tmp_path)  # a folder with manifest.csv is read as csv
    assert ds.layout == "csv" and len(ds.items) == 4
    assert ds.groups == ["g0", "g0", "g1", "g1"]
    assert [i.split for i in ds.items] == ["train", "train", "validation", "validation"]
    assert ds.skipped.counts() == {"missing": 1}
    assert read_dataset(tmp_path / "manifest.csv").layout == "csv"


def test_unknown_label_column_names_available(tmp_path):
    wav(tmp_path / "a.wav")
    pd.DataFrame([{"path": "a.wav", "label": "x"}]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ConfigError, match=r"'species'.*available columns: path, label"):
        read_dataset(tmp_path / "m.csv", label_column="species")


def test_synth_manifest_carries_groups(tmp_path):
    out = synthesize(tmp_path / "s", recordings_per_species=2, clips_per_recording=2)
    ds = read_dataset(out)
    assert ds.layout == "csv" and len(ds.items) == 16 and len(set(ds.groups)) == 8


HUMBUG_HEADER = (
    "id,length,name,sample_rate,record_datetime,sound_type,species,gender,fed,plurality,age,"
    "method,mic_type,device_type,country,district,province,place,location_type"
)


def write_humbug(folder):
    lines = [
        HUMBUG_HEADER,
        "1,2.0,rec_a.wav,8000,08-09-16 08:00,mosquito,ae aegypti,,,Single,,,phone,Alcatel,USA,,,,culture",
        "2,1.0,rec_b.wav,8000,08-09-16 08:00,mosquito,an gambiae ss,,,Single,,,phone,Itel,Tanzania,,,,field",
        "3,1.0,bg.wav,8000,08-09-16 08:00,background,,,,,,,phone,Itel,Tanzania,,,,field",
        "4,1.0,lost.wav,8000,08-09-16 08:00,mosquito,ae aegypti,,,Single,,,phone,Itel,USA,,,,culture",
    ]
    (folder / "meta.csv").write_text("\n".join(lines) + "\n")
    wav(folder / "audio" / "1.wav", seconds=2.0)  # the Zenodo naming: <id>.wav
    wav(folder / "audio" / "rec_b.wav")  # a user's own naming
    wav(folder / "audio" / "bg.wav")


def test_humbugdb_small(tmp_path):
    write_humbug(tmp_path)
    ds = read_dataset(tmp_path / "meta.csv")
    assert ds.layout == "humbugdb"
    assert ds.labels == ["ae aegypti", "an gambiae ss", "background"]
    assert ds.groups == ["1", "2", "3"]
    assert ds.skipped.counts() == {"missing": 1}
    by_country = read_dataset(tmp_path / "meta.csv", group_column="country", window=1.0)
    assert [i.group for i in by_country.items] == ["USA", "USA", "Tanzania", "Tanzania"]
    assert [i.offset for i in by_country.items] == [0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="nope"):
        read_dataset(tmp_path / "meta.csv", group_column="nope")


def test_real_humbugdb_metadata(tmp_path):
    csv = next(shared_data("humbugdb_metadata").glob("*.csv"))
    from mosquito_ssl.data.manifest import humbugdb_table

    table = humbugdb_table(csv)
    counts = table.label.value_counts()
    assert len(table) > 9000 and counts["background"] > 1000
    assert counts["an arabiensis"] > counts["ae aegypti"] > 50  # the real imbalance
    with pytest.raises(DataError, match="missing"):
        read_dataset(csv)  # audio is not shipped: every row is missing
    ids = table.id.astype(str).tolist()[:3]
    for rid in ids:
        wav(tmp_path / f"{rid}.wav")
    ds = read_dataset(csv, audio_dir=tmp_path)
    assert len(ds.items) == 3
    assert ds.skipped.counts() == {"missing": len(table) - 3}


def test_windowing_groups_by_recording(tmp_path):
    wav(tmp_path / "long" / "r1.wav", seconds=3.0)
    wav(tmp_path / "long" / "r2.wav", seconds=2.2)
    ds = read_dataset(tmp_path / "long", window=1.0, hop=0.5)
    offsets = {}
    for item in ds.items:
        offsets.setdefault(item.group, []).append(item.offset)
    assert offsets == {"r1.wav": [0.0, 0.5, 1.0, 1.5, 2.0], "r2.wav": [0.0, 0.5, 1.0]}


def test_empty_folder_and_bad_options(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path)):
        read_dataset(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nothing")
    wav(tmp_path / "a.wav")
    with pytest.raises(ConfigError, match="--hop needs --window"):
        read_dataset(tmp_path, hop=0.5)
    with pytest.raises(ConfigError, match="--layout"):
        read_dataset(tmp_path, layout="zip")


def test_skiplog_roundtrip():
    log = SkipLog()
    log.add("a.wav", "missing")
    log.add("b.wav", "silent", "peak 0")
    other = SkipLog.from_dict(log.to_dict())
    assert other.counts() == {"missing": 1, "silent": 1}
    assert len(log.merge(other)) == 4
    assert Item("/x.wav") == Item("/x.wav", None, None, 0.0, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'path,label\n"a.wav,x\nb.wav,y\n', r"not valid CSV .*EOF inside string.*close every quote"),
        (b"path,label\na.wav,x\nb\xe9.wav,y\n", r"line 3 holds byte 0xe9, which is not UTF-8: save the file as UTF-8"),
        (b"", r"the file is empty: write a header row"),
    ],
    ids=["unclosed_quote", "latin1", "empty"],
)
def test_a_broken_manifest_is_a_data_error_naming_it(tmp_path, content, message):
    wav(tmp_path / "a.wav")
    (tmp_path / "manifest.csv").write_bytes(content)
    for source in (tmp_path, tmp_path / "manifest.csv"):  # the folder holding it, or the file itself
        with pytest.raises(DataError, match=message) as info:
            read_dataset(source)
        assert str(info.value).startswith(f"{tmp_path / 'manifest.csv'}: ")
