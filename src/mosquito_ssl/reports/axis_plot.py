"""Metric vs one numeric setting: ``mask_strength`` or any numeric swept axis of a schema-3 store
(``mask_ratio``, ``max_clips_per_group``, ``pretrain_epochs``...).

    mosquito-ssl reports build runs/sweep/results.sqlite   # -> plots/<setting>_<metric>.{png,pdf}

x: the setting's values (log scale when they span more than a factor of ``LOG_SPAN``); y: the
metric, mean over seeds with a 95% t band; one panel per probe, one colour per freeze, one line
style per combination of the other varying settings (e.g. the method). Baselines are dashed: a
horizontal line each, or a line over x when the setting applies to them too (a ``[probe]`` one).
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
AXIS_TITLES = {"mask_strength": "mask strength"}
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


def _baselines_over_x(ax, base: pd.DataFrame, axis: str, palette: dict, labels: list[str]) -> None:
    """Baselines that have the setting too: their mean over seeds at each x, dashed."""
    for (label, freeze), group in base.groupby(["setting", "freeze"], sort=False):
        means = group.groupby(axis)["value"].mean().sort_index()
        style = BASELINE_STYLES[labels.index(label) % len(BASELINE_STYLES)]
        ax.plot(means.index, means.to_numpy(), color=palette.get(freeze, "grey"), ls=style, lw=1.3, alpha=0.9)


def _x_scale(ax, values: pd.Series) -> None:
    """Log x with a tick at each value when the values span more than LOG_SPAN; integer ticks for counts."""
    values = np.sort(values.dropna().unique())
    if values.min() > 0 and values.max() / values.min() > LOG_SPAN:
        ax.set_xscale("log")
        ax.set_xticks(values, labels=[value_text(v) for v in values])
        ax.xaxis.set_minor_locator(NullLocator())
    elif np.all(values == np.round(values)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _panel(ax, ssl, base, axis: str, palette: dict, freezes, styles: dict, upper: float) -> None:
    if styles:
        style = {"style": "line", "style_order": list(styles), "dashes": {k: d for k, (d, _) in styles.items()},
                 "markers": {k: m for k, (_, m) in styles.items()}}  # fmt: skip
    else:  # one line per freeze, as before the swept axes
        style = {"marker": "o"}
    sns.lineplot(
        data=ssl, x=axis, y="value", hue="freeze", hue_order=freezes, palette=palette,
        errorbar=bounded_t_ci(upper), err_style="band", ax=ax, legend=False, **style,
    )  # fmt: skip
    if base[axis].notna().any():
        _baselines_over_x(ax, base, axis, palette, list(dict.fromkeys(base["setting"])))
    else:
        baseline_lines(ax, base, palette)


def _baselines_without(data: pd.DataFrame, axis: str, keys) -> pd.DataFrame:
    """Baseline rows labelled by the other varying settings, never by ``axis`` (the x axis): e.g.
    ``no pretraining (max_clips_per_group=2)``, so baselines of different settings are not averaged."""
    base = data[data["encoder"] != "ssl"]
    if base.empty:
        return base
    rest = [k for k in dict.fromkeys(keys) if k != axis and k not in LINE_KEYS]
    return base.assign(setting=[baseline_label(r, rest) for _, r in base.iterrows()])


def axis_plot(frame: pd.DataFrame, axis: str, metric: str, out_dir: Path, percent=False, keys=()) -> Plot:
    """Metric vs the numeric setting ``axis`` (a column of the labelled headline ``frame``); ``keys``
    are the settings that may vary besides it (the table's row and column keys)."""
    title = f"{metric_label(metric)} vs {AXIS_TITLES.get(axis, axis)}"
    plot = Plot(f"{file_stem(axis)}_{file_stem(metric)}", title)
    data = frame[frame["metric"] == metric].assign(value=lambda d: d["value"] * (100 if percent else 1))
    ssl = data[(data["encoder"] == "ssl") & data[axis].notna()]
    if ssl[axis].nunique() < 2:
        plot.skipped = f"fewer than two {axis} values among pretrained (ssl) cells"
        return plot
    lines, styles = _line_styles(ssl, axis, keys)
    ssl = ssl.assign(line=lines)
    base = _baselines_without(data, axis, keys)
    probes = sorted(ssl["probe"].unique())
    freezes = freeze_order(data["freeze"])
    palette = dict(zip(freezes, sns.color_palette("colorblind", len(freezes)), strict=True))
    with plot_style():
        fig, axes = plt.subplots(1, len(probes), figsize=(5.5 * len(probes), 4.2), sharey=True, squeeze=False)
        for ax, probe in zip(axes[0], probes, strict=True):
            _panel(ax, ssl[ssl["probe"] == probe], base[base["probe"] == probe], axis, palette, freezes, styles,
                   100 if percent else 1)  # fmt: skip
            _x_scale(ax, ssl[axis])
            ax.set(
                xlabel=AXIS_LABELS.get(axis, axis),
                ylabel=metric_label(metric, percent),
                title=f"probe = {probe}" if len(probes) > 1 else None,
            )
        legend(axes[0, -1], palette, "-", list(dict.fromkeys(base["setting"])), styles)
        plot.files = save(fig, out_dir, plot.name)
    return plot
