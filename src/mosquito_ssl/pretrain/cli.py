"""``mosquito-ssl pretrain``: self-supervised pretraining of AST on unlabelled clips.

mosquito-ssl pretrain data/synth --preset tiny --epochs 20 --run-name tiny-demo
torchrun --nproc_per_node 2 -m mosquito_ssl pretrain data/ --preset base   # multi-GPU

Registered on the root app by ``cli.py``: ``app.command("pretrain", epilog=EPILOG)(pretrain)``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import (
    ClipSecondsOpt,
    ConfigOpt,
    ForceOpt,
    HopOpt,
    LayoutOpt,
    NormalizeOpt,
    NumMelBinsOpt,
    OutOpt,
    PresetOpt,
    PretrainedOpt,
    SampleRateOpt,
    SeedOpt,
    WindowOpt,
)

Opt = typer.Option
EPILOG = (
    "Example: mosquito-ssl pretrain data/synth --preset tiny --epochs 20 --run-name tiny-demo\n\n"
    "Example: mosquito-ssl pretrain data/synth --preset tiny --method mae --freeze partial:1"
)


def pretrain(
    data: Annotated[Path, typer.Argument(help="Audio folder, manifest CSV or HumBugDB metadata CSV.")],
    config: ConfigOpt = None,
    out: OutOpt = None,
    run_name: Annotated[
        Optional[str], Opt(help="Run directory name under --out (default: preset + settings hash).")
    ] = None,
    layout: LayoutOpt = None,
    clip_seconds: ClipSecondsOpt = None,
    sample_rate: SampleRateOpt = None,
    num_mel_bins: NumMelBinsOpt = None,
    normalize: NormalizeOpt = None,
    window: WindowOpt = None,
    hop: HopOpt = None,
    preset: PresetOpt = None,
    pretrained: PretrainedOpt = None,
    init_from: Annotated[Optional[Path], Opt(help="Start from a saved AST_SSL model.pth.")] = None,
    mask_strength: Annotated[Optional[float], Opt(help="Scales mask widths; 0 = no masking.")] = None,
    mask_kind: Annotated[Optional[str], Opt(help="specaugment, time, freq or patch.")] = None,
    time_width: Annotated[Optional[int], Opt(help="Max time-mask width in frames at strength 1.")] = None,
    freq_width: Annotated[Optional[int], Opt(help="Max frequency-mask width in bins at strength 1.")] = None,
    time_masks: Annotated[Optional[int], Opt(help="Time masks per clip.")] = None,
    freq_masks: Annotated[Optional[int], Opt(help="Frequency masks per clip.")] = None,
    loss_on: Annotated[Optional[str], Opt(help="MSE over 'all' cells (default) or 'masked' only.")] = None,
    freeze: Annotated[
        Optional[str], Opt(help="Encoder parts that train: full (default), frozen or partial:K (first K blocks fixed).")
    ] = None,
    freeze_layers: Annotated[Optional[int], Opt(hidden=True, help="Old spelling of --freeze partial:K.")] = None,
    method: Annotated[
        Optional[str], Opt(help="SSL method: mae (default), teacher, byol or reconstruct (the seed).")
    ] = None,
    mask_ratio: Annotated[Optional[float], Opt(help="mae/teacher: fraction of patches masked (0.8).")] = None,
    views: Annotated[Optional[int], Opt(help="teacher: masked views per clip sharing one teacher pass (4).")] = None,
    top_k: Annotated[Optional[int], Opt(help="teacher: teacher blocks averaged into targets (all).")] = None,
    ema_decay: Annotated[Optional[float], Opt(help="teacher/byol: EMA decay at the start (0.999 / 0.99).")] = None,
    ema_end_decay: Annotated[Optional[float], Opt(help="teacher/byol: EMA decay at the end (0.9999 / 0.99).")] = None,
    ema_anneal: Annotated[Optional[float], Opt(help="teacher/byol: fraction of steps to anneal the decay (1).")] = None,
    clip_loss: Annotated[Optional[float], Opt(help="teacher: weight of the clip (CLS) loss (1).")] = None,
    decoder_dim: Annotated[Optional[int], Opt(help="mae/teacher: decoder width (half the encoder's).")] = None,
    decoder_layers: Annotated[Optional[int], Opt(help="mae/teacher: decoder blocks (2).")] = None,
    decoder_heads: Annotated[Optional[int], Opt(help="mae/teacher: decoder heads (width / 32).")] = None,
    norm_pix_loss: Annotated[
        Optional[bool], Opt("--norm-pix-loss/--no-norm-pix-loss", help="mae: per-patch normalised targets (on).")
    ] = None,
    proj_dim: Annotated[Optional[int], Opt(help="byol: projection width (256).")] = None,
    proj_hidden: Annotated[Optional[int], Opt(help="byol: projector/predictor hidden width (1024).")] = None,
    mixup: Annotated[Optional[float], Opt(help="byol: largest mixup weight of another clip (0.4).")] = None,
    min_crop: Annotated[Optional[float], Opt(help="byol: shortest time crop, fraction of the clip (0.6).")] = None,
    lr: Annotated[Optional[float], Opt(help="Learning rate (1e-4).")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Per-device batch size (8).")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs (150).")] = None,
    max_steps: Annotated[Optional[int], Opt(help="Stop after N optimizer steps (-1: use epochs).")] = None,
    grad_accum: Annotated[Optional[int], Opt(help="Gradient accumulation steps (2).")] = None,
    warmup_ratio: Annotated[Optional[float], Opt(help="Warm-up fraction of all steps (0.05).")] = None,
    weight_decay: Annotated[Optional[float], Opt(help="AdamW weight decay (0).")] = None,
    max_grad_norm: Annotated[Optional[float], Opt(help="Gradient clipping norm (1.0).")] = None,
    workers: Annotated[Optional[int], Opt(help="Data-loader worker processes (2).")] = None,
    precision: Annotated[Optional[str], Opt(help="auto (bf16/fp16 on GPU), fp32, fp16 or bf16.")] = None,
    compile: Annotated[Optional[bool], Opt("--compile/--no-compile", help="torch.compile the model.")] = None,
    patience: Annotated[Optional[int], Opt(help="Early-stopping patience in epochs (10).")] = None,
    threshold: Annotated[Optional[float], Opt(help="Early-stopping min improvement (1e-4).")] = None,
    save_total_limit: Annotated[Optional[int], Opt(help="Checkpoints kept (2).")] = None,
    val_fraction: Annotated[Optional[float], Opt(help="Validation fraction (0.1).")] = None,
    seed: SeedOpt = None,
    resume: Annotated[bool, Opt("--resume", help="Continue an interrupted run from its last checkpoint.")] = False,
    force: ForceOpt = False,
) -> None:
    """Pretrain AST self-supervised (--method reconstruct, mae, teacher or byol)."""
    flags = dict(locals())
    flags.pop("config")
    from ..config import resolve
    from .train import PretrainConfig
    from .train import pretrain as run

    flags["resume"] = resume or None
    flags["force"] = force or None
    cfg = resolve(PretrainConfig, config, section="pretrain", overrides=flags)
    run_dir = run(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # one line per launch, not per torchrun process
        typer.echo(done_line(run_dir, cfg.data))


def done_line(run_dir: Path, data: Path) -> str:
    """Where the encoder is and the command that evaluates it."""
    probe = f"mosquito-ssl probe linear {shlex.quote(str(data))} --encoder {shlex.quote(str(run_dir))}"
    return f"done: {run_dir / 'final'}; next: {probe}"
