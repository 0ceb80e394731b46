"""Classification metrics, confusion matrices, prediction tables and long result rows.

Every number comes from scikit-learn; this module only names them the way the results store
does (``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``roc_auc``, ``precision:<class>``,
``recall:<class>``). Used by ``mosquito-ssl probe ...`` (see ``probe/run.py``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

log = logging.getLogger(__name__)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
ROW_KEYS = ("encoder", "freeze", "probe", "pooling", "layer", "seed", "split", "metric", "value")


def roc_auc(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> float:
    """Macro one-vs-rest ROC-AUC (binary: AUC of class 1); NaN + warning if a class is absent."""
    present = np.unique(y_true)
    if len(present) < n_classes:
        log.warning(
            "roc_auc is NaN: class(es) %s absent from this split (AUC needs positives and negatives of every class)",
            sorted(set(range(n_classes)) - set(present)),
        )
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(y_true, proba[:, 1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(range(n_classes))))


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """Headline and per-class metrics of integer-coded predictions (classes[i] names code i)."""
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(classes)))
    with warnings.catch_warnings():
        # A class missing from y_true or y_pred is expected on small splits; the values say so.
        warnings.simplefilter("ignore")
        out = {
            "accuracy": accuracy_score(true, pred),
            "balanced_accuracy": balanced_accuracy_score(true, pred),
            # sklearn's default label set (classes in y_true or y_pred): a class absent from the
            # split and never predicted neither helps nor hurts.
            "macro_f1": f1_score(true, pred, average="macro", zero_division=0),
        }
        precision = precision_score(true, pred, labels=labels, average=None, zero_division=np.nan)
        recall = recall_score(true, pred, labels=labels, average=None, zero_division=np.nan)
    out["roc_auc"] = roc_auc(true, np.asarray(proba), len(classes))
    for name, p, r in zip(classes, precision, recall, strict=False):
        out[f"precision:{name}"] = p
        out[f"recall:{name}"] = r
    return {k: float(v) for k, v in out.items()}


def confusion(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> pd.DataFrame:
    """Counts with index = true class, columns = predicted class (every class, even if unseen)."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    frame = pd.DataFrame(matrix, index=list(classes), columns=list(classes))
    frame.index.name, frame.columns.name = "true", "predicted"
    return frame


def predictions_frame(
    items: Sequence,
    idx: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    split: str,
) -> pd.DataFrame:
    """One row per clip: path, offset, group, label, pred, split, prob:<class>..."""
    frame = pd.DataFrame(
        {
            "path": [str(items[i].path) for i in idx],
            "offset": [float(getattr(items[i], "offset", 0.0) or 0.0) for i in idx],
            "group": [items[i].group for i in idx],
            "label": [classes[k] for k in y_true],
            "pred": [classes[k] for k in y_pred],
            "split": split,
        }
    )
    for k, name in enumerate(classes):
        frame[f"prob:{name}"] = np.asarray(proba)[:, k]
    return frame


def class_counts(y: np.ndarray, parts: dict[str, np.ndarray], classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """Clips per class in each split: ``{split: {class: n}}`` (every class, zeros included)."""
    return {
        split: {classes[k]: int(n) for k, n in enumerate(np.bincount(y[idx], minlength=len(classes)))}
        for split, idx in parts.items()
    }


def group_counts(
    y: np.ndarray, parts: dict[str, np.ndarray], classes: Sequence[str], groups: Sequence | None
) -> dict[str, dict[str, int]]:
    """Groups (recordings, speakers) per class in each split, what ``--train-groups-per-class``
    caps; a clip without a group counts as its own."""
    return {
        split: {
            c: len(
                {groups[i] if groups is not None and groups[i] is not None else f"#clip{i}" for i in idx if y[i] == k}
            )
            for k, c in enumerate(classes)
        }
        for split, idx in parts.items()
    }


def mean_and_std(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    """k-fold summary: ``<metric>`` = mean over folds, ``<metric>_std`` = sample std (ddof=1)."""
    frame = pd.DataFrame(list(per_fold))
    out: dict[str, float] = {}
    for name in frame.columns:
        out[name] = float(frame[name].mean())
        out[f"{name}_std"] = float(frame[name].std(ddof=1)) if len(frame) > 1 else float("nan")
    return out


def to_rows(metrics: dict[str, float], split: str, layer: int | None = None, **keys) -> list[dict]:
    """Long-format result rows (one per metric) with the store's columns."""
    rows = []
    for metric, value in metrics.items():
        row = {k: keys.get(k) for k in ROW_KEYS}
        row.update(layer=layer, split=split, metric=metric, value=float(value))
        rows.append(row)
    return rows
