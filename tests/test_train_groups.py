"""``--train-groups-per-class K``: the training part of each fold keeps at most K groups per class,
chosen by the seed; validation and test are the clips they are without it."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from mosquito_ssl.data.splits import cap_train_groups


def _groups_per_class(idx, labels, groups) -> dict:
    found = defaultdict(set)
    for i in idx:
        found[labels[i]].add(groups[i])
    return {label: len(g) for label, g in found.items()}


def test_cap_keeps_k_groups_per_class_seeded():
    labels = ["a"] * 12 + ["b"] * 6
    groups = [f"a{i // 3}" for i in range(12)] + [f"b{i // 2}" for i in range(6)]  # a: 4 groups, b: 3
    train = np.arange(18)
    capped = cap_train_groups(train, labels, groups, 2, seed=0)
    assert _groups_per_class(capped, labels, groups) == {"a": 2, "b": 2}
    kept = {groups[i] for i in capped}
    assert all(i in capped for i in train if groups[i] in kept)  # whole groups: every clip of a kept group
    assert np.array_equal(capped, cap_train_groups(train, labels, groups, 2, seed=0))  # the seed decides
    assert any(not np.array_equal(capped, cap_train_groups(train, labels, groups, 2, seed=s)) for s in range(1, 6))
    assert np.array_equal(cap_train_groups(train, labels, groups, 9, seed=0), train)  # K above the count: all
    # no groups: each clip is its own group
    assert len(cap_train_groups(np.arange(6), ["a"] * 6, None, 2, seed=0)) == 2


def test_probe_trains_on_k_groups_and_tests_the_same_clips(synth, tmp_path):
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.run import run_probe

    base = dict(data=synth, encoder="handcrafted", out=tmp_path / "runs", folds=3, seed=1)
    full, capped = run_probe(ProbeConfig(**base)), run_probe(ProbeConfig(**base, train_groups_per_class=1))
    assert full.run_dir != capped.run_dir
    for k in range(3):
        groups, full_groups = capped.metrics["group_counts"][f"fold{k}"], full.metrics["group_counts"][f"fold{k}"]
        assert max(groups["train"].values()) == 1 < max(full_groups["train"].values())
        counts, full_counts = capped.metrics["counts"][f"fold{k}"], full.metrics["counts"][f"fold{k}"]
        assert counts["val"] == full_counts["val"] and counts["test"] == full_counts["test"]
        assert counts["train"] != full_counts["train"]

    def test_clips(result):
        frame = pd.read_csv(result.run_dir / "predictions.csv")
        return sorted(frame.loc[frame["split"] == "test", "path"])

    assert test_clips(full) == test_clips(capped)
