"""``mosquito-ssl embed`` / ``probe.export``: exported vectors are the probe cache's, files round-trip."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mosquito_ssl.cli import app
from mosquito_ssl.data.feature_cache import build_features
from mosquito_ssl.data.manifest import read_dataset
from mosquito_ssl.data.synthetic import synthesize
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.encoder import load_encoder
from mosquito_ssl.probe import embeddings
from mosquito_ssl.probe.config import ProbeConfig
from mosquito_ssl.probe.export import embed, write_embeddings
from mosquito_ssl.probe.inputs import load_encoder_for
from mosquito_ssl.probe.run import encoder_embeddings
from procs import fails

runner = CliRunner()
LINE = re.compile(r"^wrote (\d+) embeddings \((\d+) dims, layer (\w+), pooling (\S+)\) to (.+)$")


@pytest.fixture(scope="module")
def flat(synth, tmp_path_factory):
    """A flat folder of unlabelled wavs (no manifest, no label folders)."""
    folder = tmp_path_factory.mktemp("flat")
    for wav in sorted(synth.glob("*/*.wav"))[:4]:
        shutil.copy(wav, folder / f"{wav.parent.name}_{wav.name}")
    return folder


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["path"], frame["offset"], frame["label"], frame["group"], strict=True))


def _cached(data, encoder: str, pooling: str) -> tuple[np.ndarray, list]:
    """The probe stage's (N, L+1, D) array and the feature cache's items, read as a probe reads them."""
    model, settings = load_encoder_for(ProbeConfig(data=data, encoder=encoder, pooling=pooling))
    cache = build_features(read_dataset(data, clip_seconds=settings.clip_seconds), settings)
    E, _ = encoder_embeddings(encoder, model, cache, pooling)
    return np.asarray(E), cache.items


@pytest.mark.parametrize(("layer", "pooling"), [(None, "freq_stack"), (1, "mean")])
def test_vectors_are_the_probe_cache_rows(synth, layer, pooling):
    E, items = _cached(synth, "random:tiny", pooling)
    before = embeddings.EMBED_FORWARDS
    frame = embed(synth, "random:tiny", layer, pooling, batch_size=5)
    assert before == embeddings.EMBED_FORWARDS  # read from the probe's cache entry
    np.testing.assert_array_equal(np.stack(frame["vector"]), E[:, -1 if layer is None else layer])
    assert frame["vector"][0].dtype == np.float32 and frame["vector"][0].ndim == 1
    assert _rows(frame) == [(i.path, i.offset, i.label, i.group) for i in items]
    assert frame.attrs == {
        "encoder": "random:tiny",
        "layer": E.shape[1] - 1 if layer is None else layer,
        "pooling": pooling,
        "seed": 0,
        "skipped_files": [],
        "outside_data_folder": [],
    }


def test_embed_after_probe_linear_runs_no_forward(synth, tmp_path):
    probe = runner.invoke(app, ["probe", "linear", str(synth), "--encoder", "random:tiny", "--out", str(tmp_path)])
    assert probe.exit_code == 0, probe.output
    before = embeddings.EMBED_FORWARDS
    out = tmp_path / "e.npz"
    result = runner.invoke(app, ["embed", str(synth), "--encoder", "random:tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert before == embeddings.EMBED_FORWARDS
    E, items = _cached(synth, "random:tiny", "freq_stack")
    with np.load(out) as z:
        np.testing.assert_array_equal(z["vector"], E[:, -1])
        assert z["path"].tolist() == [i.path for i in items]


def test_second_embed_runs_no_forward(synth):
    first = embed(synth, "random:tiny")
    before = embeddings.EMBED_FORWARDS
    second = embed(synth, "random:tiny")
    assert before == embeddings.EMBED_FORWARDS
    np.testing.assert_array_equal(np.stack(first["vector"]), np.stack(second["vector"]))


def test_seed_picks_the_weights_of_a_random_encoder(synth, tmp_path):
    zero, again, one = (embed(synth, "random:tiny", seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(np.stack(zero["vector"]), np.stack(again["vector"]))
    assert not np.allclose(np.stack(zero["vector"]), np.stack(one["vector"]))  # another initialisation
    assert (zero.attrs["seed"], one.attrs["seed"]) == (0, 1)
    with np.load(write_embeddings(one, tmp_path / "e.npz")) as z:
        assert int(z["seed"]) == 1
    assert pq.read_schema(write_embeddings(one, tmp_path / "e.parquet")).metadata[b"seed"] == b"1"


def test_seed_of_an_encoder_with_its_own_weights_is_one_error_line(synth, tmp_path):
    line = fails("embed", synth, "--encoder", "logmel", "--seed", "1", "--out", tmp_path / "e.npz", cache=tmp_path)
    assert "--seed" in line and "drop --seed" in line, line
    assert not (tmp_path / "e.npz").exists()


def test_parquet_round_trip(synth, tmp_path):
    frame = embed(synth, "random:tiny", 2, "cls")
    path = write_embeddings(frame, tmp_path / "sub" / "e.parquet")
    back = pd.read_parquet(path)
    assert list(back.columns) == ["path", "offset", "group", "label", "vector"]
    assert back["path"].tolist() == frame["path"].tolist() and back["label"].tolist() == frame["label"].tolist()
    assert back["group"].tolist() == frame["group"].tolist()
    np.testing.assert_array_equal(back["offset"].to_numpy(), frame["offset"].to_numpy())
    assert back["vector"][0].dtype == np.float32
    np.testing.assert_array_equal(np.stack(back["vector"]), np.stack(frame["vector"]))
    meta = pq.read_schema(path).metadata
    assert (meta[b"encoder"], meta[b"layer"], meta[b"pooling"]) == (b"random:tiny", b"2", b"cls")
    assert sorted(p.name for p in path.parent.iterdir()) == ["e.parquet", "e.parquet.skipped.csv"]  # no temp file


def test_npz_round_trip(synth, tmp_path):
    frame = embed(synth, "random:tiny")
    path = write_embeddings(frame, tmp_path / "e.npz")
    with np.load(path) as z:  # no allow_pickle: plain str / float arrays
        assert z["vector"].dtype == np.float32 and z["vector"].shape == (len(frame), len(frame["vector"][0]))
        np.testing.assert_array_equal(z["vector"], np.stack(frame["vector"]))
        for column in ("path", "group", "label"):
            assert z[column].tolist() == frame[column].tolist(), column
        np.testing.assert_array_equal(z["offset"], frame["offset"].to_numpy())
        assert (str(z["encoder"]), int(z["layer"]), str(z["pooling"])) == ("random:tiny", 3, "freq_stack")


def test_unlabelled_flat_folder(flat, tmp_path):
    frame = embed(flat, "random:tiny", window=0.5)
    assert len(frame) == 8 and frame["label"].isna().all() and frame["label"].tolist() == [None] * 8
    assert sorted(set(frame["offset"])) == [0.0, 0.5]
    write_embeddings(frame, tmp_path / "e.parquet")
    write_embeddings(frame, tmp_path / "e.npz")
    assert pd.read_parquet(tmp_path / "e.parquet")["label"].isna().all()
    with np.load(tmp_path / "e.npz") as z:
        assert z["label"].tolist() == [""] * 8 and z["group"].tolist() == frame["group"].tolist()


def test_handcrafted_and_a_checkpoint_folder(synth, tmp_path):
    frame = embed(synth, "handcrafted")
    assert {k: frame.attrs[k] for k in ("encoder", "layer", "pooling")} == {
        "encoder": "handcrafted",
        "layer": None,
        "pooling": "none",
    }
    with np.load(write_embeddings(frame, tmp_path / "h.npz")) as z:
        assert int(z["layer"]) == -1 and str(z["pooling"]) == "none" and int(z["seed"]) == -1
    model, _ = load_encoder("random:tiny")
    model.save_pretrained(tmp_path / "hf")  # an HF AST checkpoint folder
    saved = embed(synth, tmp_path / "hf", 0, "mean")
    assert saved.attrs["encoder"] == str((tmp_path / "hf").resolve()) and saved.attrs["layer"] == 0


def test_bad_extension_and_bad_layer(synth, tmp_path):
    frame = embed(synth, "handcrafted")
    with pytest.raises(ConfigError, match=r"--out .*\.parquet or \.npz"):
        write_embeddings(frame, tmp_path / "e.csv")
    with pytest.raises(ConfigError, match="--layer 9 does not exist"):
        embed(synth, "random:tiny", layer=9)
    with pytest.raises(ConfigError, match="--layer does not apply to --encoder handcrafted"):
        embed(synth, "handcrafted", layer=0)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_the_file_and_prints_one_line(synth, tmp_path):
    out = tmp_path / "e.parquet"
    args = ["embed", str(synth), "--encoder", "random:tiny", "--layer", "1", "--pooling", "mean", "--out", str(out)]
    result = runner.invoke(app, [*args, "--batch-size", "4", "--group-column", "group"])
    assert result.exit_code == 0, result.output
    match = LINE.match(result.stdout.strip().splitlines()[-1])
    assert match and match.groups() == ("12", "64", "1", "mean", str(out)), result.stdout
    assert len(pd.read_parquet(out)) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "e.txt"], "error: --out e.txt: unknown file type '.txt'"),
        (["--out", "e.npz", "--layer", "7"], "error: --layer 7 does not exist"),
        (["--out", "e.npz", "--pooling", "max"], "error: --pooling 'max' is not valid"),
        (["--out", "e.npz", "--batch-size", "-5"], "error: --batch-size -5 is not valid: use >= 1"),
        (["--out", "e.npz", "--patch-size", "8", "--patch-stride", "12"], "error: --patch-stride 12 does not fit"),
    ],
)
def test_cli_user_errors_are_one_line(synth, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["embed", str(synth), "--encoder", "random:tiny", *args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(message), result.output
    assert list(tmp_path.iterdir()) == []


def test_embed_takes_the_probe_front_end_and_shares_its_cache(tmp_path):
    """random:<preset> with --sample-rate/--normalize: the vectors are the probe's (same cache entry)."""
    from mosquito_ssl.probe import embeddings
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.export import embed
    from mosquito_ssl.probe.run import run_probe

    data = synthesize(
        tmp_path / "s", species=["aedes_aegypti", "culex_pipiens"], recordings_per_species=3, clips_per_recording=2
    )
    run_probe(ProbeConfig(data=data, encoder="random:tiny", sample_rate=8000, normalize="dataset", out=tmp_path / "r"))
    forwards = embeddings.EMBED_FORWARDS
    frame = embed(data, "random:tiny", sample_rate=8000, normalize="dataset")
    assert forwards == embeddings.EMBED_FORWARDS  # the probe's entry: nothing computed again
    assert len(frame) == 12 and frame["vector"].iloc[0].shape == (12 * 64,)


def test_a_batch_size_below_one_is_refused_from_python_too(synth):
    from mosquito_ssl import runs

    for size in (0, -5):
        with pytest.raises(ConfigError, match=f"--batch-size {size} is not valid"):
            embed(synth, "random:tiny", batch_size=size)
    assert not runs.cache_folder("embeddings").exists()  # nothing cached, let alone zeros


def test_what_was_left_out_is_written_next_to_the_export(flat, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(flat, data)
    (data / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (data / "x.wav").mkdir()
    (data / "text.wav").write_text("not audio\n" * 20)
    out = tmp_path / "out" / "e.npz"
    result = runner.invoke(app, ["embed", str(data), "--encoder", "logmel", "--out", str(out)])
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(tmp_path / "out" / "e.npz.skipped.csv")
    assert list(listed.columns) == ["path", "reason", "used"]
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in zip(listed["path"], listed["reason"], strict=True)}
    assert reasons == {"gone.wav": "broken_symlink", "x.wav": "not_a_file", "text.wav": "not_audio"}
    with np.load(out) as z:
        assert len(z["vector"]) == 4


def test_random_encoder_at_another_patch_grid_probes_and_embeds(synth, tmp_path):
    """random:tiny at the masked methods' 8 x 8 grid (stride 8): the probe and embed share one cache entry."""
    args = ["--encoder", "random:tiny", "--patch-size", "8", "--patch-stride", "8"]
    probe = runner.invoke(app, ["probe", "linear", str(synth), *args, "--out", str(tmp_path / "p")])
    assert probe.exit_code == 0, probe.output
    config = json.loads(next((tmp_path / "p").glob("*/config.json")).read_text())
    assert (config["patch_size"], config["patch_stride"]) == (8, 8)
    forwards, out = embeddings.EMBED_FORWARDS, tmp_path / "e.npz"
    result = runner.invoke(app, ["embed", str(synth), *args, "--out", str(out)])
    assert result.exit_code == 0 and forwards == embeddings.EMBED_FORWARDS, result.output
    with np.load(out) as z:
        assert z["vector"].shape == (12, 16 * 64)  # freq_stack: 16 frequency patches of 8 bins
    dense = embed(synth, "random:tiny", patch_size=8)  # AST's overlap at patch 8: stride 5, 25 patches
    assert dense["vector"].iloc[0].shape == (25 * 64,)
    with pytest.raises(ConfigError, match="logmel has no patches"):
        embed(synth, "logmel", patch_size=8)


def test_probe_run_names_without_patch_flags_are_those_before_them():
    """The name computed by the code before --patch-size (data "/"); AST's grid spelled out keeps it."""
    names = {
        ProbeConfig(data="/", encoder="random:tiny", **given).run_dir().name
        for given in ({}, {"patch_size": 16}, {"patch_stride": 10}, {"patch_size": 16, "patch_stride": 10})
    }
    assert names == {"probe-8199d6f4e2"}
    eight = ProbeConfig(data="/", encoder="random:tiny", patch_size=8).run_dir()
    assert eight == ProbeConfig(data="/", encoder="random:tiny", patch_size=8, patch_stride=5).run_dir()
    assert eight != ProbeConfig(data="/", encoder="random:tiny", patch_size=8, patch_stride=8).run_dir()
