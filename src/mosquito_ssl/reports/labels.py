"""Which settings name a table row, and how a setting reads: ``reconstruct, mask_strength=0.5``.

    mosquito-ssl reports build runs/sweep/results.sqlite --rows method,mask_ratio --columns freeze

A setting is named by its store column and value, never by an internal code; a setting that does
not apply to a row (NULL, e.g. ``mask_ratio`` of a reconstruct cell or of a baseline) is left out
of its label. Any setting column of the store can be a key (``Store.setting_columns``): the fixed
ones of DEVELOPERS.md and, from schema 3, one column per swept ``[pretrain]``/``[probe]`` setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .load import BASELINE_LABELS, FIXED_SETTINGS, RESULT_FIXED_COLUMNS, SSL_COLUMNS

# Fixed settings that split results into different cells; if they vary but are not rows or
# columns they are added to the rows (then the swept axes), so that seeds are the only thing
# ever averaged over.
AUTO_KEYS = (*SSL_COLUMNS, "pooling")


def value_text(value) -> str:
    """``0.8`` for 0.8 stored as REAL, ``20`` for 20.0, text as it is."""
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def named_values(row, keys) -> str:
    """``mae, mask_ratio=0.8``: each applicable key as ``name=value``; the method is a name already."""
    parts = [(k, row[k]) for k in keys if pd.notna(row[k])]
    return ", ".join(value_text(v) if k == "method" else f"{k}={value_text(v)}" for k, v in parts)


def frame_axes(results: pd.DataFrame) -> list[str]:
    """Swept-setting columns of a results frame: every column beyond the fixed schema (schema 3)."""
    return [c for c in results.columns if c not in RESULT_FIXED_COLUMNS]


def check_keys(valid, keys, flag: str) -> None:
    """ConfigError naming the valid keys when one of ``keys`` is not a setting column of the store."""
    bad = [k for k in keys if k not in valid]
    if bad:
        raise ConfigError(f"{flag} {', '.join(bad)}: not a setting of the store; use one of: {', '.join(valid)}")


def _varies(frame: pd.DataFrame, col: str) -> bool:
    # Within an encoder, so that the hand-crafted baseline's own pooling ("none") does not label
    # every row with the sweep's single pooling.
    return col in frame.columns and frame.groupby("encoder")[col].nunique().max() > 1


def row_keys(frame: pd.DataFrame, rows, columns, axes=()) -> list[str]:
    """``rows`` plus every setting (fixed, then ``axes``) that varies and is not already used.

    With no ``rows``: ``mask_strength`` whenever reconstruct cells have one (the default of every
    store before the swept axes, even with one strength) plus what varies; the method goes first.
    """
    keys = list(rows)
    if not keys and frame.loc[frame["encoder"] == "ssl", "mask_strength"].notna().any():
        keys.append("mask_strength")
    for col in (*AUTO_KEYS, *axes):
        if col not in keys and col not in columns and _varies(frame, col):
            keys.append(col)
    if "method" in keys:  # the method names the row first: "mae", "reconstruct, mask_strength=0.5"
        keys.remove("method")
        keys.insert(0, "method")
    if not keys:  # nothing varies: name rows by the method (or the encoder, with baselines only)
        keys = [k for k in ("method", "encoder") if k not in columns and frame[k].notna().any()][:1]
    return keys


def _ssl_label(row, keys) -> str:
    parts = [k for k in keys if pd.notna(row[k])]
    if len(parts) == 1 and parts[0] in FIXED_SETTINGS:  # the row header names the one key: "0.5"
        return value_text(row[parts[0]])
    return named_values(row, keys) or str(row["encoder"])


def baseline_label(row, keys) -> str:
    name = BASELINE_LABELS.get(row["encoder"], str(row["encoder"]))
    # A fixed setting's value is a name already ("mean"); a swept one needs its name ("max_clips_per_group=5").
    extra = [
        value_text(row[k]) if k in FIXED_SETTINGS else f"{k}={value_text(row[k])}"
        for k in keys
        if k not in SSL_COLUMNS and k != "encoder" and pd.notna(row[k])
    ]
    return f"{name} ({', '.join(extra)})" if extra else name


def setting_label(row, keys) -> str:
    """The row label of one store row: ``mae, mask_ratio=0.8`` or ``no pretraining (mean)``."""
    return _ssl_label(row, keys) if row["encoder"] == "ssl" else baseline_label(row, keys)


def label_settings(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Add ``setting`` (row label), ``setting_long`` (legend label) and ``order`` (ssl settings by
    their key values, then the baselines in a fixed order)."""
    out = frame.copy()
    ssl = out["encoder"] == "ssl"
    out["setting"] = [setting_label(r, keys) for _, r in out.iterrows()]
    # Plot legends have no row header to say what "0.5" is, so they get "mask_strength=0.5".
    out["setting_long"] = [
        ", ".join(f"{k}={value_text(r[k])}" for k in keys if pd.notna(r[k])) if s else lab
        for (_, r), s, lab in zip(out.iterrows(), ssl, out["setting"], strict=True)
    ]
    out["order"] = _order(out, ssl, keys)
    return out


def _order(out: pd.DataFrame, ssl: pd.Series, keys) -> pd.Series:
    """ssl settings sorted by their key values; then each baseline (fixed order), by its swept
    settings' values (``max_clips_per_group`` 5 before 20), ties left to the setting's name."""
    ssl_order = out[ssl].sort_values(list(keys), kind="stable")["setting"].unique()
    rank = {name: float(i) for i, name in enumerate(ssl_order)}
    baseline_rank = out["encoder"].map({e: i for i, e in enumerate(BASELINE_LABELS)}).fillna(len(BASELINE_LABELS))
    swept = [k for k in keys if k not in FIXED_SETTINGS]
    base = out[~ssl].assign(_rank=baseline_rank[~ssl]).sort_values(["_rank", *swept], kind="stable")
    # Baselines without swept keys share their encoder's rank, as before the swept axes.
    ids = base.groupby(["_rank", *swept], dropna=False, sort=False).ngroup()
    rank.update({name: len(ssl_order) + float(i) for i, name in zip(ids, base["setting"], strict=True)})
    return out["setting"].map(rank)
