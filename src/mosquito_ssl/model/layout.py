"""Where an ``ASTModel`` keeps its parts, across transformers versions.

The transformer blocks sit at ``model.encoder.layer`` up to transformers 5.7 and at
``model.layers`` from 5.9; a block returns a tensor in new versions and a tuple in old ones.
Everything in this package that walks the blocks goes through here::

    for block in blocks(encoder):
        hidden = run_block(block, hidden)
"""

from __future__ import annotations

import torch
from torch import nn


def blocks(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's transformer blocks, whatever the transformers version."""
    layers = getattr(encoder, "layers", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    inner = getattr(encoder, "encoder", None)
    layers = getattr(inner, "layer", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    raise TypeError(f"{type(encoder).__name__} has neither .layers nor .encoder.layer: not an ASTModel")


def run_block(block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """One block on (B, N, H) tokens without an attention mask (every token attends to every token)."""
    out = block(hidden)
    return out[0] if isinstance(out, tuple) else out
