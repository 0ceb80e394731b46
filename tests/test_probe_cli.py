"""``mosquito-ssl probe`` sub-app through typer's CliRunner."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from mosquito_ssl.data.synthetic import synthesize
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.probe.cli import app


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(
        tmp_path_factory.mktemp("synth"),
        species=["aedes_aegypti", "culex_pipiens"],
        recordings_per_species=3,
        clips_per_recording=2,
    )


def test_every_command_has_an_example():
    runner = CliRunner()
    for command in ("linear", "layerwise", "mlp", "finetune", "presence"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command


def test_linear_prints_table_and_where_results_are(synth, tmp_path):
    result = CliRunner().invoke(
        app,
        ["linear", str(synth), "--encoder", "handcrafted", "--out", str(tmp_path), "--run-name", "hand", "--seed", "1"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"done: {tmp_path / 'hand' / 'results.csv'}; next: compare encoders with "
        "mosquito-ssl benchmarks run configs/mask_strength.toml"
    )
    assert "balanced_accuracy" in result.output and (tmp_path / "hand" / "DONE").exists()


def test_config_file_and_flags(synth, tmp_path):
    toml = tmp_path / "probe.toml"
    toml.write_text('[probe]\nencoder = "handcrafted"\nseed = 5\n')
    result = CliRunner().invoke(
        app, ["mlp", str(synth), "--config", str(toml), "--out", str(tmp_path), "--run-name", "m"]
    )
    assert result.exit_code == 0, result.output
    assert '"seed": 5' in (tmp_path / "m" / "config.json").read_text()


def test_bad_label_column_is_a_user_error(synth, tmp_path):
    result = CliRunner().invoke(
        app, ["linear", str(synth), "--encoder", "handcrafted", "--label-column", "nope", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "nope" in str(result.exception)


@pytest.mark.parametrize("flag", ["--encoder-name", "--encoder-label"])  # --encoder-label: the old, hidden spelling
def test_encoder_name_sets_the_encoder_column(synth, tmp_path, flag):
    args = ["linear", str(synth), "--encoder", "handcrafted", "--out", str(tmp_path), "--run-name", "n"]
    result = CliRunner().invoke(app, [*args, flag, "audioset"])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "n" / "results.csv")["encoder"]) == {"audioset"}
    help_text = CliRunner().invoke(app, ["linear", "--help"]).output
    assert "--encoder-name" in help_text and "--encoder-label" not in help_text
