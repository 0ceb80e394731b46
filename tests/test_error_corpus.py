"""The user-mistake corpus, run as a new user meets it: real subprocesses of the installed
``mosquito-ssl``. Each case exits 1 with exactly one ``error:`` line on stderr and no traceback,
before any work (no run folder is left behind). Manifest and ``embed --out`` cases are in
``test_cli_errors.py``; reports cases in ``test_reports_safety.py``."""

from __future__ import annotations

import pickle

import pytest
import torch

from procs import fails

pytestmark = pytest.mark.slow

PRETRAIN = [
    (["--epochs", "0"], "--epochs 0"),
    (["--epochs", "-3"], "--epochs -3"),
    (["--max-steps", "0"], "--max-steps 0"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--lr", "-1"], "--lr -1"),
    (["--grad-accum", "0"], "--grad-accum 0"),
    (["--workers", "-1"], "--workers -1"),
    (["--preset", "huge"], "--preset 'huge'"),
    (["--sample-rate", "1000000"], "--sample-rate 1000000"),
    (["--mask-strength", "abc"], "--mask-strength 'abc'"),
    (["--method", "mae", "--mask-strength", "2"], "--mask-strength is a setting of --method reconstruct"),
    (["--method", "reconstruct", "--mask-ratio", "0.5"], "--mask-ratio is a setting of --method mae, teacher"),
    (["--method", "simclr"], "--method 'simclr'"),
    (["--patch-size", "3"], "--patch-size 3 is not valid: use >= 4 and <= 32"),
    (["--patch-size", "32", "--num-mel-bins", "24"], "--patch-size 32 is larger than the clip (100 frames x 24 mel"),
    (["--method", "byol", "--batch-size", "64"], "drops the last partial batch"),  # checked after the data loads
]


@pytest.mark.parametrize(("args", "says"), PRETRAIN, ids=[" ".join(a) for a, _ in PRETRAIN])
def test_pretrain_mistakes(synth, tmp_path, args, says):
    line = fails("pretrain", synth, "--preset", "tiny", "--out", tmp_path / "runs", *args, cache=tmp_path / "c")
    assert says in line, line
    left = list((tmp_path / "runs").rglob("*")) if (tmp_path / "runs").exists() else []
    assert not left, f"a run folder was created before the settings were checked: {left}"


def _init_files(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a model")
    truncated = tmp_path / "truncated.pth"
    torch.save({"w": torch.zeros(100)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    pickled = tmp_path / "pickled.pth"
    pickled.write_bytes(pickle.dumps({"a": object}))  # weights_only refuses it: nothing runs
    return {"text": text, "truncated": truncated, "pickle": pickled}


@pytest.mark.parametrize("kind", ["text", "pickle"])  # a truncated file fails in torch.load like text
def test_init_from_a_file_that_is_no_model(synth, tmp_path, kind):
    path = _init_files(tmp_path)[kind]
    args = ["--preset", "tiny", "--epochs", "1", "--out", tmp_path / "runs", "--init-from", path]
    line = fails("pretrain", synth, *args, cache=tmp_path / "c")
    assert f"--init-from {path}" in line, line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*")), "a run folder was left"


PROBE = [
    (["linear", "--batch-size", "0"], "--batch-size 0"),
    (["linear", "--batch-size", "-5"], "--batch-size -5"),
    (["finetune", "--lr", "-1"], "--lr -1"),
    (["linear", "--folds", "x"], "--folds 'x'"),
    (["linear", "--pooling", "max"], "--pooling 'max'"),
    (["linear", "--sample-rate", "1000000"], "--sample-rate 1000000"),
    (["linear", "--patch-size", "8", "--patch-stride", "9"], "--patch-stride 9 does not fit patch size 8: use 1..8"),
]


@pytest.mark.parametrize(("args", "says"), PROBE, ids=[" ".join(a) for a, _ in PROBE])
def test_probe_mistakes(synth, tmp_path, args, says):
    kind, *rest = args
    line = fails("probe", kind, synth, "--encoder", "random:tiny", "--out", tmp_path / "p", *rest, cache=tmp_path / "c")
    assert says in line, line
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("batch", ["0", "-5"])
def test_embed_batch_size_is_checked_and_leaves_no_cache(synth, tmp_path, batch):
    cache = tmp_path / "c"
    line = fails(
        "embed", synth, "--encoder", "random:tiny", "--batch-size", batch, "--out", tmp_path / "e.npz", cache=cache
    )
    assert f"--batch-size {batch}" in line, line
    assert not (cache / "embeddings").exists() or not any((cache / "embeddings").iterdir())


SPEC = [  # (key, value, what the one line says: the key as the spec spells it)
    ("pretrain.preset", '"huge"', "huge"),
    ("pretrain.epochs", '"ten"', "pretrain.epochs = 'ten' is not valid: use an integer"),
    ("pretrain.epochs", "0", "pretrain.epochs = 0 is not valid: use >= 1"),
    ("pretrain.batch_size", "0", "pretrain.batch_size = 0 is not valid"),
    ("pretrain.lr", "-1.0", "pretrain.lr = -1.0 is not valid: use > 0"),
    ("pretrain.grad_accum", "0", "pretrain.grad_accum = 0 is not valid"),
    ("pretrain.workers", "-1", "pretrain.workers = -1 is not valid: use >= 0"),
    ("probe.batch_size", "0", "probe.batch_size = 0 is not valid"),
]


@pytest.mark.parametrize(("key", "value", "says"), SPEC, ids=[f"{k}={v}" for k, v, _ in SPEC])
def test_a_bad_sweep_spec_is_refused_by_the_dry_run(synth, tmp_path, key, value, says):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'[sweep]\nname = "s"\nout = "{tmp_path / "out"}"\npretrain_data = "{synth}"\n'
        '[pretrain]\npreset = "tiny"\nepochs = 1\n'
    )
    line = fails("benchmarks", "run", spec, "--dry-run", "--set", f"{key}={value}", cache=tmp_path / "c")
    assert says in line, line
    assert not (tmp_path / "out").exists()


def test_a_bad_value_in_a_config_file_is_named_as_written(synth, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('[pretrain]\nepochs = "ten"\n')
    line = fails("pretrain", synth, "--config", toml, "--out", tmp_path / "runs", cache=tmp_path / "c")
    assert f"{toml} [pretrain] epochs = 'ten' is not valid: use an integer" in line, line
    line = fails("pretrain", synth, "--config", toml, "--epochs", "0", "--out", tmp_path / "runs", cache=tmp_path / "c")
    assert "--epochs 0 is not valid" in line, line  # a flag wins over the file, and is named as a flag
