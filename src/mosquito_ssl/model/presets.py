"""Encoder presets: the ``tiny`` / ``small`` / ``base`` shapes, their configs and seeded random init.

A preset fixes the transformer's size; the input shape (frames, mel bins) always comes from the
clip's ``FeatureSettings``, so a 1-s clip gives a 12 x 9 patch grid, never AudioSet's 12 x 101::

    config = preset_config("tiny", FeatureSettings())    # patch_grid(config) == (12, 9)
    encoder = random_encoder(config, seed=0)             # what build_encoder("tiny") returns

The patch is square, AST's 16 x 16 at stride 10 unless ``patch_size`` / ``patch_stride`` say
otherwise; an unset stride keeps AST's overlap ratio (``dense_stride``: 5 at patch 8). The masked
methods re-grid to stride = patch size themselves (``visible.set_patch_stride``)::

    preset_config("tiny", FeatureSettings(), patch_size=8)   # 8 x 8 at stride 5: a 25 x 19 grid
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # the preset table and its checks stay torch-free: configs and --help read them
    from transformers import ASTConfig, ASTModel

PATCH, STRIDE = 16, 10  # AST's square patch edge and its (overlapping) stride
PATCH_RANGE = (4, 32)  # patch sizes a preset encoder may be built with (--patch-size)
_ARCH = dict(patch_size=PATCH, frequency_stride=STRIDE, time_stride=STRIDE)
# heads = hidden // 64 everywhere, so a config can be inferred from weights alone.
PRESETS = MappingProxyType(
    {
        "tiny": MappingProxyType(
            dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=1, intermediate_size=256, **_ARCH)
        ),
        "small": MappingProxyType(
            dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, **_ARCH)
        ),
        "base": MappingProxyType(
            dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, **_ARCH)
        ),  # AudioSet AST shape
    }
)


def default_features(features: Any = None) -> Any:
    """``features`` if given, else the default ``FeatureSettings`` (1-s clips, 128 mel bins)."""
    if features is not None:
        return features
    from ..data.features import FeatureSettings  # the data stage's; imported lazily

    return FeatureSettings()


def check_preset(preset: str, flag: str = "--preset") -> str:
    if preset not in PRESETS:
        raise ConfigError(f"{flag} {preset!r} is not an encoder preset: valid presets are {', '.join(PRESETS)}")
    return preset


def dense_stride(patch: int) -> int:
    """AST's overlap ratio (stride 10 at patch 16) at another patch size, rounded half up: 5 at 8."""
    return (2 * patch * STRIDE + PATCH) // (2 * PATCH)


def patch_shape(patch_size: int | None = None, patch_stride: int | None = None) -> tuple[int, int]:
    """(patch, stride) of a preset encoder: None = AST's 16, and ``dense_stride`` of the patch."""
    patch = PATCH if patch_size is None else patch_size
    return patch, dense_stride(patch) if patch_stride is None else patch_stride


def check_patch(patch_size: int | None, patch_stride: int | None, features: Any) -> None:
    """ConfigError naming ``--patch-size`` / ``--patch-stride`` unless the patch fits the clip's
    mel bins and frames and the stride leaves no cell between patches unseen."""
    patch, stride = patch_shape(patch_size, patch_stride)
    frames, bins = features.max_length, features.num_mel_bins
    if patch > min(frames, bins):
        raise ConfigError(
            f"--patch-size {patch} is larger than the clip ({frames} frames x {bins} mel bins): "
            f"use a patch size of {PATCH_RANGE[0]}..{min(frames, bins, PATCH_RANGE[1])}"
        )
    if not 1 <= stride <= patch:
        raise ConfigError(
            f"--patch-stride {stride} does not fit patch size {patch}: use 1..{patch} "
            f"({patch}: no overlap, the masked methods' grid; {dense_stride(patch)}: AST's overlap)"
        )


def patch_grid(config: Any) -> tuple[int, int]:
    """(frequency patches, time patches) of an AST config, as ``ASTEmbeddings.get_shape``."""
    f_dim = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t_dim = (config.max_length - config.patch_size) // config.time_stride + 1
    return f_dim, t_dim


def preset_config(
    preset: str, features: Any = None, patch_size: int | None = None, patch_stride: int | None = None
) -> ASTConfig:
    """ASTConfig for a preset whose input shape comes from the feature settings (``patch_shape``:
    the patch and its stride; None = AST's 16 x 16 at stride 10)."""
    from transformers import ASTConfig

    check_preset(preset)
    features = default_features(features)
    patch, stride = patch_shape(patch_size, patch_stride)
    check_patch(patch, stride, features)
    shape: dict[str, Any] = dict(
        PRESETS[preset],
        patch_size=patch,
        frequency_stride=stride,
        time_stride=stride,
        max_length=features.max_length,
        num_mel_bins=features.num_mel_bins,
    )
    shape["attn_implementation"] = "sdpa"  # a PretrainedConfig kwarg ASTConfig's signature omits
    return ASTConfig(**shape)


def random_encoder(config: ASTConfig, seed: int) -> ASTModel:
    """A freshly initialised encoder; the same seed gives the same weights."""
    import torch
    from transformers import ASTModel

    # fork_rng: seeding must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ASTModel(config)
        # HF zero-inits these (it expects a checkpoint to overwrite them); from scratch that
        # leaves CLS == distillation token and every patch position identical. The original
        # AST code uses trunc_normal(std=0.02), as ViT/DeiT do.
        emb = model.embeddings
        for p in (emb.cls_token, emb.distillation_token, emb.position_embeddings):
            torch.nn.init.trunc_normal_(p.data, std=0.02)
    return model
