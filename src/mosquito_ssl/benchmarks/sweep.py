"""Running a sweep: every cell of a spec (or of one shard), skipping done cells, sharing work.

    mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --shard 0/2

Owns ``run_sweep(spec, shard, force, dry_run) -> SweepSummary``. One pretraining per
(pretraining settings, seed), resumed from its last checkpoint after a kill and reused by every
freeze/probe cell; frozen probes share the probe stage's embedding cache. A cell is done only
once its probe run dir is DONE *and* its rows are committed in one store transaction; a failing
cell is recorded as failed with a one-line error and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import StoreError
from ..store.write import ResultsStore
from .plan import Plan, make_plan, select_shard, shard_store_path
from .spec import Cell, SweepSpec

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    store: Path
    total: int  # cells in this shard
    skipped: int = 0  # already done before this run
    ran: int = 0  # finished in this run
    failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (cell name, one-line error)
    plan: Plan | None = None
    dry_run: bool = False

    def format(self) -> str:
        if self.dry_run:
            return f"dry run: nothing was run; {self.total - self.skipped} cells to run"
        text = (
            f"{self.ran + self.skipped}/{self.total} cells done ({self.ran} run now, "
            f"{self.skipped} already done), {self.failed} failed -> {self.store}"
        )
        for name, error in self.errors[:10]:
            text += f"\n  failed {name}: {error}"
        if self.failed:
            text += "\n  failed cells are retried when the same command runs again"
        return text


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:500]


def _versions() -> dict[str, Any]:
    """Run metadata shared by every cell of this process (git and versions are asked once)."""
    meta = runs.run_metadata()
    v = meta["versions"]
    return {
        "package_version": v.get("mosquito-ssl"),
        "git_commit": meta["git_commit"],
        "torch_version": v.get("torch"),
        "transformers_version": v.get("transformers"),
        "device": meta["device"],
    }


def _done_ids(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    try:
        return ResultsStore(path, create=False).done_ids()
    except StoreError:
        return set()


def _pretrain(spec: SweepSpec, cell: Cell, force: bool, pretrained: dict[str, Any]) -> Path:
    """The cell's pretraining, run (or resumed, or skipped if DONE) once per process."""
    if cell.encoder_key not in pretrained:
        from ..pretrain.train import pretrain

        try:
            pretrained[cell.encoder_key] = pretrain(spec.pretrain_config(cell, force=force))
        except Exception as exc:  # every cell of this encoder fails with it; not retried here
            pretrained[cell.encoder_key] = exc
    result = pretrained[cell.encoder_key]
    if isinstance(result, Exception):
        raise result
    return result


def run_cell(spec: SweepSpec, cell: Cell, force: bool, pretrained: dict[str, Any]) -> tuple[list[dict], dict]:
    """Run one cell; returns (long-format result rows, extra ``cells`` columns)."""
    from ..probe.run import run_probe

    pretrain_dir = _pretrain(spec, cell, force, pretrained) if cell.encoder == "ssl" else None
    result = run_probe(spec.probe_config(cell, force=force))
    if not runs.is_done(result.run_dir):
        raise RuntimeError(f"probe run {result.run_dir} has no DONE marker")
    if not result.rows:
        raise RuntimeError(f"probe run {result.run_dir} returned no result rows")
    return list(result.rows), {
        "run_dir": str(result.run_dir),
        "pretrain_dir": str(pretrain_dir) if pretrain_dir else None,
    }


def _free_memory() -> None:
    # After an out-of-memory error the next cell should start from a clean GPU.
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def _execute(
    spec: SweepSpec, cell: Cell, store: ResultsStore, meta: dict, force: bool, pretrained: dict, summary: SweepSummary
) -> None:
    started = time.time()
    base = dict(cell.columns(), **meta)
    try:
        rows, extra = run_cell(spec, cell, force, pretrained)
        store.commit_cell(dict(base, **extra, wall_time_s=round(time.time() - started, 3), finished_at=_now()), rows)
    except Exception as exc:  # one failing cell (incl. rows the store rejects) is recorded; go on
        error = one_line(exc)
        log.warning("cell %s failed: %s", cell.name, error)
        log.debug("traceback of %s", cell.name, exc_info=True)
        _free_memory()
        store.record_failure(dict(base, wall_time_s=round(time.time() - started, 3), finished_at=_now()), error)
        summary.failed += 1
        summary.errors.append((cell.name, error))
        return
    summary.ran += 1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _ordered(cells: list[Cell]) -> list[Cell]:
    """Cells of one pretraining next to each other, so its artifacts are used while warm."""
    first: dict[str, int] = {}
    for i, cell in enumerate(cells):
        first.setdefault(cell.encoder_key, i)
    return sorted(cells, key=lambda c: first[c.encoder_key])


def run_sweep(
    spec: SweepSpec, shard: tuple[int, int] = (0, 1), force: bool = False, dry_run: bool = False, echo=print
) -> SweepSummary:
    """Expand, plan (printed through ``echo``), then run every cell of the shard not yet done."""
    cells = _ordered(select_shard(spec.cells(), shard))
    path = shard_store_path(spec, shard)
    done = set() if force else _done_ids(path)
    plan = make_plan(spec, cells, done, shard, path)
    echo(plan.format())
    summary = SweepSummary(
        store=path, total=len(cells), skipped=len(cells) - len(plan.todo), plan=plan, dry_run=dry_run
    )
    if dry_run:
        return summary
    store = ResultsStore(path)
    store.set_meta("sweep", spec.name)
    store.add_expected(c.cell_id for c in cells)
    store.set_meta("spec", json.dumps(dataclasses.asdict(spec), default=str, sort_keys=True))
    store.record_axes(spec.axes_meta())  # the swept settings' columns, before any cell writes them
    meta = _versions()
    pretrained: dict[str, Any] = {}  # encoder_key -> pretrain run dir (or the exception it raised)
    todo = plan.todo
    if not todo:
        return summary
    with _progress(len(cells), summary.skipped) as bar:
        for cell in todo:
            bar.set_postfix_str(cell.name, refresh=True)
            log.info("cell %d/%d: %s", cells.index(cell) + 1, len(cells), cell.name)
            _execute(spec, cell, store, meta, force, pretrained, summary)
            bar.update(1)
    return summary


def _progress(total: int, initial: int):
    """Cells done / total with an ETA; the pretraining and embedding bars appear below it.

    Off when stderr is not a terminal (CI, ``> log 2>&1``, SLURM; tqdm ``disable=None``): a
    log then gets the one INFO line per cell, not one line per bar update.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="cells",
        unit="cell",
        position=0,
        leave=True,
        dynamic_ncols=True,
        disable=None,
    )
