"""``mosquito-ssl pretrain --method mae|teacher|byol``: training, final/, config, init-from, kill and resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import ASTModel

from mosquito_ssl.config import resolve
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.pretrain.train import PretrainConfig, pretrain
from mosquito_ssl.pretrain.trainer import last_complete_checkpoint
from procs import cli_env, kill_when

METHODS = ["mae", "teacher", "byol"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        species=["aedes_aegypti", "culex_quinquefasciatus"],
        recordings_per_species=3,
        clips_per_recording=4,
        seed=3,
    )


def _cfg(data, out, method, **kw):
    base = dict(
        data=data, out=out, run_name=method, preset="tiny", epochs=2, batch_size=4, grad_accum=1,
        workers=0, lr=1e-3, patience=100, method=method,
    )  # fmt: skip
    return PretrainConfig(**{**base, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_writes_a_final_folder(synth, tmp_path, method):
    run_dir = pretrain(_cfg(synth, tmp_path, method))
    final = run_dir / "final"
    ssl_config = json.loads((final / "ssl_config.json").read_text())
    assert ssl_config["method"] == method
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["method"] == method and torch.isfinite(torch.tensor(metrics["val_loss"]))
    encoder = ASTModel.from_pretrained(final)
    assert encoder.config.time_stride == encoder.config.patch_size == 16
    history = json.loads((run_dir / "log_history.json").read_text())
    assert [round(h["epoch"]) for h in history if "eval_loss" in h] == [1, 2]


def test_method_settings_resolve_from_toml_and_flags(tmp_path, synth):
    toml = tmp_path / "p.toml"
    toml.write_text('[pretrain]\nmethod = "teacher"\nmask_ratio = 0.6\nviews = 2\n')
    cfg = resolve(PretrainConfig, toml, "pretrain", {"data": synth, "views": 3, "ema_decay": None})
    settings = cfg.method_settings()
    assert (settings.mask_ratio, settings.views, settings.ema_decay) == (0.6, 3, 0.999)
    with pytest.raises(ConfigError, match="--mixup-ratio is a setting of --method byol"):
        resolve(PretrainConfig, toml, "pretrain", {"data": synth, "mixup_ratio": 0.2})


def test_reconstruct_run_names_do_not_change_with_method_fields(synth, tmp_path):
    cfg = PretrainConfig(data=synth, out=tmp_path, preset="tiny", method="reconstruct")
    assert "method" not in cfg.science() and "mask_ratio" not in cfg.science()
    mae = PretrainConfig(data=synth, out=tmp_path, preset="tiny", method="mae")
    assert mae.science()["method"] == "mae" and "mask_strength" not in mae.science()
    assert cfg.run_dir() != mae.run_dir()


@pytest.mark.slow
def test_init_from_a_teacher_model_pth(synth, tmp_path):
    first = pretrain(_cfg(synth, tmp_path, "teacher", epochs=1))
    state = torch.load(first / "final" / "model.pth", weights_only=True)
    assert any(k.startswith("teacher.") for k in state)
    second = pretrain(
        _cfg(synth, tmp_path, "teacher", epochs=1, run_name="again", init_from=first / "final" / "model.pth")
    )
    assert (second / "DONE").exists()
    with pytest.raises(ConfigError, match="--init-from"):
        pretrain(_cfg(synth, tmp_path, "mae", epochs=1, run_name="wrong", init_from=first / "final" / "model.pth"))


def _cmd(data, out, *extra):
    return [
        sys.executable, "-m", "mosquito_ssl", "pretrain", str(data), "--out", str(out), "--run-name", "r",
        "--preset", "tiny", "--epochs", "3", "--batch-size", "4", "--grad-accum", "1", "--workers", "0",
        "--lr", "1e-3", "--method", "teacher", "--views", "2", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_teacher_sigkill_then_resume_keeps_the_ema_teacher(synth, tmp_path):
    run_dir = tmp_path / "r"
    proc = subprocess.Popen(_cmd(synth, tmp_path), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert kill_when(proc, lambda: last_complete_checkpoint(run_dir) is not None, timeout=240)
    checkpoint = last_complete_checkpoint(run_dir)
    saved = load_file(f"{checkpoint}/model.safetensors")
    teacher = {k: v for k, v in saved.items() if k.startswith("teacher.")}
    assert teacher  # the EMA teacher is part of every checkpoint
    # The teacher lags the student: it is not a fresh copy of it.
    assert not torch.equal(saved["teacher.embeddings.cls_token"], saved["encoder.embeddings.cls_token"])
    done = subprocess.run(_cmd(synth, tmp_path, "--resume"), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stderr
    assert (run_dir / "DONE").exists()
    history = json.loads((run_dir / "log_history.json").read_text())
    assert [round(h["epoch"]) for h in history if "eval_loss" in h] == [1, 2, 3]


# (method, its stride at patch 8): no overlap for the masked methods, AST's ratio for reconstruct
PATCH_8 = [("reconstruct", 5), ("mae", 8), ("teacher", 8), ("byol", 8)]


@pytest.mark.parametrize(("method", "stride"), PATCH_8, ids=[m for m, _ in PATCH_8])
def test_patch_size_8_trains_and_final_loads_in_plain_transformers(synth, tmp_path_factory, method, stride):
    # Half-second clips at 64 mel bins keep the grids as small as the default tests' (8 x 6 at stride 8);
    # one feature cache for the four methods.
    cache = tmp_path_factory.getbasetemp() / "patch8-cache"
    small = dict(patch_size=8, clip_seconds=0.5, num_mel_bins=64, epochs=1, max_steps=1, cache_dir=cache)
    run_dir = pretrain(_cfg(synth, tmp_path_factory.mktemp(method), method, **small))
    encoder = ASTModel.from_pretrained(run_dir / "final")  # plain transformers, no code of ours
    cfg = encoder.config
    assert (cfg.patch_size, cfg.frequency_stride, cfg.time_stride) == (8, stride, stride)
    assert encoder.embeddings.patch_embeddings.projection.weight.shape[-2:] == (8, 8)
    grid = ((64 - 8) // stride + 1) * ((50 - 8) // stride + 1)
    assert encoder(input_values=torch.zeros(1, 50, 64)).last_hidden_state.shape[1] == 2 + grid
    assert json.loads((run_dir / "config.json").read_text())["patch_size"] == 8


def test_run_names_without_patch_size_are_those_before_it():
    """Names as the code before --patch-size computed them (data "/"); AST's 16 spelled out keeps them."""
    before = {
        "reconstruct": "pretrain-tiny-df462825",
        "mae": "pretrain-tiny-1dbc4108",
        "teacher": "pretrain-tiny-dc0d2f3c",
        "byol": "pretrain-tiny-8ac28fbd",
    }
    assert {m: PretrainConfig(data="/", method=m, preset="tiny").run_dir().name for m in before} == before
    ast = PretrainConfig(data="/", preset="tiny", patch_size=16).run_dir().name
    assert ast == before["mae"] != PretrainConfig(data="/", preset="tiny", patch_size=8).run_dir().name
    with pytest.raises(ConfigError, match="--pretrained ckpt brings its own; drop --patch-size"):
        PretrainConfig(data="/", pretrained="ckpt", patch_size=8)
