"""The one Trainer policy: both stages share its arguments, add only their own, and build quiet Trainers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import EarlyStoppingCallback, PrinterCallback

from mosquito_ssl import training
from mosquito_ssl.pretrain.train import PretrainConfig
from mosquito_ssl.pretrain.trainer import training_arguments as pretrain_arguments
from mosquito_ssl.probe.config import ProbeConfig
from mosquito_ssl.probe.finetune import _arguments as finetune_arguments

SAME = dict(lr=3e-4, batch_size=4, epochs=3, seed=7)


def _stages(tmp_path: Path):
    pre = PretrainConfig(data=tmp_path, preset="tiny", workers=0, **SAME)
    fine = ProbeConfig(data=tmp_path, probe="finetune", **SAME)
    return pretrain_arguments(pre, tmp_path / "run"), finetune_arguments(fine, tmp_path / "run")


def test_both_stages_share_the_policy(tmp_path):
    pre, fine = _stages(tmp_path)
    shared = training.policy(tmp_path / "run", **SAME)
    # precision: pretraining's "auto" and fine-tuning's bf16-or-fp32 agree without a GPU only
    keys = [k for k in shared if k not in ("bf16", "fp16")] if torch.cuda.is_available() else list(shared)
    assert {k: getattr(pre, k) for k in keys} == {k: getattr(fine, k) for k in keys}
    assert (pre.learning_rate, pre.per_device_eval_batch_size, pre.num_train_epochs, pre.seed) == (3e-4, 4, 3, 7)
    assert pre.eval_strategy == pre.save_strategy == "epoch"
    assert pre.report_to in ("none", [], ["none"]) and pre.disable_tqdm and not pre.remove_unused_columns
    assert pre.use_cpu == (not torch.cuda.is_available())
    assert pre.dataloader_pin_memory == pre.accelerator_config.non_blocking == torch.cuda.is_available()


def test_each_stage_selects_its_own_best_checkpoint(tmp_path):
    pre, fine = _stages(tmp_path)
    # pretraining selects and early-stops on the Trainer's own validation loss
    assert (pre.metric_for_best_model, pre.greater_is_better, pre.label_names) == ("eval_loss", False, [])
    assert pre.prediction_loss_only and pre.gradient_accumulation_steps == 2
    assert (fine.metric_for_best_model, fine.greater_is_better, fine.label_names) == (
        "eval_balanced_accuracy",
        True,
        ["labels"],
    )
    assert fine.data_seed == 7 and fine.save_total_limit == 1


def test_a_stage_cannot_override_the_policy(tmp_path):
    with pytest.raises(TypeError, match="report_to"):
        training.training_arguments(tmp_path, **SAME, report_to="tensorboard")


def test_precision_without_a_gpu_is_fp32(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.precision_flags("auto") == training.precision_flags("fp32") == {}
    assert training.precision_flags("bf16") == {}
    assert "needs a GPU" in caplog.text


def test_trainers_are_quiet_and_stop_early_only_when_asked(tmp_path):
    model = torch.nn.Linear(2, 2)
    rows = [{"input_values": torch.zeros(2)}]
    args = training.training_arguments(tmp_path, **SAME, metric_for_best_model="eval_loss", load_best_model_at_end=True)
    for patience, stops in ((3, True), (None, False)):
        trainer = training.make_trainer(
            args=args, model=model, train_dataset=rows, eval_dataset=rows, patience=patience, threshold=0.1
        )
        kinds = [type(c) for c in trainer.callback_handler.callbacks]
        assert PrinterCallback not in kinds and training.DebugLog in kinds
        early = [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]
        assert bool(early) == stops
        if early:
            assert (early[0].early_stopping_patience, early[0].early_stopping_threshold) == (3, 0.1)
