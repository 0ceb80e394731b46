"""The fine-tuning classifier: AST encoder -> pooling -> dropout -> standardised linear head.

    mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --freeze full --folds 5

Owns ``ASTClassifier`` (cross-entropy on the targets ``probe/recipe.py`` augments,
class-weighted under ``--balance weights`` so imbalanced sets such as HumBugDB do not collapse
onto the majority class), its ``StandardizedHead`` (the linear probe's StandardScaler kept as
fixed buffers, so LP-FT starts exactly at the probe) and ``build_classifier`` (freezing through
``model.freeze.apply_freeze``: frozen parameters get no gradient). ``finetune.py`` trains it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from ..model.presets import patch_grid
from .embeddings import pool_tokens, pooling_width
from .recipe import augment

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
