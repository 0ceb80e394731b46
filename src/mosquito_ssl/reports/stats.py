"""Paired significance tests of every setting against a reference setting, with correction.

    mosquito-ssl reports build runs/sweep/results.sqlite --reference encoder=random --correction holm

Each setting is compared with the reference (default ``encoder=random``: no pretraining) that
has the same ``freeze`` (the table columns) and ``probe``; pairs are matched by ``seed``. With two
or more pairs: paired t-test, Wilcoxon signed-rank and a seeded bootstrap CI of the mean
difference. With one seed: exact McNemar test on the per-clip predictions when both runs kept
them. p-values are corrected per metric (Holm, Benjamini-Hochberg or none).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError

CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}
TESTS = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
NOT_ENOUGH = "not enough seeds for a paired test"
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
    "test",
    "note",
]


@dataclass(frozen=True)
class StatsSettings:
    """Reference setting (``(("encoder", "random"),)``), correction, primary test and alpha."""

    reference: tuple[tuple[str, str], ...] = (("encoder", "random"),)
    correction: str = "holm"
    test: str = "ttest"
    alpha: float = 0.05
    seed: int = 0
    n_resamples: int = 9999

    def __post_init__(self):
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"--correction {self.correction!r}: use one of {', '.join(CORRECTIONS)}")
        if self.test not in TESTS:
            raise ConfigError(f"--test {self.test!r}: use one of {', '.join(TESTS)}")


def parse_reference(text: str) -> tuple[tuple[str, str], ...]:
    """``"encoder=random,freeze=frozen"`` -> ``(("encoder", "random"), ("freeze", "frozen"))``."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ConfigError(f"--reference {text!r}: write COLUMN=VALUE[,COLUMN=VALUE], e.g. encoder=random")
    return tuple((k.strip(), v.strip()) for k, v in pairs)


def reference_mask(frame: pd.DataFrame, reference) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for key, value in reference:
        if key not in frame.columns:
            raise ConfigError(f"--reference {key}={value}: {key} is not a column of the store")
        col = frame[key]
        # Numbers compare as numbers ("1" == 1.0); everything else as text.
        target = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        is_num = pd.api.types.is_numeric_dtype(col) and not np.isnan(target)
        mask &= (col == target) if is_num else (col.astype(str) == value)
    return mask


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


def mcnemar_exact(ref_correct, new_correct) -> tuple[int, int, float]:
    """Exact McNemar p-value: (b, c, p) with b = only new right, c = only reference right.

    Under H0 (both classifiers equally accurate) each discordant clip is equally likely to
    favour either one, so b ~ Binomial(b + c, 1/2); concordant clips carry no information.
    The two-sided binomial test on (b, b + c) is therefore exactly McNemar's test without the
    chi-square approximation (statsmodels' ``mcnemar(exact=True)`` computes the same thing).
    """
    ref_correct, new_correct = np.asarray(ref_correct, bool), np.asarray(new_correct, bool)
    b = int(np.sum(new_correct & ~ref_correct))
    c = int(np.sum(ref_correct & ~new_correct))
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return b, c, p


def paired(new: np.ndarray, ref: np.ndarray, settings: StatsSettings) -> dict:
    """t-test, Wilcoxon and bootstrap CI of mean(new - ref) on seed-matched pairs (n >= 2)."""
    diffs = np.asarray(new, float) - np.asarray(ref, float)
    out = {"mean_diff": diffs.mean(), "ci_low": np.nan, "ci_high": np.nan}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # zero-variance differences give NaN, which we report
        out["p_t"] = float(stats.ttest_rel(new, ref).pvalue)
        try:
            out["p_wilcoxon"] = float(stats.wilcoxon(diffs).pvalue)
        except ValueError:  # all differences zero: no ranks to test
            out["p_wilcoxon"] = np.nan
        # Resampling the per-seed differences is the paired bootstrap of the mean difference.
        boot = stats.bootstrap(
            (diffs,),
            np.mean,
            confidence_level=0.95,
            method="percentile",
            n_resamples=settings.n_resamples,
            rng=np.random.default_rng(settings.seed),
        )
    out["ci_low"], out["ci_high"] = boot.confidence_interval
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


def _compare(block: pd.DataFrame, is_ref: pd.Series, settings, predictions, split) -> list[dict]:
    ref = block[is_ref].groupby("seed")[["value", "cell_id"]].first()
    rows = []
    for setting, group in block[~is_ref].groupby("setting", sort=False):
        new = group.groupby("seed")[["value", "cell_id"]].first()
        pairs = new.join(ref, lsuffix="_new", rsuffix="_ref", how="inner")
        row = {
            "setting": setting,
            "n_pairs": len(pairs),
            "mean_diff": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "p_t": np.nan,
            "p_wilcoxon": np.nan,
            "p_mcnemar": np.nan,
            "test": "",
            "note": NOT_ENOUGH,
        }
        if len(pairs) >= 2:
            row.update(paired(pairs["value_new"], pairs["value_ref"], settings), note="", test=TESTS[settings.test])
        elif len(pairs) == 1:
            row["mean_diff"] = float(pairs["value_new"].iloc[0] - pairs["value_ref"].iloc[0])
            mc = _mcnemar_row(pairs["cell_id_new"].iloc[0], pairs["cell_id_ref"].iloc[0], predictions, split)
            if mc is not None:
                row.update(mc, test="exact McNemar")
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
    primary = "p_t" if settings.test == "ttest" else "p_wilcoxon"
    out["p_value"] = out[primary].where(out["n_pairs"] >= 2, out["p_mcnemar"])
    # One family per metric: every setting x freeze x probe compared with its reference.
    out["p_adjusted"] = out.groupby("metric")["p_value"].transform(
        lambda p: pd.Series(adjust(p.to_numpy(), settings.correction), index=p.index)
    )
    out["significant"] = (out["p_adjusted"] < settings.alpha).fillna(False).astype(bool)
    return out[empty.columns]


def describe(result: pd.DataFrame, settings: StatsSettings, reference_label: str, match=("freeze",)) -> str:
    """The table note: which test, which pairs, which correction, what † means."""
    correction = CORRECTIONS[settings.correction]
    used = set(result["test"]) - {""} if len(result) else set()
    parts = []
    if len(result) == 0:
        return "No significance tests: the reference setting is not in the store."
    test = TESTS[settings.test]
    parts.append(
        f"† differs from {reference_label} (same {', '.join([*match, 'probe'])}) at α = {settings.alpha:g}: "
        f"{test} across seeds, pairs matched by seed, {correction} correction over the "
        f"comparisons of each metric (Wilcoxon signed-rank and bootstrap CIs in the statistics table)."
    )
    if "exact McNemar" in used:
        parts.append("With one seed: exact McNemar test on per-clip predictions.")
    if (result["note"].str.startswith(NOT_ENOUGH)).any():
        parts.append(f"Some settings untested: {NOT_ENOUGH}.")
    return " ".join(parts)
