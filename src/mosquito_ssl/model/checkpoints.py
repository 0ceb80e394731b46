"""Checkpoint formats an encoder is read from, and the encoder's fingerprint.

Formats: an HF AST folder (``ASTModel`` or ``ASTForAudioClassification``, ``save_pretrained``),
a pretrain run directory or its ``final/``, and a bare ``model.pth`` state dict (an ``AST_SSL``
of the original pipeline, or an ``ASTModel``) whose config is read from a sibling
``config.json`` or inferred from the weights. Every checkpoint is fitted to the clip's patch
grid (``positions.fit_to_features``)::

    path = locate("runs/pretrain-tiny-abc")          # -> runs/pretrain-tiny-abc/final
    encoder = load_checkpoint(path, checkpoint_features(path, None))
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import ASTConfig, ASTModel

from ..errors import CheckpointError
from .positions import fit_to_features
from .presets import dense_stride, patch_grid

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
AST_EXTRACTOR_DEFAULT_LENGTH = 1024  # ASTFeatureExtractor pads to 10.24 s: not a clip length
_STRIDE_GUESSES = (10, 16, 8, 12, 5, 4)
_LAYER_KEY = re.compile(r"^(?:layers|encoder\.layer)\.(\d+)\.")


@contextlib.contextmanager
def hf_progress_off() -> Iterator[None]:
    """No transformers progress bars ("Loading weights", "Writing model shards") inside the block.

    They print one line per update when stderr is a file and say nothing a user needs.
    """
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def checkpoint_features(folder: Path, features: Any) -> Any:
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
    settings = FeatureSettings.from_preprocessor(pre)
    if settings.max_length != AST_EXTRACTOR_DEFAULT_LENGTH:
        return settings
    default = FeatureSettings()
    log.info(
        "%s pads to %d frames; using the default %s s clip instead",
        pre,
        AST_EXTRACTOR_DEFAULT_LENGTH,
        default.clip_seconds,
    )
    return dataclasses.replace(settings, clip_seconds=default.clip_seconds)


def _from_pretrained(path: str | None, where: Path, **kwargs: Any) -> ASTModel:
    try:
        with hf_progress_off():
            loaded: Any = ASTModel.from_pretrained(path, attn_implementation="sdpa", output_loading_info=True, **kwargs)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"cannot load the AST checkpoint {where} ({str(exc).splitlines()[0]}): "
            "its config.json must match its weights (same hidden size, layers)"
        ) from exc
    model, info = loaded  # (model, loading info) with output_loading_info=True
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise CheckpointError(
            f"{where} lacks encoder weights {missing[:3]}...: "
            "point to an AST checkpoint (ASTModel or ASTForAudioClassification)"
        )
    return model


def load_hf_folder(folder: Path, features: Any) -> ASTModel:
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
    return fit_to_features(_from_pretrained(str(folder), folder), features)


def _check_hidden_size(folder: Path, config: ASTConfig) -> None:
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return  # pytorch_model.bin: from_pretrained reports the mismatch itself
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            names = fh.keys()  # a safe_open handle is not iterable itself
            key = next((k for k in names if k.endswith("embeddings.cls_token")), None)
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


def _encoder_state(state: Any, path: Path) -> dict[str, torch.Tensor]:
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
    guess = _guess_grid(n_patches, patch, bins, features.max_length)
    if guess is None:
        raise CheckpointError(
            f"cannot infer the patch grid of {n_patches} patches for "
            f"{bins} mel bins: put the encoder's config.json next to model.pth"
        )
    stride, t_dim = guess
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


def _guess_grid(n_patches: int, patch: int, bins: int, frames: int) -> tuple[int, int] | None:
    """(stride, time patches) of ``n_patches`` position embeddings: the patch's dense stride (AST's
    overlap: 10 at 16) or the patch size itself (the masked methods') first, then other guesses; a
    grid with the clip's own time patches wins over one that only divides."""
    fits = []
    for stride in dict.fromkeys((dense_stride(patch), patch, *_STRIDE_GUESSES)):
        f_dim = (bins - patch) // stride + 1
        if f_dim > 0 and n_patches % f_dim == 0:
            fits.append((stride, n_patches // f_dim))
    exact = [(s, t) for s, t in fits if t == (frames - patch) // s + 1]
    return next(iter(exact or fits), None)


def _sibling_config(config_file: Path) -> ASTConfig | None:
    """An AST config.json saved next to model.pth (a run's config.json is something else)."""
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    except (OSError, ValueError):
        raw = {}
    if raw.get("model_type") != ASTConfig.model_type:
        return None
    return ASTConfig.from_pretrained(config_file.parent)


def load_pth(path: Path, features: Any) -> ASTModel:
    """A ``model.pth`` (AST_SSL state dict); config from a sibling config.json or from the weights."""
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
    return fit_to_features(model, features)


def locate(source: str | Path) -> Path:
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


def load_checkpoint(path: Path, features: Any) -> ASTModel:
    """The encoder in a located checkpoint (``locate``), fitted to ``features``."""
    return load_pth(path, features) if path.is_file() else load_hf_folder(path, features)


def encoder_fingerprint(model: torch.nn.Module, length: int = 16) -> str:
    """Short sha256 of the state dict (names, shapes, values): a cache key for embeddings."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:length]
