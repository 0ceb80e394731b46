"""ASTSSL: shapes, losses, masks in train/eval mode, gradients, learning, rebuild from config."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.encoder import build_encoder
from mosquito_ssl.model.layout import blocks
from mosquito_ssl.model.method_settings import ReconstructSettings
from mosquito_ssl.model.methods import rebuild
from mosquito_ssl.model.ssl import AST_SSL, ASTSSL

FEATURES = SimpleNamespace(max_length=100, num_mel_bins=128)  # duck-typed FeatureSettings


@pytest.fixture
def batch():
    return torch.randn(4, 100, 128, generator=torch.Generator().manual_seed(0))


def _model(**kwargs) -> ASTSSL:
    torch.manual_seed(0)
    return ASTSSL(build_encoder("tiny", FEATURES), **kwargs)


def test_forward_shapes_and_output_type(batch):
    model = _model()
    assert AST_SSL is ASTSSL and isinstance(model.encoder, nn.Module)
    out = model(input_values=batch, num_items_in_batch=4, labels=None)  # Trainer extras ignored
    assert out["loss"] is out.loss and out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.reconstruction.shape == batch.shape and torch.isfinite(out.reconstruction).all()
    assert out.mask.shape == batch.shape and out.mask.dtype == torch.bool


def test_gradients_reach_every_part(batch):
    model = _model()
    model(input_values=batch).loss.backward()
    for part in (model.encoder.embeddings.patch_embeddings, blocks(model.encoder)[0], model.projector, model.decoder):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_train_masks_are_random_and_independent_per_example(batch):
    model = _model().train()
    a, b = model(input_values=batch).mask, model(input_values=batch).mask
    assert not torch.equal(a, b)
    assert not all(torch.equal(a[0], a[i]) for i in range(1, len(a)))


def test_eval_loss_is_deterministic(batch):
    model = _model().eval()
    with torch.no_grad():
        first, second = model(input_values=batch), model(input_values=batch)
    assert torch.equal(first.mask, second.mask) and first.loss.item() == second.loss.item()
    assert first.mask.any()


def test_masked_and_all_losses_differ(batch):
    model = _model().eval()
    with torch.no_grad():
        loss_all = model(input_values=batch).loss
        model.loss_on = "masked"
        out = model(input_values=batch)
    err = (out.reconstruction - batch) ** 2
    assert torch.allclose(out.loss, err[out.mask].mean())
    assert torch.allclose(loss_all, err.mean()) and not torch.allclose(loss_all, out.loss)


def test_masked_loss_falls_back_to_all_without_masking(batch):
    model = _model(settings=ReconstructSettings(mask_strength=0.0, loss_on="masked")).eval()
    with torch.no_grad():
        out = model(input_values=batch)
    assert not out.mask.any()
    assert torch.allclose(out.loss, ((out.reconstruction - batch) ** 2).mean())


def test_masked_cells_are_zero_in_the_encoder_input(batch):
    model = _model().eval()
    seen = {}
    model.encoder.register_forward_pre_hook(lambda m, args, kw: seen.update(x=kw["input_values"]), with_kwargs=True)
    with torch.no_grad():
        out = model(input_values=batch)
    assert (seen["x"][out.mask] == 0).all()
    assert torch.equal(seen["x"][~out.mask], batch[~out.mask])


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss():
    # harmonic stripes (a wingbeat-like spectrogram): structure the model can learn quickly
    bins = torch.arange(128.0)
    stripes = torch.stack([torch.cos(bins * (0.2 + 0.05 * i)) for i in range(4)])
    batch = stripes[:, None, :].expand(4, 100, 128).contiguous()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.eval()
    with torch.no_grad():
        before = model(input_values=batch).loss.item()
    model.train()
    for _ in range(15):
        opt.zero_grad()
        model(input_values=batch).loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = model(input_values=batch).loss.item()
    assert after < 0.5 * before, (before, after)


class _GridEncoder(nn.Module):
    """Stand-in encoder whose patch token f * t_dim + t carries the value t (CLS/dist: -1)."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, input_values):
        f_dim, t_dim = 12, 9
        t = torch.arange(t_dim, dtype=torch.float32).repeat(f_dim)  # flatten order of the conv
        tokens = torch.cat([torch.full((2,), -1.0), t])
        hidden = tokens[None, :, None].expand(len(input_values), -1, self.config.hidden_size)
        return SimpleNamespace(last_hidden_state=hidden)


def test_decoder_sees_a_real_time_axis(batch):
    encoder = build_encoder("tiny", FEATURES)
    model = ASTSSL(_GridEncoder(encoder.config), proj_dim=4).eval()
    with torch.no_grad():
        model.projector.weight.fill_(1.0 / 64)
        model.projector.bias.zero_()
    seen = {}
    model.decoder[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    with torch.no_grad():
        model(input_values=batch)
    x = seen["x"]  # (B, f_dim * proj_dim, t_dim): column t must hold only time step t
    assert x.shape == (4, 12 * 4, 9)
    assert torch.allclose(x, torch.arange(9.0).expand_as(x))


def test_ssl_config_rebuilds_the_model(tmp_path, batch):
    model = _model(settings=ReconstructSettings(mask_strength=0.5, mask_kind="time", loss_on="masked"), proj_dim=8)
    config = model.ssl_config()
    assert config["mask_strength"] == 0.5 and config["loss_on"] == "masked" and config["proj_dim"] == 8
    torch.save(model.state_dict(), tmp_path / "model.pth")
    rebuilt = rebuild(build_encoder("tiny", FEATURES, seed=1), config)
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model(input_values=batch).loss, rebuilt(input_values=batch).loss)
    assert rebuilt.mask == model.mask


def test_bad_inputs_raise_config_errors(batch):
    with pytest.raises(ConfigError, match="--loss-on"):
        ReconstructSettings(loss_on="cells")
    with pytest.raises(ConfigError, match="100, 128"):
        _model()(input_values=batch[:, :50])
