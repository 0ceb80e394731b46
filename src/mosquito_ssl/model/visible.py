"""Encode only some patch tokens of an ``ASTModel``: the shared core of the masked SSL methods.

``ASTModel.forward`` always encodes every patch. MAE-style methods (AudioMAE, data2vec 2.0 / EAT,
M2D) encode the *visible* patches only, which is where their speed comes from. This module runs
transformers' own modules (patch embedding, CLS/distillation tokens, position embeddings, the
blocks, the final LayerNorm) on a subset of tokens, so no fork of transformers is needed::

    keep, masked = random_patch_mask(batch=8, n_patches=48, ratio=0.8)
    tokens, states = encode_visible(encoder, x, keep)      # (8, 2 + 10, H), one state per block
    keep, masked = random_patch_mask(batch=8 * 4, n_patches=48, ratio=0.8)
    tokens, _ = encode_visible(encoder, x, keep, views=4)  # 4 masked views per clip, one embedding

With every token kept, ``encode_visible(encoder, x)[0]`` equals ``encoder(x).last_hidden_state``.

AST patches overlap (16x16 at stride 10), so a masked patch's pixels would stay visible through its
neighbours (about 32% of them at ratio 0.8). Like SSAST's pretraining, the masked methods use
non-overlapping patches (stride = patch size, ``set_patch_stride``): a masked patch's cells then
reach the encoder through no visible patch (tested in ``tests/test_methods.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTModel

from .layout import blocks, run_block
from .pooling import N_SPECIAL
from .presets import patch_grid


def patch_size(encoder: ASTModel) -> int:
    """The square patch edge (ASTConfig types it loosely)."""
    return int(encoder.config.patch_size)  # type: ignore[arg-type]


def set_patch_stride(encoder: ASTModel, stride: int) -> ASTModel:
    """Make the patch grid use ``stride`` (e.g. the patch size: no overlap), in place.

    The convolution weights do not depend on the stride; the position embeddings are fitted to the
    new grid the way a checkpoint is fitted to a new clip length (``adapt_position_embeddings``).
    """
    from .encoder import adapt_position_embeddings

    cfg = encoder.config
    if (cfg.frequency_stride, cfg.time_stride) == (stride, stride):
        return encoder
    old_grid = patch_grid(encoder.config)
    cfg.frequency_stride = cfg.time_stride = stride
    emb = encoder.embeddings
    emb.patch_embeddings.projection.stride = (stride, stride)
    with torch.no_grad():
        new = adapt_position_embeddings(emb.position_embeddings.data, old_grid, patch_grid(encoder.config))
    emb.position_embeddings = nn.Parameter(new, requires_grad=emb.position_embeddings.requires_grad)
    return encoder


def random_patch_mask(
    batch: int,
    n_patches: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example random patch masking, as MAE: (keep indices (B, n_keep) sorted, masked (B, N) bool).

    Every example masks exactly ``round(ratio * N)`` patches (at least one stays visible), so the
    visible sequences stack into one tensor without padding.
    """
    n_mask = min(n_patches - 1, max(0, round(ratio * n_patches)))
    noise = torch.rand((batch, n_patches), generator=generator, device=device)
    order = noise.argsort(dim=1)
    keep = order[:, : n_patches - n_mask].sort(dim=1).values
    masked = torch.ones(batch, n_patches, dtype=torch.bool, device=noise.device)
    masked.scatter_(1, keep, False)
    return keep, masked


def embed_patches(encoder: ASTModel, x: torch.Tensor) -> torch.Tensor:
    """(B, T, F) spectrogram -> (B, N, H) patch embeddings with their position embeddings added."""
    emb = encoder.embeddings
    return emb.patch_embeddings(x) + emb.position_embeddings[:, N_SPECIAL:]


def encode_tokens(encoder: ASTModel, patches: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Prepend CLS/distillation tokens to (B, n, H) patch tokens and run the blocks and final norm.

    Returns the normalised output (B, 2 + n, H) and every block's output (before the final norm).
    """
    emb = encoder.embeddings
    pos = emb.position_embeddings
    batch = patches.shape[0]
    cls = (emb.cls_token + pos[:, :1]).expand(batch, -1, -1)
    dist = (emb.distillation_token + pos[:, 1:2]).expand(batch, -1, -1)
    hidden = emb.dropout(torch.cat([cls, dist, patches], dim=1))
    states = []
    for block in blocks(encoder):
        hidden = run_block(block, hidden)
        states.append(hidden)
    return encoder.layernorm(hidden), states


def encode_visible(
    encoder: ASTModel, x: torch.Tensor, keep: torch.Tensor | None = None, views: int = 1
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Encode the patches ``keep`` (B * views, n_keep) of ``x`` (B, T, F) (all when None); see ``encode_tokens``.

    With ``views`` > 1, rows ``i * views ... i * views + views - 1`` of ``keep`` are differently
    masked copies of clip ``i``: the patches are embedded once per clip, not once per view.
    """
    patches = embed_patches(encoder, x)
    if keep is not None:
        patches = gather_tokens(patches, keep, views)
    return encode_tokens(encoder, patches)


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor, views: int = 1) -> torch.Tensor:
    """tokens (B, N, D) at positions index (B * views, n) -> (B * views, n, D); row r reads clip r // views."""
    batch, n = tokens.shape[0], index.shape[1]
    # One batched gather over (B, views * n) positions: no repeated copy of the clips' tokens.
    flat = index.reshape(batch, views * n)
    return tokens.gather(1, flat[..., None].expand(-1, -1, tokens.shape[-1])).view(batch * views, n, -1)


def patchify(x: torch.Tensor, encoder: ASTModel) -> torch.Tensor:
    """(B, T, F) spectrogram -> (B, N, p*p) pixels per patch, in the encoder's token order.

    Only for non-overlapping patches (stride = patch size): the MAE target of each patch.
    """
    cfg = encoder.config
    p = patch_size(encoder)
    if (cfg.frequency_stride, cfg.time_stride) != (p, p):
        raise ValueError("patchify needs non-overlapping patches (stride = patch size)")
    f_dim, t_dim = patch_grid(encoder.config)
    # A reshape, not F.unfold (im2col): with stride = patch size each patch is a plain block.
    # cells[b, ti*p + kw, fi*p + kh] -> (b, fi*t_dim + ti, kh*p + kw): f-major patches, each
    # flattened (frequency, time) as ASTPatchEmbeddings' convolution reads it.
    cells = x[:, : t_dim * p, : f_dim * p].reshape(x.shape[0], t_dim, p, f_dim, p)
    return cells.permute(0, 3, 1, 4, 2).reshape(x.shape[0], f_dim * t_dim, p * p)


class TokenDecoder(nn.Module):
    """A light transformer decoder over the full patch grid (MAE, data2vec 2.0 / EAT, M2D's predictor).

    Encoded visible tokens are projected to ``dim``, a learned mask token fills the masked
    positions, the decoder's own (learned) position embeddings are added, ``layers`` narrow
    pre-norm transformer blocks run, and a linear head maps each patch token to ``out_dim``.
    """

    def __init__(self, in_dim: int, dim: int, layers: int, heads: int, n_patches: int, out_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, n_patches, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, n_patches: int) -> torch.Tensor:
        """visible (B, n_keep, in_dim) patch tokens at ``keep`` -> (B, N, out_dim) for every patch."""
        batch = visible.shape[0]
        tokens = self.mask_token.expand(batch, n_patches, -1).clone()
        tokens.scatter_(1, keep[..., None].expand(-1, -1, tokens.shape[-1]), self.embed(visible))
        hidden = tokens + self.pos
        for layer in self.blocks.layers:
            hidden = decoder_block(layer, hidden)
        return self.head(self.norm(hidden))


def decoder_block(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` of TokenDecoder's pre-norm, batch-first, dropout-free blocks, batch-major throughout.

    The same parameters (state dicts unchanged) and operations as ``nn.TransformerEncoderLayer``,
    without ``nn.MultiheadAttention``'s (L, B, E) transposes and packed-projection copies and their
    zero-filled gradients: memory traffic that does not shrink with the decoder's small width.
    """
    attn = layer.self_attn
    batch, length, dim = x.shape
    qkv = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(batch, length, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, dim)
    x = x + attn.out_proj(out)
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
