"""Fine-tuning: encoder + classification head trained with the Hugging Face ``Trainer``.

    mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --freeze partial:1

Owns ``ASTClassifier`` (encoder -> pooling -> dropout -> Linear, class-weighted cross-entropy
so imbalanced sets such as HumBugDB do not collapse onto the majority class) and the Trainer
set-up: evaluation each epoch, best model by validation balanced accuracy, early stopping,
``report_to="none"``. Freezing (``frozen`` = head only, ``partial:K``, ``full``) goes through
``model.freeze.apply_freeze``; frozen parameters get no gradient. Checkpoints are deleted
after training (the run keeps predictions and metrics, not weights).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from ..model.presets import patch_grid
from .embeddings import pool_tokens, pooling_width
from .linear import Fit, val_score

log = logging.getLogger(__name__)


class ASTClassifier(torch.nn.Module):
    """AST encoder + pooling + dropout + linear head; loss = class-weighted cross-entropy."""

    class_weights: torch.Tensor  # registered as a buffer in __init__

    def __init__(
        self,
        encoder,
        n_classes: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.grid = patch_grid(encoder.config)
        width = pooling_width(pooling, encoder.config.hidden_size, self.grid)
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(width, n_classes)
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.ones(n_classes))

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None):
        hidden = self.encoder(input_values).last_hidden_state
        logits = self.head(self.dropout(pool_tokens(hidden, self.grid)[self.pooling]))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels, weight=self.class_weights)
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
) -> ASTClassifier:
    from ..model.freeze import apply_freeze

    trainable = apply_freeze(encoder, freeze)
    log.info("freeze %s: %d trainable encoder parameters", freeze, trainable)
    return ASTClassifier(encoder, n_classes, pooling, dropout, weights)


def _compute_metrics(pred) -> dict:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    return {"balanced_accuracy": val_score(pred.label_ids, logits.argmax(-1))}


def _arguments(cfg, out: Path) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        warmup_steps=0.1,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_balanced_accuracy",
        greater_is_better=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=True,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )


def _optimizer(model: ASTClassifier, cfg):
    # The fresh head learns at head_lr; the pretrained encoder at the smaller lr.
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    groups = [{"params": head, "lr": cfg.head_lr}] + ([{"params": body, "lr": cfg.lr}] if body else [])
    return torch.optim.AdamW(groups, weight_decay=0.01)


class _DebugLog(TrainerCallback):
    """The Trainer's log dictionaries go to the debug log (shown with ``mosquito-ssl -v``), not stdout."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        logging.getLogger(__name__).debug("fine-tune %s", logs)


def finetune(cfg, encoder, cache, y: np.ndarray, parts: dict, classes: list[str], run_dir: Path) -> Fit:
    """Train on train, early-stop/select on val, predict val and test with softmax probabilities."""
    from ..data.features import FeatureDataset

    torch.manual_seed(cfg.seed)
    model = build_classifier(
        encoder, cfg.freeze, len(classes), cfg.pooling, cfg.dropout, class_weights(y[parts["train"]], len(classes))
    )
    out = Path(run_dir) / "trainer"
    trainer = Trainer(
        model=model,
        args=_arguments(cfg, out),
        train_dataset=FeatureDataset(cache, parts["train"], y),
        eval_dataset=FeatureDataset(cache, parts["val"], y),
        compute_metrics=_compute_metrics,
        optimizers=(_optimizer(model, cfg), None),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), _DebugLog()],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dictionary to stdout
    trainer.train()
    fit = Fit(
        params={
            "epochs_run": float(trainer.state.epoch or 0),
            "val_balanced_accuracy": float(trainer.state.best_metric or np.nan),
        }
    )
    for split in ("val", "test"):
        logits = trainer.predict(FeatureDataset(cache, parts[split], y)).predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        fit.proba[split] = torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1).numpy()
        fit.pred[split] = fit.proba[split].argmax(axis=1)
    shutil.rmtree(out, ignore_errors=True)  # weights are not kept: the numbers are the product
    return fit
