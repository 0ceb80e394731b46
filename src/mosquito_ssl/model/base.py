"""What every SSL method model shares: its settings, its ``ssl_config.json`` and its ``final/`` folder.

A method model wraps an ``ASTModel`` kept as ``self.encoder`` (the only part probes read) and
returns an output with ``loss``. Saving writes the folder that plain transformers loads::

    model.save("runs/x/final", features)   # config.json + weights, preprocessor_config.json,
                                           # model.pth (whole SSL model), ssl_config.json
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import ASTModel
from transformers.utils import ModelOutput

from ..errors import ConfigError

EVAL_MASK_SEED = 0  # eval masks are the same every epoch, so eval loss curves are comparable


def check_ratio(value: float, flag: str = "--mask-ratio") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ConfigError(f"{flag} {value!r} is not valid: use a fraction between 0 and 1 (AudioMAE uses 0.8)")


def check_positive(settings: object, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} {value!r} is not valid: use an integer >= 1")


def check_decay(settings: object, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} {value!r} is not valid: use a decay in [0, 1]")


def check_input(encoder: ASTModel, x: torch.Tensor) -> None:
    cfg = encoder.config
    if x.dim() != 3 or tuple(x.shape[1:]) != (cfg.max_length, cfg.num_mel_bins):
        raise ConfigError(
            f"input_values has shape {tuple(x.shape)} but the encoder expects (batch, {cfg.max_length}, "
            f"{cfg.num_mel_bins}): compute features with the encoder's FeatureSettings (load_encoder returns them)"
        )


@dataclass
class SSLOutput(ModelOutput):
    loss: torch.Tensor | None = None
    prediction: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class SSLModel(nn.Module):
    """Base of the method models: ``method`` names it; ``settings`` is its frozen settings dataclass."""

    method: ClassVar[str]
    # Methods whose targets move during training (an EMA teacher) have no comparable eval loss
    # across epochs: they keep the last checkpoint instead of the one with the lowest eval loss.
    selects_best: ClassVar[bool] = True
    encoder: ASTModel
    settings: Any

    def ssl_config(self) -> dict[str, Any]:
        """JSON-able settings that, with the encoder, rebuild this model."""
        return {"method": self.method, **dataclasses.asdict(self.settings)}

    def eval_generator(self, device: torch.device) -> torch.Generator | None:
        """A fixed generator in eval mode (same masks every epoch), None in training."""
        if self.training:
            return None
        return torch.Generator(device=device).manual_seed(EVAL_MASK_SEED)

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer after each optimizer step (EMA updates live here)."""

    def save(self, folder: str | Path, features: Any) -> Path:
        """Write ``final/``: HF encoder + preprocessor config + model.pth + ssl_config.json."""
        from ..runs import write_bytes_atomic, write_json_atomic

        folder = Path(folder)
        self.encoder.save_pretrained(folder)
        features.extractor().save_pretrained(folder)
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, buffer)
        write_bytes_atomic(folder / "model.pth", buffer.getvalue())
        write_json_atomic(folder / "ssl_config.json", self.ssl_config())
        return folder
