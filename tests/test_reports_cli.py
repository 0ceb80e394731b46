"""`mosquito-ssl reports build`: options reach the report, user mistakes are one line, no torch."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mosquito_ssl.cli import app as root_app
from mosquito_ssl.errors import ConfigError, MosquitoSSLError, StoreError
from mosquito_ssl.reports.cli import app
from reports_fixtures import make_store, make_store_v3, write_store

runner = CliRunner()


def invoke_error(args: list[str]) -> tuple[type, str]:
    """Run a failing ``reports`` command; return (the error's class, the one line the user sees).

    The class comes from the reports sub-app (which lets the exception through); the line from
    the root CLI, which turns every ``MosquitoSSLError`` into "error: ..." and exit 1.
    """
    direct = runner.invoke(app, args)
    assert isinstance(direct.exception, MosquitoSSLError), direct.exception
    result = runner.invoke(root_app, ["reports", *args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {direct.exception}", result.output
    return type(direct.exception), lines[0]


def test_build_prints_the_report_path(tmp_path):
    store = make_store(tmp_path, layerwise=False, artifacts=False)
    out = tmp_path / "rep"
    result = runner.invoke(
        app,
        [
            "build",
            str(store),
            "--out",
            str(out),
            "--metric",
            "macro_f1",
            "--metric",
            "accuracy",
            "--percent",
            "--decimals",
            "1",
            "--ci",
            "--correction",
            "bh",
        ],
    )
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    assert result.stdout.strip() == f"done: {report}; next: open it in a browser (LaTeX tables in {out / 'tables'})"
    assert sorted(p.name for p in (out / "tables").glob("*.csv")) == ["accuracy.csv", "macro_f1.csv", "stats.csv"]
    md = (out / "tables" / "accuracy.md").read_text()
    assert "Accuracy (%)" in md and "Benjamini-Hochberg" in md and " [" in md


def test_default_out_dir_and_comma_lists(tmp_path):
    store = make_store(tmp_path, probes=("linear", "mlp"), layerwise=False, artifacts=False)
    result = runner.invoke(app, ["build", str(store), "--probe", "mlp", "--rows", "mask_strength,pooling"])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "tables" / "balanced_accuracy.md").read_text()
    assert "mlp probe" in md and "| probe |" not in md


def test_help_has_example():
    result = runner.invoke(app, ["build", "--help"])
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # undo rich's box and wrapping
    assert result.exit_code == 0 and "Example: mosquito-ssl reports build" in text
    assert "--significance" in text and "--test " not in text and "mask_ratio" in text


def test_significance_option_decides_the_test(tmp_path):
    store = make_store(tmp_path, seeds=range(6), failed=0, layerwise=False, artifacts=False)  # Wilcoxon: 6 pairs
    args = ["build", str(store), "--metric", "macro_f1", "--correction", "none"]
    result = runner.invoke(app, [*args, "--significance", "wilcoxon"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "report" / "tables" / "stats.csv")
    assert (table["p_adjusted"] == table["p_wilcoxon"]).all() and (table["p_adjusted"] != table["p_t"]).any()
    assert set(table["significance_test"]) == {"Wilcoxon signed-rank test"}
    assert "Wilcoxon signed-rank test across seeds" in (tmp_path / "report" / "tables" / "macro_f1.md").read_text()
    kind, message = invoke_error([*args, "--significance", "ztest"])
    assert kind is ConfigError and "--significance 'ztest'" in message and "wilcoxon" in message
    old = runner.invoke(app, [*args, "--test", "wilcoxon"])  # the old name is gone: "test" is the split
    assert old.exit_code == 2 and "No such option" in old.output


def test_swept_setting_keys_from_the_command_line(tmp_path):
    store = make_store_v3(tmp_path, seeds=(0, 1), freezes=("frozen",))
    args = ["build", str(store), "--metric", "macro_f1", "--rows", "mask_ratio,method", "--columns", "freeze"]
    result = runner.invoke(app, [*args, "--reference", "method=mae,mask_ratio=0.8"])
    assert result.exit_code == 0, result.output
    stats_md = (tmp_path / "report" / "tables" / "stats.md").read_text()
    assert "| mae, mask_ratio=0.6 | mae, mask_ratio=0.8 |" in stats_md
    kind, message = invoke_error([*args[:4], "--rows", "ratio"])
    assert kind is ConfigError and message.endswith("use one of: " + ", ".join(
        ["encoder", "method", "mask_strength", "mask_kind", "loss_on", "freeze", "probe", "pooling", "seed", "mask_ratio"]
    ))  # fmt: skip


def test_empty_store(tmp_path):
    store = write_store(tmp_path / "results.sqlite", pd.DataFrame(), pd.DataFrame())
    kind, message = invoke_error(["build", str(store)])
    assert kind is StoreError
    assert str(store) in message and "mosquito-ssl benchmarks run" in message


def test_missing_store_and_not_sqlite(tmp_path):
    missing = tmp_path / "nope.sqlite"
    kind, message = invoke_error(["build", str(missing)])
    assert kind is StoreError and str(missing) in message and "does not exist" in message
    text = tmp_path / "results.csv"
    text.write_text("a,b\n1,2\n")
    kind, message = invoke_error(["build", str(text)])
    assert kind is StoreError and "not a SQLite results store" in message
    kind, message = invoke_error(["build", str(tmp_path)])
    assert kind is StoreError and "directory" in message


def test_unknown_metric_names_available(tmp_path):
    store = make_store(tmp_path, layerwise=False, artifacts=False)
    kind, message = invoke_error(["build", str(store), "--metric", "f2"])
    assert kind is ConfigError
    assert "'f2'" in message and "balanced_accuracy" in message and "macro_f1" in message


def test_all_failed_store(tmp_path):
    store = make_store(tmp_path, seeds=(0,), baselines=(), failed=100, artifacts=False)
    kind, message = invoke_error(["build", str(store)])
    assert kind is StoreError and "no results from done cells" in message and "out of memory" in message


@pytest.mark.slow
def test_report_build_never_imports_torch(tmp_path):
    store = make_store(tmp_path)
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from mosquito_ssl.reports.cli import app
        result = CliRunner().invoke(app, ["build", {str(store)!r}, "--out", {str(tmp_path / "r")!r}])
        assert result.exit_code == 0, result.output
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not heavy, heavy
        print("ok")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    assert (tmp_path / "r" / "report.html").exists()
