"""Positional-embedding adaptation: fit an encoder trained on one patch grid to another.

A checkpoint trained on 10.24-s clips (AudioSet AST, 12 x 101 patches) or 2-s clips is used on
1-s clips (12 x 9) by cutting the centre of its position embeddings, and on longer clips by
interpolating them, as YuanGongND/ast does; nothing is re-initialised. The grid is the
checkpoint's own patch size and strides (``config.json``: 8 x 8 patches give 16 x 12 at stride 8)::

    fit_to_features(encoder, FeatureSettings(clip_seconds=1.0))   # in place, returns encoder
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from transformers import ASTModel

from ..errors import CheckpointError
from .presets import patch_grid

log = logging.getLogger(__name__)


def adapt_position_embeddings(
    pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Fit (1, 2 + f*t, H) position embeddings to another patch grid, as YuanGongND/ast does.

    CLS/distillation embeddings are kept; the patch part is viewed as (1, H, f, t) (token index
    f*t_dim + t, the order of ``ASTPatchEmbeddings``), the centre is cut where the new grid is
    smaller and bilinearly interpolated where it is larger, per axis. Never re-initialised.
    """
    (f_old, t_old), (f_new, t_new) = old_grid, new_grid
    hidden = pos_embed.shape[-1]
    if pos_embed.shape[1] != 2 + f_old * t_old:
        raise CheckpointError(
            f"position embeddings hold {pos_embed.shape[1] - 2} patches, not "
            f"{f_old}x{t_old}: the checkpoint's config.json does not match its weights"
        )
    grid = pos_embed[:, 2:, :].transpose(1, 2).reshape(1, hidden, f_old, t_old)
    if t_new < t_old:
        start = t_old // 2 - t_new // 2
        grid = grid[:, :, :, start : start + t_new]
    elif t_new > t_old:
        grid = F.interpolate(grid, size=(f_old, t_new), mode="bilinear")
    if f_new < f_old:
        start = f_old // 2 - f_new // 2
        grid = grid[:, :, start : start + f_new, :]
    elif f_new > f_old:
        grid = F.interpolate(grid, size=(f_new, t_new), mode="bilinear")
    patches = grid.reshape(1, hidden, f_new * t_new).transpose(1, 2)
    return torch.cat([pos_embed[:, :2, :], patches], dim=1).contiguous()


def fit_to_features(model: ASTModel, features: Any) -> ASTModel:
    """Set the model's input shape to the clip's and adapt its position embeddings in place."""
    cfg = model.config
    old_grid = patch_grid(cfg)
    cfg.max_length, cfg.num_mel_bins = features.max_length, features.num_mel_bins
    new_grid = patch_grid(cfg)
    if min(new_grid) < 1:
        raise CheckpointError(
            f"the clip ({cfg.max_length} frames x {cfg.num_mel_bins} mel bins) is smaller than the encoder's "
            f"{cfg.patch_size} x {cfg.patch_size} patch: use longer clips or more mel bins"
        )
    if new_grid != old_grid:
        log.info("adapting position embeddings from patch grid %s to %s", old_grid, new_grid)
        emb = model.embeddings
        with torch.no_grad():
            new = adapt_position_embeddings(emb.position_embeddings.data, old_grid, new_grid)
        emb.position_embeddings = torch.nn.Parameter(new, requires_grad=emb.position_embeddings.requires_grad)
    return model
