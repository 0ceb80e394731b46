"""The reconstruct method: AST encoder + per-token projector + Conv1d time decoder.

The input spectrogram is masked (``masking.sample_masks``), encoded by the AST, and the clean
spectrogram is reconstructed; the loss is the MSE over all cells (``loss_on="all"``, as the
original pipeline) or over the masked cells only (``loss_on="masked"``)::

    model = ASTSSL(build_encoder("tiny"), MaskSettings(mask_strength=0.5), loss_on="masked")
    out = model(input_values=batch)          # out.loss, out.reconstruction (B, T, F), out.mask

How decoding differs from the original pipeline (``speed.original.OriginalPipelineSSL``): it ran
its Conv1d over the flattened token sequence and stretched that ~1200-token axis onto the 1024
frames. ``ASTPatchEmbeddings`` flattens the (frequency x time) patch grid frequency-major
(token = f * t_dim + t), so neighbouring positions of that sequence are mostly different
frequency bands at the same time, and its "time" convolution mixed unrelated patches while the
interpolation mapped frequency order onto time. Here CLS/distillation tokens are dropped, patch
tokens are put back on their grid, each is projected (hidden -> proj_dim), the frequency patches
of each time step are concatenated into channels, (B, f_dim * proj_dim, t_dim), and the Conv1d
decoder runs along the real time axis to ``num_mel_bins`` channels before a linear
interpolation from t_dim patches to T frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTModel
from transformers.utils import ModelOutput

from ..errors import ConfigError
from .base import SSLModel, check_input
from .masking import MaskSettings, sample_masks
from .presets import patch_grid

LOSS_ON = ("all", "masked")


@dataclass
class ASTSSLOutput(ModelOutput):
    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class ASTSSL(SSLModel):
    """Masked-spectrogram reconstruction around an ``ASTModel`` (kept as ``self.encoder``).

    Its ``ssl_config.json`` holds the mask fields, ``loss_on`` and the decoder widths (no
    ``method`` key: the format predates the other methods); ``save`` is ``SSLModel.save``.
    """

    method: ClassVar[str] = "reconstruct"

    def __init__(
        self,
        encoder: ASTModel,
        mask: MaskSettings = MaskSettings(),
        loss_on: str = "all",
        proj_dim: int = 64,
        decoder_dim: int = 256,
    ) -> None:
        super().__init__()
        if loss_on not in LOSS_ON:
            raise ConfigError(f"--loss-on {loss_on!r} is not valid: use one of {', '.join(LOSS_ON)}")
        self.encoder, self.mask, self.loss_on = encoder, mask, loss_on
        self.proj_dim, self.decoder_dim = proj_dim, decoder_dim
        cfg = encoder.config
        self.f_dim, self.t_dim = patch_grid(cfg)
        self.projector = nn.Linear(cfg.hidden_size, proj_dim)
        self.decoder = nn.Sequential(
            nn.Conv1d(self.f_dim * proj_dim, decoder_dim, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv1d(decoder_dim, cfg.num_mel_bins, kernel_size=3, padding=1),
        )

    def ssl_config(self) -> dict[str, Any]:
        """JSON-able settings that, with the encoder, rebuild this model (``from_ssl_config``)."""
        return {
            **dataclasses.asdict(self.mask),
            "loss_on": self.loss_on,
            "proj_dim": self.proj_dim,
            "decoder_dim": self.decoder_dim,
        }

    @classmethod
    def from_ssl_config(cls, encoder: ASTModel, config: dict[str, Any]) -> ASTSSL:
        mask_fields = {f.name for f in dataclasses.fields(MaskSettings)}
        mask = MaskSettings(**{k: v for k, v in config.items() if k in mask_fields})
        rest = {k: v for k, v in config.items() if k not in mask_fields}
        unknown = set(rest) - {"loss_on", "proj_dim", "decoder_dim"}
        if unknown:
            raise ConfigError(f"ssl_config.json has unknown key(s) {sorted(unknown)}: re-save it")
        return cls(encoder, mask, **rest)

    def _masks(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, bins = x.shape
        generator = self.eval_generator(x.device)  # eval: the same masks every epoch
        return sample_masks(batch, frames, bins, self.mask, generator=generator, device=x.device)

    def reconstruct(self, masked: torch.Tensor) -> torch.Tensor:
        """(B, T, F) masked input -> (B, T, F) reconstruction."""
        batch, frames, _ = masked.shape
        tokens = self.encoder(input_values=masked).last_hidden_state[:, 2:, :]  # drop CLS, dist
        proj = self.projector(tokens)  # (B, f*t, P), token index f * t_dim + t
        grid = proj.view(batch, self.f_dim, self.t_dim, self.proj_dim)
        channels = grid.permute(0, 1, 3, 2).reshape(batch, self.f_dim * self.proj_dim, self.t_dim)
        decoded = self.decoder(channels)  # (B, num_mel_bins, t_dim)
        decoded = F.interpolate(decoded, size=frames, mode="linear", align_corners=False)
        return decoded.transpose(1, 2)

    def forward(self, input_values: torch.Tensor, **kwargs: Any) -> ASTSSLOutput:
        """Mask, encode, reconstruct; extra kwargs (labels, num_items_in_batch) are ignored."""
        check_input(self.encoder, input_values)
        mask = self._masks(input_values)
        recon = self.reconstruct(input_values.masked_fill(mask, 0.0))
        err = (recon - input_values) ** 2
        if self.loss_on == "masked":
            # No host sync (bool(), boolean indexing) in the step: with nothing masked
            # (strength 0) the whole spectrogram counts, as for "all".
            n = mask.sum()
            loss = torch.where(n > 0, (err * mask).sum() / n.clamp_min(1), err.mean())
        else:
            loss = err.mean()
        return ASTSSLOutput(loss=loss, reconstruction=recon, mask=mask)


AST_SSL = ASTSSL  # the name in the original pipeline
