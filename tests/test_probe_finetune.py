"""Fine-tuning: frozen parameters get no gradient, trainable ones do; a tiny run predicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosquito_ssl.model.encoder import load_encoder
from mosquito_ssl.probe.finetune import build_classifier, class_weights


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
