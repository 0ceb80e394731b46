"""Comparison tables: seeds aggregated per setting, rendered as Markdown, LaTeX and CSV.

    mosquito-ssl reports build runs/sweep/results.sqlite --metric macro_f1 --percent --decimals 1

Rows are settings (by default ``method`` and ``mask_strength`` and whichever other setting
varies, swept axes such as ``mask_ratio`` included; labels from ``labels.py``; then the baselines),
columns are ``freeze`` values; one table per metric. Numbers come
from pandas groupby; this module only selects, aggregates and formats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError
from .labels import frame_axes, label_settings, row_keys, value_text

METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "roc_auc": "ROC AUC",
}
MISSING = "—"


def metric_label(metric: str, percent: bool = False) -> str:
    kind, _, cls = metric.partition(":")
    label = METRIC_LABELS.get(kind, kind.replace("_", " ").capitalize())
    label = f"{label} ({cls})" if cls else label
    return f"{label} (%)" if percent else label


def freeze_order(values) -> list:
    """frozen, partial:1, partial:2, ..., full: from least to most trainable; others by name."""

    def key(value):
        text = str(value)
        if text == "frozen":
            return (0, 0, text)
        if text.startswith("partial:") and text[8:].isdigit():
            return (1, int(text[8:]), text)
        return (2 if text in ("full", "none") else 3, 0, text)

    return sorted(pd.unique(pd.Series(list(values)).dropna()), key=key)


@dataclass(frozen=True)
class NumberFormat:
    """How cell numbers are written: ``decimals``, ``percent`` (× 100), ``ci`` (add 95% CI)."""

    decimals: int = 3
    percent: bool = False
    ci: bool = False


def select(results: pd.DataFrame, split: str, metrics, probes=None, layerwise=False) -> pd.DataFrame:
    """Rows of ``split`` and ``metrics`` (headline rows, or layer rows when ``layerwise``)."""
    splits = sorted(results["split"].dropna().unique())
    if split not in splits:
        raise ConfigError(f"split {split!r} is not in the store; --split must be one of: {', '.join(splits)}")
    frame = results[results["split"] == split]
    available = sorted(frame["metric"].unique())
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ConfigError(
            f"metric {', '.join(map(repr, unknown))} is not in the store for split {split!r}; "
            f"available metrics: {', '.join(available)}"
        )
    frame = frame[frame["metric"].isin(list(metrics))]
    if probes:
        present = sorted(frame["probe"].dropna().unique())
        bad = [p for p in probes if p not in present]
        if bad:
            raise ConfigError(f"probe {', '.join(bad)} not in the store; available: {', '.join(present)}")
        frame = frame[frame["probe"].isin(list(probes))]
    return frame[frame["layer"].notna() == layerwise].copy()


def aggregate(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Mean, std, n and t-based 95% CI of ``value`` over seeds, one row per cell of ``keys``."""
    grouped = frame.groupby(list(keys), dropna=False, sort=False)["value"]
    agg = grouped.agg(mean="mean", std="std", n="count").reset_index()
    dof = (agg["n"] - 1).where(agg["n"] > 1)
    half = stats.t.ppf(0.975, dof) * agg["std"] / np.sqrt(agg["n"])
    agg["ci_low"] = agg["mean"] - half
    agg["ci_high"] = agg["mean"] + half
    return agg


def mark_best(agg: pd.DataFrame) -> pd.DataFrame:
    """``best`` = highest mean within each (metric, probe) table block (all metrics: higher is better)."""
    out = agg.copy()
    out["best"] = out["mean"] == out.groupby(["metric", "probe"])["mean"].transform("max")
    return out


def _flag(row, key: str) -> bool:
    value = row.get(key, False)
    return isinstance(value, (bool, np.bool_)) and bool(value)


def cell_text(row, fmt: NumberFormat, style: str = "md") -> str:
    """One table cell, e.g. ``0.812 ± 0.021 (n=3)``; ``style`` md | latex | html | plain."""
    scale = 100.0 if fmt.percent else 1.0
    num = lambda v: f"{v * scale:.{fmt.decimals}f}"  # noqa: E731
    pm = r" $\pm$ " if style == "latex" else " ± "
    text = num(row["mean"])
    if row["n"] > 1:
        text += pm + num(row["std"])
        if fmt.ci:
            text += f" [{num(row['ci_low'])}, {num(row['ci_high'])}]"
    if _flag(row, "significant"):
        text += {"latex": r"\textsuperscript{\dag}"}.get(style, "†")
    if _flag(row, "best"):
        text = {"md": f"**{text}**", "latex": rf"\textbf{{{text}}}", "html": f"<b>{text}</b>"}.get(style, text)
    return f"{text} (n={int(row['n'])})"


def wide(agg: pd.DataFrame, index_keys, columns, fmt: NumberFormat, style: str = "md") -> pd.DataFrame:
    """Pivot one metric's cells to settings x ``columns`` with formatted text.

    ``index_keys`` (the row keys) only name the row axis, e.g. ``mask_strength``.
    """
    agg = agg.copy()
    agg["text"] = [cell_text(r, fmt, style) for _, r in agg.iterrows()]
    order: list[str] = []
    for col in columns:  # a NULL column key (e.g. a baseline without freeze) still gets a column
        numeric = pd.api.types.is_numeric_dtype(agg[col]) and agg[col].notna().any()
        if numeric:  # a number names nothing alone: "max_clips_per_group=5", in numeric order
            order = [f"{col}={value_text(v)}" for v in sorted(agg[col].dropna().unique())] + ["n/a"]
        text = agg[col].astype(object).where(agg[col].notna(), "n/a").map(value_text)
        agg[col] = (col + "=" + text).where(text != "n/a", text) if numeric else text
    several = agg["probe"].nunique() > 1 and "probe" not in columns
    index = ["probe", "setting"] if several else ["setting"]
    ordered = agg.sort_values([*index[:-1], "order", "setting"], kind="stable")
    table = agg.pivot(index=index, columns=list(columns), values="text")
    table = table.reindex(pd.unique(pd.MultiIndex.from_frame(ordered[index]) if len(index) > 1 else ordered[index[0]]))
    if list(columns) == ["freeze"]:
        table = table[freeze_order(table.columns)]
    elif len(columns) == 1 and order:
        table = table[[c for c in order if c in table.columns]]
    table.index = table.index.set_names([*index[:-1], ", ".join(index_keys)])
    return table.fillna("---" if style == "latex" else MISSING)


def summary(results: pd.DataFrame, metric: str = "balanced_accuracy", split: str = "test") -> pd.DataFrame:
    """Mean over seeds of one metric: a row per setting (baselines by name), a column per freeze x probe.

    The short table ``mosquito-ssl demo`` prints; settings absent under a freeze/probe show ``MISSING``.
    """
    frame = select(results, split, [metric])
    frame = label_settings(frame, row_keys(frame, (), ("freeze", "probe"), frame_axes(results)))
    table = frame.pivot_table(index=["order", "setting"], columns=["freeze", "probe"], values="value", aggfunc="mean")
    table = table.droplevel("order")
    freezes = freeze_order(table.columns.get_level_values("freeze"))
    table = table[sorted(table.columns, key=lambda c: (freezes.index(c[0]), c[1]))]
    return table.map(lambda v: MISSING if pd.isna(v) else f"{v:.3f}")


def _cell_md(value) -> str:
    """A Markdown cell: NULL (a baseline's mask_strength, say) reads as MISSING, never "nan"."""
    text = MISSING if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return text.replace("|", r"\|")


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub Markdown table (tabulate is not a dependency; this is all we need of it)."""
    flat = table.reset_index()
    names = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in flat.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join(["---"] * len(names)) + "|"]
    for _, row in flat.iterrows():
        lines.append("| " + " | ".join(_cell_md(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    ">": r"\textgreater{}",  # OT1 fonts print < and > as ¡ and ¿
    "<": r"\textless{}",
    # pdflatex without extra packages cannot typeset these as Unicode
    "†": r"\dag{}",
    "±": r"$\pm$",
    "α": r"$\alpha$",
    "×": r"$\times$",
    "—": "---",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame, caption: str, label: str, note: str) -> str:
    """Booktabs table via ``Styler.to_latex``; cells are already LaTeX, labels get escaped."""
    table = table.copy()
    table.index = table.index.set_names([tex_escape(n) if n else n for n in table.index.names])
    table.columns = table.columns.set_names([tex_escape(n) if n else n for n in table.columns.names])
    styler = table.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    tex = styler.to_latex(
        hrules=True,
        caption=tex_escape(caption),
        label=label,
        position="htbp",
        position_float="centering",
        multirow_align="t",
    )
    note_tex = "\\par\\smallskip\n{\\footnotesize \\textit{Note.} " + tex_escape(note) + "\\par}\n"
    return tex.replace("\\end{table}", note_tex + "\\end{table}")
