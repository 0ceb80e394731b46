"""Learning curves: the labelled groups per class a setting needs to reach each baseline's full-data score.

    mosquito-ssl benchmarks run spec.toml --set 'grid.probe.train_groups_per_class=[1,2,4]'
    mosquito-ssl reports build runs/sweep/results.sqlite   # -> tables/k_needed_<metric>.{md,tex,csv}

Only for a store with a label-count axis (``LABEL_AXES``: a numeric ``[probe]`` setting whose
None means "all" and whose larger values mean more labels; today ``train_groups_per_class``).
``max_clips_per_group`` is not one: it caps the test clips too, so its scores are not on one test
set. A baseline's *full-data* score is its mean over seeds on the cells without the setting
(all groups, e.g. a sweep without the axis written to the same store), else at its largest K
swept. Each setting's K needed is the smallest K (then "all") whose mean over seeds reaches it;
``>K`` when no K swept does, ``never`` when not even all groups do. Means are over the seeds
present; NaN values are left out. The plot of the curve itself is ``axis_plot.py``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from . import tables
from .files import file_stem, write_text
from .html import TableOut
from .labels import setting_label, value_text
from .load import read_group_counts

log = logging.getLogger(__name__)
LABEL_AXES = ("train_groups_per_class",)  # [probe] keys: None = all groups, larger = more labels
EPS = 1e-12  # a mean equal to the target (the baseline's own row) reaches it despite rounding
TARGET_ROW = "full-data score (at K)"


def label_axis(axes: dict[str, dict]) -> str | None:
    """The store column of the first numeric ``[probe]`` axis in ``LABEL_AXES``, or None."""
    for column, axis in axes.items():
        if axis["table"] == "probe" and axis["key"] in LABEL_AXES and axis["numeric"]:
            return column
    return None


def curve_means(frame: pd.DataFrame, axis: str, label_keys, block) -> pd.DataFrame:
    """Mean and number of seeds per (block, setting without ``axis``, K); K NaN = all groups."""
    data = frame[frame["value"].notna()]
    data = data.assign(row=[setting_label(r, label_keys) for _, r in data.iterrows()], k=data[axis])
    grouped = data.groupby([*block, "row", "k"], dropna=False, sort=False)
    means = grouped.agg(
        mean=("value", "mean"), n=("value", "count"), order=("order", "min"), encoder=("encoder", "first")
    )
    return means.reset_index().assign(_k=lambda m: m["k"].fillna(np.inf)).sort_values("_k", kind="stable")


def targets(means: pd.DataFrame, block) -> pd.DataFrame:
    """Each baseline's full-data point per block: K = all when it has one, else its largest K."""
    base = means[means["encoder"] != "ssl"].groupby([*block, "row"], dropna=False, sort=False).tail(1)
    names = {"row": "target", "mean": "target_mean", "n": "target_n", "k": "target_k", "order": "target_order"}
    return base[[*block, *names]].rename(columns=names)


def k_needed(frame: pd.DataFrame, axis: str, label_keys, block) -> pd.DataFrame:
    """One row per (block, setting, baseline): ``k_needed`` (NaN = all groups or not reached),
    ``needed`` (``2``, ``all``, ``>4``, ``never``), the mean and seeds there, the target."""
    means = curve_means(frame, axis, label_keys, block)
    with_curve = means.groupby([*block, "row"], dropna=False)["k"].transform(lambda s: s.notna().any())
    pairs = means[with_curve].merge(targets(means, block), on=list(block))
    pairs["reached"] = pairs["mean"] >= pairs["target_mean"] - EPS
    keys = [*block, "row", "target"]
    first = pairs[pairs["reached"]].groupby(keys, dropna=False, sort=False).head(1)
    first = first[[*keys, "k", "mean", "n", "reached"]].rename(columns={"k": "k_needed", "mean": "mean_at_k",
                                                                        "n": "n_at_k"})  # fmt: skip
    grouped = pairs.groupby(keys, dropna=False, sort=False)
    summary = grouped.agg(
        order=("order", "min"), k_max=("k", "max"), has_all=("k", lambda s: s.isna().any()),
        **{c: (c, "first") for c in ("target_order", "target_mean", "target_n", "target_k")},
    ).reset_index()  # fmt: skip
    out = summary.merge(first, on=keys, how="left").rename(columns={"row": "setting"})
    out["needed"] = [_needed(r) for _, r in out.iterrows()]
    return out.sort_values([*block, "order"], kind="stable").reset_index(drop=True)


def _needed(row) -> str:
    if row["reached"] is True or row["reached"] is np.True_:
        return "all" if pd.isna(row["k_needed"]) else value_text(row["k_needed"])
    return "never" if row["has_all"] else f">{value_text(row['k_max'])}"


def labelled_fraction(run_dirs) -> Callable[[float], float] | None:
    """K -> share of the training groups that K per class keeps, sum_c min(K, n_c) / sum_c n_c,
    averaged over the all-groups runs' ``group_counts`` (per fold too); None without any."""
    counts = [np.asarray(list(c.values()), float) for d in run_dirs for c in read_group_counts(d)]
    counts = [c for c in counts if c.sum() > 0]
    if not counts:
        return None
    return lambda k: float(np.mean([np.minimum(k, c).sum() / c.sum() for c in counts]))


def cell_text(row, fraction) -> str:
    """``2 (33%)``: K and the labelled fraction when known; ``all``, ``>4``, ``never`` as they are."""
    if fraction is None or pd.isna(row["k_needed"]):
        return row["needed"]
    return f"{row['needed']} ({100 * fraction(row['k_needed']):.0f}%)"


def wide(result: pd.DataFrame, block, fraction, fmt: tables.NumberFormat) -> pd.DataFrame:
    """Settings x baselines, one block of rows per (probe, freeze, ...) that varies; each block
    starts with the baselines' full-data scores (``0.512 (all)``, ``0.634 (4)``)."""
    scale = 100.0 if fmt.percent else 1.0
    cells = result.assign(text=[cell_text(r, fraction) for _, r in result.iterrows()])
    heads = result.drop_duplicates([*block, "target"]).assign(setting=TARGET_ROW, order=-1.0)
    heads["text"] = [
        f"{m * scale:.{fmt.decimals}f} ({'all' if pd.isna(k) else value_text(k)})"
        for m, k in zip(heads["target_mean"], heads["target_k"], strict=True)
    ]
    both = pd.concat([heads, cells], ignore_index=True)
    levels = [k for k in block if k != "metric" and both[k].nunique(dropna=False) > 1]
    index = [*levels, "setting"]
    both = both.sort_values([*levels, "order"], kind="stable")
    table = both.pivot(index=index, columns="target", values="text")
    rows = pd.MultiIndex.from_frame(both[index]) if levels else pd.Index(both["setting"], name="setting")
    table = table.reindex(rows.unique())
    table = table[list(dict.fromkeys(both.sort_values("target_order", kind="stable")["target"]))]
    table.columns.name = "reaches"
    return table.fillna(tables.MISSING)


def describe(result: pd.DataFrame, axis: str, fraction) -> str:
    """The table note: what K is, which full-data score each baseline has, the markers."""
    at = result.drop_duplicates(["target", "target_k"])["target_k"]
    full = []
    if at.isna().any():
        full.append(f"all = the cells without {axis}, i.e. all groups")
    if at.notna().any():
        full.append("a number = the largest K swept, where the store has no all-groups cells for that baseline")
    share = (
        "In parentheses: the labelled fraction, sum_c min(K, n_c) / sum_c n_c over the training groups n_c "
        "per class of the all-groups runs (metrics.json group_counts)."
        if fraction is not None
        else "The labelled fraction (K / training groups per class) is not shown: no all-groups run to take "
        "the group counts from."
    )
    return (
        f"K = {axis}: training groups per class (validation and test clips unchanged). Each cell is the "
        f"smallest K at which the setting's mean over seeds reaches the baseline's full-data mean; the "
        f"first row of a block gives that score and where it is taken ({'; '.join(full)}). all: reached "
        f"only with all groups; >K: not reached at any K swept; never: not even with all groups. {share} "
        "Means over the seeds present (seeds per mean in the CSV); NaN values left out."
    )


def metric_table(result: pd.DataFrame, block, axis: str, fraction, cfg, out: Path) -> TableOut:
    """tables/k_needed_<metric>.{md,tex,csv} of one metric."""
    metric = result["metric"].iloc[0]
    fmt = tables.NumberFormat(cfg.decimals, cfg.percent)
    caption = (
        f"{axis} needed to reach each baseline's full-data score: {tables.metric_label(metric)}, {cfg.split} split"
    )
    note = describe(result, axis, fraction)
    table = wide(result, block, fraction, fmt)
    md = tables.to_markdown(table)
    name = f"k_needed_{file_stem(metric)}"
    numbers = result.assign(
        target_at=["all" if pd.isna(k) else value_text(k) for k in result["target_k"]],
        labelled_fraction=[np.nan if fraction is None or pd.isna(k) else fraction(k) for k in result["k_needed"]],
    ).drop(columns=["order", "target_order", "has_all", "reached"])
    files = [
        write_text(out, f"{name}.md", f"{caption}\n\n{md}\n{note}\n", metric),
        write_text(
            out, f"{name}.tex", tables.to_latex(table.map(tables.tex_escape), caption, f"tab:{name}", note), metric
        ),
        write_text(out, f"{name}.csv", numbers.to_csv(index=False), metric),
    ]
    html = table.to_html(border=0, classes="tbl", na_rep=tables.MISSING)
    return TableOut(f"Learning curve: {tables.metric_label(metric, cfg.percent)}", caption, note, md, html, files)


def write_tables(prep, cfg, out: Path, warn: Callable[[str], None] = log.warning) -> list[TableOut]:
    """The K-needed table per metric when the store has a label-count axis; ``warn`` once when
    no baseline has results to reach (no table), and per metric whose baselines are all NaN."""
    axis = label_axis(prep.store.axes)
    head = prep.headline
    if axis is None or head[axis].isna().all():
        return []
    if (head["encoder"] == "ssl").all():
        warn(f"no learning-curve table: no baseline has results on the {cfg.split} split to reach "
             f"(add one in sweep.baselines; random is always run)")  # fmt: skip
        return []
    probe_axes = [c for c, a in prep.store.axes.items() if a["table"] == "probe" and c != axis]
    block = ["metric", "probe", "freeze", *(c for c in probe_axes if c in head and head[c].nunique() > 1)]
    # the rows' own settings; when only K varies the method names the ssl rows, as in the main tables
    label_keys = [k for k in dict.fromkeys([*prep.keys, *cfg.columns]) if k not in (axis, *block)] or ["method"]
    result = k_needed(head, axis, label_keys, block)
    done = prep.store.done
    fraction = labelled_fraction(done.loc[done[axis].isna(), "run_dir"])
    written = []
    for metric in cfg.metrics:
        part = result[result["metric"] == metric]
        if part.empty:
            warn(f"no learning-curve table for {metric}: no baseline has a {metric} value on the {cfg.split} split")
            continue
        written.append(metric_table(part, block, axis, fraction, cfg, out))
    return written
