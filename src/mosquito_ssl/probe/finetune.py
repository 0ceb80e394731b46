"""Fine-tuning: ``probe/classifier.py``'s encoder + head trained with the Hugging Face ``Trainer``.

    mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --freeze full --folds 5

Owns the protocol: train on train and choose the epoch on validation (epoch 0, the linear
probe itself, is a candidate under ``--head-init probe``); then score test as ``--refit`` says
(``REFIT``): ``head`` (the default) fits the linear probe of the fine-tuned encoder as ``probe
linear`` fits its own (C on val, refit on train + val), ``all`` trains the recipe again on
train + val for the chosen epochs, ``none`` keeps the model chosen on val (trained on train
only). ``probe linear`` refits on train + val, so with ``head`` or ``all`` both score test with
models that saw the same labels; when epoch 0 wins, test is exactly ``probe linear``'s. Also the Trainer set-up: the recipe's
parameter groups, warm-up then cosine decay over ``--epochs``, best epoch by validation balanced
accuracy; the rest of the arguments, early stopping and the quiet console are
``mosquito_ssl.training``'s. Under ``--folds`` every fold starts from the same encoder weights.
Checkpoints are deleted after training (the run keeps predictions and metrics, not weights).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from .. import training
from .classifier import ASTClassifier, build_classifier, class_weights
from .linear import Fit, linear_probe, val_score
from .recipe import balanced_sampler, parameter_groups, probe_head

log = logging.getLogger(__name__)


def _compute_metrics(pred) -> dict:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    return {"balanced_accuracy": val_score(pred.label_ids, logits.argmax(-1))}


def _arguments(cfg, out: Path, select: bool = True) -> TrainingArguments:
    """The shared policy (``mosquito_ssl.training``) plus the recipe's schedule; ``select``: evaluate
    every epoch and keep the best by validation balanced accuracy (a refit trains a fixed length)."""
    chosen = dict(load_best_model_at_end=True, metric_for_best_model="eval_balanced_accuracy", greater_is_better=True)
    return training.training_arguments(
        out,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,  # a refit too: the schedule of its first epochs is the selection run's
        seed=cfg.seed,
        precision=_precision(),
        select=select,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup,  # a fraction of all steps (below 1)
        weight_decay=cfg.weight_decay,
        logging_strategy="epoch",
        save_total_limit=1,
        data_seed=cfg.seed,
        label_names=["labels"],
        **(chosen if select else {}),
    )


def _precision() -> str:
    # bf16 where the GPU has it, else fp32, as fine-tuning always ran: pretraining's "auto"
    # falls back to fp16, which would change fine-tuning's numbers on GPUs without bf16.
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def _optimizer(model: ASTClassifier, cfg):
    groups = parameter_groups(model, cfg.lr, cfg.head_lr, cfg.layer_decay, cfg.weight_decay)
    return torch.optim.AdamW(groups)


class _FineTuner(Trainer):
    """The Trainer with class-balanced sampling when ``sampler`` is given (``--balance sampler``)."""

    def __init__(self, *args, sampler=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.balanced = sampler

    def _get_train_sampler(self, *args, **kwargs):
        return self.balanced if self.balanced is not None else super()._get_train_sampler(*args, **kwargs)


class _StopAfter(TrainerCallback):
    """End training after ``epochs`` epochs (the refit's chosen length; the schedule stays ``--epochs``')."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.epoch is not None and state.epoch >= self.epochs - 1e-6:
            control.should_training_stop = True


def _train(cfg, model, cache, y, train, out: Path, val=None, stop: int | None = None) -> Trainer:
    """A Trainer of ``model`` on clips ``train``: with ``val``, epoch selection and early stopping;
    without, ``stop`` epochs and no evaluation (the refit)."""
    from ..data.features import FeatureDataset

    train_y = y[train]
    trainer = training.make_trainer(
        _FineTuner,
        args=_arguments(cfg, out, select=val is not None),
        model=model,
        train_dataset=FeatureDataset(cache, train, y),
        eval_dataset=None if val is None else FeatureDataset(cache, val, y),
        compute_metrics=_compute_metrics,
        optimizers=(_optimizer(model, cfg), None),
        patience=cfg.patience if val is not None else None,
        callbacks=[_StopAfter(stop)] if stop is not None else None,
        sampler=balanced_sampler(train_y, cfg.seed) if cfg.balance == "sampler" else None,
    )
    return trainer


def _classifier(cfg, encoder, y, train, n_classes: int) -> ASTClassifier:
    torch.manual_seed(cfg.seed)
    weights = class_weights(y[train], n_classes) if cfg.balance == "weights" else None
    return build_classifier(
        encoder, cfg.freeze, n_classes, cfg.pooling, cfg.dropout, weights, cfg.specaugment, cfg.mixup
    )


def _predict(trainer: Trainer, cache, idx, y) -> np.ndarray:
    """Softmax probabilities of clips ``idx``."""
    from ..data.features import FeatureDataset

    logits = trainer.predict(FeatureDataset(cache, idx, y)).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1).numpy()


def _chosen_epoch(trainer: Trainer) -> int:
    """The epoch the Trainer kept: the first with the best validation balanced accuracy."""
    best = trainer.state.best_metric
    scores = [
        (e["epoch"], e["eval_balanced_accuracy"]) for e in trainer.state.log_history if "eval_balanced_accuracy" in e
    ]
    return round(next(epoch for epoch, score in scores if score == best))


def finetune(
    cfg, encoder, cache, y: np.ndarray, parts: dict, classes: list[str], run_dir: Path, X=None, pristine=None
) -> Fit:
    """Train on train, choose the epoch on val, predict val; test from the refit on train + val
    (``cfg.refit``) or from the chosen model. ``X``: the frozen encoder's pooled features of every
    clip (``--head-init probe``); ``pristine``: the encoder's weights before any training (refit)."""
    out = Path(run_dir) / "trainer"
    model = _classifier(cfg, encoder, y, parts["train"], len(classes))
    probe_score = np.nan
    if X is not None:
        probe_score = probe_head(model.head, X, y, parts, len(classes), cfg.c_grid, cfg.seed)
        log.info("head set to the linear probe (val balanced accuracy %.4f)", probe_score)
    trainer = _train(cfg, model, cache, y, parts["train"], out, val=parts["val"])
    start = _epoch_zero(trainer, model) if X is not None else None
    trainer.train()
    best, epoch = float(trainer.state.best_metric or np.nan), _chosen_epoch(trainer)
    fit = Fit(params={"epochs_run": float(trainer.state.epoch or 0), "val_balanced_accuracy": best})
    if start is not None:
        fit.params["probe_val_balanced_accuracy"] = probe_score
        if start[0] >= best:  # no epoch beat the linear probe on val: keep the probe (epoch 0)
            model.load_state_dict(start[1])
            fit.params["val_balanced_accuracy"], epoch = start[0], 0
        fit.params["best_epoch_zero"] = float(epoch == 0)
    fit.params["chosen_epoch"] = float(epoch)
    log.info("fine-tuned %.0f epochs; epoch %d chosen on validation (%.4f)", fit.params["epochs_run"], epoch, best)
    fit.proba["val"] = _predict(trainer, cache, parts["val"], y)
    fit.proba["test"] = _test_proba(cfg, trainer, encoder, cache, y, parts, classes, out, X, pristine, epoch)
    fit.pred = {split: p.argmax(axis=1) for split, p in fit.proba.items()}
    shutil.rmtree(out, ignore_errors=True)  # weights are not kept: the numbers are the product
    return fit


def _test_proba(cfg, trainer, encoder, cache, y, parts, classes, out, X, pristine, epoch: int) -> np.ndarray:
    """Test probabilities after the epoch choice on val, by ``cfg.refit`` (``REFIT``)."""
    if cfg.refit == "none":
        return _predict(trainer, cache, parts["test"], y)
    if epoch == 0 and X is not None:  # the linear probe won: exactly what `probe linear` scores on test
        return linear_probe(X, y, parts, len(classes), cfg.c_grid, cfg.seed).proba["test"]
    if cfg.refit == "head":  # the linear probe of the fine-tuned encoder, as `probe linear` fits it
        features = _pooled(trainer.model, cache, cfg.pooling, cfg.batch_size)
        return linear_probe(features, y, parts, len(classes), cfg.c_grid, cfg.seed).proba["test"]
    both = np.concatenate([parts["train"], parts["val"]])
    encoder.load_state_dict(pristine)
    model = _classifier(cfg, encoder, y, both, len(classes))
    if X is not None:  # LP-FT from the probe refit on train + val, as `probe linear` refits it
        probe_head(model.head, X, y, parts, len(classes), cfg.c_grid, cfg.seed, refit=True)
    refit = _train(cfg, model, cache, y, both, out / "refit", stop=epoch)
    refit.train()
    log.info("refit on train + val for %d epochs", epoch)
    return _predict(refit, cache, parts["test"], y)


def _pooled(model: ASTClassifier, cache, pooling: str, batch_size: int) -> np.ndarray:
    """(N, width) pooled last-layer features of every clip through ``model``'s (fine-tuned) encoder.

    Not ``embeddings.compute_embeddings``: that caches every layer and pooling on disk under the
    weights' fingerprint, and each fold's fine-tuned weights are used once; the pooling is its own.
    """
    from .embeddings import pool_tokens

    device, rows = next(model.parameters()).device, []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(cache.features), batch_size):
            x = torch.from_numpy(np.array(cache.features[start : start + batch_size])).to(device)
            rows.append(pool_tokens(model.encoder(x).last_hidden_state, model.grid)[pooling].float().cpu().numpy())
    return np.concatenate(rows)


def _epoch_zero(trainer: Trainer, model: ASTClassifier) -> tuple[float, dict]:
    """(validation balanced accuracy, weights) before the first step: epoch 0 is a candidate too.

    With ``--head-init probe`` the model starts as the linear probe; the epoch chosen on
    validation may be that start, so fine-tuning never reports less than its own probe on val.
    """
    import copy

    score = float(trainer.evaluate()["eval_balanced_accuracy"])
    return score, copy.deepcopy(model.state_dict())


def finetune_folds(cfg, encoder, cache, y: np.ndarray, classes: list[str], run_dir: Path, X=None):
    """A ``fit_fold(parts) -> (entries, params)`` that fine-tunes a fresh copy of ``encoder`` per fold."""
    import copy

    pristine = copy.deepcopy(encoder.state_dict())

    def fit_fold(parts: dict):
        encoder.load_state_dict(pristine)
        fit = finetune(cfg, encoder, cache, y, parts, classes, run_dir, X, pristine)
        return [("finetune", None, fit)], dict(fit.params)

    return fit_fold
