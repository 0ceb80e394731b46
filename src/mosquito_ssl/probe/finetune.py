"""Fine-tuning: encoder + classification head trained with the Hugging Face ``Trainer``.

    mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --freeze full --folds 5

Owns ``ASTClassifier`` (encoder -> pooling -> dropout -> Linear; cross-entropy on the targets
``probe/recipe.py`` augments, class-weighted under ``--balance weights`` so imbalanced sets such
as HumBugDB do not collapse onto the majority class) and the Trainer set-up: the recipe's
parameter groups, warm-up then cosine decay, best model by validation balanced accuracy; the
rest of the arguments, early stopping and the quiet console are ``mosquito_ssl.training``'s,
shared with pretraining. Freezing (``frozen`` = head only, ``partial:K``, ``full``) goes
through ``model.freeze.apply_freeze``; frozen parameters get no gradient. Under ``--folds``
every fold starts from the same encoder weights. Checkpoints are deleted after training (the
run keeps predictions and metrics, not weights).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from .. import training
from ..model.presets import patch_grid
from .embeddings import pool_tokens, pooling_width
from .linear import Fit, val_score
from .recipe import augment, balanced_sampler, parameter_groups, probe_head

log = logging.getLogger(__name__)


class StandardizedHead(torch.nn.Module):
    """Linear on standardised features: ``linear((x - mean) / scale)``; mean 0, scale 1 until LP-FT sets them.

    The pooled features of an encoder sit far from 0 with small spread, so a linear probe's
    weights on raw features are large and ill-conditioned: one Adam step on them moves the
    logits more than the whole class signal. Keeping the probe's StandardScaler as fixed
    buffers lets the head train in the space the probe was fit in.
    """

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, width: int, n_classes: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, n_classes)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.scale)


class ASTClassifier(torch.nn.Module):
    """AST encoder + pooling + dropout + linear head; training batches are augmented (recipe.augment)."""

    class_weights: torch.Tensor  # registered as a buffer in __init__

    def __init__(
        self,
        encoder,
        n_classes: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        class_weights: torch.Tensor | None = None,
        specaugment: float = 0.0,
        mixup: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.grid = patch_grid(encoder.config)
        width = pooling_width(pooling, encoder.config.hidden_size, self.grid)
        self.dropout = torch.nn.Dropout(dropout)
        self.head = StandardizedHead(width, n_classes)
        self.n_classes, self.specaugment, self.mixup = n_classes, specaugment, mixup
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(n_classes))

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None):
        target = None
        if labels is not None:
            target = torch.nn.functional.one_hot(labels, self.n_classes).to(input_values.dtype)
            if self.training:
                input_values, target = augment(input_values, target, self.specaugment, self.mixup)
        hidden = self.encoder(input_values).last_hidden_state
        logits = self.head(self.dropout(pool_tokens(hidden, self.grid)[self.pooling]))
        loss = None
        if target is not None:
            loss = torch.nn.functional.cross_entropy(logits, target, weight=self.class_weights)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """n / (K * count): the 'balanced' weights of scikit-learn (absent classes weigh 0)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def build_classifier(
    encoder,
    freeze: str,
    n_classes: int,
    pooling: str = "mean",
    dropout: float = 0.1,
    weights: torch.Tensor | None = None,
    specaugment: float = 0.0,
    mixup: float = 0.0,
) -> ASTClassifier:
    from ..model.freeze import apply_freeze

    trainable = apply_freeze(encoder, freeze)
    log.info("freeze %s: %d trainable encoder parameters", freeze, trainable)
    return ASTClassifier(encoder, n_classes, pooling, dropout, weights, specaugment, mixup)


def _compute_metrics(pred) -> dict:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    return {"balanced_accuracy": val_score(pred.label_ids, logits.argmax(-1))}


def _arguments(cfg, out: Path) -> TrainingArguments:
    """The shared policy (``mosquito_ssl.training``) plus the recipe's schedule and selection by balanced accuracy."""
    return training.training_arguments(
        out,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        seed=cfg.seed,
        precision=_precision(),
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup,  # a fraction of all steps (below 1)
        weight_decay=cfg.weight_decay,
        logging_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_balanced_accuracy",
        greater_is_better=True,
        data_seed=cfg.seed,
        label_names=["labels"],
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


def finetune(
    cfg, encoder, cache, y: np.ndarray, parts: dict, classes: list[str], run_dir: Path, X: np.ndarray | None = None
) -> Fit:
    """Train on train, early-stop/select on val, predict val and test with softmax probabilities.

    ``X``: the frozen encoder's pooled features of every clip, for ``--head-init probe``.
    """
    from ..data.features import FeatureDataset

    torch.manual_seed(cfg.seed)
    train_y = y[parts["train"]]
    weights = class_weights(train_y, len(classes)) if cfg.balance == "weights" else None
    model = build_classifier(
        encoder, cfg.freeze, len(classes), cfg.pooling, cfg.dropout, weights, cfg.specaugment, cfg.mixup
    )
    probe_score = np.nan
    if X is not None:
        probe_score = probe_head(model.head, X, y, parts, len(classes), cfg.c_grid, cfg.seed)
        log.info("head set to the linear probe (val balanced accuracy %.4f)", probe_score)
    out = Path(run_dir) / "trainer"
    trainer = training.make_trainer(
        _FineTuner,
        args=_arguments(cfg, out),
        model=model,
        train_dataset=FeatureDataset(cache, parts["train"], y),
        eval_dataset=FeatureDataset(cache, parts["val"], y),
        compute_metrics=_compute_metrics,
        optimizers=(_optimizer(model, cfg), None),
        patience=cfg.patience,
        sampler=balanced_sampler(train_y, cfg.seed) if cfg.balance == "sampler" else None,
    )
    start = _epoch_zero(trainer, model) if X is not None else None
    trainer.train()
    best = float(trainer.state.best_metric or np.nan)
    fit = Fit(params={"epochs_run": float(trainer.state.epoch or 0), "val_balanced_accuracy": best})
    if start is not None:
        fit.params["probe_val_balanced_accuracy"] = probe_score
        if start[0] >= best:  # no epoch beat the linear probe on val: keep the probe (epoch 0)
            model.load_state_dict(start[1])
            fit.params["val_balanced_accuracy"] = best = start[0]
        fit.params["best_epoch_zero"] = float(start[0] >= best)
    log.info("fine-tuned %.0f epochs; best validation balanced accuracy %.4f", fit.params["epochs_run"], best)
    for split in ("val", "test"):
        logits = trainer.predict(FeatureDataset(cache, parts[split], y)).predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        fit.proba[split] = torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1).numpy()
        fit.pred[split] = fit.proba[split].argmax(axis=1)
    shutil.rmtree(out, ignore_errors=True)  # weights are not kept: the numbers are the product
    return fit


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
        fit = finetune(cfg, encoder, cache, y, parts, classes, run_dir, X)
        return [("finetune", None, fit)], dict(fit.params)

    return fit_fold
