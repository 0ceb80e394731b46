"""``mosquito-ssl benchmarks``: run a sweep from a TOML spec, merge shard stores, show status.

mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run
mosquito-ssl benchmarks run configs/mask_strength.toml --set pretrain.epochs=3 --shard 0/4
mosquito-ssl benchmarks merge runs/sweep/results.sqlite runs/sweep/results.shard-*-of-4.sqlite
mosquito-ssl benchmarks status runs/sweep/results.sqlite
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import ForceOpt, OutOpt
from ..speed.cli import EPILOG as SPEED_EPILOG
from ..speed.cli import speed

app = typer.Typer(help="Sweeps over masking and freezing settings, with a SQLite results store.", no_args_is_help=True)

SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        help="Override a spec value: table.key=value, e.g. --set pretrain.epochs=3 "
        "--set grid.seed=[0,1,2] (repeatable).",
    ),
]


@app.command("run")
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
    """Run a sweep (skips done cells). Example: mosquito-ssl benchmarks run src/mosquito_ssl/benchmarks/demo.toml --dry-run"""
    from .plan import parse_shard
    from .spec import SweepSpec
    from .sweep import run_sweep

    overrides = list(set_ or [])
    if out is not None:
        overrides.append(f"sweep.out={_toml_str(out)}")
    parsed_shard = parse_shard(shard)
    summary = run_sweep(
        SweepSpec.load(spec, overrides), shard=parsed_shard, force=force, dry_run=dry_run, echo=typer.echo
    )
    typer.echo(summary.format())
    if summary.failed:
        raise typer.Exit(1)


def _toml_str(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


@app.command("merge")
def merge(
    out: Annotated[Path, typer.Argument(help="Merged store to create or update.")],
    shards: Annotated[list[Path], typer.Argument(help="Shard stores to merge into OUT.")],
) -> None:
    """Merge shard stores (idempotent; done beats failed). Example: mosquito-ssl benchmarks merge all.sqlite runs/s/results.shard-*.sqlite"""
    from .store import ResultsStore, merge_stores

    taken = merge_stores(out, list(shards))
    for shard, count in taken.items():
        typer.echo(f"{shard}: {count} cells taken")
    typer.echo(_status_line(ResultsStore(out, create=False)))


def _status_line(store) -> str:
    status = store.cell_status()
    done = sum(s == "done" for s, _ in status.values())
    return (
        f"{store.path}: {len(status)} cells, {done} done, {len(status) - done} failed, {store.count_rows()} result rows"
    )


@app.command("status")
def status(
    store: Annotated[Path, typer.Argument(help="A results store, e.g. runs/demo/results.sqlite.")],
    spec: Annotated[Optional[Path], typer.Option("--spec", help="Sweep spec: also count pending cells.")] = None,
    set_: SetOpt = None,
) -> None:
    """Count done / failed (with errors) / pending cells. Example: mosquito-ssl benchmarks status runs/demo/results.sqlite"""
    from .store import ResultsStore

    results = ResultsStore(store, create=False)
    typer.echo(_status_line(results))
    recorded = results.cell_status()
    for cell_id, (state, error) in sorted(recorded.items()):
        if state != "done":
            typer.echo(f"  failed {cell_id}: {error}")
    expected = results.expected_ids()
    if expected is not None:
        typer.echo(f"  pending (expected by the sweep, not recorded yet): {len(expected - set(recorded))}")
    if spec is not None:
        from .spec import SweepSpec

        cells = SweepSpec.load(spec, list(set_ or [])).cells()
        pending = [c for c in cells if recorded.get(c.cell_id, ("",))[0] != "done"]
        typer.echo(f"  spec {spec}: {len(cells)} cells, {len(pending)} pending (not done)")


app.command("speed", epilog=SPEED_EPILOG)(speed)
