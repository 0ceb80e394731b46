"""``mosquito-ssl demo``: its packaged spec, the sweep and report wiring, re-runs, its summary."""

from __future__ import annotations

import itertools

import pandas as pd
from typer.testing import CliRunner

from mosquito_ssl import demo
from mosquito_ssl.benchmarks import sweep
from mosquito_ssl.cli import app
from test_bench_sweep import FakeRunner

# mae at 2 mask ratios + reconstruct at 2 mask strengths = 4 pretrainings per seed, x 2 seeds;
# each probed by frozen linear / finetune, partial:1 finetune and full finetune; random the
# same; handcrafted 2.
CELLS = 4 * 2 * 4 + 2 * 4 + 2


def test_demo_grid(tmp_path):
    (tmp_path / "data").mkdir()
    cells = demo.demo_spec(tmp_path, tmp_path / "data").cells()
    ssl = [c for c in cells if c.encoder == "ssl"]
    assert {c.mask_strength for c in ssl if c.method == "reconstruct"} == {0.5, 1.0}
    assert {dict(c.axes).get("mask_ratio") for c in ssl if c.method == "mae"} == {0.6, 0.8}
    assert all(not c.axes for c in cells if c.method != "mae")  # the mask ratio is mae's alone
    assert {c.method for c in ssl} == {"reconstruct", "mae"} and {c.seed for c in cells} == {0, 1}
    assert {c.freeze for c in ssl} == {"frozen", "partial:1", "full"}
    assert {c.encoder for c in cells} == {"ssl", "random", "handcrafted"}
    assert len({c.encoder_key for c in ssl}) == 8 and len(cells) == CELLS


def test_demo_runs_sweep_and_report_then_skips(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DATA", {"recordings_per_species": 2, "clips_per_recording": 1})
    runner = FakeRunner()
    monkeypatch.setattr(sweep, "run_cell", runner)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(runner.calls) == CELLS
    report = tmp_path / "report" / "report.html"
    assert report.is_file()
    # two seeds: no paired test can support a mark, and the statistics table says why
    stats = pd.read_csv(tmp_path / "report" / "tables" / "stats.csv")
    assert len(stats) and not stats["significant"].any() and stats["p_adjusted"].isna().all()
    assert stats["note"].str.contains("2 pairs: too few to test").all()
    lines = result.output.strip().splitlines()
    assert (
        lines[-1]
        == f"done: {report}; next: mosquito-ssl reports build {tmp_path / 'sweep' / 'results.sqlite'} --metric macro_f1"
    )
    # the summary names the baselines as the report does, with no sentinel numbers or NaN
    block = result.output[result.output.index("test balanced accuracy") :].splitlines()
    table = "\n".join(itertools.takewhile(lambda line: " INFO " not in line and not line.startswith("done:"), block))
    assert "no pretraining" in table and "hand-crafted features" in table
    assert "NaN" not in table and "-1" not in table
    again = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert again.exit_code == 0 and f"{CELLS}/{CELLS} cells done (0 run now, {CELLS} already done)" in again.output
    assert len(runner.calls) == CELLS
