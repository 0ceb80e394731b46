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
from ..errors import ConfigError
from ..model.freeze import canonical_freeze
from .kinds import FINETUNE, PROBES, pairs

# freq_stack / freq_mean_max keep the frequency axis (model/pooling.py): M2D and BYOL-A poolings
POOLINGS = ("cls", "dist", "cls_dist", "mean", "cls+mean", "freq_stack", "freq_mean_max")
HANDCRAFTED = "handcrafted"
# Regularisation grids searched on the validation split (C for logistic regression, alpha for MLP).
C_GRID = tuple(float(10.0**k) for k in range(-3, 3))
ALPHA_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class ProbeConfig:
    data: Path
    encoder: str = "random:tiny"
    out: Path = Path("runs")
    run_name: str | None = None
    probe: str = "linear"
    freeze: str = "frozen"
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
    lr: float = 1e-4
    head_lr: float = 1e-3
    epochs: int = 20
    batch_size: int = 32
    patience: int = 5
    dropout: float = 0.1
    encoder_name: str | None = None  # the ``encoder`` column of result rows (default: row_encoder)
    cache_dir: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.probe not in PROBES:
            raise ConfigError(f"--probe {self.probe!r} is not valid: use one of {', '.join(PROBES)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"--pooling {self.pooling!r} is not valid: use one of {', '.join(POOLINGS)}")
        # Stored canonically (``none`` -> ``full``), so the run name, config.json and the rows agree.
        object.__setattr__(self, "freeze", canonical_freeze(self.freeze))
        if self.probe not in pairs(self.freeze):
            raise ConfigError(
                f"--freeze {self.freeze} trains the encoder: only --probe finetune does "
                "that; drop --freeze or use the finetune command"
            )
        if self.encoder == HANDCRAFTED and self.probe == FINETUNE:
            raise ConfigError("--encoder handcrafted has no network to fine-tune: use linear or mlp")
        if self.encoder == HANDCRAFTED and (self.probe == "layerwise" or self.layer is not None):
            raise ConfigError("--encoder handcrafted has no layers: use the linear or mlp probe without --layer")
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1) > 1e-6 or min(self.fractions) <= 0:
            raise ConfigError(
                f"fractions {self.fractions} must be three positive numbers (train, val, test) summing to 1"
            )
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"--folds {self.folds} is not valid: use 0 (one split) or K >= 2")
        if self.layer is not None and self.probe in ("layerwise", "finetune"):
            raise ConfigError(f"--layer does not apply to --probe {self.probe}: drop it")
        if self.folds and self.probe == "finetune":
            raise ConfigError(
                "--folds with --probe finetune would fine-tune K encoders: use --folds with linear, layerwise or mlp"
            )

    @property
    def row_encoder(self) -> str:
        """The ``encoder`` column of result rows (``encoder_name``, which the sweep sets, wins)."""
        if self.encoder_name:
            return self.encoder_name
        if self.encoder == HANDCRAFTED:
            return HANDCRAFTED
        return "random" if str(self.encoder).startswith("random:") else "ssl"

    @property
    def row_pooling(self) -> str:
        return "none" if self.encoder == HANDCRAFTED else self.pooling

    def science(self) -> dict:
        """Settings that change the result (not where it is written or cached)."""
        skip = {"out", "run_name", "force", "cache_dir"}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        values["data"] = str(Path(self.data).expanduser().resolve())
        if not str(self.encoder).startswith("random:") and self.encoder != HANDCRAFTED:
            values["encoder"] = str(Path(self.encoder).expanduser().resolve())
        return values

    def run_dir(self) -> Path:
        name = self.run_name or f"probe-{runs.settings_hash(self.science(), 10)}"
        return Path(self.out) / name
