"""Probes on frozen embeddings: linear, layer-wise, softmax-weighted layers and MLP.

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny
    mosquito-ssl probe layerwise data/synth --encoder runs/pretrain-tiny

Owns model selection on the validation split. Each probe takes an (N, D) or (N, L+1, D)
array, integer labels and index ``parts`` {train, val, test} and returns ``Fit``s with
predicted codes and probabilities per split. Regularisation (C, alpha, layer, epoch) is
chosen by validation balanced accuracy only; the test split is scored once at the end.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)


@dataclass
class Fit:
    """Predictions of one probe: split -> codes / class probabilities, plus chosen settings."""

    pred: dict[str, np.ndarray] = field(default_factory=dict)
    proba: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)


def logistic(c: float, seed: int = 0) -> Pipeline:
    # class_weight="balanced": HumBugDB-like data is imbalanced and we select by balanced accuracy.
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
    )


def mlp(alpha: float, seed: int = 0) -> Pipeline:
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(256,),
            alpha=alpha,
            early_stopping=True,
            validation_fraction=0.15,
            max_iter=500,
            n_iter_no_change=20,
            random_state=seed,
        ),
    )


def val_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Balanced accuracy, silent about classes a small split lacks (expected here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def _full_proba(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class (a class missing in training gets 0)."""
    proba = np.zeros((len(X), n_classes))
    proba[:, model.classes_] = model.predict_proba(X)
    return proba


def select(
    make: Callable[[float, int], Pipeline],
    grid: Sequence[float],
    X: np.ndarray,
    y: np.ndarray,
    parts: dict[str, np.ndarray],
    seed: int = 0,
    name: str = "C",
) -> tuple[float, float, Pipeline]:
    """(value, validation balanced accuracy, model fit on train) of the best ``grid`` value; ties keep the first."""
    tr, va = parts["train"], parts["val"]
    best, best_score, best_model = None, -np.inf, None
    for value in grid:
        model = make(value, seed).fit(X[tr], y[tr])
        score = val_score(y[va], model.predict(X[va]))
        log.debug("%s=%g: val balanced accuracy %.4f", name, value, score)
        if score > best_score:
            best, best_score, best_model = value, score, model
    # Scores are balanced accuracies (>= 0 > -inf), so any non-empty grid picks a value.
    assert best is not None and best_model is not None, "select needs a non-empty grid"
    return best, float(best_score), best_model


def fit_selected(
    make: Callable[[float, int], Pipeline],
    grid: Sequence[float],
    X: np.ndarray,
    y: np.ndarray,
    parts: dict[str, np.ndarray],
    n_classes: int,
    seed: int = 0,
    name: str = "C",
) -> Fit:
    """Grid-search ``make(value)`` on val, report val from the train-only fit, test from a refit.

    ``grid`` is tried from strongest to weakest regularisation so a tie keeps the stronger one.
    The chosen value is refit on train+val (standard practice: val was only needed to choose
    it) and that model is scored once on test.
    """
    tr, va, te = parts["train"], parts["val"], parts["test"]
    best, best_score, best_model = select(make, grid, X, y, parts, seed, name)
    fit = Fit(params={name: float(best), "val_balanced_accuracy": float(best_score)})
    fit.proba["val"] = _full_proba(best_model, X[va], n_classes)
    final = make(best, seed).fit(X[np.concatenate([tr, va])], y[np.concatenate([tr, va])])
    fit.proba["test"] = _full_proba(final, X[te], n_classes)
    fit.pred = {split: p.argmax(axis=1) for split, p in fit.proba.items()}
    return fit


def linear_probe(X, y, parts, n_classes: int, grid: Sequence[float], seed: int = 0) -> Fit:
    """Standardised logistic regression; C from ``grid`` (ascending = strongest first)."""
    return fit_selected(logistic, sorted(grid), X, y, parts, n_classes, seed, name="C")


def mlp_probe(X, y, parts, n_classes: int, grid: Sequence[float], seed: int = 0) -> Fit:
    """One-hidden-layer MLP (sklearn, early stopping inside train); alpha chosen on val."""
    return fit_selected(mlp, sorted(grid, reverse=True), X, y, parts, n_classes, seed, name="alpha")


def layerwise_probe(
    E: np.ndarray, y, parts, n_classes: int, grid: Sequence[float], seed: int = 0
) -> tuple[list[Fit], int]:
    """Linear probe on every layer of E (N, L+1, D); best layer by VALIDATION balanced accuracy."""
    fits = []
    for layer in range(E.shape[1]):
        fits.append(linear_probe(np.asarray(E[:, layer, :]), y, parts, n_classes, grid, seed))
        log.info("layer %d: val balanced accuracy %.4f", layer, fits[-1].params["val_balanced_accuracy"])
    scores = [f.params["val_balanced_accuracy"] for f in fits]
    return fits, int(np.argmax(scores))  # ties -> the earlier (cheaper) layer


def weighted_probe(
    E: np.ndarray, y, parts, n_classes: int, seed: int = 0, epochs: int = 300, patience: int = 30, lr: float = 1e-2
) -> Fit:
    """Softmax-weighted sum of standardised layers + linear classifier (torch, full batch).

    Trained with Adam and class-weighted cross-entropy on train, early-stopped on validation
    balanced accuracy (so, unlike the linear probe, it is not refit on train+val).
    """
    tr, va, te = parts["train"], parts["val"], parts["test"]
    E32 = np.asarray(E, dtype=np.float32)
    mean, std = E32[tr].mean(axis=0), E32[tr].std(axis=0) + 1e-6  # per layer and dimension
    X = torch.from_numpy((E32 - mean) / std)
    target = torch.as_tensor(y, dtype=torch.long)
    counts = np.bincount(y[tr], minlength=n_classes).astype(np.float32)
    weights = torch.from_numpy(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LayerMix(X.shape[1], X.shape[2], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.float())
    best, best_state, waited = -1.0, None, 0
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        loss_fn(model(X[tr]), target[tr]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            score = val_score(y[va], model(X[va]).argmax(1).numpy())
        if score > best:
            best, waited = score, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif (waited := waited + 1) >= patience:
            break
    # Balanced accuracy is >= 0 > -1, so the first epoch always stores a state.
    assert best_state is not None, "weighted_probe needs epochs >= 1"
    model.load_state_dict(best_state)
    fit = Fit(params={"val_balanced_accuracy": float(best)})
    with torch.no_grad():
        for split, idx in (("val", va), ("test", te)):
            fit.proba[split] = torch.softmax(model(X[idx]), dim=1).numpy().astype(np.float64)
        layer_w = torch.softmax(model.logits, 0).numpy()
    fit.pred = {split: p.argmax(axis=1) for split, p in fit.proba.items()}
    fit.params.update({f"layer_weight:{i}": float(w) for i, w in enumerate(layer_w)})
    return fit


class LayerMix(torch.nn.Module):
    """Learned softmax weights over layers, then one linear layer."""

    def __init__(self, n_layers: int, dim: int, n_classes: int) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(n_layers))
        self.head = torch.nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, L+1, D)
        w = torch.softmax(self.logits, dim=0)
        return self.head((w[None, :, None] * x).sum(dim=1))
