"""``--method byol``: clip-level invariance pretraining as BYOL-A.

Two augmented views of each clip; the online encoder + projector + predictor regresses the EMA
target's projection of the other view (symmetric, 2 - 2 cos). The loss acts on the pooled clip
vector (patch tokens stacked across frequency, mean + max over time, as BYOL-A pools), which is
what a linear probe reads. Augmentations keep the frequency axis fixed, because the wingbeat
fundamental's position is the species cue (BYOL-A's frequency stretch would shift it): mixup with
another clip of the batch in the linear-power domain (BYOL-A's log-mixup-exp) and a random
time-only resized crop. Patches do not overlap (stride = patch size), like the masked methods::

    mosquito-ssl pretrain data/unlabelled --method byol --preset tiny
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTModel

from .base import SSLModel, SSLOutput, check_input
from .ema import ema_decay_at, ema_update, frozen_copy
from .method_settings import BYOLSettings
from .pooling import freq_mean_max
from .presets import patch_grid
from .visible import encode_visible, patch_size, set_patch_stride

# Features are log-mel normalised as (log_mel - mean) / (2 * std) (ASTFeatureExtractor, AudioSet
# std 4.57): this scale takes them back to natural-log power for the mixup.
LOG_SCALE = 2 * 4.5689974


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim_out)
    )


def augment(x: torch.Tensor, s: BYOLSettings, generator: torch.Generator | None) -> torch.Tensor:
    """One random view of (B, T, F) features: log-mixup-exp with a shuffled clip, time-only crop."""
    batch = x.shape[0]
    dev = x.device
    weight = torch.rand(batch, 1, 1, generator=generator, device=dev) * s.mixup_ratio
    other = x[torch.randperm(batch, generator=generator, device=dev)]
    a, b = x * LOG_SCALE, other * LOG_SCALE
    mixed = torch.logaddexp(a + torch.log1p(-weight), b + torch.log(weight.clamp_min(1e-8))) / LOG_SCALE
    mixed = torch.where(weight > 0, mixed, x)
    # Resized crop along time only: an affine sampling grid scales/offsets the time axis per clip.
    length = s.min_crop + (1 - s.min_crop) * torch.rand(batch, generator=generator, device=dev)
    start = (1 - length) * torch.rand(batch, generator=generator, device=dev)
    theta = torch.zeros(batch, 2, 3, device=dev)
    theta[:, 0, 0] = length
    theta[:, 0, 2] = 2 * start + length - 1
    theta[:, 1, 1] = 1.0
    image = mixed.transpose(1, 2)[:, None]  # (B, 1, F, T): width = time, height = frequency
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, 0].transpose(1, 2).contiguous()


class ASTBYOL(SSLModel):
    """BYOL-A-style online encoder (``self.encoder``) with an EMA target network."""

    method = "byol"

    def __init__(self, encoder: ASTModel, settings: BYOLSettings = BYOLSettings()) -> None:
        super().__init__()
        cfg = encoder.config
        self.encoder = set_patch_stride(encoder, patch_size(encoder))
        self.settings = settings
        self.grid = patch_grid(self.encoder.config)
        width = 2 * self.grid[0] * cfg.hidden_size
        self.projector = mlp(width, settings.proj_hidden, settings.proj_dim)
        self.predictor = mlp(settings.proj_dim, settings.proj_hidden, settings.proj_dim)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_projector = frozen_copy(self.projector)

    def _online(self, view: torch.Tensor) -> torch.Tensor:
        tokens, _ = encode_visible(self.encoder, view)
        return self.predictor(self.projector(freq_mean_max(tokens, self.grid)))

    @torch.no_grad()
    def _target(self, view: torch.Tensor) -> torch.Tensor:
        tokens, _ = encode_visible(self.target_encoder, view)
        return self.target_projector(freq_mean_max(tokens, self.grid))

    def forward(self, input_values: torch.Tensor, **kwargs: object) -> SSLOutput:
        """Two views, symmetric BYOL loss on the pooled clip vectors; ``clip_index`` (kwargs) seeds its draws."""
        x = input_values
        check_input(self.encoder, x)
        gen = self.batch_generator(x.device, kwargs.get("clip_index"))
        v1, v2 = augment(x, self.settings, gen), augment(x, self.settings, gen)
        p1, p2 = self._online(v1), self._online(v2)
        z1, z2 = self._target(v1), self._target(v2)
        cos = F.cosine_similarity(p1, z2, dim=-1) + F.cosine_similarity(p2, z1, dim=-1)
        loss = (2 - cos).mean()  # = mean of the two (2 - 2 cos) terms
        return SSLOutput(loss=loss, prediction=p1)

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        s = self.settings
        decay = ema_decay_at(step, total_steps, s.ema_decay, s.ema_end_decay, s.ema_anneal)
        ema_update(self.target_encoder, self.encoder, decay)
        ema_update(self.target_projector, self.projector, decay)
