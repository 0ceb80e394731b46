"""``mosquito-ssl reports``: turn a results store into tables, statistics, plots and a report.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report
    mosquito-ssl reports build results.sqlite --metric macro_f1 --percent --decimals 1 --ci
    mosquito-ssl reports build results.sqlite --rows method,mask_ratio --reference method=mae,mask_ratio=0.8

Parses options, calls ``build.build_report`` and ends with one ``done: ...; next: ...`` line;
a warning (a ``--reference`` missing from some tables) is one ``warning: ...`` line on stderr;
never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import OutOpt

BUILD_EPILOG = (
    "Example: mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report\n\n"
    "Example: mosquito-ssl reports build runs/sweep/results.sqlite --metric macro_f1 --percent --decimals 1 --ci\n\n"
    "Example: mosquito-ssl reports build runs/sweep/results.sqlite --rows method,mask_ratio "
    "--reference method=mae,mask_ratio=0.8 --significance wilcoxon"
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
        Optional[list[str]],
        typer.Option(
            "--rows",
            help="Setting(s) for table rows, fixed or swept, e.g. method,mask_ratio "
            "(default: the settings that vary, method first).",
        ),
    ] = None,
    columns: Annotated[
        Optional[list[str]], typer.Option("--columns", help="Setting(s) for table columns (default freeze).")
    ] = None,
    probe: Annotated[
        Optional[list[str]],
        typer.Option("--probe", help="Probe kind(s) to report (default: every probe in the store)."),
    ] = None,
    reference: Annotated[
        Optional[str],
        typer.Option(
            "--reference",
            help="Setting every other is tested against, COLUMN=VALUE[,...] on any setting, e.g. mask_ratio=0.8 "
            "(default encoder=random: no pretraining); one that matches nothing is an error.",
        ),
    ] = None,
    decimals: Annotated[int, typer.Option("--decimals", help="Decimals in tables.")] = 3,
    percent: Annotated[bool, typer.Option("--percent", help="Show metrics as percentages.")] = False,
    ci: Annotated[bool, typer.Option("--ci", help="Add the 95% t-based CI to each table cell.")] = False,
    correction: Annotated[
        str, typer.Option("--correction", help="Multiple-comparison correction: holm, bh or none.")
    ] = "holm",
    significance: Annotated[
        str, typer.Option("--significance", help="Paired test that decides significance: ttest or wilcoxon.")
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
        significance=significance.lower(),
        alpha=alpha,
        **{k: v for k, v in given.items() if v is not None},
    )
    report = build_report(cfg, warn=lambda message: typer.echo(f"warning: {message}", err=True))
    typer.echo(f"done: {report}; next: open it in a browser (LaTeX tables in {report.parent / 'tables'})")
