"""The reconstruct method: AST encoder + per-token projector + Conv1d time decoder.

The input spectrogram is masked (``masking.sample_masks``), encoded by the AST, and the clean
spectrogram is reconstructed; the loss is the MSE over all cells (``loss_on="all"``, as the
original pipeline) or over the masked cells only (``loss_on="masked"``)::

    model = ASTSSL(build_encoder("tiny"), ReconstructSettings(mask_strength=0.5, loss_on="masked"))
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

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTModel
from transformers.utils import ModelOutput

from .base import SSLModel, check_input
from .masking import sample_masks
from .method_settings import MaskSettings, ReconstructSettings
from .presets import patch_grid


@dataclass
class ASTSSLOutput(ModelOutput):
    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class ASTSSL(SSLModel):
    """Masked-spectrogram reconstruction around an ``ASTModel`` (kept as ``self.encoder``).

    ``settings`` is a ``ReconstructSettings`` (a bare ``MaskSettings`` means ``loss_on="all"``);
    ``proj_dim`` / ``decoder_dim`` size the decoder and are saved in ``ssl_config.json`` with them.
    """

    method: ClassVar[str] = "reconstruct"

    def __init__(
        self,
        encoder: ASTModel,
        settings: MaskSettings = ReconstructSettings(),
        proj_dim: int = 64,
        decoder_dim: int = 256,
    ) -> None:
        super().__init__()
        if not isinstance(settings, ReconstructSettings):
            settings = ReconstructSettings(**settings.__dict__)
        self.encoder, self.settings = encoder, settings
        self.mask, self.loss_on = settings.mask, settings.loss_on
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
        """The method's settings plus the decoder sizes (``methods.rebuild`` reads them back)."""
        return {**super().ssl_config(), "proj_dim": self.proj_dim, "decoder_dim": self.decoder_dim}

    def _masks(self, x: torch.Tensor, clip_index: Any = None) -> torch.Tensor:
        batch, frames, bins = x.shape
        generator = self.batch_generator(x.device, clip_index)  # eval: the same masks every epoch
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
        """Mask, encode, reconstruct; ``clip_index`` seeds the masks, other kwargs are ignored."""
        check_input(self.encoder, input_values)
        mask = self._masks(input_values, kwargs.get("clip_index"))
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
