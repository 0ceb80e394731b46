"""Encoder presets: the ``tiny`` / ``small`` / ``base`` shapes, their configs and seeded random init.

A preset fixes the transformer's size; the input shape (frames, mel bins) always comes from the
clip's ``FeatureSettings``, so a 1-s clip gives a 12 x 9 patch grid, never AudioSet's 12 x 101::

    config = preset_config("tiny", FeatureSettings())    # patch_grid(config) == (12, 9)
    encoder = random_encoder(config, seed=0)             # what build_encoder("tiny") returns
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # the preset table and its checks stay torch-free: configs and --help read them
    from transformers import ASTConfig, ASTModel

_ARCH = dict(patch_size=16, frequency_stride=10, time_stride=10)
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


def patch_grid(config: Any) -> tuple[int, int]:
    """(frequency patches, time patches) of an AST config, as ``ASTEmbeddings.get_shape``."""
    f_dim = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t_dim = (config.max_length - config.patch_size) // config.time_stride + 1
    return f_dim, t_dim


def preset_config(preset: str, features: Any = None) -> ASTConfig:
    """ASTConfig for a preset whose input shape comes from the feature settings."""
    from transformers import ASTConfig

    check_preset(preset)
    features = default_features(features)
    shape: dict[str, Any] = dict(PRESETS[preset], max_length=features.max_length, num_mel_bins=features.num_mel_bins)
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
