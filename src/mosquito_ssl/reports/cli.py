"""``mosquito-ssl reports``: turn a results store into tables, statistics, plots and a report.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report
    mosquito-ssl reports build results.sqlite --metric macro_f1 --percent --decimals 1 --ci

Parses options, calls ``build.build_report`` and ends with one ``done: ...; next: ...`` line;
never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import OutOpt

BUILD_EPILOG = (
    "Example: mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report\n\n"
    "Example: mosquito-ssl reports build runs/sweep/results.sqlite --metric macro_f1 --percent --decimals 1 --ci"
)
app = typer.Typer(
    help="Tables, statistics and plots from a results store.",
    epilog="Example: mosquito-ssl reports build runs/sweep/results.sqlite",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _reports() -> None:
    """Tables, statistics and plots from a results store (never imports torch)."""
    # A callback keeps `build` a sub-command even though it is the only one.


def _split(values: Optional[list[str]]) -> tuple[str, ...] | None:
    """Repeatable options also accept comma-separated lists: --rows mask_strength,mask_kind."""
    if not values:
        return None
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


@app.command("build", epilog=BUILD_EPILOG)
def build(
    store: Annotated[Path, typer.Argument(help="Results store (SQLite) written by `mosquito-ssl benchmarks run`.")],
    out: OutOpt = None,
    metric: Annotated[
        Optional[list[str]],
        typer.Option("--metric", "-m", help="Metric to tabulate (repeatable; default balanced_accuracy and macro_f1)."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split to report: val, test or cv.")] = "test",
    rows: Annotated[
        Optional[list[str]], typer.Option("--rows", help="Store column(s) for table rows (default mask_strength).")
    ] = None,
    columns: Annotated[
        Optional[list[str]], typer.Option("--columns", help="Store column(s) for table columns (default freeze).")
    ] = None,
    probe: Annotated[
        Optional[list[str]],
        typer.Option("--probe", help="Probe kind(s) to report (default: every probe in the store)."),
    ] = None,
    reference: Annotated[
        str, typer.Option("--reference", help="Setting every other is tested against, COLUMN=VALUE[,...].")
    ] = "encoder=random",
    decimals: Annotated[int, typer.Option("--decimals", help="Decimals in tables.")] = 3,
    percent: Annotated[bool, typer.Option("--percent", help="Show metrics as percentages.")] = False,
    ci: Annotated[bool, typer.Option("--ci", help="Add the 95% t-based CI to each table cell.")] = False,
    correction: Annotated[
        str, typer.Option("--correction", help="Multiple-comparison correction: holm, bh or none.")
    ] = "holm",
    test: Annotated[
        str, typer.Option("--test", help="Paired test that decides significance: ttest or wilcoxon.")
    ] = "ttest",
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
) -> None:
    """Build tables, statistics and plots from a results store."""
    from .build import ReportConfig, build_report

    given = {"metrics": _split(metric), "rows": _split(rows), "columns": _split(columns), "probes": _split(probe)}
    cfg = ReportConfig(
        store=store,
        out=out,
        split=split,
        reference=reference,
        decimals=decimals,
        percent=percent,
        ci=ci,
        correction=correction.lower(),
        test=test.lower(),
        alpha=alpha,
        **{k: v for k, v in given.items() if v is not None},
    )
    report = build_report(cfg)
    typer.echo(f"done: {report}; next: open it in a browser (LaTeX tables in {report.parent / 'tables'})")
