"""``mosquito-ssl probe`` sub-app through typer's CliRunner."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.probe.cli import app


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


FINETUNE_ONLY = (
    "--freeze", "--head-init", "--lr", "--head-lr", "--layer-decay", "--warmup", "--weight-decay", "--specaugment",
    "--mixup", "--balance", "--epochs", "--patience", "--dropout",
)  # fmt: skip


@pytest.mark.parametrize("command", ["linear", "layerwise", "mlp"])
def test_frozen_probes_list_no_finetune_option(command):
    help_text = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
    assert not [flag for flag in FINETUNE_ONLY if flag in help_text], help_text
    assert "--encoder" in help_text and "--label-column" in help_text  # the shared ones stay


def test_finetune_lists_its_own_options_and_no_layer():
    help_text = CliRunner().invoke(app, ["finetune", "--help"], terminal_width=200).output
    assert all(flag in help_text for flag in FINETUNE_ONLY), help_text
    assert "--layer " not in help_text and "--folds" in help_text  # every fold fine-tunes a fresh copy


@pytest.mark.parametrize("arg", ["--lr", "--lr=0.1"])
@pytest.mark.parametrize("command", ["linear", "layerwise", "mlp"])
def test_finetune_option_elsewhere_names_the_command_that_takes_it(synth, command, arg):
    args = [command, str(synth), "--encoder", "handcrafted", arg] + ([] if "=" in arg else ["0.1"])
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError), result.output
    assert "--lr is an option of `mosquito-ssl probe finetune`" in str(result.exception)


def test_layer_on_finetune_names_the_probes_that_take_it(synth):
    result = CliRunner().invoke(app, ["finetune", str(synth), "--layer", "1"])
    assert isinstance(result.exception, ConfigError)
    assert "`mosquito-ssl probe linear` or `mosquito-ssl probe mlp`" in str(result.exception)
