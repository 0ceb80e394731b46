"""The plan of a sweep, printed before any work: cells, shared work and an estimate of the cost.

    mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run

Owns the shard partition (all cells of one encoder in one shard, so no pretraining is done twice)
and the counts: cells (done / to run), pretrainings = distinct (pretraining settings, seed),
embedding caches shared by the frozen probes, and pretraining epochs x clips.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .spec import Cell, SweepSpec

log = logging.getLogger(__name__)

# Relative cost of one pretraining against one probe, for balancing shards (a rough guess:
# a pretraining runs many epochs over the unlabelled set, a probe one pass or a short fine-tune).
PRETRAIN_WEIGHT = 5


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (I counted from 0, e.g. ``$SLURM_ARRAY_TASK_ID/4``) -> (I, N)."""
    if text is None:
        return (0, 1)
    head, slash, tail = str(text).partition("/")
    if not slash or not head.strip().isdigit() or not tail.strip().isdigit():
        raise ConfigError(f"--shard {text!r} must look like I/N, e.g. --shard 0/4 (I from 0 to N-1)")
    i, n = int(head), int(tail)
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text}: I must be between 0 and N-1 and N >= 1, e.g. 0/{max(n, 1)}")
    return i, n


def shard_of_encoders(cells: list[Cell], n: int) -> dict[str, int]:
    """Deterministic encoder_key -> shard map: heaviest first, each to the least loaded shard."""
    weight: Counter[str] = Counter()
    for cell in cells:
        weight[cell.encoder_key] += 1
    for key in weight:
        if key.startswith("pretrain-"):
            weight[key] += PRETRAIN_WEIGHT
    load = [0] * n
    owner: dict[str, int] = {}
    for key in sorted(weight, key=lambda k: (-weight[k], k)):
        shard = min(range(n), key=lambda s: (load[s], s))
        owner[key] = shard
        load[shard] += weight[key]
    return owner


def select_shard(cells: list[Cell], shard: tuple[int, int]) -> list[Cell]:
    i, n = shard
    if n == 1:
        return list(cells)
    owner = shard_of_encoders(cells, n)
    return [c for c in cells if owner[c.encoder_key] == i]


def shard_store_path(spec: SweepSpec, shard: tuple[int, int]) -> Path:
    """One store per shard (SQLite WAL must not be shared over NFS); merge them afterwards."""
    i, n = shard
    path = spec.store_path
    return path if n == 1 else path.with_name(f"{path.stem}.shard-{i}-of-{n}{path.suffix}")


@dataclass
class Plan:
    cells: list[Cell]
    done: set[str] = field(default_factory=set)
    shard: tuple[int, int] = (0, 1)
    store: Path | None = None
    pretrain_clips: int | None = None
    probe_clips: int | None = None
    epochs: int = 0
    max_steps: int = -1
    batch_size: int = 0
    probe_epochs: int = 0

    @property
    def todo(self) -> list[Cell]:
        return [c for c in self.cells if c.cell_id not in self.done]

    def pretrainings(self, cells: list[Cell] | None = None) -> set[str]:
        return {c.encoder_key for c in (self.cells if cells is None else cells) if c.encoder == "ssl"}

    def embedding_caches(self) -> tuple[int, int]:
        """(distinct encoders embedded, frozen probes reading them)."""
        frozen = [c for c in self.cells if c.probe != "finetune"]
        return len({c.encoder_key for c in frozen}), len(frozen)

    def format(self) -> str:
        by_encoder = Counter(c.encoder for c in self.cells)
        todo = self.todo
        caches, frozen = self.embedding_caches()
        finetunes = sum(c.probe == "finetune" for c in todo)
        i, n = self.shard
        pre_all, pre_todo = self.pretrainings(), self.pretrainings(todo)
        lines = [
            f"sweep plan{f' (shard {i}/{n})' if n > 1 else ''} -> store {self.store}",
            f"  cells: {len(self.cells)} ({', '.join(f'{k} {v}' for k, v in sorted(by_encoder.items()))}); "
            f"done {len(self.cells) - len(todo)}, to run {len(todo)}",
            f"  pretrainings: {len(pre_all)} distinct (settings, seed) shared by {by_encoder['ssl']} "
            f"ssl cells; to run {len(pre_todo)}",
            f"  embedding caches: {caches} encoders embedded once, reused by {frozen} frozen probes",
            f"  work to do: {self._pretrain_work(len(pre_todo))}; {len(todo) - finetunes} frozen probes, "
            f"{finetunes} fine-tunes{self._finetune_work(finetunes)}",
        ]
        return "\n".join(lines)

    def _pretrain_work(self, count: int) -> str:
        if self.max_steps and self.max_steps > 0:
            return f"{count} pretrainings x {self.max_steps} steps x {self.batch_size} clips"
        clips = "?" if self.pretrain_clips is None else f"{self.pretrain_clips}"
        total = "" if self.pretrain_clips is None else f" = {count * self.epochs * self.pretrain_clips} clip-passes"
        return f"{count} pretrainings x {self.epochs} epochs x {clips} clips{total}"

    def _finetune_work(self, count: int) -> str:
        if not count or self.probe_clips is None:
            return ""
        return f" (x {self.probe_epochs} epochs x {self.probe_clips} clips)"


def count_clips(data: Path, **kwargs) -> int | None:
    """Clips in a data set, or None when it cannot be read cheaply (the plan says '?')."""
    try:
        from ..data.manifest import read_dataset

        return len(read_dataset(data, **kwargs).items)
    except Exception as exc:  # the plan must never fail; real errors surface when the cell runs
        log.debug("cannot count clips of %s: %s", data, exc)
        return None


def make_plan(spec: SweepSpec, cells: list[Cell], done: set[str], shard: tuple[int, int], store: Path) -> Plan:
    from ..config import resolve
    from ..pretrain.train import PretrainConfig
    from ..probe.config import ProbeConfig

    pre = resolve(PretrainConfig, overrides=dict(spec.pretrain, data=spec.pretrain_data))
    probe = resolve(ProbeConfig, overrides=dict(spec.probe, data=spec.probe_data))
    layout = {k: getattr(pre, k) for k in ("layout", "clip_seconds", "window", "hop")}
    return Plan(
        cells=cells,
        done=done,
        shard=shard,
        store=store,
        pretrain_clips=count_clips(spec.pretrain_data, **layout),
        probe_clips=count_clips(
            spec.probe_data, layout=probe.layout, window=probe.window, hop=probe.hop, label_column=probe.label_column
        ),
        epochs=pre.epochs,
        max_steps=pre.max_steps,
        batch_size=pre.batch_size,
        probe_epochs=probe.epochs,
    )
