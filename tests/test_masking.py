"""Mask sampling: settings validation and statistics of sample_masks at several strengths."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.masking import MASK_KINDS, MaskSettings, expected_masked_fraction, sample_masks

FRAMES, BINS, BATCH = 100, 128, 1000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_defaults_match_the_original_pipeline():
    s = MaskSettings()
    assert (s.mask_strength, s.mask_kind, s.time_width, s.freq_width, s.time_masks, s.freq_masks) == (
        1.0,
        "specaugment",
        20,
        24,
        2,
        2,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mask_strength = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"mask_strength": -0.1}, "--mask-strength"),
        ({"mask_strength": float("nan")}, "--mask-strength"),
        ({"mask_kind": "blocks"}, "--mask-kind"),
        ({"time_width": -1}, "--time-width"),
        ({"freq_masks": 1.5}, "--freq-masks"),
    ],
)
def test_bad_settings_raise_config_error(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        MaskSettings(**kwargs)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_strength_zero_masks_nothing(kind):
    mask = sample_masks(64, FRAMES, BINS, MaskSettings(mask_strength=0.0, mask_kind=kind), _gen())
    assert mask.shape == (64, FRAMES, BINS) and mask.dtype == torch.bool
    assert not mask.any()


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_fraction_grows_with_strength_and_matches_expectation(kind):
    fractions = []
    for strength in (0.25, 0.5, 1.0, 2.0):
        settings = MaskSettings(mask_strength=strength, mask_kind=kind)
        per_example = sample_masks(BATCH, FRAMES, BINS, settings, _gen(1)).float().mean(dim=(1, 2))
        expected = expected_masked_fraction(FRAMES, BINS, settings)
        # 5 standard errors of the batch mean (plus a floor for near-constant fractions)
        tol = 5 * per_example.std().item() / math.sqrt(BATCH) + 1e-3
        assert abs(per_example.mean().item() - expected) < tol, (strength, expected)
        fractions.append(per_example.mean().item())
    assert all(a < b for a, b in itertools.pairwise(fractions)), fractions


@pytest.mark.parametrize("strength", [0.3, 1.0, 1.5])
def test_time_width_is_uniform_up_to_scaled_width(strength):
    settings = MaskSettings(mask_strength=strength, mask_kind="time", time_masks=1)
    mask = sample_masks(4000, FRAMES, BINS, settings, _gen(2))
    width = mask[:, :, 0].sum(dim=1).double()  # one contiguous band per example
    w_max = round(20 * strength)
    assert width.min() == 0 and width.max() == w_max  # both ends of U{0..W} are drawn
    mean, var = w_max / 2, ((w_max + 1) ** 2 - 1) / 12  # discrete Uniform{0..W}
    assert abs(width.mean().item() - mean) < 5 * math.sqrt(var / len(width))
    assert (mask == mask[:, :, :1]).all()  # time masks span every bin


def test_freq_masks_span_all_frames_and_stay_in_range():
    settings = MaskSettings(mask_strength=1.0, mask_kind="freq", freq_masks=1)
    mask = sample_masks(2000, FRAMES, BINS, settings, _gen(3))
    assert (mask == mask[:, :1, :]).all()
    width = mask[:, 0, :].sum(dim=1).double()
    assert width.max() <= 24
    assert abs(width.mean().item() - 12) < 5 * math.sqrt(((25**2 - 1) / 12) / len(width))
    # starts are uniform over 0..bins-width: both ends of the axis get masked sometimes
    assert mask[:, 0, 0].any() and mask[:, 0, -1].any()


def test_masks_are_independent_across_examples():
    settings = MaskSettings(mask_kind="time", time_masks=1)
    mask = sample_masks(4000, FRAMES, BINS, settings, _gen(4))
    width = mask[:, :, 0].sum(dim=1).double()
    r = torch.corrcoef(torch.stack([width[:-1], width[1:]]))[0, 1].item()
    assert abs(r) < 5 / math.sqrt(len(width))
    distinct = {tuple(row.nonzero().flatten().tolist()) for row in mask[:200, :, 0]}
    assert len(distinct) > 100


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_seeded_generator_is_deterministic(kind):
    settings = MaskSettings(mask_kind=kind)
    a = sample_masks(8, FRAMES, BINS, settings, _gen(5))
    b = sample_masks(8, FRAMES, BINS, settings, _gen(5))
    c = sample_masks(8, FRAMES, BINS, settings, _gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_patch_masks_are_blocks_with_exact_count():
    settings = MaskSettings(mask_kind="patch", mask_strength=1.0)
    mask = sample_masks(16, FRAMES, BINS, settings, _gen(7))
    blocks = mask[:, ::16, ::16]  # one cell per 16x16 block
    assert torch.equal(mask, blocks.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, :FRAMES, :BINS])
    n_blocks = blocks[0].numel()
    assert (blocks.sum(dim=(1, 2)) == round(0.3 * n_blocks)).all()


def test_device_and_default_generator():
    mask = sample_masks(3, 20, 30, MaskSettings(), device="cpu")
    assert mask.shape == (3, 20, 30) and mask.device.type == "cpu"
