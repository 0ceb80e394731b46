"""``mosquito-ssl demo``: its packaged spec, the sweep and report wiring, re-runs."""

from __future__ import annotations

from mosquito_ssl import demo
from mosquito_ssl.benchmarks import sweep
from test_bench_sweep import FakeRunner


def test_demo_grid(tmp_path):
    (tmp_path / "data").mkdir()
    cells = demo.demo_spec(tmp_path, tmp_path / "data").cells()
    ssl = [c for c in cells if c.encoder == "ssl"]
    assert {c.mask_strength for c in ssl} == {0.5, 1.0} and {c.seed for c in cells} == {0, 1}
    assert {c.freeze for c in ssl} == {"frozen", "partial:1", "full"}
    assert {c.encoder for c in cells} == {"ssl", "random", "handcrafted"}
    assert len({c.group for c in ssl}) == 4


def test_demo_runs_sweep_and_report_then_skips(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DATA", {"recordings_per_species": 2, "clips_per_recording": 1})
    runner = FakeRunner()
    monkeypatch.setattr(sweep, "run_cell", runner)
    summary, report = demo.run_demo(tmp_path)
    assert summary.failed == 0 and summary.ran == len(runner.calls) == 26
    assert report is not None and report.is_file()
    again, _ = demo.run_demo(tmp_path)
    assert again.skipped == 26 and len(runner.calls) == 26
