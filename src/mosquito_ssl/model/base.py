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

EVAL_MASK_SEED = 0  # eval masks are the same every epoch, so eval loss curves are comparable


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
