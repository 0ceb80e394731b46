"""Publication plots (seaborn, Agg backend): PNG at 200 dpi plus PDF for each figure.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report   # -> plots/

Figures here: metric per SSL method, layer-wise probe curves and row-normalised confusion
matrices (best setting vs reference, summed over seeds); metric vs a numeric setting is in
``axis_plot.py``, pretraining loss curves in ``loss_plot.py``. Each returns a ``Plot``; when its
data are missing the plot is skipped with a reason instead (the report lists it), never an
exception. The shared pieces (style, saving, t-CI bands, baselines, legend) live here.
"""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports run on headless machines and in tests
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from scipy import stats

from .files import file_stem, write_bytes
from .tables import freeze_order, metric_label

log = logging.getLogger(__name__)
# Axis labels of settings with a longer name; any other setting is labelled by its column name.
AXIS_LABELS = {
    "mask_strength": "Mask strength (× default widths)",
    "train_groups_per_class": "Training groups per class (K)",
    "layer": "Layer (0 = embedding output)",
    "epoch": "Epoch",
}
BASELINE_STYLES = ["--", ":", "-."]


@dataclass
class Plot:
    """One figure: ``files`` written (PNG first), or ``skipped`` saying why not."""

    name: str
    title: str
    files: list[Path] = field(default_factory=list)
    skipped: str | None = None

    @property
    def png(self) -> Path | None:
        return self.files[0] if self.files else None


@contextmanager
def plot_style():
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.4), sns.color_palette("colorblind"):
        yield
    plt.close("all")


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """PNG (200 dpi) and PDF, each written atomically (a killed build leaves no half image) and
    only inside ``out_dir`` (``files.write_bytes``); ``name`` is built with ``files.file_stem``."""
    files = []
    for suffix, dpi in (("png", 200), ("pdf", None)):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix, dpi=dpi, bbox_inches="tight")
        files.append(write_bytes(out_dir, f"{name}.{suffix}", buffer.getvalue()))
    plt.close(fig)
    return files


def t_ci(values) -> tuple[float, float]:
    """95% t-based CI of the mean (seaborn ``errorbar`` callable); a point when n = 1."""
    values = np.asarray(values, float)
    mean = values.mean()
    if len(values) < 2:
        return mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean - half, mean + half


def bounded_t_ci(upper: float):
    """``t_ci`` clipped to [0, upper]: every plotted metric is a rate, and with 2-3 seeds the
    t interval alone can reach far outside it, which reads as nonsense on the axis."""

    def ci(values) -> tuple[float, float]:
        low, high = t_ci(values)
        return max(low, 0.0), min(high, upper)

    return ci


def baseline_lines(ax, data: pd.DataFrame, palette: dict) -> None:
    """Each baseline's mean as a horizontal line: its freeze's colour, one line style per baseline."""
    means = data[data["encoder"] != "ssl"].groupby(["setting", "freeze"], sort=False)["value"].mean()
    labels = list(dict.fromkeys(means.index.get_level_values(0)))
    for (label, freeze), mean in means.items():
        style = BASELINE_STYLES[labels.index(label) % len(BASELINE_STYLES)]
        ax.axhline(mean, color=palette.get(freeze, "grey"), ls=style, lw=1.3, alpha=0.9)


def baseline_labels(data: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(data.loc[data["encoder"] != "ssl", "setting"]))


def dash_style(dashes) -> dict:
    """Line2D keywords of a seaborn dash spec ("" = solid)."""
    return {"ls": "-"} if not dashes else {"dashes": dashes}


def legend(ax, palette: dict, ls: str, baselines, styles: dict | None = None) -> None:
    """One legend beside the last panel: the freeze colours, the line styles of the other varying
    settings (``styles``: label -> (dashes, marker)), then the baselines by their labels."""
    handles = [Line2D([], [], color=colour, marker="o", ls=ls, label=f) for f, colour in palette.items()]
    handles += [
        Line2D([], [], color="0.3", marker=marker, label=lab, **dash_style(dashes))
        for lab, (dashes, marker) in (styles or {}).items()
    ]
    handles += [
        Line2D([], [], color="0.3", ls=BASELINE_STYLES[i % len(BASELINE_STYLES)], label=lab)
        for i, lab in enumerate(baselines)
    ]
    title = "freeze / setting / baseline" if styles else "freeze / baseline"
    ax.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)


def method_plot(frame: pd.DataFrame, metric: str, out_dir: Path, percent=False) -> Plot:
    """Metric per SSL method (each ssl setting a point with its 95% t-CI), baselines as horizontal lines."""
    plot = Plot(f"method_{file_stem(metric)}", f"{metric_label(metric)} by SSL method")
    data = frame[frame["metric"] == metric].assign(value=lambda d: d["value"] * (100 if percent else 1))
    ssl = data[data["encoder"] == "ssl"]
    if ssl["method"].nunique() < 2:
        plot.skipped = "fewer than two methods among pretrained (ssl) cells"
        return plot
    probes = sorted(ssl["probe"].unique())
    freezes = freeze_order(data["freeze"])
    palette = dict(zip(freezes, sns.color_palette("colorblind", len(freezes)), strict=True))
    order = list(ssl.sort_values(["order", "setting"])["setting"].unique())
    dodge = 0.3 if len(freezes) > 1 else False  # seaborn divides by (number of freezes - 1)
    with plot_style():
        width = max(5.5, 1.1 * len(order) + 2)
        fig, axes = plt.subplots(1, len(probes), figsize=(width * len(probes), 4.4), sharey=True, squeeze=False)
        for ax, probe in zip(axes[0], probes, strict=True):
            sns.pointplot(
                data=ssl[ssl["probe"] == probe], x="setting", y="value", hue="freeze", hue_order=freezes,
                order=order, palette=palette, errorbar=bounded_t_ci(100 if percent else 1), dodge=dodge,
                linestyle="none", ax=ax, legend=False,
            )  # fmt: skip
            baseline_lines(ax, data[data["probe"] == probe], palette)
            ax.set(
                xlabel="SSL method",
                ylabel=metric_label(metric, percent),
                title=f"probe = {probe}" if len(probes) > 1 else None,
            )
            ax.tick_params(axis="x", labelrotation=20)
        legend(axes[0, -1], palette, "none", baseline_labels(data))
        plot.files = save(fig, out_dir, plot.name)
    return plot


def layerwise_plot(frame: pd.DataFrame, metric: str, out_dir: Path, percent=False) -> Plot:
    """Layer-wise probe curves: metric vs layer, one line per setting (and freeze)."""
    plot = Plot(f"layerwise_{file_stem(metric)}", f"Layer-wise probes: {metric_label(metric)}")
    data = frame[frame["metric"] == metric].assign(value=lambda d: d["value"] * (100 if percent else 1))
    if data.empty:
        plot.skipped = "no layer-wise rows (layer NOT NULL) in the store"
        return plot
    data = data.assign(setting=data["setting_long"])
    if data["freeze"].nunique() > 1:
        data = data.assign(setting=data["setting"] + ", " + data["freeze"].astype(str))
    order = list(data.sort_values(["order", "setting"])["setting"].unique())
    with plot_style():
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        sns.lineplot(
            data=data,
            x="layer",
            y="value",
            hue="setting",
            hue_order=order,
            errorbar=bounded_t_ci(100 if percent else 1),
            marker="o",
            palette="colorblind",
            ax=ax,
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=AXIS_LABELS["layer"], ylabel=metric_label(metric, percent))
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), title="setting", frameon=False)
        plot.files = save(fig, out_dir, plot.name)
    return plot


def confusion_plot(matrices: dict[str, pd.DataFrame], out_dir: Path) -> Plot:
    """Row-normalised, annotated confusion matrices side by side (title -> summed counts)."""
    plot = Plot("confusion", "Confusion matrices (test, summed over seeds, row-normalised)")
    if not matrices:
        plot.skipped = "no confusion_<split>.csv in the run directories of the best setting or the reference"
        return plot
    with plot_style():
        n = len(matrices)
        # One shared colour bar in its own narrow column keeps the matrices the same size.
        fig, axes = plt.subplots(
            1, n + 1, figsize=(5.0 * n + 0.8, 4.8), layout="constrained", width_ratios=[1] * n + [0.05]
        )
        for i, (ax, (title, counts)) in enumerate(zip(axes[:n], matrices.items(), strict=True)):
            rates = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0)
            sns.heatmap(
                rates,
                annot=True,
                fmt=".2f",
                cmap="Blues",
                vmin=0,
                vmax=1,
                square=True,
                cbar=i == n - 1,
                cbar_ax=axes[n] if i == n - 1 else None,
                cbar_kws={"label": "Fraction of true class"},
                ax=ax,
            )
            ax.set(xlabel="Predicted class", ylabel="True class" if i == 0 else "", title=title)
            plt.setp(ax.get_xticklabels(), rotation=35, ha="right", rotation_mode="anchor")
            ax.tick_params(axis="y", rotation=0)
        plot.files = save(fig, out_dir, plot.name)
    return plot
