"""``mosquito-ssl probe``: how well does an encoder separate mosquito species?

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny
    mosquito-ssl probe layerwise data/synth --encoder random:tiny
    mosquito-ssl probe mlp data/synth --encoder handcrafted
    mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --freeze partial:1

Thin: each command builds a ``ProbeConfig`` (defaults < ``--config`` TOML ``[probe]`` < flags),
calls ``run_probe`` and prints the headline test metrics, then where the results are.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from ..data import cli as data_cli
from ..errors import ConfigError
from ..options import (
    AudioDirOpt,
    ConfigOpt,
    ForceOpt,
    GroupColumnOpt,
    HopOpt,
    LabelColumnOpt,
    LayoutOpt,
    NormalizeOpt,
    NumMelBinsOpt,
    OutOpt,
    ProtocolOpts,
    SampleRateOpt,
    SeedOpt,
    WindowOpt,
)

Opt = typer.Option
app = typer.Typer(
    help="Probe a pretrained encoder on labelled clips (linear, layer-wise, MLP, fine-tune).", no_args_is_help=True
)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
DOCS = {
    "linear": "Linear probe on a frozen encoder.",
    "layerwise": "Linear probe on every layer, best layer chosen on val.",
    "mlp": "MLP probe on a frozen encoder.",
    "finetune": "Fine-tune the encoder with a classification head.",
}
EPILOGS = {
    "linear": "Example: mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny",
    "layerwise": "Example: mosquito-ssl probe layerwise data/synth --encoder runs/pretrain-tiny",
    "mlp": "Example: mosquito-ssl probe mlp data/synth --encoder runs/pretrain-tiny",
    "finetune": "Example: mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --freeze partial:1",
}
# Options only some probes use (every other option applies to all four): the others do not list
# them, and answer them with the command that has them.
RECIPE = (
    "freeze",
    "head_init",
    "lr",
    "head_lr",
    "layer_decay",
    "warmup",
    "weight_decay",
    "specaugment",
    "mixup",
    "balance",
)
ONLY = {
    **{name: ("finetune",) for name in (*RECIPE, "epochs", "patience", "dropout")},
    "layer": ("linear", "mlp"),  # layerwise probes every layer; finetune trains on the last
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _ProbeCommand(TyperCommand):
    """A probe command: an option of another probe is an error naming the command that has it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        elsewhere = {_flag(n): probes for n, probes in ONLY.items() if self.name not in probes}
        for arg in args:
            if arg == "--":
                break
            flag = arg.split("=", 1)[0]
            if flag in elsewhere:
                *rest, last = [f"`mosquito-ssl probe {p}`" for p in elsewhere[flag]]
                where = f"{', '.join(rest)} or {last}" if rest else last
                raise ConfigError(f"{flag} is an option of {where}, not of `mosquito-ssl probe {self.name}`")
        return super().parse_args(ctx, args)


def _table(rows: list[dict], split: str) -> str:
    """Headline rows (layer None) of one split as a small fixed-width table."""
    picked: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["split"] == split and r["layer"] is None and r["metric"] in HEADLINE:
            picked.setdefault(r["probe"], {})[r["metric"]] = r["value"]
    lines = [f"{'probe':<10}" + "".join(f"{m:>19}" for m in HEADLINE)]
    for probe, values in picked.items():
        lines.append(f"{probe:<10}" + "".join(f"{values.get(m, float('nan')):>19.4f}" for m in HEADLINE))
    return "\n".join(lines)


def _make(probe: str):
    def command(
        data: Annotated[Path, typer.Argument(help="Labelled clips: folder per species, manifest CSV or HumBugDB CSV.")],
        encoder: Annotated[
            Optional[str],
            Opt(help="Pretrain run dir, its final/, a model.pth, an HF AST folder, random:<preset> or handcrafted."),
        ] = None,
        pooling: Annotated[
            Optional[str], Opt(help="freq_stack (default), freq_mean_max, mean, cls, dist, cls_dist or cls+mean.")
        ] = None,
        layer: Annotated[Optional[int], Opt(help="Hidden layer to probe (0 = embedding output; default last).")] = None,
        freeze: Annotated[
            Optional[str], Opt(help="Encoder parts that train: full, partial:K or frozen (head only).")
        ] = None,
        folds: Annotated[Optional[int], Opt(help="K-fold grouped cross-validation (mean and std over folds).")] = None,
        classes: ProtocolOpts.classes = None,
        exclude_classes: ProtocolOpts.exclude_classes = None,
        max_clips_per_group: ProtocolOpts.max_clips_per_group = None,
        min_groups_per_class: ProtocolOpts.min_groups_per_class = None,
        sample_rate: SampleRateOpt = None,
        num_mel_bins: NumMelBinsOpt = None,
        normalize: NormalizeOpt = None,
        seed: SeedOpt = None,
        label_column: LabelColumnOpt = None,
        group_column: GroupColumnOpt = None,
        split_column: Annotated[Optional[str], Opt(help="Column with a predefined train/val/test split.")] = None,
        audio_dir: AudioDirOpt = None,
        layout: LayoutOpt = None,
        window: WindowOpt = None,
        hop: HopOpt = None,
        head_init: Annotated[
            Optional[str], Opt(help="Head start: probe (the frozen encoder's linear probe, LP-FT) or random.")
        ] = None,
        lr: Annotated[Optional[float], Opt(help="Learning rate of the encoder's top block (1e-4).")] = None,
        head_lr: Annotated[Optional[float], Opt(help="Learning rate of the classification head (1e-3).")] = None,
        layer_decay: Annotated[Optional[float], Opt(help="Lr factor per block downwards (0.75; 1 = none).")] = None,
        warmup: Annotated[Optional[float], Opt(help="Warm-up fraction of all steps before cosine decay (0.1).")] = None,
        weight_decay: Annotated[Optional[float], Opt(help="AdamW weight decay of weight matrices (0.05).")] = None,
        specaugment: Annotated[
            Optional[float], Opt(help="SpecAugment strength on inputs (0 = off, the default; 1 = AST's bands).")
        ] = None,
        mixup: Annotated[Optional[float], Opt(help="Mixup Beta(a, a) parameter a (0 = off).")] = None,
        balance: Annotated[Optional[str], Opt(help="Class balance: weights (loss), sampler or none.")] = None,
        epochs: Annotated[Optional[int], Opt(help="Most epochs; early stopping usually ends sooner (20).")] = None,
        batch_size: Annotated[Optional[int], Opt(help="Batch size for embeddings / fine-tuning (32).")] = None,
        patience: Annotated[Optional[int], Opt(help="Early-stopping patience in epochs (6).")] = None,
        dropout: Annotated[Optional[float], Opt(help="Dropout before the head (0).")] = None,
        encoder_name: Annotated[
            Optional[str], Opt(help="Value of the encoder column in results (default ssl/random/handcrafted).")
        ] = None,
        # The old spelling of --encoder-name ("label" means a class everywhere else).
        encoder_label: Annotated[Optional[str], Opt(hidden=True)] = None,
        out: OutOpt = None,
        run_name: Annotated[Optional[str], Opt(help="Run directory name under --out.")] = None,
        config: ConfigOpt = None,
        force: ForceOpt = False,
    ) -> None:
        _run(probe, dict(locals()))

    command.__doc__ = DOCS[probe]
    command.__name__ = probe
    return _own_options_only(command, probe)


def _own_options_only(command, probe: str):
    """List only ``probe``'s options in ``command``'s signature (what typer reads).

    One definition of every option; typer reads inspect.signature, which honours __signature__,
    so a left-out option keeps its None default: "not given".
    """
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if probe in ONLY.get(p.name, (probe,))]
    command.__dict__["__signature__"] = signature.replace(parameters=kept)
    return command


def _run(probe: str, flags: dict[str, Any]) -> None:
    """Resolve the ProbeConfig (defaults < --config < flags), run it, print the table and where it is."""
    from ..config import resolve
    from .config import ProbeConfig
    from .run import run_probe

    config = flags.pop("config")
    flags["force"] = flags["force"] or None
    legacy_name = flags.pop("encoder_label")
    if flags["encoder_name"] is None:
        flags["encoder_name"] = legacy_name
    cfg = resolve(ProbeConfig, config, section="probe", overrides={**flags, "probe": probe})
    result = run_probe(cfg)
    typer.echo(_table(result.rows, "cv" if cfg.folds else "test"))
    typer.echo(
        f"done: {result.run_dir / 'results.csv'}; next: compare encoders with "
        "mosquito-ssl benchmarks run configs/mask_strength.toml"
    )


for _probe in DOCS:
    app.command(_probe, cls=_ProbeCommand, epilog=EPILOGS[_probe])(_make(_probe))


# Cutting presence clips is the data stage's job (`mosquito-ssl data presence`); the old
# spelling stays as a hidden alias so existing scripts keep working.
app.command("presence", hidden=True, epilog=data_cli.PRESENCE_EXAMPLE)(data_cli.presence)
