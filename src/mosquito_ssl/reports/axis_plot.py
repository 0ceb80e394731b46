"""Metric vs one numeric setting: ``mask_strength`` or any numeric swept axis of a schema-3 store
(``mask_ratio``, ``max_clips_per_group``, ``pretrain_epochs``...).

    mosquito-ssl reports build runs/sweep/results.sqlite   # -> plots/<setting>_<metric>.{png,pdf}

x: the setting's values (log scale when they span more than a factor of ``LOG_SPAN``); y: the
metric, mean over seeds with a 95% t band; one panel per probe, one colour per freeze, one line
style per combination of the other varying settings (e.g. the method). Baselines are dashed: a
horizontal line each, or a line over x with a lighter band when the setting applies to them too
(a ``[probe]`` one). A label-count axis (``curves.LABEL_AXES``, ``train_groups_per_class``: a
learning curve) is always on a log x, and its cells without the setting (all groups) are drawn at
an ``all`` tick right of the largest value, not joined to the line: a mean with its t interval
per line, a short dashed segment in a light band per baseline.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator, NullLocator

from .files import file_stem
from .labels import baseline_label, named_values, value_text
from .plots import (
    AXIS_LABELS,
    BASELINE_STYLES,
    Plot,
    baseline_lines,
    bounded_t_ci,
    legend,
    plot_style,
    save,
)
from .tables import freeze_order, metric_label

LOG_SPAN = 20  # max/min above this: log x (clips per group 5..500), else linear (mask_strength 0.5..2)
# seaborn's first line dashes ("" = solid), so that one style per setting reads in the legend;
# past six settings the marker changes too.
DASHES = ["", (4, 1.5), (1, 1), (3, 1.25, 1.5, 1.25), (5, 1, 1, 1), (3, 1.25, 1.25, 1.25, 1.25, 1.25)]
MARKERS = ["o", "s", "^", "D", "v", "P"]
AXIS_TITLES = {"mask_strength": "mask strength", "train_groups_per_class": "training groups per class"}
LINE_KEYS = ("freeze", "probe")  # colour and panel: never a line style


def _line_styles(ssl: pd.DataFrame, axis: str, keys) -> tuple[pd.Series, dict]:
    """Each ssl row's line label (the other varying settings, e.g. ``mae``) and label -> (dashes, marker)."""
    others = [k for k in dict.fromkeys(keys) if k != axis and k not in LINE_KEYS and ssl[k].nunique() > 1]
    if not others:
        return pd.Series("", index=ssl.index), {}
    lines = pd.Series([named_values(r, others) for _, r in ssl.iterrows()], index=ssl.index)
    order = list(dict.fromkeys(lines.loc[ssl.sort_values(["order", axis], kind="stable").index]))
    n = len(DASHES)
    return lines, {lab: (DASHES[i % n], MARKERS[(i // n) % len(MARKERS)]) for i, lab in enumerate(order)}


def _baselines_over_x(ax, base: pd.DataFrame, axis: str, palette: dict, labels: list[str], upper: float) -> None:
    """Baselines that have the setting too: their mean over seeds at each x, dashed, in a light t band."""
    ci = bounded_t_ci(upper)
    for (label, freeze), group in base[base[axis].notna()].groupby(["setting", "freeze"], sort=False):
        values = group.groupby(axis)["value"].agg(list).sort_index()
        means = [np.mean(v) for v in values]
        low, high = zip(*(ci(v) for v in values), strict=True)
        style = BASELINE_STYLES[labels.index(label) % len(BASELINE_STYLES)]
        colour = palette.get(freeze, "grey")
        ax.plot(values.index, means, color=colour, ls=style, lw=1.3, alpha=0.9)
        ax.fill_between(values.index, low, high, color=colour, alpha=0.08, lw=0)


def _all_x(values: pd.Series) -> float:
    """Where the cells without a count setting (all groups) go: one doubling right of the largest."""
    values = np.sort(values.dropna().unique())
    return 2 * values[-1] if values[0] > 0 else values[-1] + (values[-1] - values[0]) / max(len(values) - 1, 1)


def _all_points(ax, ssl, base, x: float, palette: dict, styles: dict, labels: list[str], upper: float) -> None:
    """All-groups cells at ``x``, unjoined: mean and t interval per line and freeze; baselines dashed."""
    ci = bounded_t_ci(upper)
    for (line, freeze), group in ssl.groupby(["line", "freeze"], sort=False):
        mean, (low, high) = group["value"].mean(), ci(group["value"])
        err = [[max(mean - low, 0.0)], [max(high - mean, 0.0)]]  # the interval is clipped to the metric's range
        ax.errorbar([x], [mean], yerr=err, color=palette.get(freeze, "grey"),
                    marker=styles.get(line, ("", "o"))[1], ls="none", capsize=3)  # fmt: skip
    for (label, freeze), group in base.groupby(["setting", "freeze"], sort=False):
        style = BASELINE_STYLES[labels.index(label) % len(BASELINE_STYLES)]
        colour, (low, high) = palette.get(freeze, "grey"), ci(group["value"])
        ax.hlines(group["value"].mean(), x / 1.3, x * 1.3, color=colour, ls=style, lw=1.3)
        ax.fill_between([x / 1.3, x * 1.3], low, high, color=colour, alpha=0.08, lw=0)


def _x_scale(ax, values: pd.Series, log: bool = False, all_x: float | None = None) -> None:
    """Log x with a tick at each value when the values span more than LOG_SPAN (or ``log``, with
    positive values); an ``all`` tick at ``all_x``; else integer ticks for counts."""
    values = np.sort(values.dropna().unique())
    if values.min() > 0 and (log or values.max() / values.min() > LOG_SPAN):
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
    elif all_x is None:
        if np.all(values == np.round(values)):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return
    extra = [] if all_x is None else [all_x]
    ax.set_xticks([*values, *extra], labels=[*(value_text(v) for v in values), *(["all"] if extra else [])])


def _panel(ax, ssl, base, axis: str, palette: dict, freezes, styles: dict, upper: float, all_x=None) -> None:
    if styles:
        style = {"style": "line", "style_order": list(styles), "dashes": {k: d for k, (d, _) in styles.items()},
                 "markers": {k: m for k, (_, m) in styles.items()}}  # fmt: skip
    else:  # one line per freeze, as before the swept axes
        style = {"marker": "o"}
    sns.lineplot(
        data=ssl[ssl[axis].notna()], x=axis, y="value", hue="freeze", hue_order=freezes, palette=palette,
        errorbar=bounded_t_ci(upper), err_style="band", ax=ax, legend=False, **style,
    )  # fmt: skip
    labels = list(dict.fromkeys(base["setting"]))
    if base[axis].notna().any():
        _baselines_over_x(ax, base, axis, palette, labels, upper)
        if all_x is not None:
            _all_points(ax, ssl.iloc[:0], base[base[axis].isna()], all_x, palette, styles, labels, upper)
    else:
        baseline_lines(ax, base, palette)
    if all_x is not None:
        _all_points(ax, ssl[ssl[axis].isna()], base.iloc[:0], all_x, palette, styles, labels, upper)


def _baselines_without(data: pd.DataFrame, axis: str, keys) -> pd.DataFrame:
    """Baseline rows labelled by the other varying settings, never by ``axis`` (the x axis): e.g.
    ``no pretraining (max_clips_per_group=2)``, so baselines of different settings are not averaged."""
    base = data[data["encoder"] != "ssl"]
    if base.empty:
        return base
    rest = [k for k in dict.fromkeys(keys) if k != axis and k not in LINE_KEYS]
    return base.assign(setting=[baseline_label(r, rest) for _, r in base.iterrows()])


def axis_plot(frame: pd.DataFrame, axis: str, metric: str, out_dir: Path, percent=False, keys=(), counts=False) -> Plot:
    """Metric vs the numeric setting ``axis`` (a column of the labelled headline ``frame``); ``keys``
    are the settings that may vary besides it (the table's row and column keys); ``counts``: a
    label-count axis (log x; NULL = all groups, drawn at an ``all`` tick)."""
    title = f"{metric_label(metric)} vs {AXIS_TITLES.get(axis, axis)}"
    plot = Plot(f"{file_stem(axis)}_{file_stem(metric)}", title)
    data = frame[frame["metric"] == metric].assign(value=lambda d: d["value"] * (100 if percent else 1))
    ssl = data[(data["encoder"] == "ssl") & (data[axis].notna() | counts)]
    if ssl[axis].nunique() < 2:
        plot.skipped = f"fewer than two {axis} values among pretrained (ssl) cells"
        return plot
    lines, styles = _line_styles(ssl, axis, keys)
    ssl = ssl.assign(line=lines)
    all_x = _all_x(ssl[axis]) if counts and data[axis].isna().any() else None
    base = _baselines_without(data, axis, keys)
    probes = sorted(ssl["probe"].unique())
    freezes = freeze_order(data["freeze"])
    palette = dict(zip(freezes, sns.color_palette("colorblind", len(freezes)), strict=True))
    with plot_style():
        fig, axes = plt.subplots(1, len(probes), figsize=(5.5 * len(probes), 4.2), sharey=True, squeeze=False)
        for ax, probe in zip(axes[0], probes, strict=True):
            _panel(ax, ssl[ssl["probe"] == probe], base[base["probe"] == probe], axis, palette, freezes, styles,
                   100 if percent else 1, all_x)  # fmt: skip
            _x_scale(ax, ssl[axis], counts, all_x)
            ax.set(
                xlabel=AXIS_LABELS.get(axis, axis),
                ylabel=metric_label(metric, percent),
                title=f"probe = {probe}" if len(probes) > 1 else None,
            )
        legend(axes[0, -1], palette, "-", list(dict.fromkeys(base["setting"])), styles)
        plot.files = save(fig, out_dir, plot.name)
    return plot
