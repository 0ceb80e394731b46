"""``mosquito-ssl demo``: the main job end to end on the built-in synthetic species set.

    mosquito-ssl demo --out demo_out

Generates the synthetic species set, runs the sweep of ``benchmarks/demo.toml`` (tiny encoder:
2 SSL methods (reconstruct at 2 mask strengths, mae) x 3 freezing settings x 2 seeds, plus the
no-pretraining and hand-crafted
baselines) into ``<out>/sweep/results.sqlite`` and builds the report. Re-running skips
everything already done.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from .options import ForceOpt, SeedOpt

log = logging.getLogger(__name__)

# Small enough for 2 CPU cores in a few minutes, large enough that 8 epochs of pretraining
# move the tiny encoder away from random init (4 species x 10 recordings x 4 clips).
DATA = {"recordings_per_species": 10, "clips_per_recording": 4}
# Shipped inside the package so an installed (non-editable) package runs the demo too.
SPEC_FILE = Path(__file__).parent / "benchmarks" / "demo.toml"


def demo_spec(out: Path, data: Path):
    """The demo's SweepSpec with its paths under ``out``."""
    from .benchmarks.spec import SweepSpec

    overrides = {"sweep.out": str(out / "sweep"), "sweep.pretrain_data": str(data), "sweep.probe_data": str(data)}
    return SweepSpec.load(SPEC_FILE, overrides)


def _print_table(store: Path) -> None:
    """Test balanced accuracy, mean over seeds, one row per setting (the report's labels)."""
    from .reports import tables
    from .reports.load import load_store

    frame = load_store(store).results
    frame = frame[(frame["split"] == "test") & (frame["metric"] == "balanced_accuracy") & frame["layer"].isna()]
    if frame.empty:
        return
    frame = tables.label_settings(frame, tables.row_keys(frame, ("mask_strength",), ("freeze", "probe")))
    table = frame.pivot_table(index=["order", "setting"], columns=["freeze", "probe"], values="value", aggfunc="mean")
    typer.echo("test balanced accuracy (mean over seeds):")
    typer.echo(table.droplevel("order").round(3).to_string())


def _report(store: Path, out: Path) -> Path:
    from .reports.build import ReportConfig, build_report

    _print_table(store)
    return build_report(ReportConfig(store=store, out=out))


def run_demo(out: Path, seed: int = 0, force: bool = False):
    """Synthesise data, run the demo sweep, build the report; returns (summary, report path)."""
    from .benchmarks.sweep import run_sweep
    from .data.synthetic import synthesize

    out = Path(out).resolve()
    data = out / "data"
    if not (data / "manifest.csv").is_file() or force:
        data = synthesize(data, seed=seed, **DATA)
    spec = demo_spec(out, data)
    summary = run_sweep(spec, force=force, echo=typer.echo)
    typer.echo(summary.format())
    report = _report(spec.store_path, out / "report") if summary.ran + summary.skipped else None
    return summary, report


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("demo_out"),
    seed: SeedOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run the whole pipeline on built-in synthetic data. Example: mosquito-ssl demo --out demo_out"""
    typer.echo(f"demo -> {out}")
    summary, report = run_demo(out, seed=seed or 0, force=force)
    if report is not None:
        typer.echo(f"report: {report}")
    if summary.failed:
        raise typer.Exit(1)
