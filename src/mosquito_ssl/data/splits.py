"""Train/val(/test) splits and k-fold folds: stratified by label, never leaking a group.

Owns ``split_indices`` (the default 90/10 with seed 42 is the pretraining split),
``kfold_indices`` and the feasibility checks run before any expensive work. Used by
``mosquito-ssl pretrain DATA`` and ``mosquito-ssl probe ...``.

All splitting is scikit-learn's (StratifiedGroupKFold, GroupShuffleSplit, train_test_split);
this module only chooses the splitter, checks inputs and verifies the group guarantee.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from ..errors import ConfigError, DataError

SPLIT_NAMES = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "eval": "test",
}  # fmt: skip


def check_labels(labels: Sequence | None, groups: Sequence | None, needed: int, what: str) -> None:
    """Every class needs ``needed`` examples (distinct groups when grouped); at least two classes."""
    if labels is None:
        return
    per_class: dict = defaultdict(set)
    for i, label in enumerate(labels):
        per_class[label].add(groups[i] if groups is not None else i)
    if len(per_class) < 2:
        only = next(iter(per_class), None)
        raise DataError(f"only one class ({only!r}) in the labels: a {what} needs at least two classes")
    unit = "recording group(s)" if groups is not None else "example(s)"
    for label, members in sorted(per_class.items(), key=lambda kv: (len(kv[1]), str(kv[0]))):
        if len(members) < needed:
            raise DataError(
                f"class {label!r} has {len(members)} {unit} but the {what} needs at least {needed}: "
                f"add recordings of {label!r} or drop the class"
            )


def check_no_leakage(splits: dict[str, np.ndarray], groups: Sequence | None) -> None:
    """Raise if any group has members in two splits (the hard guarantee)."""
    if groups is None:
        return
    owner: dict = {}
    for name, idx in splits.items():
        for g in {groups[i] for i in idx}:
            if owner.setdefault(g, name) != name:
                raise DataError(f"group {g!r} is in both {owner[g]} and {name}: fix the split column")


def _two_way(idx: np.ndarray, frac: float, labels, groups, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (keep, held) with about ``frac`` of it held out."""
    y = None if labels is None else np.asarray(labels, dtype=object)[idx].astype(str)
    g = None if groups is None else np.asarray(groups, dtype=object)[idx].astype(str)
    if g is not None and y is not None:
        n_groups = len(set(g))
        k = int(min(max(2, round(1 / frac)), n_groups))
        sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class < n_splits" is expected here
            warnings.simplefilter("ignore", UserWarning)
            keep, held = next(sgkf.split(idx, y, g))
    elif g is not None:
        gss = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
        keep, held = next(gss.split(idx, groups=g))
    else:
        n_held = max(1, round(frac * len(idx)))
        if y is not None:
            n_held = min(max(n_held, len(set(y))), len(idx) - len(set(y)))
        keep, held = train_test_split(np.arange(len(idx)), test_size=n_held, random_state=seed, stratify=y)
    return np.sort(idx[keep]), np.sort(idx[held])


def _check_fractions(fractions: Sequence[float]) -> tuple[str, ...]:
    if len(fractions) not in (2, 3) or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions {tuple(fractions)} must be 2 or 3 positive numbers summing to 1")
    return SPLIT_NAMES[: len(fractions)]


def _canonical_splits(predefined: Sequence) -> np.ndarray:
    canon = []
    for i, value in enumerate(predefined):
        key = None if value is None else SPLIT_ALIASES.get(str(value).strip().lower())
        if key is None:
            raise DataError(
                f"split value {value!r} (item {i}) is not one of train/val/validation/test: fix the split column"
            )
        canon.append(key)
    return np.asarray(canon)


def _from_predefined(predefined, names, fractions, labels, groups, seed) -> dict[str, np.ndarray]:
    canon = _canonical_splits(predefined)
    out = {name: np.flatnonzero(canon == name) for name in SPLIT_NAMES if (canon == name).any()}
    if "train" not in out:
        raise DataError("the split column names no 'train' items: mark some rows as train")
    if "val" not in out:  # carve val out of train, as a user with only train/test expects
        frac = fractions[1] / (fractions[0] + fractions[1])
        out["train"], out["val"] = _two_way(out["train"], frac, labels, groups, seed)
    return {k: out[k] for k in SPLIT_NAMES if k in out}


def split_indices(
    n: int,
    labels: Sequence | None = None,
    groups: Sequence | None = None,
    fractions: Sequence[float] = (0.9, 0.1),
    seed: int = 42,
    predefined: Sequence | None = None,
) -> dict[str, np.ndarray]:
    """Indices for train/val (and test with three fractions): stratified, group-disjoint."""
    names = _check_fractions(fractions)
    for what, seq in (("labels", labels), ("groups", groups), ("predefined", predefined)):
        if seq is not None and len(seq) != n:
            raise DataError(f"{len(seq)} {what} for {n} items: give one per item")
    if predefined is not None:
        out = _from_predefined(predefined, names, fractions, labels, groups, seed)
    else:
        if n < len(names):
            raise DataError(f"{n} item(s) cannot fill a {'/'.join(names)} split: add data")
        check_labels(labels, groups, len(names), f"{'/'.join(names)} split")
        if groups is not None and len(set(groups)) < len(names):
            raise DataError(f"{len(set(groups))} group(s) cannot fill a {'/'.join(names)} split: add recordings")
        rest = np.arange(n)
        out = {}
        if len(names) == 3:
            rest, out["test"] = _two_way(rest, fractions[2], labels, groups, seed)
        out["train"], out["val"] = _two_way(rest, fractions[1] / (fractions[0] + fractions[1]), labels, groups, seed)
        out = {k: out[k] for k in names}
    for name, idx in out.items():
        if len(idx) == 0:
            raise DataError(f"the {name} split is empty: add data or change the split fractions")
    check_no_leakage(out, groups)
    return out


def kfold_indices(
    n: int, labels: Sequence | None = None, groups: Sequence | None = None, k: int = 5, seed: int = 42
) -> list[dict[str, np.ndarray]]:
    """``k`` folds, each ``{"train": idx, "test": idx}``; grouped and stratified when possible."""
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got {k}")
    check_labels(labels, groups, k, f"{k}-fold cross-validation")
    if groups is not None and len(set(groups)) < k:
        raise DataError(f"{len(set(groups))} group(s) cannot fill {k} folds: lower k or add recordings")
    if n < k:
        raise DataError(f"{n} item(s) cannot fill {k} folds: lower k or add data")
    x = np.zeros(n)
    y = None if labels is None else np.asarray(labels, dtype=object).astype(str)
    g = None if groups is None else np.asarray(groups, dtype=object).astype(str)
    if y is not None and g is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            folds = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, g))
    elif g is not None:
        folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, groups=g)
    elif y is not None:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y)
    else:
        folds = KFold(n_splits=k, shuffle=True, random_state=seed).split(x)
    out = [{"train": np.sort(tr), "test": np.sort(te)} for tr, te in folds]
    for fold in out:
        check_no_leakage(fold, groups)
    return out


def cap_train_groups(train: np.ndarray, labels: Sequence, groups: Sequence | None, k: int, seed: int) -> np.ndarray:
    """``train`` keeping at most ``k`` groups (recordings, speakers) per class, chosen by ``seed``
    (``--train-groups-per-class``); a clip without a group is its own group. Validation and test
    are left alone, so results for different ``k`` are scored on the same clips."""
    rng = np.random.default_rng(seed)
    group_of = [(labels[i], groups[i] if groups is not None and groups[i] is not None else f"#clip{i}") for i in train]
    kept: set[tuple] = set()
    for label in sorted({lab for lab, _ in group_of}, key=str):
        names = sorted({g for lab, g in group_of if lab == label})
        kept |= {(label, names[j]) for j in rng.permutation(len(names))[:k]}
    return np.asarray([i for i, key in zip(train, group_of, strict=True) if key in kept], dtype=train.dtype)
