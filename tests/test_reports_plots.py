"""Plots and the HTML/Markdown report: every file written, skipped plots explained, self-contained HTML."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mosquito_ssl.reports.build import ReportConfig, build_report
from reports_fixtures import make_store

PLOTS = [
    "mask_strength_balanced_accuracy",
    "mask_strength_macro_f1",
    "method_balanced_accuracy",
    "method_macro_f1",
    "layerwise_balanced_accuracy",
    "layerwise_macro_f1",
    "confusion",
    "pretrain_loss",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots")
    store = make_store(root, methods=("reconstruct", "mae"))
    return store, build_report(ReportConfig(store=store, out=root / "report")).parent


@pytest.mark.parametrize("name", PLOTS)
def test_every_plot_written_png_and_pdf(report, name):
    _, out = report
    png, pdf = out / "plots" / f"{name}.png", out / "plots" / f"{name}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000


def test_all_output_files(report):
    _, out = report
    for metric in ("balanced_accuracy", "macro_f1", "stats"):
        for ext in ("md", "tex", "csv"):
            assert (out / "tables" / f"{metric}.{ext}").stat().st_size > 0
    assert (out / "report.md").exists() and (out / "report.html").exists()


def test_every_file_is_written_atomically(tmp_path, monkeypatch):
    """Each report file is renamed into place (runs.write_*_atomic): a killed build leaves no half file."""
    store = make_store(tmp_path, artifacts=False)
    renamed = set()
    replace = os.replace

    def spy(src, dst):
        renamed.add(Path(dst))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "report"
    build_report(ReportConfig(store=store, out=out))
    written = {p for p in out.rglob("*") if p.is_file()}
    assert {p.suffix for p in written} >= {".csv", ".png", ".pdf", ".md", ".tex", ".html"}
    assert written == renamed


def test_html_is_self_contained(report):
    store, out = report
    page = (out / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) == len(PLOTS) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"https?://", page)
    assert "<style>" in page and "<script" not in page and "<link" not in page
    assert str(store.resolve()) in page and "53 done, 1 failed" in page and "0, 1, 2" in page
    assert "Failed cells" in page and "out of memory" in page


def test_markdown_report_links_plots_and_tables(report):
    _, out = report
    md = (out / "report.md").read_text()
    for name in PLOTS:
        assert f"(plots/{name}.png)" in md
    assert "(tables/balanced_accuracy.tex)" in md and "Skipped plots" not in md
    assert "| c000 | ssl | 0.5 | frozen | linear | 0 | RuntimeError: out of memory |" in md


def test_missing_data_skips_plots_with_reasons(tmp_path):
    store = make_store(tmp_path, mask_strengths=(1.0,), layerwise=False, artifacts=False, failed=0)
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",))).parent
    assert not list(out.glob("plots/*.png"))
    md = (out / "report.md").read_text()
    skipped = md.split("### Skipped plots")[1]
    assert "fewer than two mask_strength values" in skipped
    assert "no layer-wise rows" in skipped
    assert "confusion_<split>.csv" in skipped
    assert "log_history.json" in skipped
    page = (out / "report.html").read_text()
    assert "fewer than two mask_strength values" in page and "data:image" not in page
    assert "Failed cells" in md and "None." in md


def test_partly_deleted_artifacts_still_plot(tmp_path):
    store = make_store(tmp_path, layerwise=False)
    for path in list((tmp_path / "runs").iterdir())[::2]:
        (path / "confusion_test.csv").unlink()
    (next((tmp_path / "pretrain").iterdir()) / "log_history.json").write_text("not json")
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",))).parent
    assert (out / "plots" / "confusion.png").exists()
    assert (out / "plots" / "pretrain_loss.png").exists()


def test_old_store_reads_as_reconstruct_and_skips_the_method_plot(tmp_path):
    store = make_store(tmp_path, failed=0)  # schema 1: no method column
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",))).parent
    md = (out / "report.md").read_text()
    assert "Macro F1 by SSL method: fewer than two methods" in md.split("### Skipped plots")[1]
    assert (out / "plots" / "mask_strength_macro_f1.png").exists()


def test_method_rows_name_the_method(report):
    _, out = report
    table = (out / "tables" / "balanced_accuracy.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert "mae" in rows and "reconstruct, mask_strength=0.5" in rows and "no pretraining" in rows
