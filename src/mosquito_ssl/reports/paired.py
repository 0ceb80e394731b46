"""The paired tests of one setting against its reference, and when they cannot say anything.

    mosquito-ssl reports build runs/sweep/results.sqlite --significance ttest    # or wilcoxon

``paired(new, ref, settings)`` compares seed-matched values: paired t-test, Wilcoxon signed-rank
test and a seeded bootstrap CI of the mean difference. A test below its minimum number of pairs,
or on differences that leave its statistic undefined, gives p = NaN and a ``note`` saying why:
such a row is left out of the multiple-comparison correction and never marked significant.

Minimum pairs (``T_MIN_PAIRS``, ``wilcoxon_min_pairs``), chosen from what each test can support:

- paired t-test: 3 pairs. With 2 the variance of the differences rests on one degree of freedom:
  two nearly equal differences give t -> inf and p -> 0 whatever the effect (the demo's two +0.031
  differences gave p = 0 and a †), and the two-sided 5% critical value is t = 12.7. Two degrees of
  freedom are the usual floor for a t-based statement.
- Wilcoxon signed-rank: with n non-zero differences the smallest exact two-sided p is 2 / 2**n (all
  signs alike), so p < alpha needs n > 1 - log2(alpha): 6 pairs at alpha = 0.05 (1/32; 5 give
  1/16), 5 at 0.1. Below that no outcome could be significant, and scipy's normal approximation,
  used when differences tie, could even report a p the exact test cannot reach.

Undefined: differences that are all equal have zero variance, so t = mean / 0 has no
distribution: NaN, not p = 0 (nor p = 1 when they are all zero). For Wilcoxon, all-equal non-zero
differences are a valid outcome (every sign the same); all zero leaves nothing to rank: NaN.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

T_MIN_PAIRS = 3
TOO_FEW = "too few to test"
ZERO_VARIANCE = "zero-variance differences: undefined"
ALL_ZERO = "all differences zero: undefined"


def wilcoxon_min_pairs(alpha: float) -> int:
    """Fewest non-zero differences whose exact two-sided Wilcoxon p (at best 2 / 2**n) can be < alpha."""
    return max(1, math.floor(1 - math.log2(alpha)) + 1)


def constant(diffs: np.ndarray) -> bool:
    """All differences equal, up to float rounding (0.531 - 0.5 vs 0.562 - 0.531)."""
    return bool(np.allclose(diffs, diffs[0], rtol=1e-9, atol=1e-12))


def _pairs_text(n: int) -> str:
    return f"{n} pair" + ("" if n == 1 else "s")


# A reason a test gave no p-value: (what, detail), e.g. ("2 pairs: too few to test", "t-test: at least 3").
Reason = tuple[str, str]


def t_test(new: np.ndarray, ref: np.ndarray, diffs: np.ndarray) -> tuple[float, Reason | None]:
    """(p, None) from scipy's paired t-test, or (NaN, why not)."""
    if len(diffs) < T_MIN_PAIRS:
        return np.nan, (f"{_pairs_text(len(diffs))}: {TOO_FEW}", f"t-test: at least {T_MIN_PAIRS}")
    if constant(diffs):
        return np.nan, (ZERO_VARIANCE, "t-test")
    return float(stats.ttest_rel(new, ref).pvalue), None


def wilcoxon_test(diffs: np.ndarray, alpha: float) -> tuple[float, Reason | None]:
    """(p, None) from scipy's Wilcoxon signed-rank test, or (NaN, why not); zero differences are
    dropped first (scipy's default ``zero_method="wilcox"``), so they do not count as pairs."""
    nonzero = int(np.count_nonzero(~np.isclose(diffs, 0.0, rtol=0.0, atol=1e-12)))
    if nonzero == 0:
        return np.nan, (ALL_ZERO, "Wilcoxon")
    need = wilcoxon_min_pairs(alpha)
    if nonzero < need:
        zeros = "" if nonzero == len(diffs) else f" ({len(diffs) - nonzero} with zero difference)"
        return np.nan, (f"{_pairs_text(len(diffs))}{zeros}: {TOO_FEW}", f"Wilcoxon: at least {need} for p < {alpha:g}")
    return float(stats.wilcoxon(diffs).pvalue), None


def note(reasons: list[Reason | None]) -> str:
    """Reasons joined, the same ``what`` once: "2 pairs: too few to test (t-test: at least 3; Wilcoxon: ...)"."""
    grouped: dict[str, list[str]] = {}
    for reason in reasons:
        if reason is not None:
            grouped.setdefault(reason[0], []).append(reason[1])
    return "; ".join(f"{what} ({'; '.join(details)})" for what, details in grouped.items())


def bootstrap_ci(diffs: np.ndarray, seed: int, n_resamples: int) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of the mean difference (resampling per-seed differences is the
    paired bootstrap); (NaN, NaN) below ``T_MIN_PAIRS``, where resamples of 2 values say nothing."""
    if len(diffs) < T_MIN_PAIRS:
        return np.nan, np.nan
    if constant(diffs):  # every resample has the same mean
        return float(diffs.mean()), float(diffs.mean())
    boot = stats.bootstrap(
        (diffs,),
        np.mean,
        confidence_level=0.95,
        method="percentile",
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    low, high = boot.confidence_interval
    return float(low), float(high)


def paired(new, ref, settings) -> dict:
    """mean_diff, ci_low/ci_high, p_t, p_wilcoxon and ``note`` for seed-matched pairs.

    ``settings`` (``stats.StatsSettings``) gives the deciding test, alpha and the bootstrap seed;
    the note gives the deciding test's reason first, then the other test's; ``tested`` is False
    when the deciding test gave no p-value.
    """
    new, ref = np.asarray(new, float), np.asarray(ref, float)
    diffs = new - ref
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy's small-sample warnings: the notes say it instead
        p_t, why_t = t_test(new, ref, diffs)
        p_w, why_w = wilcoxon_test(diffs, settings.alpha)
        low, high = bootstrap_ci(diffs, settings.seed, settings.n_resamples)
    reasons = {"ttest": why_t, "wilcoxon": why_w}
    first = settings.significance
    return {
        "mean_diff": float(diffs.mean()),
        "ci_low": low,
        "ci_high": high,
        "p_t": p_t,
        "p_wilcoxon": p_w,
        "note": note([reasons[first], *(why for k, why in reasons.items() if k != first)]),
        "tested": reasons[first] is None,
    }


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
