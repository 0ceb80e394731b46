"""``data/presence.py``: 0.1-s presence labels -> mosquito / background clips + manifest.

Runs ``mosquito-ssl data presence`` and its hidden alias ``mosquito-ssl probe presence`` on
generated recordings, and ``presence_manifest`` on two real ECML recordings when present.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from mosquito_ssl.cli import app
from mosquito_ssl.data.presence import presence_manifest, read_label_rows
from mosquito_ssl.errors import DataError

SR = 8000
# Recording "a": 2 s of mosquito then 1 s half-labelled then 1 s background; "b": 2 s background.
CELLS = {"a": [1] * 20 + [1, 0] * 5 + [0] * 10, "b": [0] * 20}


@pytest.fixture
def recordings(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = []
    for row, (name, cells) in enumerate(CELLS.items(), start=1):
        wave = np.random.default_rng(row).normal(0, 0.1, round(len(cells) * 0.1 * SR)).astype(np.float32)
        sf.write(audio / f"{name}.wav", wave, SR)
        rows.append({"path": f"{name}.wav", "label_row": row, "frac_mosquito_0p1s": float(np.mean(cells))})
    pd.DataFrame(rows).to_csv(audio / "metadata.csv", index=False)
    labels = tmp_path / "labels.txt"
    # Line 0 belongs to no recording, as in the ECML release.
    labels.write_text("\n".join(" ".join(str(c) for c in cells) for cells in [[0], *CELLS.values()]) + "\n")
    return audio, labels


def expected_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [f"clips/{name}.wav" for name in ("a_0000.00", "a_0001.00", "a_0002.00", "a_0003.00")]
            + [f"clips/{name}.wav" for name in ("b_0000.00", "b_0001.00")],
            "label": ["mosquito", "mosquito", "mosquito", "background", "background", "background"],
            "group": ["a", "a", "a", "a", "b", "b"],
        }
    )


@pytest.mark.parametrize("stage", ["data", "probe"])  # probe presence: the old spelling, kept as an alias
def test_presence_command_writes_clips_and_manifest(recordings, tmp_path, stage):
    audio, labels = recordings
    out = tmp_path / "out" / "manifest.csv"
    result = CliRunner().invoke(app, [stage, "presence", str(audio), str(labels), str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    pd.testing.assert_frame_equal(table, expected_table())
    # the half-labelled second (fraction 0.5) is mosquito at the default --min-fraction 0.5
    clip, sr = sf.read(out.parent / table["path"][0])
    assert sr == SR and len(clip) == SR
    assert result.output.strip().splitlines()[-1] == (
        f"done: {out}; next: mosquito-ssl probe linear {out.parent} --encoder random:tiny"
    )


def test_min_fraction_leaves_ambiguous_clips_out(recordings, tmp_path):
    audio, labels = recordings
    out = presence_manifest(audio, labels, tmp_path / "m.csv", min_fraction=0.9)
    table = pd.read_csv(out)
    assert "clips/a_0002.00.wav" not in set(table["path"])  # 0.5 mosquito: neither class
    assert table["label"].tolist() == ["mosquito", "mosquito", "background", "background", "background"]


def test_probe_presence_is_hidden_and_data_presence_is_listed():
    probe_help = CliRunner().invoke(app, ["probe", "--help"]).output
    data_help = CliRunner().invoke(app, ["data", "--help"]).output
    assert "presence" not in probe_help and "presence" in data_help


def test_missing_metadata_is_a_data_error(recordings, tmp_path):
    audio, labels = recordings
    with pytest.raises(DataError, match=r"nothing\.csv not found"):
        presence_manifest(audio, labels, tmp_path / "m.csv", metadata=tmp_path / "nothing.csv")


def test_read_label_rows_accepts_commas_and_spaces(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("1,0, 1\n0 0\n")
    rows = read_label_rows(path)
    assert [r.tolist() for r in rows] == [[1.0, 0.0, 1.0], [0.0, 0.0]]


def test_presence_manifest_on_real_recordings(tmp_path):
    from conftest import shared_data

    root = shared_data("humbug_ecml_culex")
    meta = pd.read_csv(root / "metadata.csv")
    subset = meta[meta["label_row"].isin([21, 25])]  # one with mosquito, one without
    subset.to_csv(tmp_path / "meta.csv", index=False)
    labels = root / "culex_quinquefasciatus" / "labels" / "data_corrob_all_0or1.txt"
    out = presence_manifest(root, labels, tmp_path / "clips" / "manifest.csv", metadata=tmp_path / "meta.csv")
    table = pd.read_csv(out)
    assert set(table["label"]) == {"mosquito", "background"}
    assert set(table["group"]) == {"0021_norm", "0025_norm"}
    assert (table[table["group"] == "0025_norm"]["label"] == "background").all()
    assert all((out.parent / p).is_file() for p in table["path"])
    assert json.dumps(table.columns.tolist()) == '["path", "label", "group"]'
