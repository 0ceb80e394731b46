"""``mosquito-ssl benchmarks``: run a sweep from a TOML spec, merge shard stores, show status.

Each command parses its options, calls one library function and ends with one
``done: ...; next: ...`` line.

mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run
mosquito-ssl benchmarks run configs/mask_strength.toml --set pretrain.epochs=3 --shard 0/4
mosquito-ssl benchmarks run spec.toml --set 'grid.pretrain.mask_ratio=[0.6,0.8]' --dry-run
mosquito-ssl benchmarks merge runs/sweep/results.sqlite runs/sweep/results.shard-*-of-4.sqlite
mosquito-ssl benchmarks status runs/sweep/results.sqlite
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..options import ForceOpt, OutOpt

if TYPE_CHECKING:
    from ..store.write import ResultsStore
from ..speed.cli import EPILOG as SPEED_EPILOG
from ..speed.cli import speed

app = typer.Typer(
    help="Sweeps over any pretraining or probe setting (methods, masking, freezing...), with a SQLite results store.",
    epilog="Example: mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run",
    no_args_is_help=True,
)
RUN_EPILOG = (
    "Example: mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run\n\n"
    "Example: mosquito-ssl benchmarks run configs/mask_strength.toml --set pretrain.epochs=3 --shard 0/4"
)
MERGE_EPILOG = "Example: mosquito-ssl benchmarks merge runs/sweep/all.sqlite runs/sweep/results.shard-*-of-4.sqlite"
STATUS_EPILOG = "Example: mosquito-ssl benchmarks status runs/sweep/results.sqlite --spec configs/mask_strength.toml"

SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        help="Override a spec value: table.key=value, e.g. --set pretrain.epochs=3 "
        "--set grid.seed=[0,1,2]; sweep a setting with --set grid.pretrain.mask_ratio=[0.6,0.8] (repeatable).",
    ),
]


@app.command("run", epilog=RUN_EPILOG)
def run(
    spec: Annotated[Path, typer.Argument(help="Sweep specification (TOML), e.g. configs/mask_strength.toml.")],
    set_: SetOpt = None,
    out: OutOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only; create nothing.")] = False,
    force: ForceOpt = False,
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard",
            help="Run shard I of N (I from 0), e.g. --shard $SLURM_ARRAY_TASK_ID/4; "
            "writes results.shard-I-of-N.sqlite.",
        ),
    ] = None,
) -> None:
    """Run a sweep (cells already done are skipped)."""
    from .plan import parse_shard
    from .spec import SweepSpec
    from .sweep import run_sweep

    overrides = list(set_ or [])
    if out is not None:
        overrides.append(f"sweep.out={_toml_str(out)}")
    parsed_shard = parse_shard(shard)
    loaded = SweepSpec.load(spec, overrides)
    summary = run_sweep(loaded, shard=parsed_shard, force=force, dry_run=dry_run, echo=typer.echo)
    typer.echo(summary.format())
    typer.echo(_run_done_line(loaded, summary, parsed_shard))
    if summary.failed:
        raise typer.Exit(1)


def _run_done_line(spec, summary, shard: tuple[int, int]) -> str:
    """Where the results are and the command to run next (plan, retry, merge or report)."""
    store = summary.store
    if summary.dry_run:
        return "done: plan only, nothing written; next: the same command without --dry-run"
    if summary.failed:
        return f"done: {store} ({summary.failed} cells failed); next: mosquito-ssl benchmarks status {store}"
    if shard[1] > 1:
        shards = store.with_name(f"{spec.store_path.stem}.shard-*-of-{shard[1]}{spec.store_path.suffix}")
        return (
            f"done: {store}; next (once every shard is done): mosquito-ssl benchmarks merge {spec.store_path} {shards}"
        )
    return f"done: {store}; next: mosquito-ssl reports build {store}"


def _toml_str(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


@app.command("merge", epilog=MERGE_EPILOG)
def merge(
    out: Annotated[Path, typer.Argument(help="Merged store to create or update.")],
    shards: Annotated[list[Path], typer.Argument(help="Shard stores to merge into OUT.")],
) -> None:
    """Merge shard stores into one (idempotent; a done cell beats a failed one)."""
    from ..store.write import ResultsStore, merge_stores

    taken = merge_stores(out, list(shards))
    for shard, count in taken.items():
        typer.echo(f"{shard}: {count} cells taken")
    typer.echo(_status_line(ResultsStore(out, create=False)))
    typer.echo(f"done: {out}; next: mosquito-ssl reports build {out}")


def _status_line(store: ResultsStore) -> str:
    status = store.cell_status()
    done = sum(s == "done" for s, _ in status.values())
    return (
        f"{store.path}: {len(status)} cells, {done} done, {len(status) - done} failed, {store.count_rows()} result rows"
    )


@app.command("status", epilog=STATUS_EPILOG)
def status(
    store: Annotated[Path, typer.Argument(help="A results store, e.g. runs/demo/results.sqlite.")],
    spec: Annotated[Optional[Path], typer.Option("--spec", help="Sweep spec: also count pending cells.")] = None,
    set_: SetOpt = None,
) -> None:
    """Count done, failed (with their errors) and pending cells of a store."""
    from ..store.write import ResultsStore

    results = ResultsStore(store, create=False)
    typer.echo(_status_line(results))
    recorded = results.cell_status()
    failed = [(cell_id, error) for cell_id, (state, error) in sorted(recorded.items()) if state != "done"]
    for cell_id, error in failed:
        typer.echo(f"  failed {cell_id}: {error}")
    expected = results.expected_ids()
    pending = 0 if expected is None else len(expected - set(recorded))
    if expected is not None:
        typer.echo(f"  pending (expected by the sweep, not recorded yet): {pending}")
    if spec is not None:
        from .spec import SweepSpec

        cells = SweepSpec.load(spec, list(set_ or [])).cells()
        pending = sum(recorded.get(c.cell_id, ("",))[0] != "done" for c in cells)
        typer.echo(f"  spec {spec}: {len(cells)} cells, {pending} pending (not done)")
    if failed or pending:
        rerun = f"mosquito-ssl benchmarks run {spec}" if spec is not None else "the sweep's `benchmarks run` command"
        step = f"{rerun} again (it runs the failed and pending cells)"
    else:
        step = f"mosquito-ssl reports build {store}"
    typer.echo(f"done: {store}; next: {step}")


app.command("speed", epilog=SPEED_EPILOG)(speed)
