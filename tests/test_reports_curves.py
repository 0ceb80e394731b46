"""Learning curves (reports/curves.py): K needed to reach each baseline's full-data score, the
labelled fraction, when there is no table, and the "all groups" point of the curve plot."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mosquito_ssl.reports import axis_plot as axis_plot_module
from mosquito_ssl.reports import build as build_module
from mosquito_ssl.reports import curves
from mosquito_ssl.reports.axis_plot import axis_plot
from mosquito_ssl.reports.build import ReportConfig, build_report, prepare
from reports_fixtures import CLIPS, Axis, make_store_v3, read_results

K = "train_groups_per_class"
GROUPS = Axis(K, "probe", K, (1, 2, 4))
BLOCK = ["metric", "probe", "freeze"]
# Means over seeds by K (None = all groups); hand-computed answers below.
CURVES = {
    ("ssl", "mae"): {1: 0.58, 2: 0.68, 4: 0.74, None: 0.80},
    ("ssl", "reconstruct"): {1: 0.40, 2: 0.45, 4: 0.50, None: 0.60},
    ("ssl", "teacher"): {1: 0.30, 2: 0.30, 4: 0.30},
    ("random", None): {1: 0.50, 2: 0.60, 4: 0.70, None: 0.72},
    ("logmel", None): {1: 0.55, 2: 0.62, 4: 0.66},  # no all-groups cells: its target is at K = 4
}
WANT = {  # setting -> (reaches no pretraining at, reaches log-mel mean/std at)
    "mae": ("4", "2"),
    "reconstruct": ("never", "never"),
    "teacher": (">4", ">4"),
    "no pretraining": ("all", "4"),  # its own full-data score only with all groups; log-mel's 0.66 at K=4
    "log-mel mean/std": (">4", "4"),  # never tried with all groups: >4, not never
}


def curve_frame() -> pd.DataFrame:
    """Headline rows: seeds at mean ± 0.01, a NaN value at every point, a third seed at K = 2."""
    rows = []
    for order, ((encoder, method), points) in enumerate(CURVES.items()):
        for k, mean in points.items():
            values = [(0, mean - 0.01), (1, mean + 0.01), (2, mean if k == 2 else np.nan)]
            rows += [dict(encoder=encoder, method=method, order=order, seed=s, value=v, **{K: k}) for s, v in values]
    frame = pd.DataFrame(rows).assign(metric="balanced_accuracy", probe="linear", freeze="frozen")
    return frame.astype({K: float})


def test_k_needed_matches_hand_computed_values():
    result = curves.k_needed(curve_frame(), K, ["method"], BLOCK)
    got = result.pivot(index="setting", columns="target", values="needed")
    assert list(got.columns) == ["log-mel mean/std", "no pretraining"]
    assert {s: (got.loc[s, "no pretraining"], got.loc[s, "log-mel mean/std"]) for s in got.index} == WANT
    assert list(result.drop_duplicates("setting")["setting"]) == list(WANT)  # ssl first, then baselines
    targets = result.drop_duplicates("target").set_index("target")
    assert targets.loc["no pretraining", "target_mean"] == pytest.approx(0.72)
    assert np.isnan(targets.loc["no pretraining", "target_k"])  # all groups
    assert targets.loc["log-mel mean/std", "target_mean"] == pytest.approx(0.66)
    assert targets.loc["log-mel mean/std", "target_k"] == 4  # the largest K swept
    mae = result[(result["setting"] == "mae") & (result["target"] == "log-mel mean/std")].iloc[0]
    assert mae["k_needed"] == 2 and mae["mean_at_k"] == pytest.approx(0.68) and mae["n_at_k"] == 3
    assert targets.loc["no pretraining", "target_n"] == 2  # NaN values are not seeds


def test_nan_baseline_gives_no_target():
    frame = curve_frame()
    frame.loc[frame["encoder"] == "logmel", "value"] = np.nan
    result = curves.k_needed(frame, K, ["method"], BLOCK)
    assert set(result["target"]) == {"no pretraining"} and "log-mel mean/std" not in set(result["setting"])


def test_labelled_fraction_from_group_counts(tmp_path):
    split, folds = tmp_path / "split", tmp_path / "folds"
    for folder, counts in (
        (split, {"train": {"a": 6, "b": 3}, "test": {"a": 2, "b": 1}}),
        (folds, {"fold0": {"train": {"a": 4, "b": 4}}, "fold1": {"train": {"a": 2, "b": 2}}}),
    ):
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"group_counts": counts}))
    assert curves.labelled_fraction([str(tmp_path / "none")]) is None  # no metrics.json
    fraction = curves.labelled_fraction([str(split)])
    assert fraction(2) == pytest.approx(4 / 9) and fraction(4) == pytest.approx(7 / 9)
    both = curves.labelled_fraction([str(split), str(folds)])
    assert both(2) == pytest.approx((4 / 9 + 4 / 8 + 1) / 3)


def add_all_groups(store, train_groups: int = 8) -> None:
    """Copy the K = 4 cells as all-groups cells (K NULL, +0.2) whose runs had ``train_groups`` per class."""
    with closing(sqlite3.connect(store)) as con:
        cells = pd.read_sql(f"SELECT * FROM cells WHERE {K} = 4", con)
        results = pd.read_sql(f"SELECT * FROM results WHERE {K} = 4", con)
        cells["run_dir"] = cells["run_dir"] + "-all"
        for frame in (cells, results):
            frame["cell_id"] = frame["cell_id"] + "-all"
            frame[K] = None
        results["value"] += 0.2
        cells.to_sql("cells", con, if_exists="append", index=False)
        results.to_sql("results", con, if_exists="append", index=False)
        con.commit()
    for run_dir in cells["run_dir"]:
        folder = Path(run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        counts = {"train": {c: train_groups for c in ("a", "b", "c")}}
        (folder / "metrics.json").write_text(json.dumps({"group_counts": counts}))


@pytest.fixture(scope="module")
def curve_store(tmp_path_factory):
    """mae + random over K = 1, 2, 4 and all groups (8 training groups per class), 3 seeds, frozen."""
    root = tmp_path_factory.mktemp("curve")
    store = make_store_v3(root, axes=(GROUPS,), methods=("mae",), freezes=("frozen",))
    add_all_groups(store)
    return store


def expected_needed(store, metric: str) -> dict[str, str]:
    """Plain pandas: the smallest K whose mean over seeds reaches no pretraining's all-groups mean."""
    res = read_results(store)
    res = res[(res["split"] == "test") & (res["metric"] == metric)]
    means = res.groupby(["encoder", K], dropna=False)["value"].mean()
    target = res[(res["encoder"] == "random") & res[K].isna()]["value"].mean()
    out = {}
    for encoder, name in (("ssl", "mae"), ("random", "no pretraining")):
        curve = means[encoder].sort_index(na_position="last")
        hit = [k for k, mean in curve.items() if mean >= target - 1e-12]
        k = hit[0] if hit else None
        out[name] = "never" if not hit else "all" if pd.isna(k) else f"{k:g} ({100 * k / 8:.0f}%)"
    return out


def test_report_writes_the_table_end_to_end(curve_store, tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "make_plots", lambda *args: [])  # plots: the next test, and seconds
    warnings: list[str] = []
    cfg = ReportConfig(store=curve_store, out=tmp_path / "r", metrics=("macro_f1",))
    out = build_report(cfg, warn=warnings.append).parent
    assert not warnings
    md = (out / "tables" / "k_needed_macro_f1.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in md.splitlines()[4:] if "|" in line}
    want = expected_needed(curve_store, "macro_f1")
    assert {k: rows[k] for k in want} == want
    assert rows["full-data score (at K)"].endswith("(all)")
    csv = pd.read_csv(out / "tables" / "k_needed_macro_f1.csv")
    assert set(csv["target_at"]) == {"all"} and (csv["target_n"] == 3).all()
    tex = (out / "tables" / "k_needed_macro_f1.tex").read_text()
    assert r"\toprule" in tex and r"\%" in tex and r"\textgreater{}K" in tex and ">" not in tex  # pdflatex: ¿
    html = (out / "report.html").read_text()
    assert "Learning curve: Macro F1" in html and "k_needed_macro_f1.md" in (out / "report.md").read_text()


@pytest.fixture
def figures(monkeypatch):
    saved = []
    monkeypatch.setattr(axis_plot_module, "save", lambda fig, out_dir, name: saved.append(fig) or [])
    return saved


def test_curve_plot_has_log_x_and_an_all_point(curve_store, figures):
    cfg = ReportConfig(store=curve_store, metrics=("balanced_accuracy",))
    prep = prepare(cfg)
    plot = axis_plot(prep.headline, K, "balanced_accuracy", curve_store.parent, keys=prep.keys, counts=True)
    assert plot.skipped is None
    ax = figures[-1].axes[0]
    assert ax.get_xscale() == "log"  # 1..4 spans less than LOG_SPAN: log because it is a count of labels
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "all"]
    res = read_results(curve_store)
    res = res[(res["split"] == "test") & (res["metric"] == "balanced_accuracy")]
    ssl_all = res[(res["encoder"] == "ssl") & res[K].isna()]["value"].mean()
    points = [line for line in ax.lines if list(line.get_xdata()) == [8] and line.get_marker() == "o"]
    assert len(points) == 1 and points[0].get_ydata()[0] == pytest.approx(ssl_all)
    curve = res[(res["encoder"] == "ssl") & res[K].notna()].groupby(K)["value"].mean()
    assert any(np.allclose(line.get_ydata(), curve) for line in ax.lines if len(line.get_xdata()) == 3)


def table_and_warnings(store, **kwargs):
    cfg = ReportConfig(store=store, **kwargs)
    warnings: list[str] = []
    written = curves.write_tables(prepare(cfg), cfg, store.parent, warnings.append)
    return written, warnings


def test_no_baseline_no_table_one_warning(tmp_path):
    store = make_store_v3(tmp_path, axes=(GROUPS,), methods=("mae",), baselines=(), freezes=("frozen",), seeds=(0,))
    written, warnings = table_and_warnings(store)
    assert written == [] and len(warnings) == 1
    assert warnings[0].startswith("no learning-curve table: no baseline") and "\n" not in warnings[0]
    assert not list(tmp_path.glob("k_needed*"))


def test_nan_metric_skips_that_metric_only(tmp_path):
    store = make_store_v3(tmp_path, axes=(GROUPS,), methods=("mae",), freezes=("frozen",), seeds=(0, 1))
    with closing(sqlite3.connect(store)) as con:
        con.execute("UPDATE results SET value = NULL WHERE encoder = 'random' AND metric = 'accuracy'")
        con.commit()
    written, warnings = table_and_warnings(store, metrics=("accuracy", "macro_f1"))
    assert [t.files[0].name for t in written] == ["k_needed_macro_f1.md"]
    assert len(warnings) == 1 and "accuracy" in warnings[0]


def test_only_a_label_count_axis_makes_a_table(tmp_path):
    store = make_store_v3(tmp_path, axes=(CLIPS,), methods=("mae",), freezes=("frozen",), seeds=(0,))
    assert curves.label_axis({"max_clips_per_group": {"table": "probe", "key": "max_clips_per_group",
                                                      "numeric": True}}) is None  # fmt: skip
    assert table_and_warnings(store) == ([], [])
