"""Pretraining: end-to-end tiny run, artifacts, skip-when-done, resume rules, freezing, init-from, epoch lines."""

from __future__ import annotations

import shutil

import pytest
import torch

from mosquito_ssl import runs
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.layout import blocks
from mosquito_ssl.pretrain import train as train_mod
from mosquito_ssl.pretrain.train import PretrainConfig, pretrain


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        species=["aedes_aegypti", "culex_quinquefasciatus"],
        recordings_per_species=3,
        clips_per_recording=3,
        seed=1,
    )


@pytest.fixture(scope="module")
def tiny_run(synth, tmp_path_factory):
    """One real tiny pretraining shared by the tests that only inspect or reuse its outputs."""
    out = tmp_path_factory.mktemp("runs")
    return pretrain(tiny_cfg(synth, out)), out


def tiny_cfg(data, out, **kw):
    base = dict(
        data=data,
        out=out,
        run_name="tiny",
        preset="tiny",
        epochs=2,
        batch_size=4,
        grad_accum=1,
        lr=1e-3,
        workers=0,
        logging_steps=1,
        patience=50,
        method="reconstruct",  # these tests check the reconstruct model (MSE vs mean spectrogram)
    )
    base.update(kw)
    return PretrainConfig(**base)


@pytest.mark.slow
def test_tiny_run_writes_final_loadable_with_plain_transformers(tiny_run):
    from transformers import ASTFeatureExtractor, ASTModel

    run_dir, _ = tiny_run
    final = run_dir / "final"
    for name in (
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "model.pth",
        "ssl_config.json",
        "run_config.json",
        "data_summary.json",
        "metrics.json",
    ):
        assert (final / name).is_file(), name
    mode = runs.file_mode()  # the umask's, for the HF weights too (safetensors writes them 0600)
    checkpoints = list(run_dir.glob("checkpoint-*/model.safetensors"))
    assert checkpoints and all(p.stat().st_mode & 0o777 == mode for p in [*final.iterdir(), *checkpoints])
    assert runs.is_done(run_dir)
    encoder = ASTModel.from_pretrained(final)
    extractor = ASTFeatureExtractor.from_pretrained(final)
    assert extractor.max_length == encoder.config.max_length == 100
    out = encoder(torch.zeros(1, 100, 128))
    assert torch.isfinite(out.last_hidden_state).all()
    metrics = runs.read_json(run_dir / "metrics.json")
    assert metrics["val_mse"] > 0 and metrics["val_mse_mean_baseline"] > 0
    history = runs.read_json(run_dir / "log_history.json")
    assert any("eval_loss" in h for h in history) and any("loss" in h for h in history)
    assert not any("eval_mse" in h for h in history)  # one name for the selection loss: the Trainer's own
    assert (run_dir / "tensorboard").is_dir()
    summary = runs.read_json(run_dir / "data_summary.json")
    assert summary["used"] == 18
    state = torch.load(final / "model.pth", weights_only=True)
    assert any(k.startswith("encoder.") for k in state) and any(k.startswith("decoder") for k in state)


@pytest.mark.slow
def test_done_run_is_skipped_unless_forced(synth, tiny_run, tmp_path, monkeypatch):
    run_dir = shutil.copytree(tiny_run[0], tmp_path / tiny_run[0].name)
    cfg = tiny_cfg(synth, tmp_path)

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(train_mod, "build_trainer", boom)
    assert pretrain(cfg) == run_dir
    with pytest.raises(AssertionError, match="trained again"):
        pretrain(tiny_cfg(synth, tmp_path, force=True))


@pytest.mark.slow
def test_unfinished_run_needs_resume_or_force(synth, tiny_run, tmp_path):
    run_dir = shutil.copytree(tiny_run[0], tmp_path / tiny_run[0].name)
    runs.clear_done(run_dir)  # as if killed after the last checkpoint
    with pytest.raises(ConfigError, match="--resume"):
        pretrain(tiny_cfg(synth, tmp_path))
    assert pretrain(tiny_cfg(synth, tmp_path, resume=True)) == run_dir
    assert runs.is_done(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [{"freeze": "partial:2"}, {"freeze_layers": 2}])
def test_freeze_and_init_from(synth, tiny_run, tmp_path, freeze):
    first = tiny_run[0]
    cfg = tiny_cfg(synth, tmp_path, run_name="b", epochs=1, init_from=first / "final" / "model.pth", **freeze)
    assert cfg.freeze == "partial:2" and cfg.freeze_layers is None
    cache, _, _ = train_mod.load_pretrain_data(cfg)
    model = train_mod.build_model(cfg, cache.settings)
    saved = torch.load(first / "final" / "model.pth", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    enc = model.encoder
    assert not any(p.requires_grad for p in enc.embeddings.parameters())
    assert not any(p.requires_grad for p in blocks(enc)[1].parameters())
    assert all(p.requires_grad for p in blocks(enc)[2].parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_init_from_mismatch_is_a_clear_error(synth, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"encoder.nope": torch.zeros(1)}, bad)
    cfg = tiny_cfg(synth, tmp_path, init_from=bad)
    cache, _, _ = train_mod.load_pretrain_data(cfg)
    with pytest.raises(ConfigError, match="does not match"):
        train_mod.build_model(cfg, cache.settings)


def test_config_validation():
    with pytest.raises(ConfigError, match="loss-on"):
        PretrainConfig(data="x", loss_on="some")
    with pytest.raises(ConfigError, match="precision"):
        PretrainConfig(data="x", precision="fp8")


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"freeze": "thaw"}, "--freeze 'thaw'"),
        ({"freeze": "partial:4", "preset": "tiny"}, "encoder has 3"),  # tiny has 3 blocks
        ({"freeze_layers": -1}, "--freeze-layers -1"),
        ({"freeze_layers": 1, "freeze": "frozen"}, "give only --freeze"),
    ],
)
def test_freeze_is_checked_by_the_one_vocabulary(given, match):
    with pytest.raises(ConfigError, match=match):
        PretrainConfig(data="x", **given)


def test_freeze_spellings_are_canonical():
    assert PretrainConfig(data="x", freeze="none").freeze == "full"
    assert PretrainConfig(data="x", freeze="Partial:1").freeze == "partial:1"
    assert PretrainConfig(data="x", preset="tiny", freeze="partial:3").freeze == "partial:3"  # every block


def test_run_directory_names_survive_the_freeze_rename():
    # Names made before --freeze existed (hash of freeze_layers = K) stay the same, so a sweep
    # resumes its old pretraining runs instead of training them again.
    old = {"method": "reconstruct"}  # the method these names were made with
    assert PretrainConfig(data="x", **old).run_dir().name == "pretrain-base-f4eb139b"
    assert PretrainConfig(data="x", freeze="partial:2", **old).run_dir().name == "pretrain-base-fd3e93d2"
    names = {PretrainConfig(data="x", freeze=f).run_dir().name for f in ("full", "frozen", "partial:0", "partial:1")}
    assert len(names) == 4


def test_epoch_lines_report_train_loss_eval_and_best(caplog):
    from types import SimpleNamespace

    from transformers import TrainerControl

    from mosquito_ssl.pretrain.progress import EpochReport

    report, control = EpochReport("eval_mse"), TrainerControl()  # the label the caller gives
    state = SimpleNamespace(
        global_step=0, best_metric=None, is_world_process_zero=True, epoch=0.0, num_train_epochs=2, max_steps=6
    )
    report.on_train_begin(None, state, control)
    assert report.bar is not None and report.bar.disable  # stderr is not a terminal under pytest
    # (step, logged loss, eval_loss at the end of the epoch); a loss log covers the steps since the last
    logs = ((1, 2.0, None), (2, 4.0, 0.5), (4, 1.0, None), (5, 4.0, 0.7))
    with caplog.at_level("INFO", logger="mosquito_ssl.pretrain.progress"):
        for step, loss, eval_loss in logs:
            state.global_step, state.epoch = step, round(step / 2.5)
            report.on_log(None, state, control, logs={"loss": loss})
            if eval_loss is not None:
                assert report.on_epoch_end(None, state, control).should_log
                report.on_evaluate(None, state, control, metrics={"eval_loss": eval_loss})
    report.on_train_end(None, state, control)
    assert caplog.messages == [
        "epoch 1/2: train loss 3, eval_mse 0.5 (best 0.5)",  # (2 + 4) / 2 steps
        "epoch 2/2: train loss 2, eval_mse 0.7 (best 0.5)",  # (1 * 2 + 4 * 1) / 3 steps
    ]
    assert report.bar is None


@pytest.mark.slow
def test_validation_mse_is_deterministic(synth, tmp_path):
    # the same weights evaluated twice give the same numbers (fixed validation masks)
    cfg = tiny_cfg(synth, tmp_path)
    cache, train_idx, val_idx = train_mod.load_pretrain_data(cfg)
    model = train_mod.build_model(cfg, cache.settings)
    from mosquito_ssl.pretrain.evaluate import baseline_and_final_mse

    a = baseline_and_final_mse(model, cache, train_idx, val_idx, 4)
    b = baseline_and_final_mse(model, cache, train_idx, val_idx, 4)
    assert a == b
    assert a["val_mse"] > 0 and a["val_mse_masked"] is not None


def test_a_checkpoint_that_does_not_read_back_is_not_resumed_from(tmp_path, caplog):
    from mosquito_ssl.pretrain.trainer import last_complete_checkpoint

    def checkpoint(step: int, state: str = '{"global_step": 1}', optimizer: bytes | None = None):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in ("optimizer.pt", "scheduler.pt"):
            torch.save({"state": {}}, folder / name)
        if optimizer is not None:
            (folder / "optimizer.pt").write_bytes(optimizer)
        (folder / "trainer_state.json").write_text(state)

    checkpoint(2)
    checkpoint(4, optimizer=b"\x80\x02garbage")  # a damaged file
    checkpoint(6, state="")  # killed while the Trainer wrote its state
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sum("cannot be read back" in r.getMessage() for r in caplog.records) == 2
