"""``PretrainConfig``: every setting of ``mosquito-ssl pretrain``, each declared once; torch-free.

    mosquito-ssl pretrain data/synth --preset tiny --method mae --mask-ratio 0.7

The common settings are declared here with ``settings.setting`` (default, help, range, --help
panel); the methods' own are declared in ``model/method_settings.py`` and become flat fields of
``PretrainConfig`` (None = the method's default), so TOML keys and flags stay flat. The command
line is built from these declarations (``cli_options.py``); ``train.pretrain(cfg)`` runs it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import runs
from ..data.feature_settings import MAX_RATE, NORMALIZE
from ..errors import ConfigError
from ..model import methods
from ..model.freeze import Freeze, parse_freeze
from ..model.methods import METHOD_FIELDS, METHODS
from ..model.presets import PATCH, PATCH_RANGE, check_patch
from ..settings import base_type, check_fields, setting

# Front-end settings as every run had them before they could be set (kept out of run hashes).
LEGACY_FRONT_END = {"sample_rate": 16000, "num_mel_bins": 128, "normalize": "audioset"}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# The --help panels of `mosquito-ssl pretrain` (the methods' settings get one panel per method).
DATA, FRONT, MODEL, OPTIM, OUTPUT = "Data", "Front end", "Model", "Optimisation", "Output"
PANELS = (DATA, FRONT, MODEL, OPTIM, OUTPUT)


@dataclass(frozen=True)
class PretrainSettings:
    """Every pretraining setting but the methods' own (``PretrainConfig`` adds those, flat)."""

    data: Path = setting(help="Audio folder, manifest CSV or HumBugDB metadata CSV.", panel=DATA)
    out: Path = setting(Path("runs"), "Output directory.", panel=OUTPUT, short="-o")
    run_name: str | None = setting(
        None, "Run directory name under --out.", panel=OUTPUT, default_text="preset + settings hash"
    )
    layout: str = setting("auto", "Data layout: auto, flat, folders, csv or humbugdb.", panel=DATA)  # layouts.py
    clip_seconds: float = setting(1.0, "Clip length in seconds.", gt=0, panel=DATA)
    window: float | None = setting(None, "Cut long recordings into clips of this many seconds.", gt=0, panel=DATA)
    hop: float | None = setting(None, "Hop between clips in seconds.", gt=0, panel=DATA, default_text="--window")
    sample_rate: int = setting(
        16000, "Feature sample rate in Hz: audio is resampled to it.", ge=1000, le=MAX_RATE, panel=FRONT
    )
    num_mel_bins: int = setting(128, "Mel bands of the log-mel features.", ge=16, panel=FRONT)
    normalize: str = setting(
        "audioset", "Log-mel mean/std: AST's AudioSet ones or the training clips'.", choices=NORMALIZE, panel=FRONT
    )
    preset: str = setting("base", "Encoder preset built locally: tiny, small or base.", panel=MODEL)  # presets.py
    # 16 = AST's; smaller patches keep more frequency detail at (16/P)^2 the tokens (docs/pretraining.md)
    patch_size: int | None = setting(
        None,
        "Square patch edge (frames and mel bins) of the --preset encoder: mae, teacher and byol run at "
        "stride = patch size, reconstruct at AST's overlap (stride 10 at 16, 5 at 8).",
        ge=PATCH_RANGE[0],
        le=PATCH_RANGE[1],
        panel=MODEL,
        default_text=str(PATCH),
    )
    pretrained: Path | None = setting(None, "Local HF AST checkpoint folder to start the encoder from.", panel=MODEL)
    init_from: Path | None = setting(None, "Start from a model.pth saved by a pretrain run.", panel=MODEL)
    # mae by evidence (docs/evidence-methods.md): best or tied linear probes, and the fastest
    method: str = setting(
        "mae", "SSL method; its settings are in its panel below.", choices=tuple(METHODS), panel=MODEL
    )
    freeze: str = setting(
        "full", "Encoder parts that train: full, frozen or partial:K (first K blocks fixed).", panel=MODEL
    )
    freeze_layers: int | None = setting(None, "Old spelling of --freeze partial:K.", ge=0, panel=MODEL, hidden=True)
    lr: float = setting(1e-4, "Learning rate.", gt=0, panel=OPTIM)
    batch_size: int = setting(8, "Per-device batch size.", ge=1, panel=OPTIM)
    epochs: int = setting(150, "Epochs.", ge=1, panel=OPTIM)
    max_steps: int = setting(-1, "Stop after N optimizer steps (-1: use --epochs).", ge=-1, panel=OPTIM)
    grad_accum: int = setting(2, "Gradient accumulation steps.", ge=1, panel=OPTIM)
    warmup_ratio: float = setting(0.05, "Warm-up fraction of all steps.", ge=0, lt=1, panel=OPTIM)
    weight_decay: float = setting(0.0, "AdamW weight decay.", ge=0, panel=OPTIM)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.", gt=0, panel=OPTIM)
    workers: int = setting(2, "Data-loader worker processes.", ge=0, panel=OPTIM)
    precision: str = setting("auto", "auto: bf16/fp16 on a GPU, else fp32.", choices=PRECISIONS, panel=OPTIM)
    compile: bool = setting(False, "torch.compile the model.", panel=OPTIM)
    patience: int = setting(10, "Early-stopping patience in epochs.", ge=1, panel=OPTIM)
    threshold: float = setting(1e-4, "Early-stopping smallest improvement.", ge=0, panel=OPTIM)
    save_total_limit: int = setting(2, "Checkpoints kept.", ge=1, panel=OUTPUT)
    val_fraction: float = setting(0.1, "Validation fraction (split by group).", gt=0, lt=1, panel=DATA)
    split_seed: int = setting(42, "Seed of the train/validation split.", cli=False)
    seed: int = setting(42, "Random seed (initialisation, masks, data order).", panel=OPTIM)
    logging_steps: int = setting(10, "Optimizer steps between log entries.", ge=1, cli=False)
    resume: bool = setting(
        False, "Continue an interrupted run from its last checkpoint.", panel=OUTPUT, flag="--resume"
    )
    force: bool = setting(False, "Recompute even if a finished result exists.", panel=OUTPUT, flag="--force")
    cache_dir: Path | None = setting(None, "Feature cache root.", cli=False)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.max_steps == 0:
            raise ConfigError("--max-steps 0 is not valid: use -1 (train for --epochs) or a number of steps >= 1")
        object.__setattr__(self, "freeze", str(self._parse_freeze()))
        object.__setattr__(self, "freeze_layers", None)  # folded into freeze
        _ = self.features  # validates the front end early
        self._check_patch()
        self.method_settings()  # validates --method and its settings early

    def _check_patch(self) -> None:
        """``--patch-size`` is the preset's: it fits the clip, and a ``--pretrained`` checkpoint has its own."""
        if self.patch_size is None:
            return
        if self.pretrained is not None:
            raise ConfigError(
                f"--patch-size {self.patch_size} sets the patch of a --preset encoder: --pretrained "
                f"{self.pretrained} brings its own; drop --patch-size"
            )
        check_patch(self.patch_size, None, self.features)

    def _parse_freeze(self) -> Freeze:
        """``freeze`` validated (against the preset's depth when known), ``freeze_layers`` folded in."""
        from ..model.presets import PRESETS

        freeze = self.freeze
        if self.freeze_layers is not None:
            if parse_freeze(freeze) != Freeze("full"):
                raise ConfigError("--freeze-layers K is the old spelling of --freeze partial:K: give only --freeze")
            freeze = f"partial:{self.freeze_layers}"
        if self.pretrained is None and self.preset not in PRESETS:
            raise ConfigError(f"--preset {self.preset!r} is not valid: use one of {', '.join(PRESETS)}")
        preset = PRESETS.get(self.preset) if self.pretrained is None else None
        return parse_freeze(freeze, preset["num_hidden_layers"] if preset else None)

    def science(self) -> dict:
        """Settings that change what is learned (not where it is written or how it is run)."""
        skip = {"out", "run_name", "resume", "force", "workers", "cache_dir", "logging_steps", "compile", "freeze"}
        science = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip and k not in METHOD_FIELDS}
        science.update(_freeze_science(self.freeze))
        # The front end at the values every run had before it could be set stays out, so
        # run-directory names made before then do not change.
        science = {k: v for k, v in science.items() if LEGACY_FRONT_END.get(k, ...) != v}
        if science["patch_size"] in (None, PATCH):  # AST's patch: run names from before --patch-size
            del science["patch_size"]
        if methods.get(self.method).legacy_hash:  # every setting, no method name (methods.py)
            del science["method"]
            science.update(dataclasses.asdict(self.method_settings()))
        else:  # the settings given: a method's defaults may change without renaming its runs
            science.update({k: v for k, v in self.given_method_settings().items() if v is not None})
        return science

    @property
    def features(self):
        """The front end (its mean/std are AudioSet's until ``--normalize dataset`` measures them)."""
        from ..data.feature_settings import FRONT_END, FeatureSettings

        return FeatureSettings(clip_seconds=self.clip_seconds, **{k: getattr(self, k) for k in FRONT_END})

    def given_method_settings(self) -> dict:
        return {k: getattr(self, k) for k in METHOD_FIELDS}

    def method_settings(self):
        """The method's settings dataclass (``model/methods.py``); another method's setting is an error."""
        return methods.method_settings(self.method, self.given_method_settings())

    def run_dir(self) -> Path:
        name = self.run_name or f"pretrain-{self.preset}-{runs.settings_hash(self.science(), 8)}"
        return Path(self.out) / name


def _method_field(name: str) -> tuple[str, Any, Any]:
    """A flat ``PretrainConfig`` field for a method setting: None = the method's own default."""
    declaration = methods.setting_field(name)
    hint = typing.get_type_hints(methods.METHODS[methods.methods_with(name)[0]].settings)[name]
    kind, _ = base_type(hint)
    return name, kind | None, dataclasses.field(default=None, metadata=dict(declaration.metadata))


# The methods' settings are declared once, in model/method_settings.py; PretrainConfig gets one
# flat field per setting from the registry (so TOML keys and flags stay flat), defaulting to None.
if typing.TYPE_CHECKING:
    PretrainConfig = PretrainSettings
else:
    PretrainConfig = dataclasses.make_dataclass(
        "PretrainConfig",
        [_method_field(name) for name in METHOD_FIELDS],
        bases=(PretrainSettings,),
        frozen=True,
    )
    PretrainConfig.__module__ = __name__  # pickling and repr find it here
    PretrainConfig.__doc__ = "Every pretraining setting; the methods' own are flat fields (None = method default)."


def _freeze_science(freeze: str) -> dict:
    """``freeze`` as it enters the run-directory hash.

    Runs made with ``--freeze-layers K`` (``K = 0`` by default) hashed ``freeze_layers: K``;
    ``full`` and ``partial:K`` (K >= 1) keep that key so their run directories keep their names.
    """
    parsed = parse_freeze(freeze)
    if parsed.kind == "full":
        return {"freeze_layers": 0}
    if parsed.kind == "partial" and parsed.blocks > 0:
        return {"freeze_layers": parsed.blocks}
    return {"freeze": str(parsed)}
