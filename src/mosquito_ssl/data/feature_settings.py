"""``FeatureSettings``: the one place a clip length becomes a frame count for AST.

    mosquito-ssl pretrain field/ --window 1 --sample-rate 8000 --num-mel-bins 128 --normalize dataset

Owns the log-mel settings (sample rate, clip length, mel bins, normalisation), the extractor
built from them (``data/fbank.py``: AST's own at 16 kHz) and reading them back from a
checkpoint's ``preprocessor_config.json``, where ``normalize`` (``audioset``: AST's AudioSet
mean/std; ``dataset``: statistics of the training clips, ``data/normalize.py``) is stored next
to the mean and std it chose. Torch-free: the model stage imports it to size an encoder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

PATCH = 16  # AST patch size: fewer frames than this cannot form one patch
FRAMES_PER_SECOND = 100  # the extractor's 10 ms hop (data/fbank.py keeps it at every rate)
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974  # ASTFeatureExtractor's defaults
NORMALIZE = ("audioset", "dataset")
MAX_RATE = 48000  # above any recorder's rate: a larger --sample-rate is a mistake, not an upsampling
FRONT_END = ("sample_rate", "num_mel_bins", "normalize")  # the settings a user chooses (flags, [pretrain])


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    num_mel_bins: int = 128
    mean: float = AUDIOSET_MEAN
    std: float = AUDIOSET_STD
    normalize: str = "audioset"  # where mean/std come from: NORMALIZE

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or self.sample_rate <= 0 or self.num_mel_bins <= 0 or self.std <= 0:
            raise ConfigError(f"invalid feature settings {self}: clip_seconds, sample_rate, num_mel_bins, std > 0")
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"--normalize {self.normalize!r} is not valid: use audioset or dataset")
        if self.sample_rate < 2000:
            raise ConfigError(f"--sample-rate {self.sample_rate} is too low for wingbeats: use 8000 or more")

    @property
    def max_length(self) -> int:
        """Frames per clip: 100 for 1 s, never AudioSet's 1024 default."""
        return max(PATCH, round(self.clip_seconds * FRAMES_PER_SECOND))

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def extractor(self):
        """The feature extractor; ``normalize`` travels in its preprocessor_config.json."""
        from .fbank import extractor_for

        return extractor_for(
            self.sample_rate,
            num_mel_bins=self.num_mel_bins,
            max_length=self.max_length,
            mean=self.mean,
            std=self.std,
            do_normalize=True,
            normalization=self.normalize,  # not "normalize": that is the extractor's method
        )

    @property
    def needs_stats(self) -> bool:
        """``normalize="dataset"`` still holding AudioSet's mean/std: the statistics are yet to be measured.

        A front end chosen by flags starts so; the measured settings (``data/normalize.py``) and a
        checkpoint's ``preprocessor_config.json`` hold the data set's own numbers.
        """
        return self.normalize == "dataset" and (self.mean, self.std) == (AUDIOSET_MEAN, AUDIOSET_STD)

    def raw(self) -> FeatureSettings:
        """The same front end with AST's AudioSet mean/std: what dataset statistics are taken on."""
        return dataclasses.replace(self, mean=AUDIOSET_MEAN, std=AUDIOSET_STD, normalize="audioset")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FeatureSettings:
        """Settings from a checkpoint folder's ``preprocessor_config.json``."""
        return cls.from_preprocessor(Path(directory) / "preprocessor_config.json")

    @classmethod
    def from_preprocessor(cls, path: Path, clip_seconds: float | None = None) -> FeatureSettings:
        """Settings from a ``preprocessor_config.json`` (``clip_seconds`` overrides its length)."""
        if not path.is_file():
            raise CheckpointError(f"{path.parent} has no preprocessor_config.json: pass a saved AST checkpoint folder")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not valid JSON ({exc}): delete it or restore it") from exc
        default = cls()
        return cls(
            sample_rate=int(raw.get("sampling_rate", default.sample_rate)),
            clip_seconds=clip_seconds or raw.get("max_length", default.max_length) / FRAMES_PER_SECOND,
            num_mel_bins=int(raw.get("num_mel_bins", default.num_mel_bins)),
            mean=float(raw.get("mean", default.mean)),
            std=float(raw.get("std", default.std)),
            normalize=raw.get("normalization", "audioset"),  # checkpoints saved before --normalize
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "max_length": self.max_length}
