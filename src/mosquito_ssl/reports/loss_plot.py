"""Pretraining loss curves: train loss and the checkpoint-selection (validation) loss per epoch.

    mosquito-ssl reports build runs/sweep/results.sqlite   # -> plots/pretrain_loss.{png,pdf}

Read from each pretraining's ``log_history.json``: the validation loss is ``eval_loss`` (runs
that write ``loss_name`` to metrics.json) or ``eval_mse`` (older runs). The y axis names the
methods' loss (``loss_name``, e.g. "masked-patch MSE"), or says "validation loss" when a run
does not name it: never a reconstruction MSE for another method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .plots import AXIS_LABELS, Plot, plot_style, save

CURVES = ("train loss", "validation loss")
UNNAMED = "validation loss"


@dataclass(frozen=True)
class PretrainHistory:
    """One pretraining: its legend ``label`` (e.g. ``mae, mask_ratio=0.8``), the Trainer's
    ``log_history`` and metrics.json's ``loss_name`` (None for runs made before it)."""

    label: str
    history: list
    loss_name: str | None = None


def _validation(entry: dict, named: bool):
    # The selection loss: new runs log it as eval_loss; older ones as eval_mse, next to the
    # Trainer's own eval_loss.
    first, second = ("eval_loss", "eval_mse") if named else ("eval_mse", "eval_loss")
    return entry.get(first, entry.get(second))


def history_frame(histories: dict[str, PretrainHistory]) -> pd.DataFrame:
    """Long frame (pretraining, setting, epoch, curve, loss) from HF ``log_history`` lists."""
    rows = []
    for run, item in histories.items():
        for entry in item.history:
            if not isinstance(entry, dict) or "epoch" not in entry:
                continue
            if "loss" in entry:
                rows.append((run, item.label, entry["epoch"], CURVES[0], entry["loss"]))
            val = _validation(entry, item.loss_name is not None)
            if val is not None:
                rows.append((run, item.label, entry["epoch"], CURVES[1], val))
    return pd.DataFrame(rows, columns=["pretraining", "setting", "epoch", "curve", "loss"])


def loss_axis_label(histories: dict[str, PretrainHistory]) -> str:
    """The loss every run names ("Masked-patch MSE"; several names joined by " / "), else "Validation loss"."""
    names = {item.loss_name for item in histories.values()}
    text = UNNAMED if not names or None in names else " / ".join(sorted(str(n) for n in names))
    return text[:1].upper() + text[1:]


def loss_plot(histories: dict[str, PretrainHistory], out_dir: Path) -> Plot:
    """Train and validation loss per epoch, one line per pretraining, coloured by its setting."""
    plot = Plot("pretrain_loss", "Pretraining loss curves")
    data = history_frame(histories)
    if data.empty:
        plot.skipped = "no log_history.json with loss entries in the pretrain directories"
        return plot
    used = {run: histories[run] for run in data["pretraining"].unique()}
    with plot_style():
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        sns.lineplot(
            data=data,
            x="epoch",
            y="loss",
            hue="setting",
            hue_order=list(data["setting"].unique()),
            style="curve",
            style_order=[c for c in CURVES if c in set(data["curve"])],
            units="pretraining",
            estimator=None,
            palette="colorblind",
            ax=ax,
            lw=1.4,
        )
        if data["loss"].min() > 0 and data["loss"].max() / data["loss"].min() > 20:
            ax.set_yscale("log")  # early epochs would otherwise flatten the rest
        ax.set(xlabel=AXIS_LABELS["epoch"], ylabel=loss_axis_label(used))
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
        plot.files = save(fig, out_dir, plot.name)
    return plot
