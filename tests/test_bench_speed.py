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

from mosquito_ssl.data.features import FeatureSettings
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model import flops
from mosquito_ssl.model.encoder import build_encoder
from mosquito_ssl.model.masking import MaskSettings
from mosquito_ssl.model.ssl import ASTSSL
from mosquito_ssl.speed.cli import speed
from mosquito_ssl.speed.original import OriginalPipelineSSL, original_masks
from mosquito_ssl.speed.pipelines import PIPELINES
from mosquito_ssl.speed.run import run_speed

REQUIRED = (
    "original_clips_per_s",
    "reconstruct_clips_per_s",
    "speedup",
    "peak_gflops",
    "reconstruct_gflops",
    "embed_clips_per_s",
)
PER_PIPELINE = (
    "clips_per_s",
    "gflops",
    "fraction_of_peak",
    "best_fraction_of_peak",
    "gflop_per_clip",
    "input_shape",
    "step_s",
    "phase_s",
)


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
        "--original-steps",
        "1",
        "--embed-batch",
        "4",
        "--embed-steps",
        "1",
        "--memory-clips",
        "1000",
        "--peak-size",
        "256",
        "--json",
    ]
    out = CliRunner().invoke(_app(), args)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


@pytest.mark.slow
def test_required_fields_are_positive_finite_numbers(result):
    for key in (*REQUIRED, "reconstruct_fraction_of_peak", "embed_gflops", "peak_rss_mb"):
        value = result[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    assert result["speedup"] == pytest.approx(result["reconstruct_clips_per_s"] / result["original_clips_per_s"])
    json.dumps(result)  # one JSON object, nothing unserialisable


@pytest.mark.slow
def test_every_pipeline_is_measured_into_the_same_fields(result):
    assert result["pipelines"] == [p.name for p in PIPELINES]
    for name in result["pipelines"]:
        missing = [f for f in PER_PIPELINE if f"{name}_{f}" not in result]
        assert not missing, (name, missing)
        assert len(result[f"{name}_step_s"]) == 1  # --steps 1 / --original-steps 1
    assert not any(k.startswith(("seed_", "ours_")) for k in result)  # the old names are gone


@pytest.mark.slow
def test_original_pipeline_trains_on_1024_frames_reconstruct_on_100(result):
    assert result["original_input_shape"] == [2, 1024, 128]
    assert result["reconstruct_input_shape"] == [2, 100, 128]
    assert result["embed_input_shape"] == [4, 100, 128]


@pytest.mark.parametrize("frames", [100, 1024])
def test_analytic_flops_match_flop_counter(frames):
    features = FeatureSettings(clip_seconds=frames / 100)
    encoder = build_encoder("tiny", features=features)
    x = torch.randn(2, frames, 128)
    reconstruct, original = ASTSSL(encoder, MaskSettings()), OriginalPipelineSSL(encoder, MaskSettings())
    for model, analytic in (
        (reconstruct, flops.reconstruct_forward_flops(reconstruct)),
        (original, original.forward_flops()),
    ):
        counted = flops.measured_flops(lambda: model(input_values=x))  # noqa: B023
        assert counted == pytest.approx(2 * analytic, rel=0.03), type(model).__name__
    assert flops.counted_forward_flops(reconstruct) == pytest.approx(
        flops.reconstruct_forward_flops(reconstruct), rel=0.03
    )
    with torch.no_grad():
        counted = flops.measured_flops(lambda: encoder(x))
    assert counted == pytest.approx(2 * flops.encoder_flops(flops.ast_shape(encoder.config)), rel=0.03)


def test_training_step_counts_about_three_forwards():
    model = ASTSSL(build_encoder("tiny"), MaskSettings())
    x = torch.randn(2, 100, 128)
    counted = flops.measured_flops(lambda: model(input_values=x).loss.backward())
    # flash-attention backward recomputes scores and the patch conv needs no input grad: ~3x
    assert counted == pytest.approx(2 * flops.TRAIN_FACTOR * flops.reconstruct_forward_flops(model), rel=0.1)


def test_original_masks_zero_bands_per_example_and_leave_the_input():
    x = torch.ones(3, 1024, 128)
    masked = original_masks(x, MaskSettings(time_width=50, freq_width=30))
    assert torch.equal(x, torch.ones_like(x))
    assert masked.shape == x.shape and set(masked.unique().tolist()) <= {0.0, 1.0}
    for example in masked:  # a zeroed cell lies in a zeroed full row (time) or column (freq)
        zero = example == 0
        assert torch.equal(zero, zero.all(dim=1, keepdim=True) | zero.all(dim=0, keepdim=True))


def test_cli_prints_json_and_table(monkeypatch):
    import mosquito_ssl.speed.run as speed_module

    seen = {}

    def fake_run(**kwargs):  # the real run is covered above; here only the command wiring
        seen.update(kwargs)
        return {**FAKE, **{k: kwargs[k] for k in ("preset", "batch")}}

    monkeypatch.setattr(speed_module, "run_speed", fake_run)
    app = _app()
    out = CliRunner().invoke(app, ["speed", "--preset", "tiny", "--batch", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["batch"] == 3 and seen["preset"] == "tiny" and seen["batch"] == 3
    assert seen["original_steps"] == 2
    table = CliRunner().invoke(app, ["speed", "--preset", "tiny"])
    assert table.exit_code == 0, table.output
    assert "speedup over the original pipeline" in table.output and "20.0x" in table.output
    assert "original pipeline training (1024 frames)" in table.output


def test_seed_steps_is_a_hidden_alias_of_original_steps(monkeypatch):
    import mosquito_ssl.speed.run as speed_module

    seen = {}
    monkeypatch.setattr(speed_module, "run_speed", lambda **kw: seen.update(kw) or dict(FAKE))
    app = _app()
    out = CliRunner().invoke(app, ["speed", "--seed-steps", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert seen["original_steps"] == 3
    assert "--seed-steps" not in CliRunner().invoke(app, ["speed", "--help"]).output
    both = CliRunner().invoke(app, ["speed", "--seed-steps", "3", "--original-steps", "3"])
    assert isinstance(both.exception, ConfigError) and "--original-steps" in str(both.exception)


@pytest.mark.slow
def test_memory_measurement_reads_a_cache_of_the_asked_size(result):
    assert result["memory_clips"] == 1000
    assert result["memory_cache_mb"] == pytest.approx(1000 * 100 * 128 * 4 / 2**20, rel=0.01)
    # a full shuffled pass over the 49 MB memmap leaves it in the page cache, not the heap
    assert result["memory_anon_growth_mb"] < result["memory_cache_mb"] / 2


def test_bad_arguments_fail_before_any_work():
    with pytest.raises(ConfigError, match="--preset"):
        run_speed(preset="huge")
    with pytest.raises(ConfigError, match="--batch"):
        run_speed(preset="tiny", batch=0)
    with pytest.raises(ConfigError, match="--original-steps"):
        run_speed(preset="tiny", original_steps=0)
    with pytest.raises(ConfigError, match="--warmup"):
        run_speed(preset="tiny", warmup=-1)


FAKE = {
    "preset": "tiny",
    "batch": 2,
    "device": "cpu",
    "threads": 2,
    "torch_version": "x",
    "pipelines": ["original", "reconstruct"],
    "original_clips_per_s": 1.0,
    "original_gflops": 1.0,
    "original_fraction_of_peak": 0.01,
    "original_input_shape": [2, 1024, 128],
    "reconstruct_clips_per_s": 20.0,
    "reconstruct_gflops": 5.0,
    "reconstruct_fraction_of_peak": 0.05,
    "reconstruct_input_shape": [2, 100, 128],
    "reconstruct_speedup": 20.0,
    "speedup": 20.0,
    "embed_clips_per_s": 50.0,
    "embed_gflops": 2.0,
    "embed_fraction_of_peak": 0.02,
    "embed_batch": 4,
    "peak_gflops": 100.0,
    "peak_rss_mb": 500.0,
}
