"""``load_inputs(cfg)``: everything a probe reads, loaded and checked before any forward pass.

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny --group-column group

Owns ``ProbeInputs`` (encoder, feature cache, classes, integer labels, the split or the k folds,
class counts per split) and the order of the checks: the encoder and its ``--layer``, a labelled
data source with enough clips per class, a split in which every val/test class occurs in train.
``run.py`` then embeds, fits and scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError
from .config import BASELINES, ProbeConfig
from .metrics import class_counts, group_counts

if TYPE_CHECKING:
    from transformers import ASTModel

    from ..data.feature_cache import FeatureCache
    from ..data.feature_settings import FeatureSettings
    from ..data.items import Dataset

log = logging.getLogger(__name__)

Parts = dict[str, np.ndarray]  # split name (train / val / test) -> clip indices
LISTS = ("skipped_files", "outside_data_folder")  # FeatureCache.summary()'s file lists


@dataclass(frozen=True)
class ProbeInputs:
    """A probe's inputs, checked: encoder, features, integer labels, one split or k folds."""

    model: ASTModel | None  # None for the handcrafted baseline
    cache: FeatureCache
    classes: list[str]
    y: np.ndarray  # class index per clip of ``cache``
    parts: Parts | None  # one split; None under k-fold
    folds: list[Parts] | None  # k-fold (train/val/test per fold); None with one split
    counts: dict[str, Any]  # {split: {class: n}}, or {"fold<k>": {split: {class: n}}} under k-fold
    summary: dict[str, Any]  # the feature cache's clips used / skipped
    protocol: dict[str, Any]  # data/protocol.py's report: options, used_classes, left_out
    group_counts: dict[str, Any]  # like counts, in groups per class (--train-groups-per-class caps train)


def load_encoder_for(cfg: ProbeConfig) -> tuple[ASTModel | None, FeatureSettings]:
    """(encoder on the best device or None, the FeatureSettings the encoder was trained with)."""
    if cfg.encoder in BASELINES:
        return None, cfg.front_end()
    import torch

    from ..model.encoder import load_encoder
    from ..model.freeze import parse_freeze

    front_end = cfg.front_end() if str(cfg.encoder).startswith("random:") else None  # else the checkpoint's
    # random:<preset>: weights per seed, the patch grid of --patch-size / --patch-stride
    model, settings = load_encoder(
        cfg.encoder, front_end, seed=cfg.seed, patch_size=cfg.patch_size, patch_stride=cfg.patch_stride
    )
    assert cfg.freeze is not None, "ProbeConfig resolves the default freeze"
    parse_freeze(cfg.freeze, model.config.num_hidden_layers)  # partial:K within the encoder's depth
    if cfg.layer is not None and not 0 <= cfg.layer <= model.config.num_hidden_layers:
        raise ConfigError(
            f"--layer {cfg.layer} does not exist: the encoder has layers 0 (embedding "
            f"output) .. {model.config.num_hidden_layers}"
        )
    # transformers wraps PreTrainedModel.to with functools.wraps(torch.nn.Module.to); typeshed's
    # _Wrapped is no descriptor, so mypy takes the device for ``self``.
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval(), settings  # type: ignore[arg-type]


def labelled_dataset(cfg: ProbeConfig, settings: FeatureSettings) -> tuple[Dataset, dict[str, Any]]:
    """(the clips of ``cfg``'s data source the protocol keeps, the protocol report); all labelled."""
    from ..data.manifest import read_dataset
    from ..data.protocol import apply_protocol
    from ..data.splits import check_labels

    dataset = read_dataset(
        cfg.data,
        layout=cfg.layout,
        clip_seconds=settings.clip_seconds,
        window=cfg.window,
        hop=cfg.hop,
        label_column=cfg.label_column,
        group_column=cfg.group_column,
        split_column=cfg.split_column,
        audio_dir=cfg.audio_dir,
    )
    if not dataset.has_labels:
        raise DataError(
            f"{cfg.data} has no labels ({dataset.layout} layout): a probe needs labelled "
            "clips; use one folder per species or a manifest.csv with a label column "
            "(--label-column)"
        )
    dataset, protocol = apply_protocol(dataset, cfg.protocol)
    predefined = any(i.split is not None for i in dataset.items)
    if not predefined:  # a user split is checked after splitting (unseen labels)
        needed = cfg.folds or len(cfg.fractions)
        what = f"{cfg.folds}-fold cross-validation" if cfg.folds else "train/val/test split"
        check_labels(dataset.labels, dataset.groups, needed, what)
    elif len(dataset.classes) < 2:
        raise DataError(f"only one class ({dataset.classes[0]!r}) in the labels: a probe needs two or more")
    return dataset, protocol


def split(
    cfg: ProbeConfig, cache: FeatureCache, y: np.ndarray, classes: list[str]
) -> tuple[Parts | None, list[Parts] | None]:
    """(parts, None) for one split, (None, folds) under ``--folds``; group-disjoint, stratified."""
    from ..data.splits import kfold_indices, split_indices

    labels, groups = [classes[k] for k in y], cache.groups
    if cfg.folds:
        folds = kfold_indices(len(y), labels, groups, k=cfg.folds, seed=cfg.seed)
        return None, [_capped(cfg, _fold_parts(cfg.seed, y, groups, fold), y, groups) for fold in folds]
    predefined = [i.split for i in cache.items] if any(i.split for i in cache.items) else None
    parts = split_indices(len(y), labels, groups, fractions=cfg.fractions, seed=cfg.seed, predefined=predefined)
    if "test" not in parts:
        raise DataError("the split column names no 'test' items: mark some rows as test")
    seen = set(y[parts["train"]])
    for name in ("val", "test"):
        unseen = sorted(classes[k] for k in set(y[parts[name]]) - seen)
        if unseen:
            raise DataError(
                f"label(s) {', '.join(unseen)} occur in the {name} split but never in "
                "train: a probe cannot predict a class it never saw; move some of those "
                "recordings to train in the split column"
            )
    return _capped(cfg, parts, y, groups), None


def _capped(cfg: ProbeConfig, parts: Parts, y: np.ndarray, groups: list[str | None] | None) -> Parts:
    """``--train-groups-per-class K``: the training part keeps at most K groups per class."""
    from ..data.splits import cap_train_groups

    if cfg.train_groups_per_class is None:
        return parts
    train = cap_train_groups(parts["train"], y.tolist(), groups, cfg.train_groups_per_class, cfg.seed)
    return {**parts, "train": train}


def _fold_parts(seed: int, y: np.ndarray, groups: list[str | None] | None, fold: Parts) -> Parts:
    """Carve a validation part out of a fold's training part (group-disjoint, stratified)."""
    from ..data.splits import split_indices

    tr = fold["train"]
    inner_groups = None if groups is None else [groups[i] for i in tr]
    inner = split_indices(len(tr), labels=y[tr].tolist(), groups=inner_groups, fractions=(0.75, 0.25), seed=seed)
    return {"train": tr[inner["train"]], "val": tr[inner["val"]], "test": fold["test"]}


def features_for(cfg: ProbeConfig, dataset: Dataset, settings: FeatureSettings) -> FeatureCache:
    """The feature cache of ``dataset`` (the one pretraining fills too, given the same cache_dir).

    ``--normalize dataset`` on ``random:<preset>`` or a baseline takes the statistics of every
    clip (label-free); a checkpoint's statistics come with its settings (``load_features``).
    """
    from ..data.features import load_features

    return load_features(dataset, settings, cache_dir=cfg.cache_dir)


def load_inputs(cfg: ProbeConfig) -> ProbeInputs:
    """Load and check everything; raises MosquitoSSLError before any encoder forward pass."""
    model, settings = load_encoder_for(cfg)
    dataset, protocol = labelled_dataset(cfg, settings)
    cache = features_for(cfg, dataset, settings)
    labels = cache.labels
    assert labels is not None, "labelled_dataset checked that every clip has a label"
    classes = sorted(set(labels))
    codes = {c: k for k, c in enumerate(classes)}
    y = np.asarray([codes[label] for label in labels])
    parts, folds = split(cfg, cache, y, classes)
    if folds is None:
        assert parts is not None, "split returns parts or folds"
        counts: dict[str, Any] = class_counts(y, parts, classes)
        groups: dict[str, Any] = group_counts(y, parts, classes, cache.groups)
    else:
        counts = {f"fold{k}": class_counts(y, fold, classes) for k, fold in enumerate(folds)}
        groups = {f"fold{k}": group_counts(y, fold, classes, cache.groups) for k, fold in enumerate(folds)}
    log.info(
        "%d clips, %d classes %s, splits %s",
        len(y),
        len(classes),
        classes,
        {k: len(v) for k, v in (parts or {}).items()} or f"{cfg.folds} folds",
    )
    # counts only: the lists are the run folder's skipped_files.csv (run.py), not metrics.json
    full = cache.summary()
    summary = {
        **{k: v for k, v in full.items() if k not in LISTS},
        "outside_data_folder": len(full["outside_data_folder"]),
    }
    return ProbeInputs(model, cache, classes, y, parts, folds, counts, summary, protocol, groups)
