"""``run_probe(cfg)``: encoder + labelled data -> splits -> probe -> metrics -> run directory.

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny --group-column group

Owns the order of work (every input check before any encoder forward pass), the k-fold
loop and the run directory: config.json, metadata.json, metrics.json, results.csv (long rows),
predictions.csv, confusion_<split>.csv, DONE last. A finished run is read back, not redone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import runs
from ..errors import ConfigError, DataError
from . import linear
from .config import HANDCRAFTED, ProbeConfig
from .metrics import ROW_KEYS, classification_metrics, confusion, mean_and_std, predictions_frame, to_rows

if TYPE_CHECKING:
    from transformers import ASTModel

    from ..data.features import FeatureCache

log = logging.getLogger(__name__)


@dataclass
class ProbeResult:
    run_dir: Path
    rows: list[dict]
    metrics: dict


@dataclass
class Prepared:
    """Everything a probe needs, checked: encoder, features, integer labels, splits or folds."""

    model: ASTModel | None  # None for the handcrafted baseline
    cache: FeatureCache
    classes: list[str]
    y: np.ndarray
    groups: list[str | None] | None
    parts: dict[str, np.ndarray] | None  # one split; None under k-fold
    folds: list[dict[str, np.ndarray]] | None  # k-fold; None with one split
    counts: dict[str, dict[str, int]]
    summary: dict[str, Any]
    embeddings_dir: Path | None = None


def _encoder(cfg: ProbeConfig):
    """(ASTModel or None, FeatureSettings): the settings the encoder was trained with."""
    if cfg.encoder == HANDCRAFTED:
        from ..data.features import FeatureSettings

        return None, FeatureSettings()
    import torch

    from ..model.encoder import load_encoder

    model, settings = load_encoder(cfg.encoder)
    if cfg.layer is not None and not 0 <= cfg.layer <= model.config.num_hidden_layers:
        raise ConfigError(
            f"--layer {cfg.layer} does not exist: the encoder has layers 0 (embedding "
            f"output) .. {model.config.num_hidden_layers}"
        )
    # transformers wraps PreTrainedModel.to with functools.wraps(torch.nn.Module.to); typeshed's
    # _Wrapped is no descriptor, so mypy takes the device for ``self``.
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval(), settings  # type: ignore[arg-type]


def _labelled_dataset(cfg: ProbeConfig, settings):
    from ..data.manifest import read_dataset
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
    predefined = any(i.split is not None for i in dataset.items)
    if not predefined:  # a user split is checked after splitting (unseen labels)
        needed = cfg.folds or len(cfg.fractions)
        what = f"{cfg.folds}-fold cross-validation" if cfg.folds else "train/val/test split"
        check_labels(dataset.labels, dataset.groups, needed, what)
    elif len(dataset.classes) < 2:
        raise DataError(f"only one class ({dataset.classes[0]!r}) in the labels: a probe needs two or more")
    return dataset


def _split(
    cfg: ProbeConfig, cache: FeatureCache, y: np.ndarray, classes: list[str]
) -> tuple[dict[str, np.ndarray] | None, list[dict[str, np.ndarray]] | None]:
    from ..data.splits import kfold_indices, split_indices

    labels, groups = [classes[k] for k in y], cache.groups
    if cfg.folds:
        return None, kfold_indices(len(y), labels, groups, k=cfg.folds, seed=cfg.seed)
    predefined = [i.split for i in cache.items] if any(i.split for i in cache.items) else None
    parts = split_indices(len(y), labels, groups, fractions=cfg.fractions, seed=cfg.seed, predefined=predefined)
    if "test" not in parts:
        raise DataError("the split column names no 'test' items: mark some rows as test")
    seen = set(y[parts["train"]])
    for split in ("val", "test"):
        unseen = sorted(classes[k] for k in set(y[parts[split]]) - seen)
        if unseen:
            raise DataError(
                f"label(s) {', '.join(unseen)} occur in the {split} split but never in "
                "train: a probe cannot predict a class it never saw; move some of those "
                "recordings to train in the split column"
            )
    return parts, None


def prepare(cfg: ProbeConfig) -> Prepared:
    """Load and check everything; raises MosquitoSSLError before any encoder forward pass."""
    from ..data.features import build_features

    model, settings = _encoder(cfg)
    dataset = _labelled_dataset(cfg, settings)
    cache = build_features(
        dataset, settings, cache_dir=None if cfg.cache_dir is None else Path(cfg.cache_dir) / "features"
    )
    labels = cache.labels
    assert labels is not None, "_labelled_dataset checked that every clip has a label"
    classes = sorted(set(labels))
    codes = {c: k for k, c in enumerate(classes)}
    y = np.asarray([codes[label] for label in labels])
    parts, folds = _split(cfg, cache, y, classes)
    counts = {
        name: {classes[k]: int(n) for k, n in enumerate(np.bincount(y[idx], minlength=len(classes)))}
        for name, idx in (parts or {}).items()
    }
    log.info(
        "%d clips, %d classes %s, splits %s",
        len(y),
        len(classes),
        classes,
        {k: len(v) for k, v in (parts or {}).items()} or f"{cfg.folds} folds",
    )
    summary = {k: v for k, v in cache.summary().items() if k != "skipped_files"}
    return Prepared(model, cache, classes, y, cache.groups, parts, folds, counts, summary)


def run_probe(cfg: ProbeConfig) -> ProbeResult:
    """Run one probe (or read it back when its run directory is done and not ``force``)."""
    run_dir = cfg.run_dir()
    if runs.is_done(run_dir) and not cfg.force:
        log.info("probe %s is done; reading its results (use --force to redo it)", run_dir)
        return stored_result(run_dir)
    started = time.time()
    prep = prepare(cfg)  # every input check happens in here, before any forward pass
    runs.prepare_run_dir(run_dir, cfg, force=True)
    if cfg.probe == "finetune":
        from .finetune import finetune

        assert prep.parts is not None, "ProbeConfig rejects --folds with finetune"
        fit = finetune(cfg, prep.model, prep.cache, prep.y, prep.parts, prep.classes, run_dir)
        entries, params = [("finetune", None, fit)], dict(fit.params)
        rows, preds, headline = _evaluate(cfg, prep, entries)
    else:
        E = _embeddings(cfg, prep)
        if cfg.folds:
            rows, preds, headline, params = _cross_validate(cfg, prep, E)
        else:
            assert prep.parts is not None, "without --folds _split returns the parts"
            entries, params = probe_entries(cfg, E, prep.y, prep.parts, len(prep.classes))
            rows, preds, headline = _evaluate(cfg, prep, entries)
    if "best_layer" in params:
        rows += to_rows({"best_layer": params["best_layer"]}, "val", **_keys(cfg, cfg.probe))
    metrics = {
        "headline": headline,
        "params": params,
        "classes": prep.classes,
        "counts": prep.counts,
        "data": prep.summary,
    }
    _write_outputs(run_dir, rows, preds, prep.classes)
    runs.finish_run(run_dir, metrics, started, embeddings=str(prep.embeddings_dir or ""))
    return ProbeResult(run_dir, rows, metrics)


def stored_result(run_dir: Path) -> ProbeResult:
    frame = pd.read_csv(run_dir / "results.csv")
    frame["layer"] = frame["layer"].astype(object).where(frame["layer"].notna(), None)
    rows = [
        {k: (int(v) if k in ("layer", "seed") and v is not None else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    return ProbeResult(run_dir, rows, runs.read_json(run_dir / runs.METRICS))


def _embeddings(cfg: ProbeConfig, prep: Prepared) -> np.ndarray:
    """(N, L+1, D) array of the configured pooling (handcrafted: (N, 1, D))."""
    if cfg.encoder == HANDCRAFTED:
        from .baselines import POOLING, handcrafted_features

        emb = handcrafted_features(prep.cache, cfg.cache_dir)
        prep.embeddings_dir = emb.folder
        return np.asarray(emb.load(POOLING))
    from ..model.encoder import encoder_fingerprint
    from .embeddings import compute_embeddings

    assert prep.model is not None, "only the handcrafted baseline has no encoder"
    emb = compute_embeddings(
        prep.model, prep.cache, encoder_fingerprint(prep.model), batch_size=cfg.batch_size, cache_dir=cfg.cache_dir
    )
    prep.embeddings_dir = emb.folder
    return emb.load(cfg.pooling)


def probe_entries(cfg: ProbeConfig, E: np.ndarray, y: np.ndarray, parts: dict, n_classes: int):
    """[(probe, layer, Fit)] where layer None marks the headline, plus the chosen settings."""
    if cfg.probe == "layerwise":
        fits, best = linear.layerwise_probe(E, y, parts, n_classes, cfg.c_grid, cfg.seed)
        weighted = linear.weighted_probe(E, y, parts, n_classes, cfg.seed)
        entries: list[tuple[str, int | None, linear.Fit]] = [("layerwise", i, f) for i, f in enumerate(fits)]
        entries += [("layerwise", None, fits[best]), ("weighted", None, weighted)]
        params = {
            "best_layer": best,
            **{f"C:{i}": f.params["C"] for i, f in enumerate(fits)},
            **{k: v for k, v in weighted.params.items() if k.startswith("layer_weight")},
        }
        return entries, params
    layer = E.shape[1] - 1 if cfg.layer is None else cfg.layer
    X = np.asarray(E[:, layer, :])
    if cfg.probe == "mlp":
        fit = linear.mlp_probe(X, y, parts, n_classes, cfg.alpha_grid, cfg.seed)
    else:
        fit = linear.linear_probe(X, y, parts, n_classes, cfg.c_grid, cfg.seed)
    return [(cfg.probe, None, fit)], {**fit.params, "layer": layer}


def _keys(cfg: ProbeConfig, probe: str) -> dict:
    return dict(encoder=cfg.row_encoder, freeze=cfg.row_freeze, probe=probe, pooling=cfg.row_pooling, seed=cfg.seed)


def _evaluate(cfg: ProbeConfig, prep: Prepared, entries):
    """Rows for val and test of every entry; predictions of the headline entry."""
    assert prep.parts is not None, "_evaluate scores one split, not k folds"
    rows, preds, headline = [], [], {}
    for probe, layer, fit in entries:
        for split, proba in fit.proba.items():
            idx = prep.parts[split]
            m = classification_metrics(prep.y[idx], fit.pred[split], proba, prep.classes)
            rows += to_rows(m, split, layer, **_keys(cfg, probe))
            if layer is None and probe in (cfg.probe, "finetune"):
                headline[split] = m
                preds.append(
                    predictions_frame(prep.cache.items, idx, prep.y[idx], fit.pred[split], proba, prep.classes, split)
                )
    return rows, preds, headline


def _fold_parts(cfg: ProbeConfig, prep: Prepared, fold: dict) -> dict:
    """Carve a validation part out of a fold's training part (group-disjoint, stratified)."""
    from ..data.splits import split_indices

    tr = fold["train"]
    groups = None if prep.groups is None else [prep.groups[i] for i in tr]
    inner = split_indices(len(tr), labels=prep.y[tr].tolist(), groups=groups, fractions=(0.75, 0.25), seed=cfg.seed)
    return {"train": tr[inner["train"]], "val": tr[inner["val"]], "test": fold["test"]}


def _cross_validate(cfg: ProbeConfig, prep: Prepared, E: np.ndarray):
    """k folds: test-fold metrics per (probe, layer) -> mean and std rows with split ``cv``."""
    assert prep.folds is not None, "_cross_validate runs only with --folds"
    per_key: dict[tuple, list[dict]] = {}
    preds, params_all = [], []
    for k, fold in enumerate(prep.folds):
        parts = _fold_parts(cfg, prep, fold)
        entries, params = probe_entries(cfg, E, prep.y, parts, len(prep.classes))
        params_all.append({p: v for p, v in params.items() if isinstance(v, (int, float))})
        for probe, layer, fit in entries:
            te = parts["test"]
            m = classification_metrics(prep.y[te], fit.pred["test"], fit.proba["test"], prep.classes)
            per_key.setdefault((probe, layer), []).append(m)
            if layer is None and probe == cfg.probe:
                frame = predictions_frame(
                    prep.cache.items, te, prep.y[te], fit.pred["test"], fit.proba["test"], prep.classes, "cv"
                )
                preds.append(frame.assign(fold=k))
    rows = []
    for (probe, layer), fold_metrics in per_key.items():
        rows += to_rows(mean_and_std(fold_metrics), "cv", layer, **_keys(cfg, probe))
    headline = {"cv": mean_and_std(per_key[(cfg.probe, None)])}
    params = {**mean_and_std(params_all), "folds": len(prep.folds)}
    if cfg.probe == "layerwise":
        rows += to_rows({"best_layer_std": params["best_layer_std"]}, "val", **_keys(cfg, cfg.probe))
    return rows, preds, headline, params


def _write_outputs(run_dir: Path, rows: list[dict], preds: list[pd.DataFrame], classes) -> None:
    table = pd.DataFrame(rows, columns=list(ROW_KEYS))
    table["layer"] = table["layer"].astype("Int64")  # integers with blanks, not 3.0
    runs.write_text_atomic(run_dir / "results.csv", table.to_csv(index=False))
    frame = pd.concat(preds, ignore_index=True)
    runs.write_text_atomic(run_dir / "predictions.csv", frame.to_csv(index=False))
    codes = {c: i for i, c in enumerate(classes)}
    for split, part in frame.groupby("split"):
        matrix = confusion(part["label"].map(codes), part["pred"].map(codes), classes)
        runs.write_text_atomic(run_dir / f"confusion_{split}.csv", matrix.to_csv())
