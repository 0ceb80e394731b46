"""The AST encoder's public entry: build one from a preset or load one from any checkpoint.

Every way an ``ASTModel`` comes into being goes through here (random preset, HF checkpoint
folder, pretrain run / its ``final/``, the original pipeline's ``model.pth``,
``random:<preset>``), fitted to the clip's patch grid so callers never see the AudioSet
default of 1024 frames::

    encoder, features = load_encoder("runs/pretrain/abc123")       # or "random:tiny", seed=1
    encoder = build_encoder("tiny", features, seed=0)
    encoder, features = load_encoder("random:tiny", patch_size=8, patch_stride=8)  # the masked grid

The parts live beside it: ``presets`` (shapes, random init), ``checkpoints`` (formats,
fingerprint), ``positions`` (position-embedding adaptation), ``freeze`` (the freeze vocabulary).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import ASTModel

from ..errors import ConfigError
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
    preset: str = "tiny",
    features: Any = None,
    pretrained: str | Path | None = None,
    seed: int = 0,
    patch_size: int | None = None,
    patch_stride: int | None = None,
) -> ASTModel:
    """Random (seeded) encoder from a preset, or a checkpoint (any ``load_encoder`` path) fitted
    to the clip; with ``pretrained`` the architecture is the checkpoint's and ``preset`` is unused.
    ``patch_size`` / ``patch_stride``: the preset's patch grid (``presets.patch_shape``)."""
    features = default_features(features)
    if pretrained is not None:
        _no_patch_flags(pretrained, patch_size, patch_stride)
        log.info("loading encoder weights from %s", pretrained)
        return load_checkpoint(locate(pretrained), features)
    return random_encoder(preset_config(preset, features, patch_size, patch_stride), seed)


def load_encoder(
    source: str | Path,
    features: Any = None,
    seed: int = 0,
    patch_size: int | None = None,
    patch_stride: int | None = None,
) -> tuple[ASTModel, Any]:
    """Encoder + feature settings from a run dir, ``final/``, model.pth, HF folder or random:<preset>.

    ``features`` overrides the checkpoint's own settings; None reads them from the checkpoint.
    ``seed`` picks the weights of ``random:<preset>`` (each seed its own initialisation, so a
    comparison over seeds sees the random baseline's variance); a checkpoint ignores it.
    ``patch_size`` / ``patch_stride`` set the patch grid of ``random:<preset>`` (None: AST's 16
    at stride 10; a patch size alone keeps AST's overlap ratio); a checkpoint brings its own.
    """
    if str(source).startswith("random:"):
        features = default_features(features)
        preset = str(source).split(":", 1)[1]
        return build_encoder(preset, features, seed=seed, patch_size=patch_size, patch_stride=patch_stride), features
    _no_patch_flags(source, patch_size, patch_stride)
    path = locate(source)
    features = checkpoint_features(path.parent if path.is_file() else path, features)
    return load_checkpoint(path, features), features


def _no_patch_flags(source: str | Path, patch_size: int | None, patch_stride: int | None) -> None:
    if patch_size is not None or patch_stride is not None:
        raise ConfigError(
            f"--patch-size / --patch-stride set the patch grid of random:<preset> encoders: {source} "
            "brings its own in config.json; drop them"
        )
