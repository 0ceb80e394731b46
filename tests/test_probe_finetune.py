"""Fine-tuning: frozen parameters get no gradient, trainable ones do; a tiny run predicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mosquito_ssl.model.encoder import load_encoder
from mosquito_ssl.probe.classifier import build_classifier, class_weights


@pytest.mark.parametrize("freeze", ["frozen", "partial:1", "full"])
def test_frozen_parameters_get_no_gradient(freeze):
    encoder, settings = load_encoder("random:tiny")
    model = build_classifier(encoder, freeze, n_classes=3, pooling="cls+mean")
    x = torch.randn(2, settings.max_length, settings.num_mel_bins)
    model(x, labels=torch.tensor([0, 2])).loss.backward()
    frozen = {"frozen": ("encoder.",), "partial:1": ("encoder.embeddings.", "encoder.layers.0."), "full": ()}[freeze]
    for name, param in model.named_parameters():
        if name.startswith(frozen):
            assert param.grad is None, name
        else:
            assert param.grad is not None, name
    assert model.head.linear.weight.grad.abs().sum() > 0


def test_class_weights_balance_counts():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 9, 4 / 3, 0.0])


def test_finetune_run_predicts_probabilities(tmp_path):
    import pandas as pd

    from mosquito_ssl.data.synthetic import synthesize
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.run import run_probe

    data = synthesize(
        tmp_path / "synth", species=["aedes_aegypti", "culex_pipiens"], recordings_per_species=3, clips_per_recording=2
    )
    cfg = ProbeConfig(
        data=data,
        encoder="random:tiny",
        probe="finetune",
        freeze="partial:1",
        epochs=1,
        batch_size=4,
        out=tmp_path / "runs",
    )
    result = run_probe(cfg)
    preds = pd.read_csv(result.run_dir / "predictions.csv")
    probs = preds[[c for c in preds.columns if c.startswith("prob:")]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert set(preds["split"]) == {"val", "test"}
    assert {r["freeze"] for r in result.rows} == {"partial:1"}
    assert not (result.run_dir / "trainer").exists()


def _two_species(tmp_path):
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path / "synth", species=["aedes_aegypti", "culex_pipiens"], recordings_per_species=4, clips_per_recording=2
    )


def test_a_fine_tune_that_keeps_its_probe_scores_test_as_probe_linear(tmp_path):
    """No epoch can beat the probe (learning rates ~0): with --refit head, each fold's test predictions
    are exactly `probe linear`'s (C chosen on val, refit on train + val)."""
    import pandas as pd

    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.run import run_probe

    data, runs = _two_species(tmp_path), tmp_path / "runs"
    common = dict(data=data, encoder="random:tiny", folds=2, seed=3, out=runs)
    linear = run_probe(ProbeConfig(**common))
    tuned = run_probe(ProbeConfig(**common, probe="finetune", epochs=2, lr=1e-12, head_lr=1e-12, batch_size=4))
    assert tuned.metrics["params"]["best_epoch_zero"] == 1.0 and tuned.metrics["params"]["chosen_epoch"] == 0.0
    a, b = (pd.read_csv(r.run_dir / "predictions.csv") for r in (linear, tuned))
    pd.testing.assert_frame_equal(a, b)  # same folds, clips, labels, predictions and probabilities


def test_refit_all_trains_the_chosen_epochs_on_train_and_val(tmp_path, monkeypatch):
    """--refit all starts from the pristine encoder and the probe refit on train + val, and trains
    exactly the chosen number of epochs on train + val, with no evaluation."""
    from mosquito_ssl.probe import finetune as ft
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.inputs import load_inputs
    from mosquito_ssl.probe.run import encoder_embeddings

    cfg = ProbeConfig(data=_two_species(tmp_path), encoder="random:tiny", probe="finetune", batch_size=4)
    inputs = load_inputs(cfg)
    X = np.asarray(encoder_embeddings(cfg.encoder, inputs.model, inputs.cache, cfg.pooling)[0][:, -1])
    pristine = {k: v.clone() for k, v in inputs.model.state_dict().items()}
    with torch.no_grad():
        next(inputs.model.parameters()).add_(1.0)  # the fold's fine-tuned weights: the refit must not start here
    trainers, starts, real = [], [], ft._train

    def spy(cfg, model, *args, **kwargs):  # the encoder weights the refit starts from, then the real call
        starts.append({k: v.clone() for k, v in model.encoder.state_dict().items()})
        trainers.append((args[2], real(cfg, model, *args, **kwargs)))
        return trainers[-1][1]

    monkeypatch.setattr(ft, "_train", spy)
    parts = inputs.parts
    cfg = dataclasses.replace(cfg, refit="all")
    ft._test_proba(cfg, None, inputs.model, inputs.cache, inputs.y, parts, ["a", "c"], tmp_path / "t", X, pristine, 2)
    (train, trainer), both = trainers[0], np.concatenate([parts["train"], parts["val"]])
    np.testing.assert_array_equal(train, both)
    assert trainer.state.epoch == 2 and trainer.args.eval_strategy == "no"
    assert not any("eval_balanced_accuracy" in e for e in trainer.state.log_history)
    assert starts[0].keys() == pristine.keys()
    assert all(torch.equal(starts[0][k], pristine[k]) for k in pristine)  # not the fold's fine-tuned weights


def test_refit_head_probes_the_fine_tuned_encoder_as_probe_linear_probes_its_own(tmp_path):
    """--refit head reads the representation `probe linear` reads (the embeddings cache's pooled
    last layer), through the fine-tuned weights, and fits the same linear probe on it."""
    import types

    from mosquito_ssl.probe import finetune as ft
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.inputs import load_inputs
    from mosquito_ssl.probe.linear import linear_probe
    from mosquito_ssl.probe.run import encoder_embeddings

    cfg = ProbeConfig(data=_two_species(tmp_path), encoder="random:tiny", probe="finetune", folds=2)
    inputs = load_inputs(cfg)
    X = np.asarray(encoder_embeddings(cfg.encoder, inputs.model, inputs.cache, cfg.pooling)[0][:, -1])
    model = build_classifier(inputs.model, "full", 2, cfg.pooling)
    np.testing.assert_allclose(ft._pooled(model, inputs.cache, cfg.pooling, 5), X, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))  # "fine-tuned"
    parts, n = inputs.folds[0], len(inputs.classes)
    tuned = ft._pooled(model, inputs.cache, cfg.pooling, 5)
    assert not np.allclose(tuned, X)
    got = ft._test_proba(cfg, types.SimpleNamespace(model=model), None, inputs.cache, inputs.y, parts, inputs.classes,
                         tmp_path, X, None, 3)  # fmt: skip
    np.testing.assert_allclose(got, linear_probe(tuned, inputs.y, parts, n, cfg.c_grid, cfg.seed).proba["test"])
