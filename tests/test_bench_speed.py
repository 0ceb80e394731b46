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
    "batch",
    "activation_mb_per_clip",
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
        "--equal-memory",
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
def test_equal_memory_times_the_lighter_methods_at_a_larger_batch(result):
    assert "mae_equal_memory" in result["equal_memory"]  # mae keeps far fewer activations per clip
    for name in result["equal_memory"]:
        method = name.removesuffix("_equal_memory")
        bigger = result[f"{name}_batch"]
        ratio = result["reconstruct_activation_mb_per_clip"] / result[f"{method}_activation_mb_per_clip"]
        assert bigger == int(2 * ratio) > 2 and result[f"{name}_input_shape"][0] == bigger
        assert result[f"{name}_gflops"] > 0 and f"{name}_speedup" in result
    assert "reconstruct_equal_memory" not in result and "original_equal_memory" not in result


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


def test_activation_meter_counts_saved_activations_not_parameters():
    from mosquito_ssl.speed.memory import ActivationMeter

    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    with ActivationMeter(layer) as meter:
        out = layer(x)  # addmm saves its input (and the weight, a parameter: not counted)
    outside = layer(torch.randn(50, 4))  # not inside the block: not counted
    assert meter.nbytes == x.nbytes
    with ActivationMeter(layer) as big:
        relu = torch.relu(layer(torch.randn(10, 4)))
    assert big.nbytes == 10 * 4 * 4 + 10 * 3 * 4  # the input, and relu's output (saved for its backward)
    del out, outside, relu


def test_equal_memory_batch_fills_the_reference_activations():
    from mosquito_ssl.speed.run import Measurement, equal_memory_batch

    def m(mb: float | None) -> Measurement:
        return Measurement({} if mb is None else {"activation_mb_per_clip": mb}, 1)

    measured = {"reconstruct": m(60.0), "mae": m(9.0), "byol": m(70.0), "other": m(None)}
    assert equal_memory_batch(measured, "mae", 8) == 53  # 8 * 60 / 9, rounded down
    assert equal_memory_batch(measured, "byol", 8) == 8  # heavier: never below --batch
    assert equal_memory_batch(measured, "other", 8) == 8  # not measured (--warmup 0)


def test_freed_blocks_are_reused_without_page_faults():
    import resource

    from mosquito_ssl.speed.machine import reuse_freed_memory

    if not reuse_freed_memory():
        pytest.skip("not glibc")

    def step() -> int:
        """Minor page faults of 100 MB allocated in 4-MB blocks and freed together, as a step's gradients."""
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        grads = [torch.empty(1 << 20).fill_(1.0) for _ in range(25)]
        del grads
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults = [step() for _ in range(6)]
    # glibc's default trims the freed top of the heap: ~25 000 faults every step, for ever
    assert max(faults[-2:]) < 1024, faults


def test_bad_arguments_fail_before_any_work():
    with pytest.raises(ConfigError, match="--preset"):
        run_speed(preset="huge")
    with pytest.raises(ConfigError, match="--batch"):
        run_speed(preset="tiny", batch=0)
    with pytest.raises(ConfigError, match="--original-steps"):
        run_speed(preset="tiny", original_steps=0)
    with pytest.raises(ConfigError, match="--warmup"):
        run_speed(preset="tiny", warmup=-1)
    with pytest.raises(ConfigError, match="--equal-memory"):
        run_speed(preset="tiny", warmup=0, equal_memory=True)


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
