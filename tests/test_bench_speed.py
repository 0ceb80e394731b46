"""The speed benchmark: fields, the shapes each pipeline really trains on, FLOP counting, CLI.

No assertion on wall times or speedups: those are measurements, not behaviour.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import typer
from typer.testing import CliRunner

from mosquito_ssl.benchmarks import flops
from mosquito_ssl.benchmarks.speed import SeedSSL, run_speed, seed_masks
from mosquito_ssl.benchmarks.speed_cli import speed
from mosquito_ssl.data.features import FeatureSettings
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model.encoder import build_encoder
from mosquito_ssl.model.masking import MaskSettings
from mosquito_ssl.model.ssl import ASTSSL

REQUIRED = ("seed_clips_per_s", "ours_clips_per_s", "speedup", "peak_gflops", "ours_gflops", "embed_clips_per_s")


def _app() -> typer.Typer:
    app = typer.Typer()  # a throwaway app: the lead registers `speed` on the benchmarks sub-app
    app.command("speed")(speed)
    app.command("noop")(lambda: None)  # two commands: typer then needs the command name
    return app


@pytest.fixture(scope="module")
def result():
    """One real (tiny, 1-step) run through the CLI, shared by the tests that read its JSON."""
    args = [
        "speed",
        "--preset",
        "tiny",
        "--batch",
        "2",
        "--steps",
        "1",
        "--seed-steps",
        "1",
        "--embed-batch",
        "4",
        "--embed-steps",
        "1",
        "--memory-clips",
        "300",
        "--peak-size",
        "256",
        "--json",
    ]
    out = CliRunner().invoke(_app(), args)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_required_fields_are_positive_finite_numbers(result):
    for key in REQUIRED + ("ours_fraction_of_peak", "embed_gflops", "peak_rss_mb"):
        value = result[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    assert result["speedup"] == pytest.approx(result["ours_clips_per_s"] / result["seed_clips_per_s"])
    json.dumps(result)  # one JSON object, nothing unserialisable


def test_seed_pipeline_trains_on_1024_frames_ours_on_100(result):
    assert result["seed_input_shape"] == [2, 1024, 128]
    assert result["ours_input_shape"] == [2, 100, 128]
    assert result["embed_input_shape"] == [4, 100, 128]


@pytest.mark.parametrize("frames", [100, 1024])
def test_analytic_flops_match_flop_counter(frames):
    features = FeatureSettings(clip_seconds=frames / 100)
    encoder = build_encoder("tiny", features=features)
    x = torch.randn(2, frames, 128)
    for model in (ASTSSL(encoder, MaskSettings()), SeedSSL(encoder, MaskSettings())):
        counted = flops.measured_flops(lambda: model(input_values=x))  # noqa: B023
        expected = 2 * flops.ssl_forward_flops(model)
        assert counted == pytest.approx(expected, rel=0.03), type(model).__name__
    with torch.no_grad():
        counted = flops.measured_flops(lambda: encoder(x))
    assert counted == pytest.approx(2 * flops.encoder_flops(flops.ast_shape(encoder.config)), rel=0.03)


def test_training_step_counts_about_three_forwards():
    model = ASTSSL(build_encoder("tiny"), MaskSettings())
    x = torch.randn(2, 100, 128)
    counted = flops.measured_flops(lambda: model(input_values=x).loss.backward())
    # flash-attention backward recomputes scores and the patch conv needs no input grad: ~3x
    assert counted == pytest.approx(2 * flops.TRAIN_FACTOR * flops.ssl_forward_flops(model), rel=0.1)


def test_seed_masks_zero_bands_per_example_and_leave_the_input():
    x = torch.ones(3, 1024, 128)
    masked = seed_masks(x, MaskSettings(time_width=50, freq_width=30))
    assert torch.equal(x, torch.ones_like(x))
    assert masked.shape == x.shape and set(masked.unique().tolist()) <= {0.0, 1.0}
    for example in masked:  # a zeroed cell lies in a zeroed full row (time) or column (freq)
        zero = example == 0
        assert torch.equal(zero, zero.all(dim=1, keepdim=True) | zero.all(dim=0, keepdim=True))


def test_cli_prints_json_and_table(monkeypatch):
    import mosquito_ssl.benchmarks.speed as speed_module

    seen = {}

    def fake_run(**kwargs):  # the real run is covered above; here only the command wiring
        seen.update(kwargs)
        return {**FAKE, **{k: kwargs[k] for k in ("preset", "batch")}}

    monkeypatch.setattr(speed_module, "run_speed", fake_run)
    app = _app()
    out = CliRunner().invoke(app, ["speed", "--preset", "tiny", "--batch", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["batch"] == 3 and seen["preset"] == "tiny" and seen["batch"] == 3
    table = CliRunner().invoke(app, ["speed", "--preset", "tiny"])
    assert table.exit_code == 0 and "speedup" in table.output and "clips/s" in table.output


def test_memory_measurement_reads_a_cache_of_the_asked_size(result):
    assert result["memory_clips"] == 300
    assert result["memory_cache_mb"] == pytest.approx(300 * 100 * 128 * 4 / 2**20, rel=0.01)
    assert result["memory_anon_growth_mb"] >= 0 and result["memory_peak_file_mb"] > 0


def test_bad_arguments_fail_before_any_work():
    with pytest.raises(ConfigError, match="--preset"):
        run_speed(preset="huge")
    with pytest.raises(ConfigError, match="--batch"):
        run_speed(preset="tiny", batch=0)


FAKE = {
    "preset": "tiny",
    "batch": 2,
    "device": "cpu",
    "threads": 2,
    "torch_version": "x",
    "seed_clips_per_s": 1.0,
    "ours_clips_per_s": 20.0,
    "speedup": 20.0,
    "seed_gflops": 1.0,
    "seed_fraction_of_peak": 0.01,
    "ours_gflops": 5.0,
    "ours_fraction_of_peak": 0.05,
    "embed_clips_per_s": 50.0,
    "embed_gflops": 2.0,
    "embed_fraction_of_peak": 0.02,
    "embed_batch": 4,
    "peak_gflops": 100.0,
    "peak_rss_mb": 500.0,
}
