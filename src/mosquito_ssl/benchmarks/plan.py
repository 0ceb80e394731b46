"""The plan of a sweep, printed before any work: cells, shared work and an estimate of the cost.

    mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run

Owns the shard partition (all cells of one encoder in one shard, so no pretraining is done twice)
and the counts: cells (done / to run), every axis with its values and the cells it expands,
pretrainings = distinct (pretraining settings, seed), embedding caches shared by the frozen
probes, and pretraining epochs x clips (each pretraining's own, when epochs are swept).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import runs
from ..errors import ConfigError
from .axes import Axis, owners
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
    # encoder_key -> (epochs, max_steps, batch size) of each pretraining
    pretrainings_work: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    pretrainings_done: set[str] = field(default_factory=set)  # encoder keys whose run folder is DONE
    probe_epochs: dict[str, int] = field(default_factory=dict)  # cell_id -> epochs of each fine-tune
    axes: list[str] = field(default_factory=list)  # one line per axis (axis_lines)

    @property
    def todo(self) -> list[Cell]:
        return [c for c in self.cells if c.cell_id not in self.done]

    def pretrainings(self, cells: list[Cell] | None = None) -> set[str]:
        return {c.encoder_key for c in (self.cells if cells is None else cells) if c.encoder == "ssl"}

    def pretrainings_to_run(self) -> set[str]:
        """Pretrainings of the cells to run whose run folder is not done (a new axis value's
        cells often share a finished pretraining: those are reused, not counted)."""
        return self.pretrainings(self.todo) - self.pretrainings_done

    def embedding_caches(self) -> tuple[int, int]:
        """(distinct encoders embedded, frozen probes reading them)."""
        frozen = [c for c in self.cells if c.probe != "finetune"]
        return len({c.encoder_key for c in frozen}), len(frozen)

    def format(self) -> str:
        by_encoder = Counter(c.encoder for c in self.cells)
        todo = self.todo
        caches, frozen = self.embedding_caches()
        finetunes = [c for c in todo if c.probe == "finetune"]
        i, n = self.shard
        pre_all, pre_todo = self.pretrainings(), self.pretrainings_to_run()
        lines = [
            f"sweep plan{f' (shard {i}/{n})' if n > 1 else ''} -> store {self.store}",
            f"  cells: {len(self.cells)} ({', '.join(f'{k} {v}' for k, v in sorted(by_encoder.items()))}); "
            f"done {len(self.cells) - len(todo)}, to run {len(todo)}",
            *self.axes,
            f"  pretrainings: {len(pre_all)} distinct (settings, seed) shared by {by_encoder['ssl']} "
            f"ssl cells; to run {len(pre_todo)}",
            f"  embedding caches: {caches} encoders embedded once, reused by {frozen} frozen probes",
            f"  work to do: {self._pretrain_work(pre_todo)}; {len(todo) - len(finetunes)} frozen probes, "
            f"{len(finetunes)} fine-tunes{self._finetune_work(finetunes)}",
        ]
        return "\n".join(lines)

    def _pretrain_work(self, keys: set[str]) -> str:
        work = [self.pretrainings_work[k] for k in sorted(keys)]
        if not work:
            return "no pretrainings"
        if any(steps > 0 for _, steps, _ in work):  # --max-steps: optimizer steps, not epochs
            steps, batch = _span(w[1] for w in work), _span(w[2] for w in work)
            return f"{len(work)} pretrainings x {steps} steps x {batch} clips"
        epochs = _span(w[0] for w in work)
        if self.pretrain_clips is None:
            return f"{len(work)} pretrainings x {epochs} epochs x ? clips"
        total = sum(w[0] for w in work) * self.pretrain_clips
        return f"{len(work)} pretrainings x {epochs} epochs x {self.pretrain_clips} clips = {total} clip-passes"

    def _finetune_work(self, cells: list[Cell]) -> str:
        if not cells or self.probe_clips is None:
            return ""
        return f" (x {_span(self.probe_epochs[c.cell_id] for c in cells)} epochs x {self.probe_clips} clips)"


def _span(values) -> str:
    """``3`` when every value is 3, ``1 to 3`` otherwise (``0`` when there is none)."""
    values = sorted(set(values)) or [0]
    return f"{values[0]}" if len(values) == 1 else f"{values[0]} to {values[-1]}"


def _who(cell: Cell) -> str:
    return f"ssl {cell.method}" if cell.encoder == "ssl" and cell.method else cell.encoder


def axis_lines(spec: SweepSpec, cells: list[Cell]) -> list[str]:
    """The structural axes' values, then each setting axis: its values and the cells it expands."""
    structural = "; ".join(
        f"{k} {', '.join(map(str, spec.grid[k]))}" for k in ("method", "freeze", "probe", "pooling", "seed")
    )
    lines = [f"  grid: {structural}"]
    for axis in spec.axes:
        expanded = [c for c in cells if _value(c, axis) is not None]
        if not expanded:  # a default mask list of a grid without reconstruct
            continue
        values = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in axis.values)
        column = "" if axis.fixed else f" (column {axis.column})"
        who = ", ".join(sorted({_who(c) for c in expanded}))
        lines.append(f"  axis {axis.label} = {values}{column}: {len(expanded)} cells ({who})")
    return lines


def _value(cell: Cell, axis: Axis):
    return getattr(cell, axis.column) if axis.fixed else dict(cell.axes).get(axis.column)


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
    from ..pretrain.config import PretrainConfig
    from ..probe.config import ProbeConfig

    # the data settings every pretraining shares: [pretrain] without the methods' own settings
    common = {k: v for k, v in spec.pretrain.items() if not owners(k)}
    pre = resolve(PretrainConfig, overrides=dict(common, data=spec.pretrain_data))
    probe = resolve(ProbeConfig, overrides=dict(spec.probe, data=spec.probe_data))
    work: dict[str, tuple[int, int, int]] = {}
    finished: set[str] = set()
    for cell in cells:
        if cell.encoder == "ssl" and cell.encoder_key not in work:
            cfg = spec.pretrain_config(cell)
            work[cell.encoder_key] = (cfg.epochs, cfg.max_steps, cfg.batch_size)
            if runs.is_done(cfg.run_dir()):
                finished.add(cell.encoder_key)
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
        pretrainings_work=work,
        pretrainings_done=finished,
        probe_epochs={
            c.cell_id: spec.swept(c, "probe").get("epochs", probe.epochs) for c in cells if c.probe == "finetune"
        },
        axes=axis_lines(spec, cells),
    )
