"""The AST encoder: presets, checkpoint loading, positional-embedding adaptation, freezing.

Owns every way an ``ASTModel`` comes into being (random preset, HF checkpoint folder,
pretrain run / its ``final/``, seed-style ``model.pth``, ``random:<preset>``) and makes it fit
the clip's patch grid, so callers never see the AudioSet default of 1024 frames::

    encoder, features = load_encoder("runs/pretrain/abc123")       # or "random:tiny"
    n_trainable = apply_freeze(encoder, "partial:4")
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from transformers import ASTConfig, ASTModel

from ..errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

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
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
AST_EXTRACTOR_DEFAULT_LENGTH = 1024  # ASTFeatureExtractor pads to 10.24 s: not a clip length
_STRIDE_GUESSES = (10, 16, 8, 12, 5, 4)
_LAYER_KEY = re.compile(r"^(?:layers|encoder\.layer)\.(\d+)\.")


def _default_features(features: Any = None) -> Any:
    if features is not None:
        return features
    from ..data.features import FeatureSettings  # written by the data stage; import lazily

    return FeatureSettings()


def patch_grid(config: ASTConfig) -> tuple[int, int]:
    """(frequency patches, time patches) of an AST config, as ``ASTEmbeddings.get_shape``."""
    f_dim = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    t_dim = (config.max_length - config.patch_size) // config.time_stride + 1
    return f_dim, t_dim


def preset_config(preset: str, features: Any = None) -> ASTConfig:
    """ASTConfig for a preset whose input shape comes from the feature settings."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown encoder preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    features = _default_features(features)
    return ASTConfig(
        **PRESETS[preset],
        max_length=features.max_length,
        num_mel_bins=features.num_mel_bins,
        attn_implementation="sdpa",
    )


def _random_encoder(config: ASTConfig, seed: int) -> ASTModel:
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


def build_encoder(
    preset: str = "tiny", features: Any = None, pretrained: str | Path | None = None, seed: int = 0
) -> ASTModel:
    """Random (seeded) encoder from a preset, or a checkpoint (any ``load_encoder`` path) fitted
    to the clip; with ``pretrained`` the architecture is the checkpoint's and ``preset`` is unused."""
    features = _default_features(features)
    if pretrained is not None:
        log.info("loading encoder weights from %s", pretrained)
        return _load_located(_locate(pretrained), features)
    return _random_encoder(preset_config(preset, features), seed)


def adapt_position_embeddings(
    pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """Fit (1, 2 + f*t, H) position embeddings to another patch grid, as YuanGongND/ast does.

    CLS/distillation embeddings are kept; the patch part is viewed as (1, H, f, t) (token index
    f*t_dim + t, the order of ``ASTPatchEmbeddings``), the centre is cut where the new grid is
    smaller and bilinearly interpolated where it is larger, per axis. Never re-initialised.
    """
    (f_old, t_old), (f_new, t_new) = old_grid, new_grid
    hidden = pos_embed.shape[-1]
    if pos_embed.shape[1] != 2 + f_old * t_old:
        raise CheckpointError(
            f"position embeddings hold {pos_embed.shape[1] - 2} patches, not "
            f"{f_old}x{t_old}: the checkpoint's config.json does not match its weights"
        )
    grid = pos_embed[:, 2:, :].transpose(1, 2).reshape(1, hidden, f_old, t_old)
    if t_new < t_old:
        start = t_old // 2 - t_new // 2
        grid = grid[:, :, :, start : start + t_new]
    elif t_new > t_old:
        grid = F.interpolate(grid, size=(f_old, t_new), mode="bilinear")
    if f_new < f_old:
        start = f_old // 2 - f_new // 2
        grid = grid[:, :, start : start + f_new, :]
    elif f_new > f_old:
        grid = F.interpolate(grid, size=(f_new, t_new), mode="bilinear")
    patches = grid.reshape(1, hidden, f_new * t_new).transpose(1, 2)
    return torch.cat([pos_embed[:, :2, :], patches], dim=1).contiguous()


def _fit_to_features(model: ASTModel, features: Any) -> ASTModel:
    """Set the model's input shape to the clip's and adapt its position embeddings in place."""
    cfg = model.config
    old_grid = patch_grid(cfg)
    cfg.max_length, cfg.num_mel_bins = features.max_length, features.num_mel_bins
    new_grid = patch_grid(cfg)
    if new_grid != old_grid:
        log.info("adapting position embeddings from patch grid %s to %s", old_grid, new_grid)
        emb = model.embeddings
        with torch.no_grad():
            new = adapt_position_embeddings(emb.position_embeddings.data, old_grid, new_grid)
        emb.position_embeddings = torch.nn.Parameter(new, requires_grad=emb.position_embeddings.requires_grad)
    return model


def _checkpoint_features(folder: Path, features: Any) -> Any:
    """The caller's features if given, else the checkpoint's preprocessor config, else defaults.

    A preprocessor config padded to the ASTFeatureExtractor default (1024 frames, e.g. the
    AudioSet AST) states no clip length: keep its mel/normalisation settings, default clip.
    """
    if features is not None:
        return features
    from ..data.features import FeatureSettings

    pre = folder / "preprocessor_config.json"
    if not pre.is_file():
        return FeatureSettings()
    try:
        raw = json.loads(pre.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{pre} is not valid JSON ({exc}): delete it or restore it") from exc
    if raw.get("max_length") != AST_EXTRACTOR_DEFAULT_LENGTH:
        return FeatureSettings.from_pretrained(folder)
    default = FeatureSettings()
    log.info(
        "%s pads to %d frames; using the default %s s clip instead",
        pre,
        AST_EXTRACTOR_DEFAULT_LENGTH,
        default.clip_seconds,
    )
    return FeatureSettings(
        sample_rate=raw.get("sampling_rate", default.sample_rate),
        clip_seconds=default.clip_seconds,
        num_mel_bins=raw.get("num_mel_bins", default.num_mel_bins),
        mean=raw.get("mean", default.mean),
        std=raw.get("std", default.std),
    )


def _from_pretrained(path: str | None, where: Path, **kwargs: Any) -> ASTModel:
    try:
        model, info = ASTModel.from_pretrained(path, attn_implementation="sdpa", output_loading_info=True, **kwargs)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"cannot load the AST checkpoint {where} ({str(exc).splitlines()[0]}): "
            "its config.json must match its weights (same hidden size, layers)"
        ) from exc
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise CheckpointError(
            f"{where} lacks encoder weights {missing[:3]}...: "
            "point to an AST checkpoint (ASTModel or ASTForAudioClassification)"
        )
    return model


def _load_hf_folder(folder: Path, features: Any) -> ASTModel:
    """HF ASTModel / ASTForAudioClassification folder, fitted to the feature settings."""
    config_file = folder / "config.json"
    if not folder.is_dir() or not config_file.is_file():
        raise CheckpointError(
            f"{folder} is not an AST checkpoint folder (no config.json): point "
            "to a folder written by save_pretrained, a pretrain run or random:<preset>"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(
            f"{folder} has config.json but no {' or '.join(WEIGHT_FILES)}: copy the weights file next to config.json"
        )
    try:
        config = ASTConfig.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_file} is not a readable AST config ({exc}): restore it") from exc
    _check_hidden_size(folder, config)
    return _fit_to_features(_from_pretrained(str(folder), folder), features)


def _check_hidden_size(folder: Path, config: ASTConfig) -> None:
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return  # pytorch_model.bin: from_pretrained reports the mismatch itself
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            key = next((k for k in fh.keys() if k.endswith("embeddings.cls_token")), None)
            hidden = fh.get_slice(key).get_shape()[-1] if key else None
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{weights} is unreadable ({exc}): re-copy or re-save it") from exc
    if hidden is None:
        raise CheckpointError(f"{weights} holds no AST embeddings (no cls_token): wrong checkpoint?")
    if hidden != config.hidden_size:
        raise CheckpointError(
            f"{weights} has hidden size {hidden} but {folder / 'config.json'} says "
            f"{config.hidden_size}: use the config.json saved with these weights"
        )


def _encoder_state(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` weights of an AST_SSL state dict (or a bare ASTModel state dict)."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a state dict: save model.state_dict() with torch.save"
        )
    enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")} or state
    # an encoder that was an ASTForAudioClassification: strip its prefix, drop its head
    enc = {
        k.removeprefix("audio_spectrogram_transformer."): v for k, v in enc.items() if not k.startswith("classifier.")
    }
    if "embeddings.cls_token" not in enc:
        raise CheckpointError(
            f"{path} has no encoder.embeddings.cls_token: it is not an AST_SSL or ASTModel state dict"
        )
    return enc


def infer_config(state: dict[str, torch.Tensor], features: Any) -> ASTConfig:
    """Encoder config from weight shapes alone (old and new transformers key names)."""
    hidden = state["embeddings.cls_token"].shape[-1]
    layers = {int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))}
    fc1 = next((v for k, v in state.items() if k.endswith(("mlp.fc1.weight", "intermediate.dense.weight"))), None)
    conv = state["embeddings.patch_embeddings.projection.weight"]
    n_patches = state["embeddings.position_embeddings"].shape[1] - 2
    patch, bins = conv.shape[-1], features.num_mel_bins
    for stride in dict.fromkeys(_STRIDE_GUESSES + (patch,)):  # AST's 10 first
        f_dim = (bins - patch) // stride + 1
        if f_dim > 0 and n_patches % f_dim == 0:
            t_dim = n_patches // f_dim
            break
    else:
        raise CheckpointError(
            f"cannot infer the patch grid of {n_patches} patches for "
            f"{bins} mel bins: put the encoder's config.json next to model.pth"
        )
    return ASTConfig(
        hidden_size=hidden,
        num_hidden_layers=len(layers),
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=fc1.shape[0] if fc1 is not None else 4 * hidden,
        patch_size=patch,
        frequency_stride=stride,
        time_stride=stride,
        num_mel_bins=bins,
        max_length=(t_dim - 1) * stride + patch,
    )


def _sibling_config(config_file: Path) -> ASTConfig | None:
    """An AST config.json saved next to model.pth (a run's config.json is something else)."""
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    except (OSError, ValueError):
        raw = {}
    if raw.get("model_type") != ASTConfig.model_type:
        return None
    return ASTConfig.from_pretrained(config_file.parent)


def _load_pth(path: Path, features: Any) -> ASTModel:
    """Seed-style ``model.pth`` (AST_SSL state dict); config from a sibling config.json or weights."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (pickle, zip, runtime) for bad files
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({exc}): re-save it") from exc
    enc = _encoder_state(state, path)
    config = _sibling_config(path.parent / "config.json")
    hidden, n_pos = enc["embeddings.cls_token"].shape[-1], enc["embeddings.position_embeddings"].shape[1]
    if config is not None and config.hidden_size != hidden:
        raise CheckpointError(
            f"{path.parent / 'config.json'} says hidden size {config.hidden_size} "
            f"but {path} has {hidden}: delete that config.json to infer the "
            "encoder from the weights"
        )
    if config is None:
        config = infer_config(enc, features)
    elif 2 + patch_grid(config)[0] * patch_grid(config)[1] != n_pos:
        log.warning(
            "%s/config.json disagrees with the position embeddings in %s; using the weights' patch grid",
            path.parent,
            path,
        )
        inferred = infer_config(enc, features)
        config.max_length, config.num_mel_bins = inferred.max_length, inferred.num_mel_bins
    model = _from_pretrained(None, path, config=config, state_dict=enc)
    return _fit_to_features(model, features)


def _locate(source: str | Path) -> Path:
    """The model.pth or HF checkpoint folder behind a run dir, ``final/``, file or folder."""
    path = Path(source).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"encoder {path} does not exist: pass a pretrain run directory, its "
            "final/, a model.pth, an HF AST checkpoint folder or random:<preset>"
        )
    if path.is_file():
        if path.suffix not in (".pth", ".pt"):
            raise CheckpointError(f"{path} is a file but not a .pth state dict: pass its folder instead")
        return path
    if (path / "final").is_dir():
        path = path / "final"  # a pretrain run directory
    if not (path / "config.json").is_file() and (path / "model.pth").is_file():
        return path / "model.pth"
    return path


def _load_located(path: Path, features: Any) -> ASTModel:
    return _load_pth(path, features) if path.is_file() else _load_hf_folder(path, features)


def load_encoder(source: str | Path, features: Any = None) -> tuple[ASTModel, Any]:
    """Encoder + feature settings from a run dir, ``final/``, model.pth, HF folder or random:<preset>.

    ``features`` overrides the checkpoint's own settings; None reads them from the checkpoint.
    """
    if str(source).startswith("random:"):
        features = _default_features(features)
        return build_encoder(str(source).split(":", 1)[1], features), features
    path = _locate(source)
    features = _checkpoint_features(path.parent if path.is_file() else path, features)
    return _load_located(path, features), features


def encoder_fingerprint(model: torch.nn.Module, length: int = 16) -> str:
    """Short sha256 of the state dict (names, shapes, values): a cache key for embeddings."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:length]


FREEZE_FORMS = "none, full, frozen or partial:K (K = number of frozen transformer blocks)"


def parse_freeze(freeze: str, num_layers: int | None = None) -> tuple[str, int]:
    """('full'|'frozen'|'partial', K) from a --freeze value; ConfigError names the valid forms."""
    text = str(freeze).strip().lower()
    if text in ("none", "full"):
        return "full", 0
    if text == "frozen":
        return "frozen", num_layers or 0
    match = re.fullmatch(r"partial:(\d+)", text)
    if not match:
        raise ConfigError(f"--freeze {freeze!r} is not valid: use {FREEZE_FORMS}")
    k = int(match.group(1))
    if num_layers is not None and k > num_layers:
        raise ConfigError(
            f"--freeze {freeze!r} freezes {k} blocks but the encoder has {num_layers}: "
            f"use partial:0 .. partial:{num_layers}"
        )
    return "partial", k


def apply_freeze(encoder: ASTModel, freeze: str) -> int:
    """Set requires_grad per ``freeze`` and return the number of trainable parameters."""
    kind, k = parse_freeze(freeze, len(encoder.layers))
    encoder.requires_grad_(kind != "frozen")
    if kind == "partial":
        # Embeddings = patch conv + CLS/distillation tokens + position embeddings.
        encoder.embeddings.requires_grad_(False)
        for block in encoder.layers[:k]:
            block.requires_grad_(False)
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad)
