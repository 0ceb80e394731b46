"""Input masks for masked-reconstruction pretraining: settings, sampling, expected coverage.

One knob, ``mask_strength``, scales the original pipeline's SpecAugment widths (0 = no masking
at all); ``mask_kind`` picks time+frequency bands (``specaugment``), one axis (``time``,
``freq``) or random time-frequency blocks (``patch``, SSAST-like). Masks are sampled for a
whole batch at once with tensor ops, independently per example (``mosquito-ssl pretrain``)::

    mask = sample_masks(batch=32, frames=100, bins=128, settings=MaskSettings(mask_strength=0.5))
"""

from __future__ import annotations

import torch

from .method_settings import MASK_KINDS, MaskSettings

__all__ = ["MASK_KINDS", "MaskSettings", "expected_masked_fraction", "sample_masks"]

PATCH_BLOCK = 16  # block edge in frames/bins, the AST patch size


def _band_masks(
    batch: int, n_masks: int, max_width: int, length: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(batch, length) bool: union of ``n_masks`` bands, width ~ U{0..W}, start ~ U{0..L-width}."""
    max_width = min(max_width, length)
    if n_masks == 0 or max_width == 0:
        return torch.zeros(batch, length, dtype=torch.bool, device=device)
    width = torch.randint(0, max_width + 1, (batch, n_masks), generator=generator, device=device)
    # randint has no per-element upper bound: scale a uniform draw to {0..length-width} instead.
    u = torch.rand((batch, n_masks), generator=generator, device=device)
    start = torch.minimum((u * (length - width + 1)).long(), length - width)
    pos = torch.arange(length, device=device)
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return inside.any(dim=1)


def _patch_masks(
    batch: int, frames: int, bins: int, fraction: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(batch, frames, bins) bool: exactly round(fraction * blocks) random blocks per example."""
    n_t, n_f = -(-frames // PATCH_BLOCK), -(-bins // PATCH_BLOCK)
    k = round(fraction * n_t * n_f)
    # Ranking i.i.d. uniforms picks k blocks without replacement, for every example at once.
    rank = torch.rand((batch, n_t * n_f), generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    blocks = (rank < k).view(batch, n_t, n_f)
    t_idx = torch.arange(frames, device=device) // PATCH_BLOCK
    f_idx = torch.arange(bins, device=device) // PATCH_BLOCK
    return blocks[:, t_idx[:, None], f_idx[None, :]]


def sample_masks(
    batch: int,
    frames: int,
    bins: int,
    settings: MaskSettings,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool masks (batch, frames, bins), True = masked, independent per example."""
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    kind = settings.mask_kind
    if kind == "patch":
        return _patch_masks(batch, frames, bins, settings.patch_fraction, generator, device)
    time = _band_masks(
        batch,
        settings.time_masks if kind in ("specaugment", "time") else 0,
        settings.max_time_width,
        frames,
        generator,
        device,
    )
    freq = _band_masks(
        batch,
        settings.freq_masks if kind in ("specaugment", "freq") else 0,
        settings.max_freq_width,
        bins,
        generator,
        device,
    )
    return time[:, :, None] | freq[:, None, :]


def _band_coverage(n_masks: int, max_width: int, length: int) -> torch.Tensor:
    """P(position is inside at least one band), per position, exactly."""
    max_width = min(max_width, length)
    if n_masks == 0 or max_width == 0:
        return torch.zeros(length, dtype=torch.float64)
    pos = torch.arange(length, dtype=torch.float64)[None, :]
    width = torch.arange(max_width + 1, dtype=torch.float64)[:, None]
    # starts s in [pos-width+1, pos] that are also in [0, length-width]
    lo = torch.clamp(pos - width + 1, min=0)
    hi = torch.minimum(pos, length - width)
    one = (torch.clamp(hi - lo + 1, min=0) / (length - width + 1)).mean(dim=0)
    return 1 - (1 - one) ** n_masks


def expected_masked_fraction(frames: int, bins: int, settings: MaskSettings) -> float:
    """Expected fraction of masked cells under ``sample_masks`` (exact, no sampling)."""
    kind = settings.mask_kind
    if kind == "patch":
        n_t, n_f = -(-frames // PATCH_BLOCK), -(-bins // PATCH_BLOCK)
        return round(settings.patch_fraction * n_t * n_f) / (n_t * n_f)  # every block equally likely
    p_t = _band_coverage(settings.time_masks if kind in ("specaugment", "time") else 0, settings.max_time_width, frames)
    p_f = _band_coverage(settings.freq_masks if kind in ("specaugment", "freq") else 0, settings.max_freq_width, bins)
    return float(1 - ((1 - p_t)[:, None] * (1 - p_f)[None, :]).mean())
