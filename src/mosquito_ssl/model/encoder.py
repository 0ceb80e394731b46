"""The AST encoder's public entry: build one from a preset or load one from any checkpoint.

Every way an ``ASTModel`` comes into being goes through here (random preset, HF checkpoint
folder, pretrain run / its ``final/``, the original pipeline's ``model.pth``,
``random:<preset>``), fitted to the clip's patch grid so callers never see the AudioSet
default of 1024 frames::

    encoder, features = load_encoder("runs/pretrain/abc123")       # or "random:tiny", seed=1
    encoder = build_encoder("tiny", features, seed=0)

The parts live beside it: ``presets`` (shapes, random init), ``checkpoints`` (formats,
fingerprint), ``positions`` (position-embedding adaptation), ``freeze`` (the freeze vocabulary).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import ASTModel

from .checkpoints import checkpoint_features, encoder_fingerprint, load_checkpoint, locate
from .positions import adapt_position_embeddings
from .presets import PRESETS, default_features, patch_grid, preset_config, random_encoder

# Names other stages import from here (the parts' own modules hold the rest).
__all__ = [
    "PRESETS",
    "adapt_position_embeddings",
    "build_encoder",
    "encoder_fingerprint",
    "load_encoder",
    "patch_grid",
    "preset_config",
]

log = logging.getLogger(__name__)


def build_encoder(
    preset: str = "tiny", features: Any = None, pretrained: str | Path | None = None, seed: int = 0
) -> ASTModel:
    """Random (seeded) encoder from a preset, or a checkpoint (any ``load_encoder`` path) fitted
    to the clip; with ``pretrained`` the architecture is the checkpoint's and ``preset`` is unused."""
    features = default_features(features)
    if pretrained is not None:
        log.info("loading encoder weights from %s", pretrained)
        return load_checkpoint(locate(pretrained), features)
    return random_encoder(preset_config(preset, features), seed)


def load_encoder(source: str | Path, features: Any = None, seed: int = 0) -> tuple[ASTModel, Any]:
    """Encoder + feature settings from a run dir, ``final/``, model.pth, HF folder or random:<preset>.

    ``features`` overrides the checkpoint's own settings; None reads them from the checkpoint.
    ``seed`` picks the weights of ``random:<preset>`` (each seed its own initialisation, so a
    comparison over seeds sees the random baseline's variance); a checkpoint ignores it.
    """
    if str(source).startswith("random:"):
        features = default_features(features)
        return build_encoder(str(source).split(":", 1)[1], features, seed=seed), features
    path = locate(source)
    features = checkpoint_features(path.parent if path.is_file() else path, features)
    return load_checkpoint(path, features), features
