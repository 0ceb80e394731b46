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
from ..data.feature_settings import FRONT_END, MAX_RATE, NORMALIZE
from ..errors import ConfigError
from ..model.freeze import canonical_freeze
from ..model.presets import PATCH, PATCH_RANGE, check_patch, patch_shape
from ..settings import check_fields, setting
from .kinds import FINETUNE, PROBES, pairs
from .recipe import BALANCE, HEAD_INIT, REFIT

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
    "patience", "dropout", "refit",
)  # fmt: skip
# The patch grid of random:<preset> encoders (model/presets.py patch_shape); None = AST's.
PATCH_FIELDS = ("patch_size", "patch_stride")
# Front-end and protocol settings: unset (None) stays out of the run name.
OPTIONAL_FIELDS = (
    "sample_rate", "num_mel_bins", "normalize", "classes", "exclude_classes", "max_clips_per_group",
    "min_groups_per_class", "train_groups_per_class", *PATCH_FIELDS,
)  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    data: Path = setting(help="Labelled clips: folder per species, manifest CSV or HumBugDB CSV.")
    encoder: str = setting(
        "random:tiny",
        "Pretrain run dir, its final/, a model.pth, an HF AST folder, random:<preset>, handcrafted or logmel.",
    )
    out: Path = setting(Path("runs"), "Output directory.")
    run_name: str | None = setting(None, "Run directory name under --out.", default_text="probe-<settings hash>")
    probe: str = setting("linear", "Probe kind.", choices=PROBES)
    # None: full for finetune (the whole encoder trains), frozen otherwise
    freeze: str | None = setting(
        None, "Encoder parts that train: full, partial:K or frozen (head only).", default_text="full for finetune"
    )
    pooling: str = setting("freq_stack", "Token pooling.", choices=POOLINGS)  # docs/evidence-methods.md
    layer: int | None = setting(None, "Hidden layer to probe (0 = embedding output).", ge=0, default_text="last")
    layout: str = setting("auto", "Data layout: auto, flat, folders, csv or humbugdb.")
    label_column: str | None = setting(None, "Manifest column holding the class.", default_text="label")
    group_column: str | None = setting(
        None,
        "Column grouping clips (recording, site, device): never split across train/val/test.",
        default_text="group",
    )
    split_column: str | None = setting(None, "Column with a predefined train/val/test split.")
    audio_dir: Path | None = setting(None, "Folder holding the audio a CSV lists.", default_text="the CSV's folder")
    window: float | None = setting(None, "Cut long recordings into clips of this many seconds.", gt=0)
    hop: float | None = setting(None, "Hop between clips in seconds.", gt=0, default_text="--window")
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2)
    folds: int = setting(0, "K-fold grouped cross-validation, K >= 2 (mean and std over folds); 0 = one split.", ge=0)
    seed: int = setting(0, "Random seed: splits, head, data order, and the weights of random:<preset>.")
    c_grid: tuple[float, ...] = C_GRID
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    # the front end of random:<preset> and the baselines (a checkpoint brings its own); None = default
    sample_rate: int | None = setting(
        None, "Feature sample rate in Hz (random: and baseline encoders).", ge=1000, le=MAX_RATE
    )
    num_mel_bins: int | None = setting(None, "Mel bands (random: and baseline encoders).", ge=16)
    normalize: str | None = setting(None, "Log-mel mean/std (random: and baseline encoders).", choices=NORMALIZE)
    # the patch grid of random:<preset> (a checkpoint brings its own; the baselines have none)
    patch_size: int | None = setting(
        None, "Square patch edge of random: encoders.", ge=PATCH_RANGE[0], le=PATCH_RANGE[1], default_text=str(PATCH)
    )
    patch_stride: int | None = setting(
        None,
        "Patch stride of random: encoders; the patch size = no overlap, the masked methods' grid.",
        ge=1,
        le=PATCH_RANGE[1],
        default_text="AST's overlap: 10 at 16, 5 at 8",
    )
    # the evaluation protocol (data/protocol.py)
    classes: tuple[str, ...] | None = None
    exclude_classes: tuple[str, ...] | None = None
    max_clips_per_group: int | None = setting(None, "At most N clips per group (a seeded choice).", ge=1)
    min_groups_per_class: int | None = setting(None, "Leave out (and log) classes with fewer than K groups.", ge=1)
    train_groups_per_class: int | None = setting(
        None, "Train on at most K groups per class (a seeded choice); validation and test stay as they are.", ge=1
    )
    # fine-tuning (probe/recipe.py); defaults by evidence, docs/evidence-finetuning.md
    head_init: str = setting(
        "probe", "Head start: the frozen encoder's linear probe (LP-FT) or random.", choices=HEAD_INIT
    )
    lr: float = setting(1e-4, "Learning rate of the encoder's top block.", gt=0)
    head_lr: float = setting(1e-3, "Learning rate of the classification head.", gt=0)
    layer_decay: float = setting(0.75, "Lr factor per block downwards (1 = none).", gt=0, le=1)
    warmup: float = setting(0.1, "Warm-up fraction of all steps before cosine decay.", ge=0, lt=1)
    weight_decay: float = setting(0.05, "AdamW weight decay of weight matrices.", ge=0)
    specaugment: float = setting(0.0, "SpecAugment strength on inputs (0 = off; 1 = AST's bands).", ge=0)
    mixup: float = setting(0.0, "Mixup Beta(a, a) parameter a (0 = off).", ge=0)
    balance: str = setting("weights", "Class balance: loss weights, a balanced sampler or none.", choices=BALANCE)
    epochs: int = setting(20, "Most epochs; early stopping usually ends sooner.", ge=1)
    batch_size: int = setting(32, "Batch size for embeddings / fine-tuning.", ge=1)
    patience: int = setting(6, "Early-stopping patience in epochs.", ge=1)
    dropout: float = setting(0.0, "Dropout before the head.", ge=0, lt=1)
    refit: str = setting(
        "head",
        "Test after the epoch choice on val: head = linear probe of the fine-tuned encoder, refit on "
        "train + val; all = the recipe again on train + val; none = the chosen model (train only).",
        choices=REFIT,
    )
    encoder_name: str | None = setting(
        None, "Value of the encoder column in results.", default_text="ssl, random or the baseline"
    )
    cache_dir: Path | None = None
    force: bool = setting(False, "Recompute even if a finished result exists.")

    def __post_init__(self) -> None:
        check_fields(self)
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
        self._check_patch()
        from ..data.protocol import class_names

        for name in ("classes", "exclude_classes"):  # stored as Protocol reads them: config.json agrees
            object.__setattr__(self, name, class_names(getattr(self, name)))
        _ = self.protocol  # validates the protocol options

    def _check_patch(self) -> None:
        """The patch flags build random:<preset> encoders only, at a grid that fits the clip."""
        given = ["--" + n.replace("_", "-") for n in PATCH_FIELDS if getattr(self, n) is not None]
        if not given:
            return
        if not str(self.encoder).startswith("random:"):
            has = "has no patches" if self.encoder in BASELINES else "brings its own in config.json"
            raise ConfigError(
                f"{' / '.join(given)} set(s) the patch grid of random:<preset> encoders: {self.encoder} {has}; "
                "drop the flag"
            )
        check_patch(self.patch_size, self.patch_stride, self.front_end())

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
        if any(k in values for k in PATCH_FIELDS):  # one name per grid; AST's own keeps the old names
            grid = patch_shape(self.patch_size, self.patch_stride)
            values.update(zip(PATCH_FIELDS, grid, strict=True))
            if grid == patch_shape():
                values = {k: v for k, v in values.items() if k not in PATCH_FIELDS}
        values["data"] = str(Path(self.data).expanduser().resolve())
        if str(self.encoder).startswith("random:"):
            # Since issue 17 the seed also picks random:<preset>'s weights (before: one fixed init).
            # The marker gives these probes new run names and sweep cells new ids, so a resumed
            # sweep or probe never mixes results of the old fixed init with per-seed ones.
            values["random_init"] = "per-seed"
        elif self.encoder not in BASELINES:
            values["encoder"] = str(Path(self.encoder).expanduser().resolve())
        return values

    def run_dir(self) -> Path:
        name = self.run_name or f"probe-{runs.settings_hash(self.science(), 10)}"
        return Path(self.out) / name
