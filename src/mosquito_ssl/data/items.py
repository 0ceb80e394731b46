"""The clip records every data layout produces: ``Item``, ``SkipLog`` and ``Dataset``.

    mosquito-ssl data inspect data/synth

Plain containers with no file access; ``manifest.read_dataset`` fills them (``layouts.py``
reads each layout, ``manifest.py`` windows and checks).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTSIDE = "outside_data_folder"  # the record of a file read from outside the data folder


@dataclass(frozen=True)
class Item:
    """One clip: ``offset`` seconds into the audio file at absolute ``path``."""

    path: str
    label: str | None = None
    group: str | None = None
    offset: float = 0.0
    split: str | None = None


class SkipLog:
    """Files or clips left out, each with a reason (``BadAudio`` reasons, ``no_label``, ``files.py``'s)."""

    def __init__(self, entries: list[dict[str, Any]] | None = None) -> None:
        self.entries: list[dict[str, Any]] = list(entries or [])

    def add(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.entries.append({"path": str(path), "reason": reason, "detail": detail})

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e["reason"] for e in self.entries).items()))

    def merge(self, other: SkipLog) -> SkipLog:
        self.entries.extend(other.entries)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "entries": self.entries}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkipLog:
        return cls(data.get("entries", []))

    def __len__(self) -> int:
        return len(self.entries)


def records_csv(skipped_files: list[dict[str, Any]], outside: list[str]) -> str:
    """``skipped_files.csv``: ``path,reason,used``; a file read from outside the data folder is a
    row with reason ``outside_data_folder`` and used ``yes``, every file or clip left out ``no``."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "reason", "used"])
    writer.writerows([e["path"], e["reason"], "no"] for e in skipped_files)
    writer.writerows([path, OUTSIDE, "yes"] for path in outside)
    return out.getvalue()


@dataclass
class Dataset:
    items: list[Item]
    layout: str
    root: Path
    skipped: SkipLog = field(default_factory=SkipLog)
    source: str = ""
    window: float | None = None
    outside: list[str] = field(default_factory=list)  # files read from outside the data folder

    @property
    def labels(self) -> list[str] | None:
        if not self.has_labels:
            return None
        return [i.label for i in self.items if i.label is not None]  # has_labels: none is None

    @property
    def groups(self) -> list[str | None] | None:
        """Every item's group when any item has one (an item without one keeps None)."""
        return [i.group for i in self.items] if any(i.group is not None for i in self.items) else None

    @property
    def has_labels(self) -> bool:
        return bool(self.items) and all(i.label is not None for i in self.items)

    @property
    def classes(self) -> list[str]:
        return sorted({i.label for i in self.items if i.label is not None})
