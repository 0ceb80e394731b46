"""``FeatureSettings``: the one place a clip length becomes a frame count for AST.

    mosquito-ssl data inspect data/synth --clip-seconds 1.0

Owns the log-mel settings (sample rate, clip length, mel bins, normalisation), the
``ASTFeatureExtractor`` built from them and reading them back from a checkpoint's
``preprocessor_config.json``. Torch-free: the model stage imports it to size an encoder.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

PATCH = 16  # AST patch size: fewer frames than this cannot form one patch
FRAMES_PER_SECOND = 100  # the extractor's 10 ms hop at 16 kHz


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    num_mel_bins: int = 128
    mean: float = -4.2677393
    std: float = 4.5689974

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or self.sample_rate <= 0 or self.num_mel_bins <= 0 or self.std <= 0:
            raise ConfigError(f"invalid feature settings {self}: clip_seconds, sample_rate, num_mel_bins, std > 0")

    @property
    def max_length(self) -> int:
        """Frames per clip: 100 for 1 s, never AudioSet's 1024 default."""
        return max(PATCH, round(self.clip_seconds * FRAMES_PER_SECOND))

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def extractor(self):
        from transformers import ASTFeatureExtractor

        with warnings.catch_warnings():  # 128 kaldi mel bins on a 512-point FFT leave one empty
            warnings.simplefilter("ignore", UserWarning)
            return ASTFeatureExtractor(
                sampling_rate=self.sample_rate,
                num_mel_bins=self.num_mel_bins,
                max_length=self.max_length,
                mean=self.mean,
                std=self.std,
                do_normalize=True,
            )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FeatureSettings:
        """Settings from a checkpoint folder's ``preprocessor_config.json``."""
        from transformers import ASTFeatureExtractor

        directory = Path(directory)
        if not (directory / "preprocessor_config.json").is_file():
            raise CheckpointError(f"{directory} has no preprocessor_config.json: pass a saved AST checkpoint folder")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fe = ASTFeatureExtractor.from_pretrained(str(directory))
        return cls(
            sample_rate=int(fe.sampling_rate),
            clip_seconds=fe.max_length / FRAMES_PER_SECOND,
            num_mel_bins=int(fe.num_mel_bins),
            mean=float(fe.mean),
            std=float(fe.std),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "max_length": self.max_length}
