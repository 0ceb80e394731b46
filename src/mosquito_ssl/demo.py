"""``mosquito-ssl demo``: the main job end to end on the built-in synthetic species set.

    mosquito-ssl demo --out demo_out

Generates the synthetic species set, runs the sweep of ``benchmarks/demo.toml`` (tiny encoder:
each SSL method's masking ablated, mae at 2 mask ratios and reconstruct at 2 mask strengths, x 3
freezing settings x 2 seeds, plus the no-pretraining and hand-crafted baselines) into ``<out>/sweep/results.sqlite``, prints a summary
table and builds the report. Re-running skips everything already done.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .options import ForceOpt, SeedOpt

if TYPE_CHECKING:
    from .benchmarks.spec import SweepSpec
    from .benchmarks.sweep import SweepSummary

EPILOG = "Example: mosquito-ssl demo --out demo_out"
# Small enough for 2 CPU cores in a few minutes, large enough that 8 epochs of pretraining
# move the tiny encoder away from random init (4 species x 10 recordings x 3 clips; 3 rather
# than 4 clips keep the 8 pretrainings and 42 cells of the sweep within the time of the
# earlier 6 pretrainings and 34 cells on 160 clips).
DATA: dict[str, Any] = {"recordings_per_species": 10, "clips_per_recording": 3}
# Shipped inside the package so an installed (non-editable) package runs the demo too.
SPEC_FILE = Path(__file__).parent / "benchmarks" / "demo.toml"


def demo_spec(out: Path, data: Path) -> SweepSpec:
    """The demo's SweepSpec with its paths under ``out``."""
    from .benchmarks.spec import SweepSpec

    overrides = {"sweep.out": str(out / "sweep"), "sweep.pretrain_data": str(data), "sweep.probe_data": str(data)}
    return SweepSpec.load(SPEC_FILE, overrides)


def summary_text(store: Path) -> str:
    """Test balanced accuracy, mean over seeds, with the report's setting and baseline labels."""
    from .reports import tables
    from .reports.load import load_store

    table = tables.summary(load_store(store).results, "balanced_accuracy", "test")
    return "test balanced accuracy (mean over seeds):\n" + table.to_string()


def run_demo(out: Path, seed: int = 0, force: bool = False) -> tuple[SweepSummary, Path | None]:
    """Synthesise data, run the demo sweep, build the report; returns (summary, report path)."""
    from .benchmarks.sweep import run_sweep
    from .data.synthetic import synthesize
    from .reports.build import ReportConfig, build_report

    out = Path(out).resolve()
    data = out / "data"
    if not (data / "manifest.csv").is_file() or force:
        data = synthesize(data, seed=seed, **DATA)
    spec = demo_spec(out, data)
    summary = run_sweep(spec, force=force, echo=typer.echo)
    typer.echo(summary.format())
    if not summary.ran + summary.skipped:
        return summary, None
    typer.echo(summary_text(spec.store_path))
    return summary, build_report(ReportConfig(store=spec.store_path, out=out / "report"))


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("demo_out"),
    seed: SeedOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run the whole pipeline on built-in synthetic data."""
    typer.echo(f"demo -> {out}")
    summary, report = run_demo(out, seed=seed or 0, force=force)
    store = summary.store
    if summary.failed:
        # the same command retries only the failed cells
        typer.echo(
            f"done: {report or store} ({summary.failed} cells failed); next: mosquito-ssl benchmarks status {store}"
        )
        raise typer.Exit(1)
    typer.echo(f"done: {report}; next: mosquito-ssl reports build {store} --metric macro_f1")
