"""``--method mae``: masked-autoencoder pretraining as AudioMAE / MAE.

Random patch masking at a high ratio (0.8 as AudioMAE), the encoder runs on the visible patches
only (``visible.encode_visible``), a light transformer decoder with a learned mask token and its
own position embeddings predicts the pixels of every masked patch, targets normalised per patch
(norm-pix loss), MSE on the masked patches only. Patches do not overlap (stride = patch size)::

    mosquito-ssl pretrain data/unlabelled --method mae --mask-ratio 0.8 --preset tiny
"""

from __future__ import annotations

import dataclasses
import math

import torch
from transformers import ASTModel

from ..errors import ConfigError
from .base import SSLModel, SSLOutput, check_input
from .method_settings import MAESettings
from .presets import patch_grid
from .visible import (
    TokenDecoder,
    encode_visible,
    patch_size,
    patchify,
    random_patch_mask,
    set_patch_stride,
)


def decoder_shape(hidden: int, dim: int | None, heads: int | None) -> tuple[int, int]:
    """(width, heads) of a decoder: narrow by default (a tiny-preset block costs an encoder layer)."""
    dim = dim or max(32, hidden // 2)
    heads = heads or max(1, dim // 32)
    if dim % heads:
        raise ConfigError(f"--decoder-dim {dim} is not divisible by --decoder-heads {heads}")
    return dim, heads


def normalise_patches(target: torch.Tensor) -> torch.Tensor:
    """Per-patch zero mean, unit variance (MAE's norm_pix_loss)."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + 1e-6).sqrt()


def masked_mean(err: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean of per-patch errors (B, N) over the masked patches (no host sync)."""
    return (err * masked).sum() / masked.sum().clamp_min(1)


class ASTMAE(SSLModel):
    """AudioMAE-style masked autoencoder around an ``ASTModel`` (kept as ``self.encoder``)."""

    method = "mae"

    def __init__(self, encoder: ASTModel, settings: MAESettings = MAESettings()) -> None:
        super().__init__()
        cfg = encoder.config
        self.encoder = set_patch_stride(encoder, patch_size(encoder))
        dim, heads = decoder_shape(cfg.hidden_size, settings.decoder_dim, settings.decoder_heads)
        self.settings = dataclasses.replace(settings, decoder_dim=dim, decoder_heads=heads)
        self.n_patches = math.prod(patch_grid(self.encoder.config))
        self.decoder = TokenDecoder(
            cfg.hidden_size, dim, settings.decoder_layers, heads, self.n_patches, patch_size(encoder) ** 2
        )

    def forward(self, input_values: torch.Tensor, **kwargs: object) -> SSLOutput:
        """Mask patches, encode the visible ones, predict the masked pixels; ``clip_index`` (kwargs) seeds its draws."""
        x = input_values
        check_input(self.encoder, x)
        keep, masked = random_patch_mask(
            x.shape[0],
            self.n_patches,
            self.settings.mask_ratio,
            self.batch_generator(x.device, kwargs.get("clip_index")),
            x.device,
        )
        tokens, _ = encode_visible(self.encoder, x, keep)
        pred = self.decoder(tokens[:, 2:], keep, self.n_patches)
        target = patchify(x, self.encoder)
        if self.settings.norm_pix_loss:
            target = normalise_patches(target)
        loss = masked_mean(((pred - target) ** 2).mean(dim=-1), masked)
        return SSLOutput(loss=loss, prediction=pred, mask=masked)
