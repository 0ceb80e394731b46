"""The fast visible-token path: shared views, the decoder's batch-major blocks, patchify without im2col."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mosquito_ssl.model.encoder import build_encoder
from mosquito_ssl.model.presets import patch_grid
from mosquito_ssl.model.visible import (
    TokenDecoder,
    decoder_block,
    encode_visible,
    patchify,
    random_patch_mask,
    set_patch_stride,
)


def _encoder(patch: int = 16) -> torch.nn.Module:
    return set_patch_stride(build_encoder("tiny", seed=3, patch_size=patch), patch).eval()


def test_views_share_one_embedding_and_match_repeated_clips():
    encoder = _encoder()
    x = torch.randn(3, 100, 128, generator=torch.Generator().manual_seed(0))
    n = patch_grid(encoder.config)[0] * patch_grid(encoder.config)[1]
    keep, _ = random_patch_mask(3 * 4, n, 0.8, torch.Generator().manual_seed(1))
    with torch.no_grad():
        shared, states = encode_visible(encoder, x, keep, views=4)
        repeated, _ = encode_visible(encoder, x.repeat_interleave(4, dim=0), keep)
    assert shared.shape == (12, 2 + keep.shape[1], encoder.config.hidden_size)
    assert len(states) == encoder.config.num_hidden_layers
    assert torch.allclose(shared, repeated, atol=1e-5)
    assert not torch.allclose(shared[0], shared[1])  # two views of one clip: different patches


def test_decoder_block_is_the_torch_layer_forward_and_backward():
    torch.manual_seed(0)
    layer = TokenDecoder(16, 32, 1, 4, 6, 8).blocks.layers[0].train()
    x = torch.randn(3, 6, 32, requires_grad=True)
    ours = decoder_block(layer, x)
    (g_ours,) = torch.autograd.grad(ours.square().sum(), x)
    theirs = layer(x)
    (g_theirs,) = torch.autograd.grad(theirs.square().sum(), x)
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(g_ours, g_theirs, atol=1e-5)


def test_patchify_is_unfold_at_every_patch_size():
    for patch in (8, 12, 16):  # 12: the grid leaves cells at the clip's edge out
        encoder = _encoder(patch)
        x = torch.randn(2, 100, 128)
        f_dim, t_dim = patch_grid(encoder.config)
        image = x.transpose(1, 2)[:, None, : f_dim * patch, : t_dim * patch]
        expected = F.unfold(image, kernel_size=patch, stride=patch).transpose(1, 2)
        assert torch.equal(patchify(x, encoder), expected)
