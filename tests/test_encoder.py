"""Encoder presets, checkpoint loading through the real from_pretrained path, pos-embedding
adaptation, model.pth round trips, freezing."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import ASTFeatureExtractor, ASTForAudioClassification, ASTModel

from mosquito_ssl.data.features import FeatureSettings
from mosquito_ssl.errors import CheckpointError, ConfigError
from mosquito_ssl.model.encoder import (
    PRESETS,
    build_encoder,
    encoder_fingerprint,
    load_encoder,
    patch_grid,
    preset_config,
)
from mosquito_ssl.model.freeze import Freeze, apply_freeze, parse_freeze
from mosquito_ssl.model.layout import blocks
from mosquito_ssl.model.presets import dense_stride
from mosquito_ssl.model.ssl import ASTSSL

ONE_S, TWO_S, THREE_S = FeatureSettings(), FeatureSettings(clip_seconds=2.0), FeatureSettings(clip_seconds=3.0)


def _grid(model: ASTModel) -> torch.Tensor:
    """Patch position embeddings as (hidden, f_dim, t_dim)."""
    f_dim, t_dim = patch_grid(model.config)
    pos = model.embeddings.position_embeddings.detach()[0, 2:]
    return pos.T.reshape(-1, f_dim, t_dim)


def _smooth_pos(model: ASTModel) -> None:
    """Position embeddings that vary smoothly over the grid, as trained ones do."""
    f_dim, t_dim = patch_grid(model.config)
    hidden = model.config.hidden_size
    f = torch.linspace(0, 1, f_dim)[:, None, None]
    t = torch.linspace(0, 1, t_dim)[None, :, None]
    k = torch.arange(1, hidden + 1)[None, None, :] / hidden
    patches = torch.sin(6 * k * t + 3 * k) * torch.cos(4 * k * f)
    with torch.no_grad():
        model.embeddings.position_embeddings[0, 2:] = patches.reshape(f_dim * t_dim, hidden)


def _save_tiny(folder, features, cls=ASTModel, smooth=False):
    model = cls(preset_config("tiny", features))
    encoder = model if cls is ASTModel else model.audio_spectrogram_transformer
    torch.nn.init.normal_(encoder.embeddings.position_embeddings)
    torch.nn.init.normal_(encoder.embeddings.cls_token)
    if smooth:
        _smooth_pos(encoder)
    model.save_pretrained(folder)
    return encoder


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: str = "position_embeddings") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if skip not in k)


def test_presets_shapes_and_heads():
    for name, arch in PRESETS.items():
        assert arch["num_attention_heads"] == arch["hidden_size"] // 64, name
    base = preset_config("base", ONE_S)
    assert (base.hidden_size, base.num_hidden_layers, base.intermediate_size, base.max_length) == (768, 12, 3072, 100)
    model = build_encoder("tiny", ONE_S)
    assert model.config._attn_implementation == "sdpa"
    assert patch_grid(model.config) == (12, 9)
    out = model(input_values=torch.zeros(2, 100, 128)).last_hidden_state
    assert out.shape == (2, 110, 64)
    with pytest.raises(ConfigError, match="huge"):
        build_encoder("huge", ONE_S)


def test_seeded_random_init_is_deterministic():
    a, b, c = (
        build_encoder("tiny", ONE_S, seed=3),
        build_encoder("tiny", ONE_S, seed=3),
        build_encoder("tiny", ONE_S, seed=4),
    )
    assert _same_weights(a, b, skip="-") and encoder_fingerprint(a) == encoder_fingerprint(b)
    assert not _same_weights(a, c) and encoder_fingerprint(a) != encoder_fingerprint(c)
    assert a.embeddings.position_embeddings.std() > 0  # not HF's all-zero init


def test_shorter_clip_takes_the_centre_of_the_position_embeddings(tmp_path):
    original = _save_tiny(tmp_path, TWO_S)  # 12 x 19 grid
    loaded = build_encoder(features=ONE_S, pretrained=tmp_path)  # 12 x 9 grid
    assert patch_grid(loaded.config) == (12, 9) and loaded.config.max_length == 100
    assert torch.equal(_grid(loaded), _grid(original)[:, :, 5:14])
    pos_new, pos_old = loaded.embeddings.position_embeddings, original.embeddings.position_embeddings
    assert torch.equal(pos_new[:, :2], pos_old[:, :2])  # CLS / distillation kept
    assert _same_weights(loaded, original)
    assert loaded(input_values=torch.zeros(1, 100, 128)).last_hidden_state.shape == (1, 110, 64)


def test_longer_clip_interpolates_the_position_embeddings(tmp_path):
    original = _save_tiny(tmp_path, TWO_S, smooth=True)
    loaded = build_encoder(features=THREE_S, pretrained=tmp_path)
    new, old = _grid(loaded), _grid(original)
    assert new.shape == (64, 12, 29)
    back = F.interpolate(new[None], size=(12, 19), mode="bilinear")[0]
    assert torch.corrcoef(torch.stack([back.flatten(), old.flatten()]))[0, 1] > 0.99
    steps = (new[:, :, 1:] - new[:, :, :-1]).abs().max()
    assert steps < (old[:, :, 1:] - old[:, :, :-1]).abs().max() + 1e-6  # no jumps added
    assert torch.equal(loaded.embeddings.position_embeddings[:, :2], original.embeddings.position_embeddings[:, :2])


def test_classification_checkpoint_loads_without_head(tmp_path):
    inner = _save_tiny(tmp_path, ONE_S, cls=ASTForAudioClassification)
    assert any(
        k.startswith("audio_spectrogram_transformer.")
        for k in __import__("safetensors.torch").torch.load_file(tmp_path / "model.safetensors")
    )
    loaded, features = load_encoder(tmp_path)
    assert isinstance(loaded, ASTModel) and _same_weights(loaded, inner, skip="-")
    assert not any("classifier" in k for k in loaded.state_dict())
    assert features.max_length == 100


@pytest.mark.filterwarnings("ignore::UserWarning")  # the extractor's empty-mel-filter note
def test_audioset_style_folder_uses_clip_length_not_1024(tmp_path):
    original = _save_tiny(tmp_path, FeatureSettings(clip_seconds=10.24))  # 12 x 101, like AudioSet AST
    ASTFeatureExtractor().save_pretrained(tmp_path)  # max_length 1024
    loaded, features = load_encoder(tmp_path)
    assert features.max_length == 100 and features.mean == pytest.approx(-4.2677393)
    assert torch.equal(_grid(loaded), _grid(original)[:, :, 46:55])  # AST: 50 - int(9 / 2)


def test_run_dir_final_round_trip_and_plain_transformers(tmp_path):
    ssl = ASTSSL(build_encoder("tiny", TWO_S, seed=1))
    ssl.save(tmp_path / "run" / "final", TWO_S)
    loaded, features = load_encoder(tmp_path / "run")
    assert features == TWO_S and _same_weights(loaded, ssl.encoder, skip="-")
    again, _ = load_encoder(tmp_path / "run" / "final")
    assert encoder_fingerprint(again) == encoder_fingerprint(ssl.encoder)
    short = build_encoder("small", ONE_S, pretrained=tmp_path / "run")  # checkpoint's shape wins
    assert short.config.hidden_size == 64 and torch.equal(_grid(short), _grid(ssl.encoder)[:, :, 5:14])
    plain = ASTModel.from_pretrained(tmp_path / "run" / "final")
    x = torch.randn(2, 200, 128)
    with torch.no_grad():
        assert torch.allclose(
            plain(input_values=x).last_hidden_state, loaded(input_values=x).last_hidden_state, atol=1e-5
        )


@pytest.mark.parametrize("with_config", [True, False])
def test_model_pth_round_trip(tmp_path, with_config):
    ssl = ASTSSL(build_encoder("tiny", ONE_S, seed=2))
    torch.save(ssl.state_dict(), tmp_path / "model.pth")
    if with_config:
        ssl.encoder.config.to_json_file(tmp_path / "config.json")
    loaded, features = load_encoder(tmp_path / "model.pth")
    cfg = loaded.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (64, 3, 1, 256)
    assert patch_grid(cfg) == (12, 9) and features.max_length == 100
    assert _same_weights(loaded, ssl.encoder, skip="-")


def test_original_pipeline_model_pth_with_old_key_names_and_longer_grid(tmp_path):
    encoder = build_encoder("tiny", TWO_S, seed=5)
    renames = [
        ("layers.", "encoder.layer."),
        ("attention.q_proj", "attention.attention.query"),
        ("attention.o_proj", "attention.output.dense"),
        ("mlp.fc1", "intermediate.dense"),
        ("mlp.fc2", "output.dense"),
    ]
    state = {}
    for key, value in encoder.state_dict().items():
        for new, old in renames:
            key = key.replace(new, old)
        state["encoder." + key] = value
    state["projector.weight"] = torch.zeros(64, 64)
    torch.save(state, tmp_path / "model.pth")
    loaded, _ = load_encoder(tmp_path / "model.pth")  # inferred config, fitted to 100 frames
    assert torch.equal(_grid(loaded), _grid(encoder)[:, :, 5:14])
    assert torch.equal(blocks(loaded)[2].mlp.fc2.weight, blocks(encoder)[2].mlp.fc2.weight)


def test_random_preset_source():
    model, features = load_encoder("random:tiny")
    assert isinstance(model, ASTModel) and features == FeatureSettings() and patch_grid(model.config) == (12, 9)
    with pytest.raises(ConfigError, match="valid presets"):
        load_encoder("random:huge")


def test_random_preset_weights_follow_the_seed():
    """Each seed its own initialisation (the random baseline's variance over seeds), reproducible."""
    weights = {s: torch.cat([p.flatten() for p in load_encoder("random:tiny", seed=s)[0].parameters()]) for s in (0, 1)}
    assert not torch.allclose(weights[0], weights[1])
    again = torch.cat([p.flatten() for p in load_encoder("random:tiny", seed=1)[0].parameters()])
    assert torch.equal(weights[1], again)


def test_patch_size_sets_the_grid_and_keeps_asts_overlap():
    assert {p: dense_stride(p) for p in (4, 8, 12, 16, 32)} == {4: 3, 8: 5, 12: 8, 16: 10, 32: 20}
    assert _same_weights(build_encoder("tiny", ONE_S, patch_size=16), build_encoder("tiny", ONE_S), skip="-")
    dense, _ = load_encoder("random:tiny", patch_size=8)
    masked, _ = load_encoder("random:tiny", patch_size=8, patch_stride=8)  # the masked methods' grid
    assert (dense.config.time_stride, patch_grid(dense.config)) == (5, (25, 19))
    assert (masked.config.frequency_stride, patch_grid(masked.config)) == (8, (16, 12))
    assert masked(input_values=torch.zeros(1, 100, 128)).last_hidden_state.shape == (1, 2 + 16 * 12, 64)
    with pytest.raises(ConfigError, match="--patch-size 32 is larger than the clip"):
        build_encoder("tiny", FeatureSettings(num_mel_bins=16), patch_size=32)
    with pytest.raises(ConfigError, match="--patch-stride 12 does not fit patch size 8"):
        load_encoder("random:tiny", patch_size=8, patch_stride=12)


@pytest.mark.parametrize("stride", [8, 5])
def test_patch_8_checkpoints_load_with_their_grid(tmp_path, stride):
    encoder = build_encoder("tiny", TWO_S, seed=2, patch_size=8, patch_stride=stride)
    _smooth_pos(encoder)
    torch.save(encoder.state_dict(), tmp_path / "model.pth")  # no config.json: inferred from the weights
    inferred = load_encoder(tmp_path / "model.pth", TWO_S)[0].config
    assert (inferred.patch_size, inferred.time_stride, patch_grid(inferred)) == (8, stride, patch_grid(encoder.config))
    encoder.save_pretrained(tmp_path / "hf")
    short, _ = load_encoder(tmp_path / "hf", ONE_S)  # the 1-s grid: the centre of the 2-s one
    (_, t_old), (_, t_new) = patch_grid(encoder.config), patch_grid(short.config)
    assert t_new == (100 - 8) // stride + 1
    start = t_old // 2 - t_new // 2
    assert torch.equal(_grid(short), _grid(encoder)[:, :, start : start + t_new])
    with pytest.raises(ConfigError, match="random:<preset>"):
        load_encoder(tmp_path / "hf", patch_size=8)


def test_broken_checkpoints_raise_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        load_encoder(tmp_path / "nowhere")
    build_encoder("tiny", ONE_S).config.to_json_file(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_encoder(tmp_path)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pth"):
        load_encoder(tmp_path / "bad.pth")


def test_hidden_size_mismatch_is_reported(tmp_path):
    _save_tiny(tmp_path / "hf", ONE_S)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "hidden_size": 128, "num_attention_heads": 2}))
    with pytest.raises(CheckpointError, match="hidden size 64"):
        load_encoder(tmp_path / "hf")
    ssl = ASTSSL(build_encoder("tiny", ONE_S))
    torch.save(ssl.state_dict(), tmp_path / "model.pth")
    (tmp_path / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"delete that config\.json"):
        load_encoder(tmp_path / "model.pth")


@pytest.mark.parametrize("freeze", ["frozen", "partial:1", "full", "none"])
def test_apply_freeze_blocks_gradients(freeze):
    ssl = ASTSSL(build_encoder("tiny", ONE_S))
    encoder = ssl.encoder
    n = apply_freeze(encoder, freeze)
    ssl(input_values=torch.randn(2, 100, 128)).loss.backward()
    partial = {id(p) for part in (encoder.embeddings, blocks(encoder)[0]) for p in part.parameters()}
    frozen = {
        "frozen": lambda p: True,
        "partial:1": lambda p: id(p) in partial,
        "full": lambda p: False,
        "none": lambda p: False,
    }[freeze]
    for name, p in encoder.named_parameters():
        assert (p.grad is None) == frozen(p), name
    assert n == sum(p.numel() for p in encoder.parameters() if not frozen(p))
    assert apply_freeze(encoder, "full") == sum(p.numel() for p in encoder.parameters())


@pytest.mark.parametrize("bad", ["partial:x", "partial:4", "partial:-1", "thaw", ""])
def test_parse_freeze_rejects_bad_values(bad):
    with pytest.raises(ConfigError, match="partial"):
        parse_freeze(bad, num_layers=3)
    assert parse_freeze("partial:3", 3) == Freeze("partial", 3) and parse_freeze("none") == Freeze("full")
