"""Too few pairs or zero-variance differences: no p-value, no correction, no †; the note says why.

The store reproduces the demo's case: ``reconstruct, mask_strength=1`` vs no pretraining
(fine-tune, frozen) has two seed pairs whose differences are both +0.031, which the plain paired
t-test calls p = 0. Next to it, rows with 6 and 3 pairs are checked against scipy.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mosquito_ssl.reports import paired, stats
from mosquito_ssl.reports.build import ReportConfig, analyse, build_report, prepare
from reports_fixtures import write_store

REF_FROZEN = np.array([0.500, 0.531, 0.469, 0.562, 0.516, 0.484])
REF_FULL = np.array([0.600, 0.620, 0.580])
# (mask_strength or None for the reference, freeze) -> values for seeds 0, 1, ...
VALUES = {
    (None, "frozen"): REF_FROZEN,
    (1.0, "frozen"): REF_FROZEN[:2] + 0.031,  # the demo: 2 pairs, both +0.031
    (0.5, "frozen"): REF_FROZEN + np.array([0.05, 0.07, 0.04, 0.08, 0.06, 0.09]),  # 6 pairs: both tests
    (None, "full"): REF_FULL,
    (0.5, "full"): REF_FULL + np.array([0.02, -0.01, 0.03]),  # 3 pairs: t-test only
    (1.0, "full"): REF_FULL + 0.031,  # 3 pairs, zero variance
}


def pairs_store(tmp_path):
    cells, results = [], []
    for (strength, freeze), values in VALUES.items():
        ssl = strength is not None
        for seed, value in enumerate(values):
            cell = dict(
                cell_id=f"c{len(cells):03d}", sweep="pairs", encoder="ssl" if ssl else "random",
                method="reconstruct" if ssl else None, mask_strength=strength,
                mask_kind="specaugment" if ssl else None, loss_on="all" if ssl else None, freeze=freeze,
                probe="finetune", pooling="freq_stack", seed=seed, status="done",
            )  # fmt: skip
            cells.append(cell)
            results.append(dict(cell, layer=None, split="test", metric="balanced_accuracy", value=float(value)))
    return write_store(tmp_path / "results.sqlite", pd.DataFrame(cells), pd.DataFrame(results), with_method=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return pairs_store(tmp_path_factory.mktemp("pairs"))


def row_of(result, strength, freeze):
    return result[(result["setting"] == f"{strength:g}") & (result["freeze"] == freeze)].iloc[0]


def diffs(strength, freeze):
    new, ref = VALUES[(strength, freeze)], VALUES[(None, freeze)]
    return new, ref[: len(new)]


def test_the_demo_case_is_untested_not_p_zero(store):
    new, ref = diffs(1.0, "frozen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy: "catastrophic cancellation", and then p ~ 0 anyway
        assert sps.ttest_rel(new, ref).pvalue < 0.05  # what the plain t-test said: the old †
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",))
    row = row_of(analyse(prepare(cfg), cfg).stats, 1.0, "frozen")
    assert row["n_pairs"] == 2 and row["mean_diff"] == pytest.approx(0.031)
    assert row["note"] == "2 pairs: too few to test (t-test: at least 3; Wilcoxon: at least 6 for p < 0.05)"
    for col in ("p_t", "p_wilcoxon", "p_value", "p_adjusted", "ci_low", "ci_high"):
        assert np.isnan(row[col]), col
    assert not row["significant"] and row["significance_test"] == ""


def test_zero_variance_differences_are_undefined(store):
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",))
    row = row_of(analyse(prepare(cfg), cfg).stats, 1.0, "full")
    assert row["n_pairs"] == 3 and row["note"].startswith(paired.ZERO_VARIANCE)
    assert np.isnan(row["p_t"]) and np.isnan(row["p_adjusted"]) and not row["significant"]


def test_normal_rows_match_scipy_and_alone_make_the_correction(store):
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",))
    result = analyse(prepare(cfg), cfg).stats
    six, three = row_of(result, 0.5, "frozen"), row_of(result, 0.5, "full")
    new, ref = diffs(0.5, "frozen")
    assert six["p_t"] == pytest.approx(sps.ttest_rel(new, ref).pvalue)
    assert six["p_wilcoxon"] == pytest.approx(sps.wilcoxon(new - ref).pvalue) and six["note"] == ""
    new3, ref3 = diffs(0.5, "full")
    assert three["p_t"] == pytest.approx(sps.ttest_rel(new3, ref3).pvalue)
    assert np.isnan(three["p_wilcoxon"]) and "Wilcoxon: at least 6 for p < 0.05" in three["note"]
    # Holm over the two tested rows only (m = 2), by hand.
    low, high = sorted([six["p_t"], three["p_t"]])
    expected = {low: 2 * low, high: max(2 * low, high)}
    assert six["p_adjusted"] == pytest.approx(min(1.0, expected[six["p_t"]]))
    assert three["p_adjusted"] == pytest.approx(min(1.0, expected[three["p_t"]]))
    assert result["p_adjusted"].notna().sum() == 2
    assert list(result["significant"]) == list(result["p_adjusted"] < 0.05) and six["significant"]


def test_wilcoxon_decides_from_six_pairs(store):
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",), significance="wilcoxon")
    result = analyse(prepare(cfg), cfg).stats
    six = row_of(result, 0.5, "frozen")
    assert six["p_adjusted"] == pytest.approx(1 / 32) and six["significant"]  # alone in the family
    three = row_of(result, 0.5, "full")
    assert three["note"].startswith("3 pairs: too few to test (Wilcoxon") and not three["significant"]
    assert result["significant"].sum() == 1


def test_minimum_pairs_follow_what_the_tests_can_reach():
    assert paired.T_MIN_PAIRS == 3
    assert [paired.wilcoxon_min_pairs(a) for a in (0.05, 0.1, 0.01)] == [6, 5, 8]
    # All signs alike is the most extreme outcome: 5 pairs cannot reach 0.05, 6 can.
    assert sps.wilcoxon(np.arange(1, 6) / 100).pvalue == pytest.approx(1 / 16)
    assert sps.wilcoxon(np.arange(1, 7) / 100).pvalue == pytest.approx(1 / 32)


def test_report_shows_dashes_and_no_dagger(store, tmp_path):
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("balanced_accuracy",))).parent
    table = (out / "tables" / "balanced_accuracy.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "†" not in rows["1"] and "†" in rows["0.5"].split("|")[2]  # frozen column of 0.5 is marked
    shown = [line for line in (out / "tables" / "stats.md").read_text().splitlines() if "| 1 |" in line]
    assert len(shown) == 2 and all("| — | — |" in line for line in shown)
    assert "2 pairs: too few to test" in shown[0] + shown[1]
    assert "2 of 4 comparisons untested" in table
    csv = pd.read_csv(out / "tables" / "stats.csv")
    assert csv.loc[csv["note"].str.startswith("2 pairs"), "p_value"].isna().all()


def test_paired_unit_cases():
    ref = REF_FROZEN
    got = stats.paired(ref + 0.1, ref, stats.StatsSettings())
    assert got["mean_diff"] == pytest.approx(0.1) and np.isnan(got["p_t"])
    assert got["note"].startswith(paired.ZERO_VARIANCE) and not got["tested"]
    assert got["p_wilcoxon"] == pytest.approx(sps.wilcoxon(np.full(6, 0.1)).pvalue)  # all signs +: valid
    zero = stats.paired(ref, ref, stats.StatsSettings(significance="wilcoxon"))
    assert np.isnan(zero["p_t"]) and np.isnan(zero["p_wilcoxon"]) and zero["note"].startswith(paired.ALL_ZERO)
