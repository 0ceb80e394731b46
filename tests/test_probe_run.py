"""run_probe end to end: leakage, outputs, reuse, encoders (model.pth, random, handcrafted),
k-fold, every bad input rejected before any encoder forward pass, poisoned caches rebuilt, and the
run folder's own list of what was left out."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mosquito_ssl import runs
from mosquito_ssl.data.synthetic import synthesize
from mosquito_ssl.errors import CheckpointError, ConfigError, DataError, MosquitoSSLError
from mosquito_ssl.probe import embeddings
from mosquito_ssl.probe.config import ProbeConfig
from mosquito_ssl.probe.run import run_probe

SPECIES = ["aedes_aegypti", "anopheles_gambiae", "culex_quinquefasciatus"]
FAST = dict(c_grid=(0.1, 1.0))  # a short C grid keeps the suite quick; selection is tested elsewhere


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(
        tmp_path_factory.mktemp("synth"), species=SPECIES, recordings_per_species=4, clips_per_recording=4
    )


def _manifest(tmp_path, synth, **edits):
    """A copy of the synthetic manifest (absolute paths) with columns edited."""
    table = pd.read_csv(synth / "manifest.csv")
    table["path"] = [str(synth / p) for p in table["path"]]
    for column, values in edits.items():
        table[column] = values(table) if callable(values) else values
    path = tmp_path / "manifest.csv"
    table.to_csv(path, index=False)
    return path


def test_linear_probe_outputs_and_no_group_leak(synth, tmp_path):
    result = run_probe(ProbeConfig(data=synth, encoder="random:tiny", out=tmp_path, **FAST))
    run = result.run_dir
    for name in (
        "config.json",
        "metadata.json",
        "metrics.json",
        "results.csv",
        "predictions.csv",
        "confusion_val.csv",
        "confusion_test.csv",
        "skipped_files.csv",
        "DONE",
    ):
        assert (run / name).exists(), name
    preds = pd.read_csv(run / "predictions.csv")
    owners = preds.groupby("group")["split"].nunique()
    assert (owners == 1).all()  # no recording in two splits
    rows = pd.read_csv(run / "results.csv")
    assert list(rows.columns) == ["encoder", "freeze", "probe", "pooling", "layer", "seed", "split", "metric", "value"]
    assert set(rows["split"]) == {"val", "test"} and set(rows["encoder"]) == {"random"}
    confusion = pd.read_csv(run / "confusion_test.csv", index_col=0)
    assert list(confusion.index) == SPECIES == list(confusion.columns)
    assert confusion.to_numpy().sum() == (preds["split"] == "test").sum()
    counts = json.loads((run / "metrics.json").read_text())["counts"]
    assert set(counts) == {"train", "val", "test"}
    assert all(list(per_class) == SPECIES for per_class in counts.values())
    for split in ("val", "test"):
        assert (
            counts[split]
            == preds[preds["split"] == split]["label"].value_counts().reindex(SPECIES, fill_value=0).to_dict()
        )
    assert sum(sum(c.values()) for c in counts.values()) == 48  # every clip in exactly one split


def test_rerun_reuses_everything(synth, tmp_path):
    first = run_probe(ProbeConfig(data=synth, encoder="random:tiny", probe="layerwise", out=tmp_path, **FAST))
    forwards = embeddings.EMBED_FORWARDS
    again = run_probe(ProbeConfig(data=synth, encoder="random:tiny", probe="layerwise", out=tmp_path, **FAST))
    pd.testing.assert_frame_equal(pd.DataFrame(again.rows), pd.DataFrame(first.rows))
    assert forwards == embeddings.EMBED_FORWARDS
    # another probe on the same encoder + data reads the embedding cache: no forward pass
    run_probe(ProbeConfig(data=synth, encoder="random:tiny", probe="linear", pooling="cls", out=tmp_path, **FAST))
    assert forwards == embeddings.EMBED_FORWARDS
    layers = {r["layer"] for r in first.rows if r["probe"] == "layerwise"}
    assert layers == {None, 0, 1, 2, 3}
    assert {r["probe"] for r in first.rows} == {"layerwise", "weighted"}
    best = [r for r in first.rows if r["metric"] == "best_layer"]
    assert len(best) == 1 and best[0]["split"] == "val"


def _save_ssl(folder, hidden_override=None):
    from mosquito_ssl.model.encoder import build_encoder
    from mosquito_ssl.model.ssl import ASTSSL

    folder.mkdir(parents=True, exist_ok=True)
    encoder = build_encoder("tiny", seed=3)
    torch.save(ASTSSL(encoder).state_dict(), folder / "model.pth")
    if hidden_override:
        encoder.config.hidden_size = hidden_override
        encoder.config.save_pretrained(folder)
    return folder / "model.pth"


def test_original_pipeline_model_pth_as_encoder(synth, tmp_path):
    from mosquito_ssl.model.checkpoints import encoder_fingerprint
    from mosquito_ssl.model.encoder import build_encoder

    pth = _save_ssl(tmp_path / "original")
    result = run_probe(ProbeConfig(data=synth, encoder=str(pth), out=tmp_path / "runs", **FAST))
    assert {r["encoder"] for r in result.rows} == {"ssl"}
    embedded = runs.read_json(result.run_dir / runs.METADATA)["embeddings"]
    # the probe embedded with the saved weights, not a fresh initialisation
    assert runs.read_json(Path(embedded) / "info.json")["encoder"] == encoder_fingerprint(build_encoder("tiny", seed=3))


def test_model_pth_width_mismatch_names_both_numbers(synth, tmp_path):
    pth = _save_ssl(tmp_path / "bad", hidden_override=32)
    forwards = embeddings.EMBED_FORWARDS
    with pytest.raises(CheckpointError, match=r"32.*64"):
        run_probe(ProbeConfig(data=synth, encoder=str(pth), out=tmp_path / "runs", **FAST))
    assert forwards == embeddings.EMBED_FORWARDS


def test_handcrafted_and_kfold(synth, tmp_path):
    hand = run_probe(ProbeConfig(data=synth, encoder="handcrafted", out=tmp_path, **FAST))
    assert {(r["encoder"], r["pooling"]) for r in hand.rows} == {("handcrafted", "none")}
    cv = run_probe(ProbeConfig(data=synth, encoder="random:tiny", folds=2, out=tmp_path, **FAST))
    metrics = {r["metric"] for r in cv.rows}
    assert {r["split"] for r in cv.rows} == {"cv"}
    assert {"balanced_accuracy", "balanced_accuracy_std"} <= metrics
    preds = pd.read_csv(cv.run_dir / "predictions.csv")
    assert len(preds) == 48 and set(preds["fold"]) == {0, 1}
    counts = json.loads((cv.run_dir / "metrics.json").read_text())["counts"]
    assert set(counts) == {"fold0", "fold1"} and all(set(c) == {"train", "val", "test"} for c in counts.values())
    for k, fold in enumerate(("fold0", "fold1")):
        tested = preds[preds["fold"] == k]["label"].value_counts().to_dict()
        assert {c: n for c, n in counts[fold]["test"].items() if n} == tested
        assert sum(sum(c.values()) for c in counts[fold].values()) == 48


def _bad(tmp_path, synth, error: type[MosquitoSSLError] = DataError, **kwargs):
    forwards = embeddings.EMBED_FORWARDS
    with pytest.raises(error) as info:
        run_probe(ProbeConfig(encoder="random:tiny", out=tmp_path / "runs", **kwargs))
    assert forwards == embeddings.EMBED_FORWARDS  # rejected before any encoder forward pass
    return str(info.value)


def test_bad_inputs_fail_early_with_clear_messages(synth, tmp_path):
    msg = _bad(tmp_path, synth, ConfigError, data=synth, label_column="species")
    assert "species" in msg and "label" in msg and "group" in msg  # names it, lists columns
    one = _manifest(tmp_path, synth, label="aedes_aegypti")
    assert "only one class" in _bad(tmp_path, synth, data=one)
    few = _manifest(
        tmp_path,
        synth,
        group=lambda t: [g if not g.startswith("culex") else f"culex/{i % 2}" for i, g in enumerate(t["group"])],
    )
    assert "culex_quinquefasciatus" in _bad(tmp_path, synth, data=few)
    split = _manifest(
        tmp_path,
        synth,
        split=lambda t: [
            "test" if g.startswith("culex") else ("val" if g.endswith("rec01") else "train") for g in t["group"]
        ],
    )
    assert "culex_quinquefasciatus" in _bad(tmp_path, synth, data=split)
    flat = tmp_path / "flat"
    flat.mkdir()
    for wav in sorted(synth.glob("aedes_aegypti/*.wav"))[:3]:
        (flat / wav.name).write_bytes(wav.read_bytes())
    assert "no labels" in _bad(tmp_path, synth, data=flat)
    with pytest.raises(ConfigError, match="--layer 9"):
        run_probe(ProbeConfig(data=synth, encoder="random:tiny", layer=9, out=tmp_path))
    with pytest.raises(ConfigError, match="finetune"):
        ProbeConfig(data=synth, freeze="full")


@pytest.mark.parametrize(
    ("given", "stored"), [("frozen", "frozen"), ("none", "full"), ("full", "full"), ("partial:0", "partial:0")]
)
def test_freeze_is_checked_by_the_one_parser_and_stored_canonically(synth, given, stored):
    cfg = ProbeConfig(data=synth, probe="finetune", freeze=given)
    assert cfg.freeze == stored
    same = ProbeConfig(data=synth, probe="finetune", freeze=stored)
    assert cfg.run_dir() == same.run_dir()  # one spelling, one run directory


def test_bad_freeze_names_the_flag_and_the_forms(synth, tmp_path):
    with pytest.raises(ConfigError, match=r"--freeze 'partial:x'.*partial:K"):
        ProbeConfig(data=synth, probe="finetune", freeze="partial:x")
    # deeper than the encoder: rejected before any forward pass (the tiny preset has 3 blocks)
    assert "partial:0 .. partial:3" in _bad(
        tmp_path, synth, ConfigError, data=synth, probe="finetune", freeze="partial:4"
    )


def _zero(path: Path) -> None:
    array = np.load(path, mmap_mode="r+")
    array[:] = 0
    array.flush()


def test_a_poisoned_cache_is_rebuilt_and_the_probe_scores_as_on_a_clean_one(synth, tmp_path, caplog):
    """Zeros in DONE entries (what a batch size below one once cached) are found and rebuilt."""
    clean = run_probe(ProbeConfig(data=synth, encoder="random:tiny", out=tmp_path / "clean", **FAST))
    score = clean.metrics["headline"]["test"]["balanced_accuracy"]
    assert score > 0.5  # three classes: chance is 1/3, so the poisoned numbers would show
    folder = Path(runs.read_json(clean.run_dir / runs.METADATA)["embeddings"])
    for array in folder.glob("*.npy"):
        _zero(array)
    _zero(next(p for p in runs.cache_folder("features").iterdir() if p.is_dir()) / "features.npy")
    forwards = embeddings.EMBED_FORWARDS
    with caplog.at_level(logging.WARNING):
        again = run_probe(ProbeConfig(data=synth, encoder="random:tiny", out=tmp_path / "again", **FAST))
    rebuilt = [r for r in caplog.records if "failed its check" in r.getMessage()]
    assert [r.getMessage().split(" /")[0] for r in rebuilt] == ["feature cache", "embeddings cache"], caplog.text
    assert all(r.levelno == logging.WARNING and "all zero" in r.getMessage() for r in rebuilt)
    assert forwards < embeddings.EMBED_FORWARDS
    assert again.metrics["headline"]["test"]["balanced_accuracy"] == score
    pd.testing.assert_frame_equal(
        pd.read_csv(again.run_dir / "predictions.csv"), pd.read_csv(clean.run_dir / "predictions.csv")
    )


def test_the_run_folder_lists_what_was_left_out(synth, tmp_path):
    data = tmp_path / "folders"
    for species in SPECIES:  # the folders layout: no manifest
        shutil.copytree(synth / species, data / species)
    (data / SPECIES[0] / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (data / SPECIES[1] / "x.wav").mkdir()
    (data / SPECIES[2] / "text.wav").write_text("not audio\n" * 20)
    result = run_probe(ProbeConfig(data=data, encoder="logmel", out=tmp_path / "runs", **FAST))
    listed = pd.read_csv(result.run_dir / "skipped_files.csv")
    assert {(Path(p).name, r, u) for p, r, u in listed.itertuples(index=False)} == {
        ("gone.wav", "broken_symlink", "no"), ("x.wav", "not_a_file", "no"), ("text.wav", "not_audio", "no"),
    }  # fmt: skip
    data_summary = json.loads((result.run_dir / "metrics.json").read_text())["data"]
    assert data_summary == {
        "used": 48,
        "skipped": {"broken_symlink": 1, "not_a_file": 1, "not_audio": 1},
        "outside_data_folder": 0,
    }
    absolute = run_probe(ProbeConfig(data=_manifest(tmp_path, synth), encoder="logmel", out=tmp_path / "r", **FAST))
    listed = pd.read_csv(absolute.run_dir / "skipped_files.csv")  # absolute paths: read, and recorded
    assert len(listed) == 48 and set(listed["reason"]) == {"outside_data_folder"} and set(listed["used"]) == {"yes"}


def test_upsampling_is_one_warning_per_probe_run(tmp_path, caplog):
    data = synthesize(tmp_path / "s8k", species=SPECIES[:2], recordings_per_species=3, clips_per_recording=2,
                      sample_rate=8000)  # fmt: skip
    for force in (False, True):  # built, then from the cache
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            cfg = ProbeConfig(data=data, encoder="logmel", sample_rate=32000, out=tmp_path / "r", force=force, **FAST)
            run_probe(cfg)
        warnings = [r.getMessage() for r in caplog.records if "upsample" in r.getMessage()]
        assert len(warnings) == 1 and "12 file(s)" in warnings[0] and "12 at 8000 Hz" in warnings[0], warnings
