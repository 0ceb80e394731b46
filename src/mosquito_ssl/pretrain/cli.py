"""``mosquito-ssl pretrain``: self-supervised pretraining of AST on unlabelled clips.

mosquito-ssl pretrain data/synth --preset tiny --epochs 20 --run-name tiny-demo
torchrun --nproc_per_node 2 -m mosquito_ssl pretrain data/ --preset base   # multi-GPU

The options are built from ``PretrainConfig``'s declarations (``cli_options.py``): one per
setting, grouped by panel, its default shown from the declaration. Registered on the root app by
``cli.py``: ``app.command("pretrain", epilog=EPILOG)(pretrain)``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import typer

from ..cli_options import config_command
from .config import PANELS, PretrainConfig

EPILOG = (
    "Example: mosquito-ssl pretrain data/synth --preset tiny --epochs 20 --run-name tiny-demo\n\n"
    "Example: mosquito-ssl pretrain data/synth --preset tiny --method mae --mask-ratio 0.7 --freeze partial:1"
)


def run(config: Path | None, flags: dict[str, Any]) -> None:
    """Resolve defaults < --config TOML [pretrain] < flags, pretrain, print where the encoder is."""
    from ..config import resolve

    cfg = resolve(PretrainConfig, config, section="pretrain", overrides=flags)  # checked before torch loads
    from .train import pretrain as train

    run_dir = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # one line per launch, not per torchrun process
        typer.echo(done_line(run_dir, cfg.data))


pretrain = config_command(
    PretrainConfig, run, "Pretrain AST self-supervised (--method mae, teacher, byol or reconstruct).", ("data",), PANELS
)


def done_line(run_dir: Path, data: Path) -> str:
    """Where the encoder is and the command that evaluates it."""
    probe = f"mosquito-ssl probe linear {shlex.quote(str(data))} --encoder {shlex.quote(str(run_dir))}"
    return f"done: {run_dir / 'final'}; next: {probe}"
