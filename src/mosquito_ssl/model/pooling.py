"""Poolings that keep the frequency axis of AST patch tokens.

Averaging every patch token throws away where in the spectrum a wingbeat harmonic sits. These
stack the frequency patches of each time step into one vector and then pool over time only::

    freq_stack(tokens, grid)      # (..., f*H): M2D's feature extractor (mean over time)
    freq_mean_max(tokens, grid)   # (..., 2*f*H): BYOL-A's mean + max over time

``tokens`` is (..., 2 + f*t, H) with CLS and distillation tokens first, patches in
``ASTPatchEmbeddings`` order (token = f * t_dim + t); ``grid`` is (f_dim, t_dim).
"""

from __future__ import annotations

import torch

N_SPECIAL = 2  # CLS and distillation tokens lead every AST sequence


def _stacked(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., 2 + f*t, H) -> (..., t, f*H)."""
    f_dim, t_dim = grid
    lead, hidden = tokens.shape[:-2], tokens.shape[-1]
    patches = tokens[..., N_SPECIAL:, :].reshape(*lead, f_dim, t_dim, hidden)
    return patches.transpose(-3, -2).reshape(*lead, t_dim, f_dim * hidden)


def freq_stack(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Frequency patches stacked, averaged over time: (..., f*H)."""
    return _stacked(tokens, grid).mean(dim=-2)


def freq_mean_max(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Frequency patches stacked, mean and max over time concatenated: (..., 2*f*H)."""
    stacked = _stacked(tokens, grid)
    return torch.cat([stacked.mean(dim=-2), stacked.amax(dim=-2)], dim=-1)
