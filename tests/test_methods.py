"""SSL methods (mae, teacher, byol): visible-token encoding, masking leak, shapes, gradients, EMA, saving."""

from __future__ import annotations

import pytest
import torch
from transformers import ASTModel

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.byol import ASTBYOL, BYOLSettings, augment
from mosquito_ssl.model.ema import ema_decay_at, ema_update, frozen_copy
from mosquito_ssl.model.encoder import build_encoder
from mosquito_ssl.model.mae import ASTMAE, MAESettings
from mosquito_ssl.model.methods import build_ssl_model, method_settings
from mosquito_ssl.model.presets import dense_stride, patch_grid
from mosquito_ssl.model.teacher import ASTTeacher, TeacherSettings, teacher_targets
from mosquito_ssl.model.visible import (
    encode_visible,
    patchify,
    random_patch_mask,
    set_patch_stride,
)

FRAMES, BINS = 100, 128
METHOD_MODELS = [ASTMAE, ASTTeacher, ASTBYOL]


def batch(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, FRAMES, BINS, generator=torch.Generator().manual_seed(seed))


def test_visible_encoding_with_every_token_matches_ast_forward():
    for stride in (10, 16):
        encoder = set_patch_stride(build_encoder("tiny", seed=1), stride).eval()
        x = batch()
        n = patch_grid(encoder.config)[0] * patch_grid(encoder.config)[1]
        keep = torch.arange(n).expand(x.shape[0], n)
        ours, states = encode_visible(encoder, x, keep)
        assert torch.equal(ours, encoder(input_values=x).last_hidden_state)
        assert len(states) == encoder.config.num_hidden_layers


def test_random_patch_mask_counts_and_independence():
    keep, masked = random_patch_mask(8, 48, 0.8, torch.Generator().manual_seed(0))
    assert keep.shape == (8, 48 - round(0.8 * 48))
    assert torch.equal(masked.sum(dim=1), torch.full((8,), round(0.8 * 48)))
    assert torch.all(keep[:, 1:] > keep[:, :-1])  # sorted, no repeats
    assert not masked.gather(1, keep).any()  # kept patches are the unmasked ones
    assert len({tuple(row.tolist()) for row in keep}) > 1  # independent per example


def test_patchify_matches_slicing():
    encoder = set_patch_stride(build_encoder("tiny"), 16)
    x = batch(2)
    pixels = patchify(x, encoder)
    f_dim, t_dim = patch_grid(encoder.config)
    assert pixels.shape == (2, f_dim * t_dim, 256)
    f, t = 3, 4
    expected = x[:, t * 16 : (t + 1) * 16, f * 16 : (f + 1) * 16].transpose(1, 2).reshape(2, -1)
    assert torch.equal(pixels[:, f * t_dim + t], expected)


def masked_cells(masked: torch.Tensor, encoder: ASTModel, frames: int, bins: int) -> torch.Tensor:
    """(B, N) masked patches -> (B, T, F) bool cells that some masked patch covers (a plain loop, the reference)."""
    cfg = encoder.config
    p = int(cfg.patch_size)
    f_dim, t_dim = patch_grid(encoder.config)
    grid = masked.view(-1, f_dim, t_dim).float()
    cover = torch.zeros(masked.shape[0], bins, frames, device=masked.device)
    for f in range(f_dim):
        f0 = f * cfg.frequency_stride
        for t in range(t_dim):
            t0 = t * cfg.time_stride
            cover[:, f0 : f0 + p, t0 : t0 + p] += grid[:, f, t, None, None]
    return (cover > 0).transpose(1, 2)


def _leaks(stride: int, patch: int = 16) -> bool:
    """Does changing the cells under masked patches change the encoding of the visible ones?"""
    encoder = set_patch_stride(build_encoder("tiny", seed=2, patch_size=patch), stride).eval()
    n = patch_grid(encoder.config)[0] * patch_grid(encoder.config)[1]
    keep, masked = random_patch_mask(2, n, 0.8, torch.Generator().manual_seed(3))
    x = batch(2)
    hidden = masked_cells(masked, encoder, FRAMES, BINS) & ~masked_cells(~masked, encoder, FRAMES, BINS)
    changed = torch.where(hidden, x + 5.0 * torch.randn_like(x), x)
    with torch.no_grad():
        a, _ = encode_visible(encoder, x, keep)
        b, _ = encode_visible(encoder, changed, keep)
    masked_only = masked_cells(masked, encoder, FRAMES, BINS)
    return hidden.sum() < masked_only.sum() or not torch.equal(a, b)


@pytest.mark.parametrize("patch", [8, 12, 16])
def test_no_masked_cell_reaches_the_encoder_with_non_overlapping_patches(patch):
    assert not _leaks(patch, patch)
    assert _leaks(dense_stride(patch), patch)  # AST's overlap ratio: masked cells are seen through neighbours


@pytest.mark.parametrize("cls", METHOD_MODELS)
def test_methods_use_non_overlapping_patches_and_train(cls):
    torch.manual_seed(0)
    model = cls(build_encoder("tiny", seed=0))
    cfg = model.encoder.config
    assert (cfg.frequency_stride, cfg.time_stride) == (cfg.patch_size, cfg.patch_size)
    out = model(input_values=batch())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("cls", [ASTTeacher, ASTBYOL])
def test_ema_targets_get_no_gradient(cls):
    model = cls(build_encoder("tiny"))
    model(input_values=batch()).loss.backward()
    frozen = [n for n, p in model.named_parameters() if n.startswith(("teacher.", "target_"))]
    assert frozen
    for name, p in model.named_parameters():
        if name in frozen:
            assert not p.requires_grad and p.grad is None, name


def test_ema_update_and_schedule():
    student = torch.nn.Linear(3, 2)
    teacher = frozen_copy(student)
    before = teacher.weight.detach().clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher.weight, 0.9 * before + 0.1 * student.weight.detach())
    assert ema_decay_at(0, 100, 0.99, 0.999, 0.5) == 0.99
    assert ema_decay_at(25, 100, 0.99, 0.999, 0.5) == pytest.approx(0.9945)
    assert ema_decay_at(80, 100, 0.99, 0.999, 0.5) == 0.999


def test_teacher_update_moves_teacher_towards_student():
    model = ASTTeacher(build_encoder("tiny"), TeacherSettings(ema_decay=0.5, ema_end_decay=0.5))
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    t0 = model.teacher.embeddings.cls_token.detach().clone()
    model.after_optimizer_step(1, 10)
    expected = 0.5 * t0 + 0.5 * model.encoder.embeddings.cls_token.detach()
    assert torch.allclose(model.teacher.embeddings.cls_token, expected)


def test_teacher_targets_are_instance_then_layer_normalised():
    states = [torch.randn(2, 2 + 6, 8) * (i + 1) + i for i in range(3)]
    target = teacher_targets(states, 2)
    assert target.shape == (2, 6, 8)
    assert torch.allclose(target.mean(dim=-1), torch.zeros(2, 6), atol=1e-5)
    assert torch.allclose(target.std(dim=-1, unbiased=False), torch.ones(2, 6), atol=1e-3)


@pytest.mark.parametrize("cls", METHOD_MODELS)
def test_eval_loss_is_deterministic(cls):
    model = cls(build_encoder("tiny")).eval()
    x = batch()
    with torch.no_grad():
        assert torch.equal(model(input_values=x).loss, model(input_values=x).loss)


def test_byol_views_keep_the_frequency_axis():
    x = torch.full((3, FRAMES, BINS), -1.0)
    x[:, :, 40] = 1.0  # a constant harmonic at bin 40
    view = augment(x, BYOLSettings(mixup_ratio=0.0), torch.Generator().manual_seed(0))
    assert view.shape == x.shape
    assert torch.all(view.argmax(dim=2) == 40)


@pytest.mark.parametrize("method", ["mae", "teacher", "byol"])
def test_final_folder_loads_with_plain_transformers(tmp_path, method):
    from mosquito_ssl.data.features import FeatureSettings

    model = build_ssl_model(method, build_encoder("tiny"), {})
    model.save(tmp_path, FeatureSettings())
    loaded = ASTModel.from_pretrained(tmp_path).eval()
    x = batch(2)
    assert loaded.config.time_stride == 16
    with torch.no_grad():
        assert torch.allclose(
            loaded(input_values=x).last_hidden_state, model.encoder.eval()(input_values=x).last_hidden_state
        )


def test_method_settings_refuse_foreign_options():
    assert method_settings("mae", {"mask_ratio": 0.75, "ema_decay": None}) == MAESettings(mask_ratio=0.75)
    with pytest.raises(ConfigError, match="--ema-decay is a setting of --method teacher, byol"):
        method_settings("mae", {"ema_decay": 0.9})
    with pytest.raises(ConfigError, match="--mask-ratio"):
        MAESettings(mask_ratio=1.5)
    with pytest.raises(ConfigError, match="--method"):
        method_settings("simclr", {})


def test_step_flops_count_no_backward_for_the_ema_teacher():
    from mosquito_ssl.model.flops import TRAIN_FACTOR, counted_forward_flops, counted_step_flops

    mae = ASTMAE(build_encoder("tiny"))
    teacher = ASTTeacher(build_encoder("tiny"), TeacherSettings(views=1))
    # mae: every pass is trained, so a step is about forward + 2x forward (the patch conv gets no input grad)
    assert 2.5 * counted_forward_flops(mae) < counted_step_flops(mae) <= TRAIN_FACTOR * counted_forward_flops(mae)
    # teacher: its full no-grad pass is counted once, so the step is well under 3x the forward
    assert counted_step_flops(teacher) < 2.5 * counted_forward_flops(teacher)
