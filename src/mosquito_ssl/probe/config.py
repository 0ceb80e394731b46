"""``ProbeConfig``: every setting of one probe run, validated before any work.

    mosquito-ssl probe linear data/synth --encoder runs/pretrain-tiny --pooling mean

Owns the pooling vocabulary (the probe kinds are ``probe/kinds.py``'s, the freeze forms
``model/freeze.py``'s), the run-directory name (``<out>/<run_name or
probe-<hash of the science settings>>``) and the ``encoder`` column written in result rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from ..data.feature_settings import FRONT_END
from ..errors import ConfigError
from ..model.freeze import canonical_freeze
from .kinds import FINETUNE, PROBES, pairs

# freq_stack / freq_mean_max keep the frequency axis (model/pooling.py): M2D and BYOL-A poolings
POOLINGS = ("cls", "dist", "cls_dist", "mean", "cls+mean", "freq_stack", "freq_mean_max")
HANDCRAFTED = "handcrafted"
LOGMEL = "logmel"  # log-mel mean and std per band + logistic regression: the simplest strong baseline
BASELINES = (HANDCRAFTED, LOGMEL)  # encoders with no network (probe/baselines.py)
# Regularisation grids searched on the validation split (C for logistic regression, alpha for MLP).
C_GRID = tuple(float(10.0**k) for k in range(-3, 3))
ALPHA_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
# Settings only fine-tuning reads (kept out of the run name of the other probes).
FINETUNE_FIELDS = (
    "head_init", "lr", "head_lr", "layer_decay", "warmup", "weight_decay", "specaugment", "mixup", "balance", "epochs",
    "patience", "dropout",
)  # fmt: skip
# Front-end and protocol settings: unset (None) stays out of the run name.
OPTIONAL_FIELDS = (
    "sample_rate", "num_mel_bins", "normalize", "classes", "exclude_classes", "max_clips_per_group",
    "min_groups_per_class",
)  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    data: Path
    encoder: str = "random:tiny"
    out: Path = Path("runs")
    run_name: str | None = None
    probe: str = "linear"
    freeze: str | None = None  # None: full for finetune (the whole encoder trains), frozen otherwise
    pooling: str = "freq_stack"  # by evidence: README "Which SSL method?"
    layer: int | None = None
    layout: str = "auto"
    label_column: str | None = None
    group_column: str | None = None
    split_column: str | None = None
    audio_dir: Path | None = None
    window: float | None = None
    hop: float | None = None
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2)
    folds: int = 0
    seed: int = 0
    c_grid: tuple[float, ...] = C_GRID
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    # the front end of random:<preset> and the baselines (a checkpoint brings its own); None = default
    sample_rate: int | None = None
    num_mel_bins: int | None = None
    normalize: str | None = None
    # the evaluation protocol (data/protocol.py)
    classes: tuple[str, ...] | None = None
    exclude_classes: tuple[str, ...] | None = None
    max_clips_per_group: int | None = None
    min_groups_per_class: int | None = None
    # fine-tuning (probe/recipe.py); defaults by evidence, README "Fine-tuning"
    head_init: str = "probe"
    lr: float = 1e-4
    head_lr: float = 1e-3
    layer_decay: float = 0.75
    warmup: float = 0.1
    weight_decay: float = 0.05
    specaugment: float = 0.0
    mixup: float = 0.0
    balance: str = "weights"
    epochs: int = 20
    batch_size: int = 32
    patience: int = 6
    dropout: float = 0.0
    encoder_name: str | None = None  # the ``encoder`` column of result rows (default: row_encoder)
    cache_dir: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.probe not in PROBES:
            raise ConfigError(f"--probe {self.probe!r} is not valid: use one of {', '.join(PROBES)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"--pooling {self.pooling!r} is not valid: use one of {', '.join(POOLINGS)}")
        # Stored canonically (``none`` -> ``full``), so the run name, config.json and the rows agree.
        default = "full" if self.probe == FINETUNE else "frozen"
        freeze = canonical_freeze(self.freeze or default)
        object.__setattr__(self, "freeze", freeze)
        if self.probe not in pairs(freeze):
            raise ConfigError(
                f"--freeze {self.freeze} trains the encoder: only --probe finetune does "
                "that; drop --freeze or use the finetune command"
            )
        if self.encoder in BASELINES and self.probe == FINETUNE:
            raise ConfigError(f"--encoder {self.encoder} has no network to fine-tune: use linear or mlp")
        if self.encoder in BASELINES and (self.probe == "layerwise" or self.layer is not None):
            raise ConfigError(f"--encoder {self.encoder} has no layers: use the linear or mlp probe without --layer")
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1) > 1e-6 or min(self.fractions) <= 0:
            raise ConfigError(
                f"fractions {self.fractions} must be three positive numbers (train, val, test) summing to 1"
            )
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"--folds {self.folds} is not valid: use 0 (one split) or K >= 2")
        if self.layer is not None and self.probe in ("layerwise", "finetune"):
            raise ConfigError(f"--layer does not apply to --probe {self.probe}: drop it")
        if self.encoder not in BASELINES and not str(self.encoder).startswith("random:") and self.front_end_flags:
            raise ConfigError(
                f"{', '.join(self.front_end_flags)} set(s) the front end of random:<preset> and baseline encoders: "
                f"{self.encoder} brings its own in preprocessor_config.json; drop the flag"
            )
        from ..data.protocol import class_names

        for name in ("classes", "exclude_classes"):  # stored as Protocol reads them: config.json agrees
            object.__setattr__(self, name, class_names(getattr(self, name)))
        _ = self.protocol  # validates the protocol options
        from .recipe import check_recipe

        check_recipe(self)

    @property
    def front_end_flags(self) -> list[str]:
        return ["--" + n.replace("_", "-") for n in FRONT_END if getattr(self, n) is not None]

    def front_end(self):
        """FeatureSettings from the front-end flags (random:<preset> and baselines)."""
        from ..data.feature_settings import FeatureSettings

        return FeatureSettings(**{k: getattr(self, k) for k in FRONT_END if getattr(self, k) is not None})

    @property
    def protocol(self):
        from ..data.protocol import Protocol

        return Protocol(
            self.classes, self.exclude_classes, self.max_clips_per_group, self.min_groups_per_class, self.seed
        )

    @property
    def row_encoder(self) -> str:
        """The ``encoder`` column of result rows (``encoder_name``, which the sweep sets, wins)."""
        if self.encoder_name:
            return self.encoder_name
        if self.encoder in BASELINES:
            return self.encoder
        return "random" if str(self.encoder).startswith("random:") else "ssl"

    @property
    def row_pooling(self) -> str:
        return "none" if self.encoder in BASELINES else self.pooling

    def science(self) -> dict:
        """Settings that change the result (not where it is written or cached)."""
        skip = {"out", "run_name", "force", "cache_dir"}
        if self.probe != FINETUNE:
            skip |= set(FINETUNE_FIELDS)
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        values = {k: v for k, v in values.items() if not (k in OPTIONAL_FIELDS and v is None)}
        values["data"] = str(Path(self.data).expanduser().resolve())
        if not str(self.encoder).startswith("random:") and self.encoder not in BASELINES:
            values["encoder"] = str(Path(self.encoder).expanduser().resolve())
        return values

    def run_dir(self) -> Path:
        name = self.run_name or f"probe-{runs.settings_hash(self.science(), 10)}"
        return Path(self.out) / name
