"""``run_probe(cfg)``: checked inputs -> embeddings -> probe -> metrics -> run directory.

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny --group-column group

Owns the order of work (``inputs.load_inputs`` checks everything before any encoder forward
pass), the k-fold loop and the run directory: config.json, metadata.json, metrics.json (headline
metrics, chosen settings, classes, class counts per split, clips used and skip counts),
skipped_files.csv (path,reason,used: what the data layer left out, or read from outside the data
folder), results.csv (long rows), predictions.csv, confusion_<split>.csv, DONE last. A finished
run is read back, not redone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import runs
from . import linear
from .config import HANDCRAFTED, LOGMEL, ProbeConfig
from .inputs import Parts, ProbeInputs, load_inputs
from .metrics import ROW_KEYS, classification_metrics, confusion, mean_and_std, predictions_frame, to_rows

log = logging.getLogger(__name__)

# (probe, layer, fit): layer None marks the headline entry of a probe
Entry = tuple[str, int | None, linear.Fit]


SKIPPED_FILES = "skipped_files.csv"


def write_records(path: Path, cache) -> Path:
    """``path``: every file or clip ``cache`` left out and every file read from outside the data
    folder (``data.items.records_csv``), so a run folder holds its own list, not only the cache."""
    from ..data.items import records_csv

    summary = cache.summary()
    return runs.write_text_atomic(path, records_csv(summary["skipped_files"], summary["outside_data_folder"]))


@dataclass
class ProbeResult:
    run_dir: Path
    rows: list[dict]
    metrics: dict


@runs.lock_scope()  # the run dir's lock (should_skip takes it) is let go also when this raises
def run_probe(cfg: ProbeConfig) -> ProbeResult:
    """Run one probe (or read it back when its run directory is done and not ``force``)."""
    run_dir = cfg.run_dir()
    if runs.should_skip(run_dir, cfg.force):
        log.info("probe %s is done; reading its results (use --force to redo it)", run_dir)
        return stored_result(run_dir)
    started = time.time()
    inputs = load_inputs(cfg)  # every input check happens in here, before any forward pass
    runs.prepare_run_dir(run_dir, cfg, force=True, clean=True)  # no file of an earlier attempt stays
    write_records(run_dir / SKIPPED_FILES, inputs.cache)
    embeddings_dir: Path | None = None
    if cfg.probe == "finetune":
        from .finetune import finetune_folds

        X = None
        if cfg.head_init == "probe":  # LP-FT: the frozen encoder's last-layer features, before any fold trains
            E, embeddings_dir = _embeddings(cfg, inputs)
            X = np.asarray(E[:, -1, :])
        fit_fold = finetune_folds(cfg, inputs.model, inputs.cache, inputs.y, inputs.classes, run_dir, X)
    else:
        E, embeddings_dir = _embeddings(cfg, inputs)

        def fit_fold(parts: Parts) -> tuple[list[Entry], dict[str, Any]]:
            return probe_entries(cfg, E, inputs.y, parts, len(inputs.classes))

    if cfg.folds:
        rows, preds, headline, params = _cross_validate(cfg, inputs, fit_fold)
    else:
        assert inputs.parts is not None, "without --folds inputs.split returns the parts"
        entries, params = fit_fold(inputs.parts)
        rows, preds, headline = _evaluate(cfg, inputs, entries)
    if "best_layer" in params:
        rows += to_rows({"best_layer": params["best_layer"]}, "val", **_keys(cfg, cfg.probe))
    metrics = {
        "headline": headline,
        "params": params,
        "classes": inputs.classes,
        "counts": inputs.counts,
        "group_counts": inputs.group_counts,
        "data": inputs.summary,
        "protocol": inputs.protocol,
        "features": runs._jsonable(inputs.cache.settings),
    }
    _write_outputs(run_dir, rows, preds, inputs.classes)
    runs.finish_run(run_dir, metrics, started, embeddings=str(embeddings_dir or ""))
    return ProbeResult(run_dir, rows, metrics)


def stored_result(run_dir: Path) -> ProbeResult:
    frame = pd.read_csv(run_dir / "results.csv")
    frame["layer"] = frame["layer"].astype(object).where(frame["layer"].notna(), None)
    rows = [
        {k: (int(v) if k in ("layer", "seed") and v is not None else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    return ProbeResult(run_dir, rows, runs.read_json(run_dir / runs.METRICS))


def _embeddings(cfg: ProbeConfig, inputs: ProbeInputs) -> tuple[np.ndarray, Path]:
    """(N, L+1, D) array of the configured pooling (handcrafted: (N, 1, D)) and its cache folder."""
    return encoder_embeddings(cfg.encoder, inputs.model, inputs.cache, cfg.pooling, cfg.batch_size, cfg.cache_dir)


def encoder_embeddings(
    encoder: str, model, cache, pooling: str, batch_size: int = 32, cache_dir: Path | None = None
) -> tuple[np.ndarray, Path]:
    """(N, L+1, width) embeddings of one pooling (a baseline: (N, 1, D)) and their cache folder.

    ``encoder`` is the probe's ``--encoder`` value, ``model`` what ``load_encoder_for`` returned
    for it (None for a baseline); the probe stage and ``mosquito-ssl embed`` both read through here.
    """
    if encoder == LOGMEL:  # one pass over the cached features: cheaper than a cache entry of its own
        from .baselines import logmel_features

        return logmel_features(cache)[:, None, :], Path(cache.path)
    if encoder == HANDCRAFTED:
        from .baselines import POOLING, handcrafted_features

        emb = handcrafted_features(cache, cache_dir)
        return np.asarray(emb.load(POOLING)), emb.folder
    from ..model.encoder import encoder_fingerprint
    from .embeddings import compute_embeddings

    assert model is not None, "only a baseline has no encoder"
    emb = compute_embeddings(model, cache, encoder_fingerprint(model), batch_size=batch_size, cache_dir=cache_dir)
    return np.asarray(emb.load(pooling)), emb.folder


def probe_entries(
    cfg: ProbeConfig, E: np.ndarray, y: np.ndarray, parts: Parts, n_classes: int
) -> tuple[list[Entry], dict[str, Any]]:
    """[(probe, layer, Fit)] where layer None marks the headline, plus the chosen settings."""
    if cfg.probe == "layerwise":
        fits, best = linear.layerwise_probe(E, y, parts, n_classes, cfg.c_grid, cfg.seed)
        weighted = linear.weighted_probe(E, y, parts, n_classes, cfg.seed)
        entries: list[Entry] = [("layerwise", i, f) for i, f in enumerate(fits)]
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


def _keys(cfg: ProbeConfig, probe: str) -> dict[str, Any]:
    return dict(encoder=cfg.row_encoder, freeze=cfg.freeze, probe=probe, pooling=cfg.row_pooling, seed=cfg.seed)


def _evaluate(
    cfg: ProbeConfig, inputs: ProbeInputs, entries: list[Entry]
) -> tuple[list[dict], list[pd.DataFrame], dict[str, dict[str, float]]]:
    """Rows for val and test of every entry; predictions of the headline entry."""
    assert inputs.parts is not None, "_evaluate scores one split, not k folds"
    rows, preds, headline = [], [], {}
    for probe, layer, fit in entries:
        for split, proba in fit.proba.items():
            idx = inputs.parts[split]
            m = classification_metrics(inputs.y[idx], fit.pred[split], proba, inputs.classes)
            rows += to_rows(m, split, layer, **_keys(cfg, probe))
            if layer is None and probe in (cfg.probe, "finetune"):
                headline[split] = m
                preds.append(
                    predictions_frame(
                        inputs.cache.items, idx, inputs.y[idx], fit.pred[split], proba, inputs.classes, split
                    )
                )
    return rows, preds, headline


def _cross_validate(
    cfg: ProbeConfig, inputs: ProbeInputs, fit_fold
) -> tuple[list[dict], list[pd.DataFrame], dict[str, dict[str, float]], dict[str, Any]]:
    """k folds: test-fold metrics per (probe, layer) -> mean and std rows with split ``cv``."""
    assert inputs.folds is not None, "_cross_validate runs only with --folds"
    per_key: dict[tuple, list[dict]] = {}
    preds, params_all = [], []
    for k, parts in enumerate(inputs.folds):
        entries, params = fit_fold(parts)
        params_all.append({p: v for p, v in params.items() if isinstance(v, (int, float))})
        for probe, layer, fit in entries:
            te = parts["test"]
            m = classification_metrics(inputs.y[te], fit.pred["test"], fit.proba["test"], inputs.classes)
            per_key.setdefault((probe, layer), []).append(m)
            if layer is None and probe == cfg.probe:
                frame = predictions_frame(
                    inputs.cache.items, te, inputs.y[te], fit.pred["test"], fit.proba["test"], inputs.classes, "cv"
                )
                preds.append(frame.assign(fold=k))
    rows = []
    for (probe, layer), fold_metrics in per_key.items():
        rows += to_rows(mean_and_std(fold_metrics), "cv", layer, **_keys(cfg, probe))
    headline = {"cv": mean_and_std(per_key[(cfg.probe, None)])}
    params = {**mean_and_std(params_all), "folds": len(inputs.folds)}
    if cfg.probe == "layerwise":
        rows += to_rows({"best_layer_std": params["best_layer_std"]}, "val", **_keys(cfg, cfg.probe))
    return rows, preds, headline, params


def _write_outputs(run_dir: Path, rows: list[dict], preds: list[pd.DataFrame], classes: list[str]) -> None:
    table = pd.DataFrame(rows, columns=list(ROW_KEYS))
    table["layer"] = table["layer"].astype("Int64")  # integers with blanks, not 3.0
    runs.write_text_atomic(run_dir / "results.csv", table.to_csv(index=False))
    frame = pd.concat(preds, ignore_index=True)
    runs.write_text_atomic(run_dir / "predictions.csv", frame.to_csv(index=False))
    codes = {c: i for i, c in enumerate(classes)}
    for split, part in frame.groupby("split"):
        matrix = confusion(part["label"].map(codes), part["pred"].map(codes), classes)
        runs.write_text_atomic(run_dir / f"confusion_{split}.csv", matrix.to_csv())
