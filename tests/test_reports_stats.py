"""Statistics: paired tests against scipy, exact McNemar, Holm by hand, the stats table on a store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mosquito_ssl.errors import ConfigError
from mosquito_ssl.reports import stats
from mosquito_ssl.reports.build import ReportConfig, analyse, build_report, prepare
from reports_fixtures import make_store, read_results

NEW = np.array([0.80, 0.82, 0.79, 0.85, 0.81, 0.77])
REF = np.array([0.70, 0.74, 0.72, 0.70, 0.78, 0.75])  # 6 pairs: Wilcoxon can reach p < 0.05


def test_paired_tests_match_scipy():
    got = stats.paired(NEW, REF, stats.StatsSettings())
    assert got["p_t"] == pytest.approx(sps.ttest_rel(NEW, REF).pvalue)
    assert got["p_wilcoxon"] == pytest.approx(sps.wilcoxon(NEW - REF).pvalue)
    assert got["mean_diff"] == pytest.approx((NEW - REF).mean())
    assert got["ci_low"] < got["mean_diff"] < got["ci_high"]
    assert (NEW - REF).min() <= got["ci_low"] and got["ci_high"] <= (NEW - REF).max()
    again = stats.paired(NEW, REF, stats.StatsSettings())
    assert (again["ci_low"], again["ci_high"]) == (got["ci_low"], got["ci_high"])  # seeded


def test_paired_identical_differences_do_not_crash():
    got = stats.paired(REF + 0.1, REF, stats.StatsSettings())
    assert got["mean_diff"] == pytest.approx(0.1)
    assert np.isnan(got["p_t"])  # zero variance: undefined, not p = 0 (test_reports_min_pairs.py)
    zero = stats.paired(REF, REF, stats.StatsSettings())
    assert np.isnan(zero["p_t"]) and np.isnan(zero["p_wilcoxon"])


def test_mcnemar_exact_on_hand_made_contingency():
    # 20 both right, 8 only the new model right (b), 2 only the reference right (c), 5 both wrong.
    ref = np.array([1] * 20 + [0] * 8 + [1] * 2 + [0] * 5, bool)
    new = np.array([1] * 20 + [1] * 8 + [0] * 2 + [0] * 5, bool)
    b, c, p = stats.mcnemar_exact(ref, new)
    assert (b, c) == (8, 2)
    assert p == pytest.approx(sps.binomtest(8, 10, 0.5).pvalue)
    assert p == pytest.approx(2 * (45 + 10 + 1) / 1024)  # 2 * P(X >= 8), X ~ Bin(10, 1/2)
    assert stats.mcnemar_exact(ref, ref)[2] == 1.0


def test_holm_against_hand_computation():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([np.nan, 0.01, 0.04]), [np.nan, 0.02, 0.04])
    assert stats.holm([0.6, 0.5]).max() == 1.0


def test_bh_and_none():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(stats.adjust(p, "bh")[:4], sps.false_discovery_control(p[:4], method="bh"))
    np.testing.assert_array_equal(stats.adjust(p, "none"), p)


def test_parse_reference_and_bad_options():
    assert stats.parse_reference("encoder=random, freeze=frozen") == (("encoder", "random"), ("freeze", "frozen"))
    with pytest.raises(ConfigError, match="COLUMN=VALUE"):
        stats.parse_reference("random")
    with pytest.raises(ConfigError, match="holm"):
        stats.StatsSettings(correction="bonferroni")
    with pytest.raises(ConfigError, match=r"--significance 'ztest'.*ttest, wilcoxon"):
        stats.StatsSettings(significance="ztest")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("s"), layerwise=False, artifacts=False)


def test_stats_table_on_store_matches_scipy(store):
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",))
    result = analyse(prepare(cfg), cfg).stats
    assert len(result) == 12  # 4 settings x 3 freeze, each against no pretraining
    res = read_results(store)
    res = res[(res["split"] == "test") & (res["metric"] == "balanced_accuracy") & res["layer"].isna()]

    def pick(enc, ms, fr):
        return res[
            (res["encoder"] == enc)
            & (res["freeze"] == fr)
            & (res["mask_strength"].isna() if ms is None else res["mask_strength"] == ms)
        ].set_index("seed")["value"]

    for ms, freeze, n in ((2.0, "full", 3), (0.5, "frozen", 2)):  # (0.5, frozen) lost seed 0
        new, ref = pick("ssl", ms, freeze), pick("random", None, freeze)
        pairs = pd.concat([new, ref], axis=1, join="inner").to_numpy()
        row = result[(result["setting"] == f"{ms:g}") & (result["freeze"] == freeze)].iloc[0]
        assert row["n_pairs"] == n and row["reference"] == "no pretraining"
        assert row["mean_diff"] == pytest.approx((pairs[:, 0] - pairs[:, 1]).mean())
        if n >= 3:
            assert row["p_t"] == pytest.approx(sps.ttest_rel(pairs[:, 0], pairs[:, 1]).pvalue)
        else:  # 2 pairs: too few for the t-test, left out of the correction
            assert np.isnan(row["p_t"]) and row["note"].startswith("2 pairs: too few to test")
    assert result["p_t"].isna().sum() == 1
    np.testing.assert_allclose(result["p_adjusted"], stats.holm(result["p_t"]))
    assert (result["significant"] == (result["p_adjusted"] < 0.05)).all()


def test_correction_none_and_wilcoxon_primary(tmp_path):
    store = make_store(tmp_path, seeds=range(6), failed=0, layerwise=False, artifacts=False)
    cfg = ReportConfig(store=store, metrics=("macro_f1",), correction="none", significance="wilcoxon")
    result = analyse(prepare(cfg), cfg).stats
    assert result["p_wilcoxon"].notna().all()  # 6 pairs: enough for Wilcoxon at 0.05
    np.testing.assert_allclose(result["p_adjusted"], result["p_wilcoxon"])


def test_single_seed_uses_mcnemar_on_predictions(tmp_path):
    store = make_store(tmp_path, seeds=(0,), failed=0, layerwise=False)
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",))
    result = analyse(prepare(cfg), cfg).stats
    assert (result["significance_test"] == "exact McNemar").all() and result["p_t"].isna().all()
    row = result[(result["setting"] == "2") & (result["freeze"] == "full")].iloc[0]
    # Recompute from the two predictions.csv files directly.
    runs = {p.name: pd.read_csv(p / "predictions.csv") for p in (tmp_path / "runs").iterdir()}
    res = read_results(store)
    ids = res[
        (res["freeze"] == "full")
        & (res["encoder"].isin(["ssl", "random"]))
        & ((res["mask_strength"] == 2.0) | res["mask_strength"].isna())
    ].drop_duplicates("cell_id")
    new_id = ids[ids["encoder"] == "ssl"]["cell_id"].iloc[0]
    ref_id = ids[ids["encoder"] == "random"]["cell_id"].iloc[0]
    new, ref = runs[new_id], runs[ref_id]
    b = int(((new["label"] == new["pred"]) & (ref["label"] != ref["pred"])).sum())
    c = int(((new["label"] != new["pred"]) & (ref["label"] == ref["pred"])).sum())
    assert row["p_mcnemar"] == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue)
    assert f"b={b}, c={c}" in row["note"]


def test_single_seed_without_predictions_says_not_enough(tmp_path):
    store = make_store(tmp_path, seeds=(0,), failed=0, layerwise=False, artifacts=False)
    out = build_report(ReportConfig(store=store, out=tmp_path / "r")).parent
    table = pd.read_csv(out / "tables" / "stats.csv")
    assert table["note"].str.startswith(stats.NOT_ENOUGH).all()
    assert not table["significant"].any()
    assert stats.NOT_ENOUGH in (out / "tables" / "balanced_accuracy.md").read_text()


def test_missing_reference_is_noted_not_fatal(tmp_path):
    store = make_store(tmp_path, baselines=("handcrafted",), layerwise=False, artifacts=False)
    out = build_report(ReportConfig(store=store, out=tmp_path / "r")).parent
    assert "reference setting is not in the store" in (out / "report.md").read_text()
    assert "†" not in (out / "tables" / "macro_f1.md").read_text().split("\n\n")[1]
