"""``mosquito-ssl demo``: the main job end to end on the built-in synthetic species set.

    mosquito-ssl demo --out demo_out

Generates the synthetic species set, then pretrains the tiny AST on it on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from .options import ForceOpt, SeedOpt

log = logging.getLogger(__name__)


def run_demo(out: Path, seed: int = 0, force: bool = False) -> Path:
    """Synthesise data and pretrain the tiny encoder; returns the pretraining run directory."""
    from .data.synthetic import synthesize
    from .pretrain.train import PretrainConfig, pretrain

    data = synthesize(out / "data", seed=seed)
    cfg = PretrainConfig(data=data, out=out / "runs", run_name="pretrain-tiny", preset="tiny",
                         epochs=15, batch_size=16, grad_accum=1, lr=1e-3, workers=0,
                         patience=5, seed=seed, force=force, resume=True)
    return pretrain(cfg)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("demo_out"),
    seed: SeedOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run the whole pipeline on built-in synthetic data. Example: mosquito-ssl demo --out demo_out"""
    typer.echo(f"demo -> {out}")
    run_dir = run_demo(out, seed=seed or 0, force=force)
    typer.echo(f"done: {run_dir}")
