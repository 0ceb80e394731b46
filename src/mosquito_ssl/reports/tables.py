"""Comparison tables: seeds aggregated per setting, rendered as Markdown, LaTeX and CSV.

    mosquito-ssl reports build runs/sweep/results.sqlite --metric macro_f1 --percent --decimals 1

Rows are settings (``mask_strength`` and whichever of ``mask_kind``/``loss_on``/``pooling``
vary, then the baselines), columns are ``freeze`` values; one table per metric. Numbers come
from pandas groupby; this module only selects, aggregates and formats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError
from .load import BASELINE_LABELS, SSL_COLUMNS

# Settings that split results into different cells; if they vary but are not rows or columns
# they are added to the rows, so that seeds are the only thing ever averaged over.
SETTING_COLUMNS = (*SSL_COLUMNS, "pooling")
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


def check_keys(results: pd.DataFrame, keys, flag: str) -> None:
    bad = [k for k in keys if k not in results.columns or k in ("value", "cell_id")]
    if bad:
        cols = [c for c in results.columns if c not in ("value", "cell_id")]
        raise ConfigError(f"{flag} {', '.join(bad)}: not a column of the store; use one of: {', '.join(cols)}")


def row_keys(frame: pd.DataFrame, rows, columns) -> list[str]:
    """``rows`` plus every setting column that varies among cells of one encoder and is not
    already used. Within an encoder, so that the hand-crafted baseline's own pooling
    ("none") does not label every row with the sweep's single pooling."""
    keys = list(rows)
    for col in SETTING_COLUMNS:
        if col not in keys and col not in columns and frame.groupby("encoder")[col].nunique().max() > 1:
            keys.append(col)
    if "method" in keys:  # the method names the row first: "mae", "reconstruct, mask_strength=0.5"
        keys.remove("method")
        keys.insert(0, "method")
    return keys


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def label_settings(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Add ``setting`` (readable row label) and ``order`` (ssl settings first, then baselines)."""
    out = frame.copy()
    ssl = out["encoder"] == "ssl"

    def ssl_label(row) -> str:
        parts = [(k, row[k]) for k in keys if pd.notna(row[k])]
        if len(parts) == 1:
            return _value_text(parts[0][1])
        # the method is a name, not a number: it needs no "method=" to be read
        return ", ".join(_value_text(v) if k == "method" else f"{k}={_value_text(v)}" for k, v in parts)

    def other_label(row) -> str:
        name = BASELINE_LABELS.get(row["encoder"], str(row["encoder"]))
        extra = [_value_text(row[k]) for k in keys if k not in SSL_COLUMNS and k != "encoder" and pd.notna(row[k])]
        return f"{name} ({', '.join(extra)})" if extra else name

    out["setting"] = [ssl_label(r) if s else other_label(r) for (_, r), s in zip(out.iterrows(), ssl, strict=True)]
    # Plot legends have no row header to say what "0.5" is, so they get "mask_strength=0.5".
    out["setting_long"] = [
        ", ".join(f"{k}={_value_text(r[k])}" for k in keys if pd.notna(r[k])) if s else lab
        for (_, r), s, lab in zip(out.iterrows(), ssl, out["setting"], strict=True)
    ]
    # ssl settings first, sorted by their (numeric) key values; baselines after, in a fixed order.
    ssl_order = out[ssl].sort_values(list(keys), kind="stable")["setting"].unique()
    rank = {name: i for i, name in enumerate(ssl_order)}
    baseline_rank = {name: len(rank) + i for i, name in enumerate(BASELINE_LABELS)}
    out["order"] = np.where(
        ssl, out["setting"].map(rank), out["encoder"].map(baseline_rank).fillna(len(rank) + len(baseline_rank))
    )
    return out


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
    for col in columns:  # a NULL column key (e.g. a baseline without freeze) still gets a column
        agg[col] = agg[col].astype(object).where(agg[col].notna(), "n/a").map(_value_text)
    several = agg["probe"].nunique() > 1 and "probe" not in columns
    index = ["probe", "setting"] if several else ["setting"]
    ordered = agg.sort_values([*index[:-1], "order", "setting"], kind="stable")
    table = agg.pivot(index=index, columns=list(columns), values="text")
    table = table.reindex(pd.unique(pd.MultiIndex.from_frame(ordered[index]) if len(index) > 1 else ordered[index[0]]))
    if list(columns) == ["freeze"]:
        table = table[freeze_order(table.columns)]
    table.index = table.index.set_names([*index[:-1], ", ".join(index_keys)])
    return table.fillna("---" if style == "latex" else MISSING)


def summary(results: pd.DataFrame, metric: str = "balanced_accuracy", split: str = "test") -> pd.DataFrame:
    """Mean over seeds of one metric: a row per setting (baselines by name), a column per freeze x probe.

    The short table ``mosquito-ssl demo`` prints; settings absent under a freeze/probe show ``MISSING``.
    """
    frame = select(results, split, [metric])
    frame = label_settings(frame, row_keys(frame, ("mask_strength",), ("freeze", "probe")))
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
