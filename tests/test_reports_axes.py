"""Schema-3 stores: swept settings as columns, any setting as a table key, labels, the reference."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mosquito_ssl.errors import ConfigError, StoreError
from mosquito_ssl.reports import stats, tables
from mosquito_ssl.reports.build import ReportConfig, analyse, build_report, prepare
from mosquito_ssl.reports.load import FIXED_SETTINGS, load_store
from reports_fixtures import CLIPS, MASK_RATIO, NORMALIZE, make_store, make_store_v3, read_results

KEYS = ["method", "mask_strength", "mask_ratio"]


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    """mae x mask_ratio 0.6/0.8, reconstruct x mask_strength 0.5/1.0, random; 3 seeds, frozen/full."""
    root = tmp_path_factory.mktemp("v3")
    store = make_store_v3(root)
    return store, build_report(ReportConfig(store=store, out=root / "report")).parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """As ``v3`` plus a swept [probe] setting, max_clips_per_group 5/20/500 (baselines too); frozen only."""
    return make_store_v3(tmp_path_factory.mktemp("clips"), axes=(MASK_RATIO, CLIPS), freezes=("frozen",))


def headline(store, metric="balanced_accuracy"):
    res = read_results(store)
    return res[(res["split"] == "test") & (res["metric"] == metric) & res["layer"].isna()]


def md_rows(path) -> list[str]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    return [line.split("|")[1].strip() for line in lines[1:]]


def test_load_reads_axes_and_their_columns(v3):
    store, _ = v3
    loaded = load_store(store)
    assert loaded.axes == {"mask_ratio": {"table": "pretrain", "key": "mask_ratio", "numeric": True}}
    assert loaded.setting_columns == [*FIXED_SETTINGS, "mask_ratio"]
    assert loaded.numeric_axes == ["mask_ratio"] and "mask_ratio" in loaded.pretrain_settings
    for frame in (loaded.results, loaded.cells):
        assert frame["mask_ratio"].dtype == float
        mae = frame["method"] == "mae"
        assert set(frame.loc[mae, "mask_ratio"]) == {0.6, 0.8}
        assert frame.loc[~mae, "mask_ratio"].isna().all()  # reconstruct and baselines: not applicable
    assert len(loaded.results) == len(read_results(store))


def test_version_2_store_has_no_axes(tmp_path):
    store = make_store(tmp_path, methods=("reconstruct", "mae"), layerwise=False, artifacts=False)
    loaded = load_store(store)
    assert loaded.axes == {} and loaded.setting_columns == list(FIXED_SETTINGS)
    assert list(loaded.results.columns) == list(read_results(store).columns)


def test_bad_axes_meta_is_a_store_error(tmp_path):
    store = make_store_v3(tmp_path, seeds=(0,))
    with closing(sqlite3.connect(store)) as con:
        con.execute("UPDATE meta SET value = '{not json' WHERE key = 'axes'")
        con.commit()
    with pytest.raises(StoreError, match="axes"):
        load_store(store)


def test_default_rows_name_each_setting_once(v3):
    _, out = v3
    md = out / "tables" / "balanced_accuracy.md"
    assert md.read_text().splitlines()[2] == "| method, mask_strength, mask_ratio | frozen | full |"
    assert md_rows(md) == [
        "mae, mask_ratio=0.6",
        "mae, mask_ratio=0.8",
        "reconstruct, mask_strength=0.5",
        "reconstruct, mask_strength=1",
        "no pretraining",
    ]
    tex = (out / "tables" / "balanced_accuracy.tex").read_text()
    assert r"mae, mask\_ratio=0.8" in tex and r"reconstruct, mask\_strength=0.5" in tex
    for path in (out / "tables").glob("*"):  # NULL settings are left out, never printed
        assert "nan" not in path.read_text().replace("Wilcoxon", "")


def test_csv_numbers_match_pandas(v3):
    store, out = v3
    got = pd.read_csv(out / "tables" / "macro_f1.csv")
    res = headline(store, "macro_f1")
    want = res.groupby(["encoder", *KEYS, "freeze"], dropna=False)["value"].agg(["mean", "std", "count"])
    want = want.reset_index()
    want["half"] = sps.t.ppf(0.975, want["count"] - 1) * want["std"] / np.sqrt(want["count"])
    merged = want.merge(got, on=["encoder", *KEYS, "freeze"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(got) == 10  # (4 ssl + 1 baseline) x 2 freezes
    np.testing.assert_allclose(merged["mean_y"], merged["mean_x"])
    np.testing.assert_allclose(merged["ci_high"] - merged["mean_y"], merged["half"])
    row = got[(got["setting"] == "mae, mask_ratio=0.8") & (got["freeze"] == "full")].iloc[0]
    assert row["mask_ratio"] == 0.8 and np.isnan(row["mask_strength"])


def test_any_setting_as_rows_or_columns(v3):
    store, _ = v3
    cfg = ReportConfig(store=store, rows=("freeze",), columns=("mask_ratio",), metrics=("macro_f1",))
    prep = analyse(prepare(cfg), cfg)
    table = tables.wide(prep.agg, prep.keys, cfg.columns, tables.NumberFormat())
    assert list(table.columns) == ["mask_ratio=0.6", "mask_ratio=0.8", "n/a"]  # n/a: cells it does not apply to
    assert table.index.name == "method, freeze, mask_strength"  # the method always names a row first
    res = headline(store, "macro_f1")
    cell = res[(res["mask_ratio"] == 0.6) & (res["freeze"] == "full")]["value"]
    assert table.loc["mae, freeze=full", "mask_ratio=0.6"].startswith(f"{cell.mean():.3f} ± {cell.std():.3f}")
    assert table.loc["mae, freeze=full", "n/a"] == tables.MISSING


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"rows": ("mask_ratios",)}, "--rows"),
        ({"columns": ("mask_ratios",)}, "--columns"),
        ({"reference": "mask_ratios=0.8"}, "--reference"),
    ],
)
def test_unknown_key_names_the_valid_ones(v3, tmp_path, kwargs, flag):
    store, _ = v3
    with pytest.raises(ConfigError) as err:
        build_report(ReportConfig(store=store, out=tmp_path / "r", **kwargs))
    message = str(err.value)
    assert message.startswith(f"{flag} mask_ratios") and "\n" not in message
    valid = message.split("use one of: ")[1].split(", ")
    assert valid == [*FIXED_SETTINGS, "mask_ratio"]
    assert not (tmp_path / "r").exists()


def test_swept_column_is_unknown_in_an_older_store(tmp_path):
    store = make_store(tmp_path, methods=("reconstruct", "mae"), layerwise=False, artifacts=False)
    with pytest.raises(ConfigError, match="--rows mask_ratio: not a setting") as err:
        prepare(ReportConfig(store=store, rows=("mask_ratio",)))
    assert "mask_ratio" not in str(err.value).split("use one of: ")[1]


def pairs(res, new, ref):
    """Seed-matched (new, ref) values of two selections of headline rows."""
    both = pd.concat([res[new].set_index("seed")["value"], res[ref].set_index("seed")["value"]], axis=1, join="inner")
    return both.to_numpy()


@pytest.mark.parametrize("value", ["0.8", "0.80", "8e-1"])
def test_reference_on_a_swept_setting_compares_numbers(v3, value):
    store, _ = v3
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",), reference=f"method=mae,mask_ratio={value}")
    result = analyse(prepare(cfg), cfg).stats
    assert set(result["reference"]) == {"mae, mask_ratio=0.8"}
    assert len(result) == 8  # 4 other settings x 2 freezes
    res = headline(store)
    for setting, new_sel in (
        ("mae, mask_ratio=0.6", res["mask_ratio"] == 0.6),
        ("reconstruct, mask_strength=0.5", res["mask_strength"] == 0.5),
        ("no pretraining", res["encoder"] == "random"),
    ):
        for freeze in ("frozen", "full"):
            same = res["freeze"] == freeze
            got = pairs(res, new_sel & same, (res["mask_ratio"] == 0.8) & same)
            row = result[(result["setting"] == setting) & (result["freeze"] == freeze)].iloc[0]
            assert row["n_pairs"] == 3
            assert row["p_t"] == pytest.approx(sps.ttest_rel(got[:, 0], got[:, 1]).pvalue)
            assert row["mean_diff"] == pytest.approx((got[:, 0] - got[:, 1]).mean())
    np.testing.assert_allclose(result["p_adjusted"], stats.holm(result["p_t"]))


def test_probe_setting_pairs_with_the_reference_at_the_same_value(clips, tmp_path):
    out = build_report(ReportConfig(store=clips, out=tmp_path / "r", metrics=("macro_f1",))).parent
    result = pd.read_csv(out / "tables" / "stats.csv")
    assert "max_clips_per_group" in result.columns
    res = headline(clips, "macro_f1")
    for n in (5, 20, 500):
        at = res["max_clips_per_group"] == n
        got = pairs(res, at & (res["mask_ratio"] == 0.8), at & (res["encoder"] == "random"))
        row = result[(result["max_clips_per_group"] == n) & (result["setting"].str.startswith("mae, mask_ratio=0.8"))]
        assert len(row) == 1 and row["reference"].iloc[0] == f"no pretraining (max_clips_per_group={n})"
        assert row["mean_diff"].iloc[0] == pytest.approx((got[:, 0] - got[:, 1]).mean())
    rows = md_rows(out / "tables" / "macro_f1.md")
    assert rows[-3:] == [f"no pretraining (max_clips_per_group={n})" for n in (5, 20, 500)]  # numeric order
    assert "mae, mask_ratio=0.6, max_clips_per_group=20" in rows
    shown = (out / "tables" / "stats.md").read_text()
    assert "| frozen | 500 | mae, mask_ratio=0.6, max_clips_per_group=500 |" in shown  # 500, not 500.0
    assert "differs from no pretraining (same freeze, max_clips_per_group, probe)" in shown


def test_reference_naming_a_probe_setting_compares_across_it(clips):
    cfg = ReportConfig(store=clips, metrics=("macro_f1",), reference="encoder=random,max_clips_per_group=500")
    prep = analyse(prepare(cfg), cfg)
    assert prep.match == ["freeze"]  # the reference's own key is not matched: every value meets 500
    res = headline(clips, "macro_f1")
    ref = (res["encoder"] == "random") & (res["max_clips_per_group"] == 500)
    new = (res["mask_ratio"] == 0.6) & (res["max_clips_per_group"] == 5)
    got = pairs(res, new, ref)
    row = prep.stats[prep.stats["setting"] == "mae, mask_ratio=0.6, max_clips_per_group=5"].iloc[0]
    assert row["reference"] == "no pretraining (max_clips_per_group=500)"
    assert row["p_t"] == pytest.approx(sps.ttest_rel(got[:, 0], got[:, 1]).pvalue)


def test_text_setting_labels_and_reference(tmp_path):
    store = make_store_v3(tmp_path, axes=(NORMALIZE,), methods=("mae",), freezes=("frozen",))
    loaded = load_store(store)
    assert loaded.numeric_axes == [] and not pd.api.types.is_numeric_dtype(loaded.results["normalize"])
    cfg = ReportConfig(store=store, metrics=("accuracy",), reference="encoder=random,normalize=dataset")
    prep = analyse(prepare(cfg), cfg)
    assert set(prep.headline["setting"]) == {
        "normalize=audioset",
        "normalize=dataset",
        "no pretraining (normalize=audioset)",
        "no pretraining (normalize=dataset)",
    }
    assert set(prep.stats["reference"]) == {"no pretraining (normalize=dataset)"} and len(prep.stats) == 3
    with closing(sqlite3.connect(store)) as con:
        meta = json.loads(con.execute("SELECT value FROM meta WHERE key = 'axes'").fetchone()[0])
    assert meta == {"normalize": {"table": "probe", "key": "normalize", "numeric": False}}


def test_summary_keeps_swept_settings_apart(clips):
    """The demo's short table: one row per setting, swept values included, never averaged together."""
    table = tables.summary(load_store(clips).results, "macro_f1")
    res = headline(clips, "macro_f1")
    assert len(table) == res.groupby(["method", "mask_strength", "mask_ratio", "max_clips_per_group", "encoder"],
                                     dropna=False).ngroups  # fmt: skip
    cell = res[(res["mask_ratio"] == 0.8) & (res["max_clips_per_group"] == 20)]["value"].mean()
    assert table.loc["mae, mask_ratio=0.8, max_clips_per_group=20", ("frozen", "linear")] == f"{cell:.3f}"
