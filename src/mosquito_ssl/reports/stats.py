"""Paired significance tests of every setting against a reference setting, with correction.

    mosquito-ssl reports build runs/sweep/results.sqlite --reference encoder=random --correction holm
    mosquito-ssl reports build runs/sweep/results.sqlite --reference method=mae,mask_ratio=0.8 --significance wilcoxon

Each setting is compared with the reference (default ``encoder=random``: no pretraining) that
has the same ``freeze`` (the table columns), ``probe`` and other probe-side keys; pairs are
matched by ``seed``. The reference may name any setting column, swept axes included. With two
or more pairs: paired t-test, Wilcoxon signed-rank and a seeded bootstrap CI of the mean
difference (``paired.py``: below a test's minimum number of pairs, 3 for the t-test and 6 for
Wilcoxon at alpha = 0.05, or on zero-variance differences, p is NaN and the ``note`` says why).
With one seed: exact McNemar test on the per-clip predictions when both runs kept them.
p-values are corrected per metric (Holm, Benjamini-Hochberg or none) over the rows that have
one; a row without a p-value is never marked significant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError
from .paired import T_MIN_PAIRS, mcnemar_exact, paired, wilcoxon_min_pairs
from .reference import parse_reference, reference_mask

__all__ = ["compare", "describe", "mcnemar_exact", "paired", "parse_reference", "reference_mask"]

CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}
# --significance: the paired test that decides significance ("test" alone is the test split).
SIGNIFICANCE_TESTS = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
NOT_ENOUGH = "not enough seeds for a paired test"
NO_PAIRS = "no seed in common with the reference"
RESULT_COLUMNS = [
    "metric",
    "probe",
    "setting",
    "reference",
    "n_pairs",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_t",
    "p_wilcoxon",
    "p_mcnemar",
    "p_value",
    "p_adjusted",
    "significant",
    "significance_test",
    "note",
]


@dataclass(frozen=True)
class StatsSettings:
    """Reference setting (``(("encoder", "random"),)``), correction, the deciding paired test and alpha."""

    reference: tuple[tuple[str, str], ...] = (("encoder", "random"),)
    correction: str = "holm"
    significance: str = "ttest"
    alpha: float = 0.05
    seed: int = 0
    n_resamples: int = 9999

    def __post_init__(self):
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"--correction {self.correction!r}: use one of {', '.join(CORRECTIONS)}")
        if self.significance not in SIGNIFICANCE_TESTS:
            raise ConfigError(f"--significance {self.significance!r}: use one of {', '.join(SIGNIFICANCE_TESTS)}")


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN (no test) stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q, m = p[ok], int(ok.sum())
    order = np.argsort(q)
    # k-th smallest p times (m - k + 1), made monotone so adjusted p never decreases with rank.
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out[ok] = adjusted
    return out


def adjust(pvalues, method: str) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    if method == "holm":
        return holm(p)
    out = p.copy()
    ok = ~np.isnan(p)
    if method == "bh" and ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def _mcnemar_row(new_cell: str, ref_cell: str, predictions: Callable, split: str) -> dict | None:
    new, ref = predictions(new_cell), predictions(ref_cell)
    if new is None or ref is None:
        return None
    new, ref = new[new["split"] == split], ref[ref["split"] == split]
    both = new.merge(ref, on="path", suffixes=("_new", "_ref"))
    if both.empty:
        return None
    b, c, p = mcnemar_exact(both["label_ref"] == both["pred_ref"], both["label_new"] == both["pred_new"])
    return {"p_mcnemar": p, "note": f"exact McNemar on {len(both)} clips (b={b}, c={c})"}


def _untested(setting, n_pairs: int) -> dict:
    return {
        "setting": setting,
        "n_pairs": n_pairs,
        "mean_diff": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_t": np.nan,
        "p_wilcoxon": np.nan,
        "p_mcnemar": np.nan,
        "significance_test": "",
        "note": NOT_ENOUGH if n_pairs else NO_PAIRS,
    }


def _compare(block: pd.DataFrame, is_ref: pd.Series, settings, predictions, split) -> list[dict]:
    ref = block[is_ref].groupby("seed")[["value", "cell_id"]].first()
    rows = []
    for setting, group in block[~is_ref].groupby("setting", sort=False):
        new = group.groupby("seed")[["value", "cell_id"]].first()
        pairs = new.join(ref, lsuffix="_new", rsuffix="_ref", how="inner")
        row = _untested(setting, len(pairs))
        if len(pairs) >= 2:
            result = paired(pairs["value_new"], pairs["value_ref"], settings)
            test = SIGNIFICANCE_TESTS[settings.significance] if result.pop("tested") else ""
            row.update(result, significance_test=test)
        elif len(pairs) == 1:
            row["mean_diff"] = float(pairs["value_new"].iloc[0] - pairs["value_ref"].iloc[0])
            mc = _mcnemar_row(pairs["cell_id_new"].iloc[0], pairs["cell_id_ref"].iloc[0], predictions, split)
            if mc is not None:
                row.update(mc, significance_test="exact McNemar")
            else:
                row["note"] = NOT_ENOUGH + " (no per-clip predictions for McNemar)"
        rows.append(row)
    return rows


def compare(
    frame: pd.DataFrame, columns, settings: StatsSettings, predictions: Callable, split: str = "test"
) -> pd.DataFrame:
    """One row per (metric, probe, columns, setting) vs the reference; see module docstring.

    ``frame`` is labelled headline rows (tables.label_settings); ``columns`` are the store
    columns a reference must share with the setting (the table columns, e.g. ``freeze``);
    ``predictions(cell_id)`` returns that cell's predictions.csv or None.
    """
    is_ref = reference_mask(frame, settings.reference)
    empty = pd.DataFrame(columns=[*RESULT_COLUMNS[:2], *columns, *RESULT_COLUMNS[2:]])
    if not is_ref.any():
        return empty
    blocks = []
    for key, block in frame.groupby(["metric", "probe", *columns], dropna=False, sort=False):
        ref_mask = is_ref.loc[block.index]
        labels = block.loc[ref_mask, "setting"].unique()
        if len(labels) > 1:
            raise ConfigError(
                f"--reference matches several settings ({', '.join(labels)}) for "
                f"{dict(zip(['metric', 'probe', *columns], key, strict=True))}: make it more specific"
            )
        if len(labels) == 0:
            continue
        for row in _compare(block, ref_mask, settings, predictions, split):
            blocks.append(dict(zip(["metric", "probe", *columns], key, strict=True), reference=labels[0], **row))
    if not blocks:
        return empty
    out = pd.DataFrame(blocks)
    primary = "p_t" if settings.significance == "ttest" else "p_wilcoxon"
    out["p_value"] = out[primary].where(out["n_pairs"] >= 2, out["p_mcnemar"])
    # One family per metric: every setting x freeze x probe compared with its reference; rows
    # without a p-value (too few pairs, undefined) are not counted (holm/adjust skip NaN).
    out["p_adjusted"] = out.groupby("metric")["p_value"].transform(
        lambda p: pd.Series(adjust(p.to_numpy(), settings.correction), index=p.index)
    )
    out["significant"] = (out["p_adjusted"] < settings.alpha).fillna(False).astype(bool)
    return out[empty.columns]


def describe(result: pd.DataFrame, settings: StatsSettings, reference_label: str, match=("freeze",)) -> str:
    """The table note: which test, which pairs, which correction, what † means, what went untested."""
    if len(result) == 0:
        return "No significance tests: the reference setting is not in the store."
    correction = CORRECTIONS[settings.correction]
    used = set(result["significance_test"]) - {""}
    test = SIGNIFICANCE_TESTS[settings.significance]
    floor = T_MIN_PAIRS if settings.significance == "ttest" else wilcoxon_min_pairs(settings.alpha)
    parts = [
        f"† differs from {reference_label} (same {', '.join([*match, 'probe'])}) at α = {settings.alpha:g}: "
        f"{test} across seeds (at least {floor} seed pairs; zero-variance differences untested), pairs "
        f"matched by seed, {correction} correction over the tested comparisons of each metric (Wilcoxon "
        f"signed-rank and bootstrap CIs in the statistics table)."
    ]
    if "exact McNemar" in used:
        parts.append("With one seed: exact McNemar test on per-clip predictions.")
    untested = int(result["p_value"].isna().sum())
    if untested:
        parts.append(
            f"{untested} of {len(result)} comparisons untested ({NOT_ENOUGH}, or undefined): "
            f"never marked; the statistics table's note says why."
        )
    return " ".join(parts)
