"""Splits: no group leakage, stratification, determinism, predefined columns, feasibility errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mosquito_ssl.data.splits import check_no_leakage, kfold_indices, split_indices
from mosquito_ssl.errors import DataError


def grouped(n_classes=4, groups_per_class=10, per_group=5):
    labels, groups = [], []
    for c in range(n_classes):
        for g in range(groups_per_class):
            labels += [f"c{c}"] * per_group
            groups += [f"c{c}-g{g}"] * per_group
    return labels, groups


def group_sets(split, groups):
    return {k: {groups[i] for i in v} for k, v in split.items()}


@pytest.mark.parametrize("fractions", [(0.9, 0.1), (0.6, 0.2, 0.2)])
def test_no_group_in_two_splits(fractions):
    labels, groups = grouped()
    split = split_indices(len(labels), labels, groups, fractions=fractions, seed=1)
    assert list(split) == ["train", "val", "test"][: len(fractions)]
    sets = list(group_sets(split, groups).values())
    for a in range(len(sets)):
        for b in range(a + 1, len(sets)):
            assert not sets[a] & sets[b]
    assert sorted(np.concatenate(list(split.values()))) == list(range(len(labels)))


def test_stratification_roughly_holds():
    labels, groups = grouped(n_classes=4, groups_per_class=12)
    split = split_indices(len(labels), labels, groups, fractions=(0.75, 0.25), seed=0)
    val = Counter(labels[i] for i in split["val"])
    assert set(val) == {"c0", "c1", "c2", "c3"}
    assert max(val.values()) <= 2 * min(val.values())
    flat = split_indices(len(labels), labels, None, fractions=(0.8, 0.2), seed=0)
    assert Counter(labels[i] for i in flat["val"]) == {f"c{c}": 12 for c in range(4)}


def test_deterministic_for_a_seed():
    labels, groups = grouped()
    a = split_indices(len(labels), labels, groups, seed=7)
    b = split_indices(len(labels), labels, groups, seed=7)
    c = split_indices(len(labels), labels, groups, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_predefined_column_is_honoured():
    labels, groups = grouped(n_classes=2, groups_per_class=6, per_group=2)
    predefined = ["test" if g.endswith(("g0", "g1")) else "train" for g in groups]
    split = split_indices(len(labels), labels, groups, predefined=predefined, seed=0)
    assert {groups[i] for i in split["test"]} == {"c0-g0", "c0-g1", "c1-g0", "c1-g1"}
    assert len(split["val"]) > 0  # carved out of train without touching test
    assert set(split["val"]).isdisjoint(split["test"])
    named = split_indices(4, predefined=["train", "validation", "train", "val"])
    assert list(named["val"]) == [1, 3]


def test_predefined_that_leaks_a_group_is_refused():
    with pytest.raises(DataError, match="group 'g'"):
        split_indices(3, groups=["g", "g", "h"], predefined=["train", "val", "val"])


def test_too_few_examples_names_the_class():
    labels = ["culex"] * 10 + ["aedes"]
    with pytest.raises(DataError, match=r"class 'aedes' has 1 example\(s\).*at least 3.*'aedes'"):
        split_indices(len(labels), labels, fractions=(0.8, 0.1, 0.1))
    groups = [f"g{i % 5}" for i in range(10)] + ["g9"]
    labels = ["culex"] * 10 + ["aedes"] * 1
    with pytest.raises(DataError, match="class 'aedes' has 1 recording group"):
        split_indices(len(labels), labels, groups)


def test_one_class_is_refused():
    with pytest.raises(DataError, match="only one class"):
        split_indices(10, ["a"] * 10)


def test_unlabelled_default_split():
    split = split_indices(100)
    assert len(split["train"]) == 90 and len(split["val"]) == 10


def test_kfold_grouped_stratified():
    labels, groups = grouped(n_classes=3, groups_per_class=5)
    folds = kfold_indices(len(labels), labels, groups, k=5, seed=0)
    assert len(folds) == 5
    tests = np.concatenate([f["test"] for f in folds])
    assert sorted(tests) == list(range(len(labels)))
    for fold in folds:
        check_no_leakage(fold, groups)
    with pytest.raises(DataError, match="at least 6"):
        kfold_indices(len(labels), labels, groups, k=6)
