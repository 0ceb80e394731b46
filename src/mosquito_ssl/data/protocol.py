"""The evaluation protocol: which classes and clips a probe scores, as papers state it.

    mosquito-ssl probe linear field.csv --encoder runs/mae --folds 5 \
        --max-clips-per-group 50 --min-groups-per-class 5 --exclude-classes background

``Protocol`` holds the four options (one glossary: ``group`` is a recording, or whatever
``--group-column`` names) and ``apply_protocol`` applies them to a labelled ``Dataset`` before any
audio is decoded, in this order: keep ``classes`` / drop ``exclude_classes``; keep at most
``max_clips_per_group`` clips of each group (a seeded choice, kept in file order), so long
recordings do not dominate; leave out classes with fewer than ``min_groups_per_class`` groups
left (one log line names them with their counts, where the default would stop the run at the
split check).
The options are ProbeConfig fields (config.json, run name); the clip list they leave is in every
cache key; ``metrics.json`` holds the report (``used_classes``, ``left_out``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .items import Dataset, Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    classes: tuple[str, ...] | None = None
    exclude_classes: tuple[str, ...] | None = None
    max_clips_per_group: int | None = None
    min_groups_per_class: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("classes", "exclude_classes"):
            object.__setattr__(self, name, class_names(getattr(self, name)))
        for name in ("max_clips_per_group", "min_groups_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {value} is not valid: use a whole number >= 1")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) is not None for f in dataclasses.fields(self) if f.name != "seed")


def class_names(value) -> tuple[str, ...] | None:
    """``"a,b"`` (a flag) or ``["a", "b"]`` (TOML) -> ``("a", "b")``; None stays None (not given)."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    return tuple(str(c).strip() for c in names if str(c).strip())


def _group(item: Item, index: int) -> str:
    """A clip's group; a clip without one is its own group."""
    return item.group if item.group is not None else f"\0clip{index}"


def _select_classes(items: list[Item], protocol: Protocol) -> list[Item]:
    present = {i.label for i in items}
    for flag, wanted in (("--classes", protocol.classes), ("--exclude-classes", protocol.exclude_classes)):
        unknown = sorted(set(wanted or ()) - present)
        if unknown:
            raise ConfigError(
                f"{flag} names {', '.join(unknown)}, which the data does not have: use some of {', '.join(sorted(map(str, present)))}"
            )
    keep = set(protocol.classes) if protocol.classes else present
    keep -= set(protocol.exclude_classes or ())
    return [i for i in items if i.label in keep]


def _enough_groups(items: list[Item], minimum: int) -> tuple[list[Item], dict[str, int]]:
    """Items of classes with >= ``minimum`` groups, and the left-out classes with their group counts."""
    groups: dict[Any, set] = defaultdict(set)
    for k, item in enumerate(items):
        groups[item.label].add(_group(item, k))
    left_out = {str(c): len(g) for c, g in sorted(groups.items(), key=lambda kv: str(kv[0])) if len(g) < minimum}
    if left_out:
        counts = ", ".join(f"{c} ({n})" for c, n in left_out.items())
        log.info(
            "--min-groups-per-class %d: left out %d class(es) with fewer groups: %s", minimum, len(left_out), counts
        )
    return [i for i in items if str(i.label) not in left_out], left_out


def _cap_groups(items: list[Item], cap: int, seed: int) -> list[Item]:
    """At most ``cap`` clips per group, chosen with ``seed``; the kept clips stay in their order."""
    members: dict[str, list[int]] = defaultdict(list)
    for k, item in enumerate(items):
        members[_group(item, k)].append(k)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for idx in members.values():
        keep += idx if len(idx) <= cap else rng.choice(idx, size=cap, replace=False).tolist()
    return [items[k] for k in sorted(keep)]


def apply_protocol(dataset: Dataset, protocol: Protocol) -> tuple[Dataset, dict[str, Any]]:
    """(the dataset with only the protocol's clips, a report for metrics.json)."""
    items = list(dataset.items)
    if not protocol.active:  # the split checks name a too-small class
        return dataset, {
            **dataclasses.asdict(protocol),
            "used_classes": dataset.classes,
            "left_out": {},
            "clips": len(items),
        }
    if protocol.classes or protocol.exclude_classes:
        items = _select_classes(items, protocol)
    if protocol.max_clips_per_group:
        before = len(items)
        items = _cap_groups(items, protocol.max_clips_per_group, protocol.seed)
        log.info("--max-clips-per-group %d: %d of %d clips kept", protocol.max_clips_per_group, len(items), before)
    left_out: dict[str, int] = {}
    if protocol.min_groups_per_class:  # after the cap: a class must still have K groups to split
        items, left_out = _enough_groups(items, protocol.min_groups_per_class)
    used = sorted({str(i.label) for i in items})
    if len(used) < 2:
        raise DataError(
            f"the protocol leaves {len(used)} class(es) ({', '.join(used) or 'none'}) of {dataset.source or dataset.root}: "
            "a probe needs two; relax --classes, --exclude-classes or --min-groups-per-class"
        )
    report = {**dataclasses.asdict(protocol), "used_classes": used, "left_out": left_out, "clips": len(items)}
    return dataclasses.replace(dataset, items=items), report
