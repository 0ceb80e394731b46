"""``mosquito-ssl probe``: how well does an encoder separate mosquito species?

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny
    mosquito-ssl probe layerwise data/synth --encoder random:tiny
    mosquito-ssl probe linear data/synth --encoder random:tiny --patch-size 8 --patch-stride 8
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

from ..cli_options import declared_help
from ..data import cli as data_cli
from ..errors import ConfigError
from ..options import ConfigOpt, ProtocolOpts
from .config import ProbeConfig

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
    **{name: ("finetune",) for name in (*RECIPE, "epochs", "patience", "dropout", "refit")},
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
    # Help texts and defaults come from ProbeConfig's declarations (cli_options.declared_help).
    def command(
        data: Annotated[Path, typer.Argument(help="Labelled clips: folder per species, manifest CSV or HumBugDB CSV.")],
        encoder: Annotated[Optional[str], Opt()] = None,
        pooling: Annotated[Optional[str], Opt()] = None,
        layer: Annotated[Optional[int], Opt()] = None,
        freeze: Annotated[Optional[str], Opt()] = None,
        folds: Annotated[Optional[int], Opt()] = None,
        classes: ProtocolOpts.classes = None,
        exclude_classes: ProtocolOpts.exclude_classes = None,
        max_clips_per_group: Annotated[Optional[int], Opt()] = None,
        min_groups_per_class: Annotated[Optional[int], Opt()] = None,
        train_groups_per_class: Annotated[Optional[int], Opt()] = None,
        sample_rate: Annotated[Optional[int], Opt()] = None,
        num_mel_bins: Annotated[Optional[int], Opt()] = None,
        normalize: Annotated[Optional[str], Opt()] = None,
        patch_size: Annotated[Optional[int], Opt()] = None,
        patch_stride: Annotated[Optional[int], Opt()] = None,
        seed: Annotated[Optional[int], Opt()] = None,
        label_column: Annotated[Optional[str], Opt()] = None,
        group_column: Annotated[Optional[str], Opt()] = None,
        split_column: Annotated[Optional[str], Opt()] = None,
        audio_dir: Annotated[Optional[Path], Opt()] = None,
        layout: Annotated[Optional[str], Opt()] = None,
        window: Annotated[Optional[float], Opt()] = None,
        hop: Annotated[Optional[float], Opt()] = None,
        head_init: Annotated[Optional[str], Opt()] = None,
        lr: Annotated[Optional[float], Opt()] = None,
        head_lr: Annotated[Optional[float], Opt()] = None,
        layer_decay: Annotated[Optional[float], Opt()] = None,
        warmup: Annotated[Optional[float], Opt()] = None,
        weight_decay: Annotated[Optional[float], Opt()] = None,
        specaugment: Annotated[Optional[float], Opt()] = None,
        mixup: Annotated[Optional[float], Opt()] = None,
        balance: Annotated[Optional[str], Opt()] = None,
        epochs: Annotated[Optional[int], Opt()] = None,
        batch_size: Annotated[Optional[int], Opt()] = None,
        patience: Annotated[Optional[int], Opt()] = None,
        dropout: Annotated[Optional[float], Opt()] = None,
        refit: Annotated[Optional[str], Opt()] = None,
        encoder_name: Annotated[Optional[str], Opt()] = None,
        # The old spelling of --encoder-name ("label" means a class everywhere else).
        encoder_label: Annotated[Optional[str], Opt(hidden=True)] = None,
        out: Annotated[Optional[Path], Opt("--out", "-o")] = None,
        run_name: Annotated[Optional[str], Opt()] = None,
        config: ConfigOpt = None,
        force: Annotated[bool, Opt("--force", help="Recompute even if a finished result exists.")] = False,
    ) -> None:
        _run(probe, dict(locals()))

    command.__doc__ = DOCS[probe]
    command.__name__ = probe
    return _own_options_only(declared_help(command, ProbeConfig), probe)


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

    config = flags.pop("config")
    flags["force"] = flags["force"] or None
    legacy_name = flags.pop("encoder_label")
    if flags["encoder_name"] is None:
        flags["encoder_name"] = legacy_name
    cfg = resolve(ProbeConfig, config, section="probe", overrides={**flags, "probe": probe})
    from .run import run_probe  # torch loads after the settings are checked

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
