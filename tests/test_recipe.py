"""The fine-tuning recipe: options reach the optimizer, augmentation, LP-FT head, balanced sampling, k folds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.encoder import load_encoder
from mosquito_ssl.model.layout import blocks
from mosquito_ssl.probe.classifier import StandardizedHead, build_classifier
from mosquito_ssl.probe.config import ProbeConfig
from mosquito_ssl.probe.finetune import _arguments, _optimizer
from mosquito_ssl.probe.recipe import augment, balanced_sampler, probe_head


def _groups_by_param(optimizer) -> dict[int, dict]:
    return {id(p): g for g in optimizer.param_groups for p in g["params"]}


@pytest.mark.parametrize("freeze", ["full", "partial:1"])
def test_options_reach_the_optimizer(tmp_path, freeze):
    cfg = ProbeConfig(
        data=tmp_path, probe="finetune", freeze=freeze, lr=2e-3, head_lr=5e-2, layer_decay=0.5, weight_decay=0.3
    )
    encoder, _ = load_encoder("random:tiny")
    model = build_classifier(encoder, cfg.freeze, n_classes=3)
    groups = _groups_by_param(_optimizer(model, cfg))
    stack = blocks(encoder)
    depth = len(stack)
    assert groups[id(model.head.linear.weight)]["lr"] == pytest.approx(5e-2)
    assert groups[id(model.head.linear.weight)]["weight_decay"] == pytest.approx(0.3)
    assert groups[id(model.head.linear.bias)]["weight_decay"] == 0.0
    for i, block in enumerate(stack):
        weight = next(block.parameters())
        if freeze == "partial:1" and i == 0:
            assert id(weight) not in groups  # frozen: not in any group
        else:
            assert groups[id(weight)]["lr"] == pytest.approx(2e-3 * 0.5 ** (depth - 1 - i))
    patch = encoder.embeddings.patch_embeddings.projection.weight
    if freeze == "full":
        assert groups[id(patch)]["lr"] == pytest.approx(2e-3 * 0.5**depth)
        assert groups[id(encoder.embeddings.position_embeddings)]["weight_decay"] == 0.0
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(groups) == trainable


def test_schedule_is_warmup_then_cosine(tmp_path):
    cfg = ProbeConfig(data=tmp_path, probe="finetune", warmup=0.2, epochs=7, weight_decay=0.1)
    args = _arguments(cfg, tmp_path)
    assert (
        str(args.lr_scheduler_type.value if hasattr(args.lr_scheduler_type, "value") else args.lr_scheduler_type)
        == "cosine"
    )
    assert (args.warmup_steps, args.num_train_epochs, args.weight_decay) == (0.2, 7, 0.1)


@pytest.mark.parametrize(
    "field, value, flag",
    [("layer_decay", 0.0, "--layer-decay"), ("warmup", 1.0, "--warmup"), ("balance", "oversample", "--balance"),
     ("head_init", "zeros", "--head-init"), ("mixup", -1.0, "--mixup")],
)  # fmt: skip
def test_bad_recipe_settings_name_the_flag(tmp_path, field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        ProbeConfig(data=tmp_path, probe="finetune", **{field: value})


def test_finetune_trains_the_whole_encoder_by_default(tmp_path):
    assert ProbeConfig(data=tmp_path, probe="finetune").freeze == "full"
    assert ProbeConfig(data=tmp_path, probe="linear").freeze == "frozen"


def test_specaugment_masks_bands_and_mixup_mixes_targets():
    torch.manual_seed(0)
    x = torch.randn(8, 100, 128) + 5.0  # no cell is 0 before masking
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    masked, target = augment(x, one_hot, specaugment=1.0, mixup=0.0)
    zero = masked == 0
    assert zero.any() and torch.equal(masked[~zero], x[~zero])
    assert torch.equal(target, one_hot)
    mixed, soft = augment(x, one_hot, specaugment=0.0, mixup=0.4)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(8))
    lam = soft[torch.arange(8), labels]  # weight of each clip's own class (>= lam when partners share it)
    assert ((lam > 0) & (lam <= 1)).all() and not torch.equal(mixed, x)


def test_eval_mode_does_not_augment():
    encoder, settings = load_encoder("random:tiny")
    model = build_classifier(encoder, "full", 3, pooling="mean", specaugment=1.0, mixup=0.5).eval()
    x = torch.randn(4, settings.max_length, settings.num_mel_bins)
    labels = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        first, second = model(x, labels).logits, model(x, labels).logits
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_probe_head_starts_at_the_linear_probe(n_classes):
    from mosquito_ssl.probe.linear import logistic

    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6)) * [1, 2, 3, 4, 5, 6] + 3
    y = (X[:, 0] + 0.5 * X[:, 1] > 4).astype(int) if n_classes == 2 else rng.integers(0, 3, 120)  # class 3 absent
    parts = {"train": np.arange(80), "val": np.arange(80, 120)}
    head = StandardizedHead(6, n_classes)
    probe_head(head, X, y, parts, n_classes, grid=(1.0,), seed=0)
    reference = logistic(1.0, 0).fit(X[:80], y[:80])
    with torch.no_grad():
        logits = head(torch.as_tensor(X, dtype=torch.float32)).numpy()
    np.testing.assert_array_equal(logits.argmax(axis=1), reference.predict(X))
    if n_classes > 2:  # softmax of the folded weights is scikit-learn's multinomial probability
        proba = torch.softmax(torch.as_tensor(logits[:, :3]), dim=1).numpy()
        np.testing.assert_allclose(proba, reference.predict_proba(X), atol=1e-4)


def test_balanced_sampler_draws_classes_equally_and_is_seeded():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    drawn = labels[list(balanced_sampler(labels, seed=3))]
    assert len(drawn) == 100
    again = labels[list(balanced_sampler(labels, seed=3))]
    np.testing.assert_array_equal(drawn, again)
    many = np.concatenate([labels[list(balanced_sampler(labels, seed=s))] for s in range(30)])
    assert np.bincount(many, minlength=3) / len(many) == pytest.approx([1 / 3] * 3, abs=0.05)


def test_finetune_cross_validates_every_fold_from_the_same_weights(tmp_path, monkeypatch):
    from mosquito_ssl.data.synthetic import synthesize
    from mosquito_ssl.probe import finetune as ft
    from mosquito_ssl.probe.run import run_probe

    data = synthesize(
        tmp_path / "synth", species=["aedes_aegypti", "culex_pipiens"], recordings_per_species=4, clips_per_recording=2
    )
    starts = []
    real = ft.finetune

    def spy(cfg, encoder, *args, **kwargs):
        starts.append({k: v.clone() for k, v in encoder.state_dict().items()})
        return real(cfg, encoder, *args, **kwargs)

    monkeypatch.setattr(ft, "finetune", spy)
    cfg = ProbeConfig(
        data=data, encoder="random:tiny", probe="finetune", folds=2, epochs=1, batch_size=4, out=tmp_path / "runs"
    )
    result = run_probe(cfg)
    assert len(starts) == 2
    for key, value in starts[0].items():
        torch.testing.assert_close(starts[1][key], value)
    assert {r["split"] for r in result.rows if r["metric"] == "balanced_accuracy"} == {"cv"}
    assert result.metrics["params"]["folds"] == 2
    assert "probe_val_balanced_accuracy" in result.metrics["params"]
