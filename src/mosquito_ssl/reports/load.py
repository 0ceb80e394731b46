"""The run artifacts a results store points to (confusion matrices, predictions, pretraining
histories, protocol lines); nothing here computes results. The store itself is read by
``store.read.load_store``, re-exported here::

    store = load_store(Path("runs/sweep/results.sqlite"))
    read_confusion(store.done["run_dir"].iloc[0])

Artifact readers return None when a file is missing or unreadable: a failed or cleaned-up cell
must never break a report, it only skips a plot.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..store.read import Store, load_store
from ..store.schema import FIXED_SETTINGS, MASK_COLUMNS, SSL_COLUMNS
from ..store.schema import RESULT_COLUMNS as RESULT_FIXED_COLUMNS

__all__ = ["FIXED_SETTINGS", "MASK_COLUMNS", "RESULT_FIXED_COLUMNS", "SSL_COLUMNS", "Store", "load_store"]

log = logging.getLogger(__name__)
BASELINE_LABELS = {
    "random": "no pretraining",
    "handcrafted": "hand-crafted features",
    "logmel": "log-mel mean/std",
    "audioset": "AudioSet AST (supervised)",
}


def _existing(directory: str | None, name: str) -> Path | None:
    if directory is None or (isinstance(directory, float) and pd.isna(directory)) or not directory:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def read_confusion(run_dir: str | None, split: str = "test") -> pd.DataFrame | None:
    """``confusion_<split>.csv`` (rows true class, columns predicted) or None when absent."""
    path = _existing(run_dir, f"confusion_{split}.csv")
    if path is None:
        return None
    try:
        return pd.read_csv(path, index_col=0)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None


def read_predictions(run_dir: str | None) -> pd.DataFrame | None:
    """``predictions.csv`` (path, group, label, pred, split, prob:<class>...) or None."""
    path = _existing(run_dir, "predictions.csv")
    if path is None:
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None
    needed = {"path", "label", "pred", "split"}
    if not needed <= set(frame.columns):
        log.warning("skipping %s: columns %s missing", path, sorted(needed - set(frame.columns)))
        return None
    return frame


def read_log_history(pretrain_dir: str | None) -> list[dict] | None:
    """The Trainer's ``log_history.json`` (list of dicts) of a pretraining, or None."""
    path = _existing(pretrain_dir, "log_history.json")
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None
    return data if isinstance(data, list) else None


def read_loss_name(pretrain_dir: str | None) -> str | None:
    """The pretraining's ``loss_name`` from its metrics.json (e.g. "masked-patch MSE"); None for
    runs made before it was written."""
    name = _metrics(pretrain_dir).get("loss_name")
    return str(name) if name else None


def read_group_counts(run_dir: str | None) -> list[dict[str, int]]:
    """Training groups per class of a probe run (``metrics.json`` ``group_counts``): one dict, or
    one per fold under k-fold; [] for runs made before it was written."""
    metrics = _metrics(run_dir)
    counts = metrics.get("group_counts") if isinstance(metrics, dict) else None
    if not isinstance(counts, dict):
        return []
    folds = [v for k, v in counts.items() if k.startswith("fold")]
    parts = folds if folds else [counts]
    return [p["train"] for p in parts if isinstance(p, dict) and isinstance(p.get("train"), dict)]


PROTOCOL_OPTIONS = ("classes", "exclude_classes", "max_clips_per_group", "min_groups_per_class")


def protocol_summary(run_dirs) -> dict[str, str]:
    """Report header lines from the probes' ``metrics.json``: classes used, protocol, front end.

    Every cell of a sweep reads the same data with the same ``[probe]`` protocol, so the union of
    ``used_classes`` is the class list; ``left_out`` names classes dropped by ``--min-groups-per-class``;
    the front ends (sample rate, mel bins, normalisation) are listed as the encoders' checkpoints set them.
    """
    used: set[str] = set()
    left_out: dict[str, int] = {}
    options: dict[str, str] = {}
    front_ends: set[str] = set()
    for run_dir in run_dirs:
        metrics = _metrics(run_dir)
        protocol, features = metrics.get("protocol"), metrics.get("features")
        if features:
            front_ends.add(f"{features['sample_rate']} Hz, {features['num_mel_bins']} mel bins, "
                           f"{features.get('normalize', 'audioset')} mean/std")  # fmt: skip
        if not protocol:  # run made before the protocol options
            continue
        used.update(protocol.get("used_classes", []))
        left_out.update(protocol.get("left_out", {}))
        options.update({k: str(protocol[k]) for k in PROTOCOL_OPTIONS if protocol.get(k) is not None})
    header = {"Front end": "; ".join(sorted(front_ends))} if front_ends else {}
    if not used:
        return header
    classes = ", ".join(sorted(used))
    if left_out:
        classes += "; left out: " + ", ".join(f"{c} ({n} groups)" for c, n in sorted(left_out.items()))
    return {"Classes": classes, "Protocol": ", ".join(f"{k}={v}" for k, v in options.items()) or "all clips", **header}


def _metrics(run_dir) -> dict:
    path = _existing(run_dir, "metrics.json")
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return {}
