"""``inspect_data``: what ``mosquito-ssl data inspect`` prints: clips, classes, groups, what was left out.

    mosquito-ssl data inspect data/synth --json

Reads the source, applies the evaluation protocol, builds (or reads) the feature cache and
summarises it; torch-free, so inspecting data loads no model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .feature_cache import build_features
from .feature_settings import FeatureSettings
from .manifest import read_dataset
from .protocol import apply_protocol


def inspect_data(
    source: str | Path, clip_seconds: float = 1.0, cache_dir: str | Path | None = None, protocol=None, **read_kwargs
) -> dict[str, Any]:
    """Read ``source``, apply the evaluation ``protocol``, build the feature cache and summarise it."""
    dataset = read_dataset(source, clip_seconds=clip_seconds, **read_kwargs)
    left_out: dict[str, int] = {}
    if protocol is not None and protocol.active and dataset.has_labels:
        dataset, report = apply_protocol(dataset, protocol)
        left_out = report["left_out"]
    cache = build_features(dataset, FeatureSettings(clip_seconds=clip_seconds), cache_dir=cache_dir)
    summary = cache.summary()
    groups = cache.groups
    per_class: dict[str, set] = {}
    for item in cache.items if groups is not None and cache.labels else []:
        per_class.setdefault(str(item.label), set()).add(item.group)
    return {
        "groups_per_class": {c: len(g) for c, g in sorted(per_class.items())},
        "left_out": left_out,
        "source": str(source),
        "layout": dataset.layout,
        "clips": summary["used"],
        "classes": dict(sorted(Counter(cache.labels).items())) if cache.labels else {},
        "groups": len(set(groups)) if groups is not None else None,
        "skipped": summary["skipped"],
        "skipped_total": len(cache.skipped),
        "skipped_files": summary["skipped_files"],
        "outside_data_folder": summary["outside_data_folder"],
        "cache": str(cache.path),
    }
