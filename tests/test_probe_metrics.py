"""Probe metrics: our wrappers against direct scikit-learn calls and a hand-computed confusion."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mosquito_ssl.probe.metrics import ROW_KEYS, classification_metrics, confusion, mean_and_std, to_rows

CLASSES = ["aedes", "anopheles", "culex"]
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])
PROBA = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])


def test_metrics_match_sklearn():
    m = classification_metrics(Y_TRUE, Y_PRED, PROBA, CLASSES)
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED)) == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y_TRUE, PROBA, multi_class="ovr", average="macro"))
    precision = precision_score(Y_TRUE, Y_PRED, average=None)
    recall = recall_score(Y_TRUE, Y_PRED, average=None)
    for k, name in enumerate(CLASSES):
        assert m[f"precision:{name}"] == pytest.approx(precision[k])
        assert m[f"recall:{name}"] == pytest.approx(recall[k])
    assert m["recall:culex"] == pytest.approx(0.5)  # by hand: one of two culex clips right


def test_confusion_by_hand():
    frame = confusion(Y_TRUE, Y_PRED, CLASSES)
    assert frame.index.tolist() == CLASSES and frame.columns.tolist() == CLASSES
    assert frame.to_numpy().tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # rows = true class


def test_binary_auc_is_positive_class_auc():
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    m = classification_metrics(y, (p1 > 0.5).astype(int), np.stack([1 - p1, p1], axis=1), ["bg", "mosq"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p1))


def test_absent_class_gives_nan_auc_and_warning(caplog):
    y = np.array([0, 0, 1, 1])  # class 2 absent from this split
    with caplog.at_level(logging.WARNING):
        m = classification_metrics(y, y, PROBA[:4], CLASSES)
    assert np.isnan(m["roc_auc"])
    assert "absent" in caplog.text
    assert m["accuracy"] == 1.0


def test_mean_std_and_rows():
    summary = mean_and_std([{"accuracy": 0.5}, {"accuracy": 1.0}])
    assert summary["accuracy"] == pytest.approx(0.75)
    assert summary["accuracy_std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    rows = to_rows(
        {"accuracy": 0.5}, "test", None, encoder="ssl", freeze="frozen", probe="linear", pooling="mean", seed=0
    )
    assert rows == [
        dict(
            encoder="ssl",
            freeze="frozen",
            probe="linear",
            pooling="mean",
            layer=None,
            seed=0,
            split="test",
            metric="accuracy",
            value=0.5,
        )
    ]
    assert tuple(rows[0]) == ROW_KEYS
