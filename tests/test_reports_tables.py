"""Comparison tables: numbers against pandas on a hand-made store, formats, options, edge cases."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.reports import tables
from mosquito_ssl.reports.build import ReportConfig, analyse, build_report, prepare
from mosquito_ssl.reports.load import load_store
from reports_fixtures import make_store, read_results


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    store = make_store(root)
    out = root / "report"
    build_report(ReportConfig(store=store, out=out))
    return store, out


def expected(store, metric, split="test"):
    """Independent aggregate: done cells only, headline rows, grouped by the setting."""
    res = read_results(store)
    res = res[(res["split"] == split) & (res["metric"] == metric) & res["layer"].isna()]
    # Failed cells have no result rows, so no join with cells is needed here.
    keys = ["encoder", "mask_strength", "freeze"]
    out = res.groupby(keys, dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()
    out["half"] = stats.t.ppf(0.975, out["count"] - 1) * out["std"] / np.sqrt(out["count"])
    return out


@pytest.mark.parametrize("metric", ["balanced_accuracy", "macro_f1"])
def test_csv_numbers_match_pandas(report, metric):
    store, out = report
    got = pd.read_csv(out / "tables" / f"{metric}.csv")
    want = expected(store, metric)
    merged = want.merge(got, on=["encoder", "mask_strength", "freeze"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert len(got) == 15  # 2 mask strengths + 3 baselines, x 3 freeze settings
    np.testing.assert_allclose(merged["mean_x"], merged["mean_y"])
    np.testing.assert_allclose(merged["std_x"], merged["std_y"])
    np.testing.assert_array_equal(merged["count"], merged["n"])
    np.testing.assert_allclose(merged["ci_high"] - merged["mean_y"], merged["half"])
    np.testing.assert_allclose(merged["mean_y"] - merged["ci_low"], merged["half"])
    assert got["mean"].dtype == float and got["n"].dtype.kind == "i"


def test_markdown_cells_best_and_baselines(report):
    store, out = report
    md = (out / "tables" / "balanced_accuracy.md").read_text()
    want = expected(store, "balanced_accuracy")
    best = want.loc[want["mean"].idxmax()]
    best_text = f"**{best['mean']:.3f} ± {best['std']:.3f}"
    assert best_text in md and md.count("**") == 2
    # The failed cell (ssl, 0.5, frozen, seed 0) leaves two seeds there.
    row = want[(want["mask_strength"] == 0.5) & (want["freeze"] == "frozen")].iloc[0]
    assert f"{row['mean']:.3f} ± {row['std']:.3f}" in md and "(n=2)" in md
    for label in ("no pretraining", "hand-crafted features", "AudioSet AST (supervised)"):
        assert f"| {label} |" in md
    header = md.splitlines()[2]
    assert header == "| mask_strength | frozen | partial:2 | full |"


def test_latex_booktabs_escaped_bold(report):
    _, out = report
    tex = (out / "tables" / "balanced_accuracy.tex").read_text()
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\textbf{", r"\begin{tabular}"):
        assert cmd in tex, cmd
    assert tex.count(r"\textbf{") == 1
    body = tex[tex.index(r"\toprule") :]
    assert r"mask\_strength" in body
    assert not re.search(r"(?<!\\)[_%#]", body), "unescaped LaTeX special character"
    assert "Holm" in tex and "paired t-test" in tex and "±" not in tex


def test_percent_decimals_and_ci(tmp_path):
    store = make_store(tmp_path, layerwise=False, artifacts=False)
    out = build_report(
        ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",), percent=True, decimals=1, ci=True)
    ).parent
    md = (out / "tables" / "macro_f1.md").read_text()
    cells = re.findall(r"\d+\.\d ± \d+\.\d \[\d+\.\d, \d+\.\d\]†?(?:\*\*)? \(n=\d\)", md)
    assert len(cells) == 15
    assert "Macro F1 (%)" in md


def test_single_seed_shows_mean_and_n1(tmp_path):
    store = make_store(tmp_path, seeds=(0,), failed=0, layerwise=False, artifacts=False)
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("balanced_accuracy",))).parent
    table = (out / "tables" / "balanced_accuracy.md").read_text().split("\n\n")[1]
    assert "(n=1)" in table and "±" not in table


def test_varying_mask_kind_is_added_to_rows(tmp_path):
    store = make_store(tmp_path, mask_kinds=("specaugment", "patch"), layerwise=False, artifacts=False)
    prep = analyse(prepare(ReportConfig(store=store, out=tmp_path / "r")), ReportConfig(store=store))
    assert prep.keys == ["mask_strength", "mask_kind"]
    ssl = prep.agg[prep.agg["encoder"] == "ssl"]
    assert set(ssl["setting"]) == {
        f"mask_strength={m}, mask_kind={k}" for m in ("0.5", "2") for k in ("specaugment", "patch")
    }
    assert (prep.agg.groupby(["metric", "setting", "freeze"]).size() == 1).all()


def test_rows_columns_and_probes_options(tmp_path):
    store = make_store(tmp_path, probes=("linear", "mlp"), layerwise=False, artifacts=False)
    cfg = ReportConfig(store=store, out=tmp_path / "r", columns=("probe",), rows=("freeze",))
    prep = analyse(prepare(cfg), cfg)
    table = tables.wide(prep.agg[prep.agg["metric"] == "macro_f1"], prep.keys, cfg.columns, tables.NumberFormat())
    assert list(table.columns) == ["linear", "mlp"]
    assert table.index.name == "freeze, mask_strength"
    default = ReportConfig(store=store, out=tmp_path / "r2")
    md = (build_report(default).parent / "tables" / "macro_f1.md").read_text()
    assert md.count("**") == 4  # best cell marked once per probe
    assert "| probe |" in md


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"metrics": ("balanced_accuracy", "f2_score")}, ["'f2_score'", "available metrics", "macro_f1"]),
        ({"split": "holdout"}, ["'holdout'", "test", "val"]),
        ({"rows": ("mask_width",)}, ["--rows", "mask_width", "mask_strength"]),
        ({"probes": ("svm",)}, ["svm", "linear"]),
    ],
)
def test_bad_options_name_the_fix(tmp_path, kwargs, words):
    store = make_store(tmp_path, layerwise=False, artifacts=False)
    with pytest.raises(ConfigError) as err:
        build_report(ReportConfig(store=store, out=tmp_path / "r", **kwargs))
    for word in words:
        assert word in str(err.value)
    assert not (tmp_path / "r").exists()  # checked before any file is written


def test_no_nan_or_none_where_a_user_reads(tmp_path):
    """Baselines have NULL mask columns: tables and the failed-cells list show MISSING, not nan/None."""
    store = make_store(tmp_path, layerwise=False, artifacts=False)
    with closing(sqlite3.connect(store)) as con:  # a failed baseline cell, whose mask_strength is NULL
        cell_id = con.execute("SELECT cell_id FROM cells WHERE encoder = 'random' LIMIT 1").fetchone()[0]
        con.execute("UPDATE cells SET status = 'failed', error = 'boom' WHERE cell_id = ?", (cell_id,))
        con.execute("DELETE FROM results WHERE cell_id = ?", (cell_id,))
        con.commit()
    out = tmp_path / "report"
    build_report(ReportConfig(store=store, out=out))
    md = (out / "report.md").read_text()
    failed_row = next(line for line in md.splitlines() if line.startswith(f"| {cell_id} |"))
    assert f"| random | {tables.MISSING} |" in failed_row
    for path in [out / "report.md", *sorted((out / "tables").glob("*.md"))]:
        assert not re.search(r"\b(nan|NaN|None)\b", path.read_text()), path
    summary = tables.summary(load_store(store).results)  # the table `mosquito-ssl demo` prints
    assert {"no pretraining", "hand-crafted features"} <= set(summary.index)
    assert all(re.fullmatch(r"\d\.\d{3}|" + tables.MISSING, v) for v in summary.to_numpy().ravel())
