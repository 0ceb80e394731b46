"""What every SSL method model shares: its settings, its ``ssl_config.json`` and its ``final/`` folder.

A method model wraps an ``ASTModel`` kept as ``self.encoder`` (the only part probes read) and
returns an output with ``loss``. Saving writes the folder that plain transformers loads::

    model.save("runs/x/final", features)   # config.json + weights, preprocessor_config.json,
                                           # model.pth (whole SSL model), ssl_config.json
"""

from __future__ import annotations

import dataclasses
import hashlib
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

    method: ClassVar[str]  # its entry in model/methods.py, which holds its traits
    encoder: ASTModel
    settings: Any

    def ssl_config(self) -> dict[str, Any]:
        """JSON-able settings that, with the encoder, rebuild this model."""
        return {"method": self.method, **dataclasses.asdict(self.settings)}

    # (seed, optimizer step) of the batch being trained, set by the trainer before each step
    # (pretrain/trainer.py MethodStepCallback); None outside a Trainer (the global RNG is used).
    rng_step: tuple[int, int] | None = None

    def batch_generator(self, device: torch.device, clip_index: Any = None) -> torch.Generator | None:
        """The generator of this batch's masks and augmentations.

        Eval: one fixed seed (the same masks every epoch, so eval losses are comparable). Training
        in a Trainer: a seed from (seed, optimizer step, the batch's clip indices), so the draws of
        a batch do not depend on data-loader workers (whose seeding consumes the global RNG) and a
        resumed run draws the same. Otherwise None: the global RNG.
        """
        if not self.training:
            return torch.Generator(device=device).manual_seed(EVAL_MASK_SEED)
        if clip_index is None or self.rng_step is None:
            return None
        text = f"{self.rng_step[0]}:{self.rng_step[1]}:{','.join(str(int(i)) for i in clip_index)}"
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
        return torch.Generator(device=device).manual_seed(seed)

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called by the trainer after each optimizer step (EMA updates live here)."""

    def save(self, folder: str | Path, features: Any) -> Path:
        """Write ``final/``: HF encoder + preprocessor config + model.pth + ssl_config.json."""
        from ..runs import umask_modes, write_bytes_atomic, write_json_atomic

        folder = Path(folder)
        self.encoder.save_pretrained(folder)
        features.extractor().save_pretrained(folder)
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, buffer)
        write_bytes_atomic(folder / "model.pth", buffer.getvalue())
        write_json_atomic(folder / "ssl_config.json", self.ssl_config())
        umask_modes(folder)
        return folder
