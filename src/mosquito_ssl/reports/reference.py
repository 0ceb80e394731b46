"""``--reference COLUMN=VALUE[,...]``: parsing, matching rows, and saying when it matches nothing.

    mosquito-ssl reports build runs/sweep/results.sqlite --reference encoder=random
    mosquito-ssl reports build runs/sweep/results.sqlite --reference method=mae,mask_ratio=0.8

``check_reference`` runs before any test. A reference given on the command line that matches no
reported row is an error naming the values that exist: a value of a column that has other values
is almost certainly a typo, and a report with nothing tested is not what was asked for. The
default (``encoder=random``) missing from a store without that baseline, or a reference missing
from some of the tables only, is one warning: those settings are reported untested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .labels import value_text

DEFAULT_REFERENCE = "encoder=random"
MAX_LISTED = 12  # values or tables named in one message


def parse_reference(text: str) -> tuple[tuple[str, str], ...]:
    """``"encoder=random,freeze=frozen"`` -> ``(("encoder", "random"), ("freeze", "frozen"))``."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ConfigError(f"--reference {text!r}: write COLUMN=VALUE[,COLUMN=VALUE], e.g. encoder=random")
    return tuple((k.strip(), v.strip()) for k, v in pairs)


def _matches(col: pd.Series, value: str) -> pd.Series:
    """Numbers compare as numbers ("0.8" matches 0.8 as REAL, "1" matches 1.0), the rest as text."""
    target = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.api.types.is_numeric_dtype(col) and not np.isnan(target):
        numbers = pd.to_numeric(col, errors="coerce").astype(float).to_numpy()
        return pd.Series(np.isclose(numbers, target, rtol=1e-9, atol=0.0), index=col.index)  # NaN never matches
    return col.astype(str) == value


def reference_mask(frame: pd.DataFrame, reference) -> pd.Series:
    """Rows matching every ``COLUMN=VALUE`` of ``reference``."""
    mask = pd.Series(True, index=frame.index)
    for key, value in reference:
        if key not in frame.columns:
            raise ConfigError(f"--reference {key}={value}: {key} is not a column of the store")
        mask &= _matches(frame[key], value)
    return mask


def _listed(values) -> str:
    values = list(values)
    more = f", ... ({len(values) - MAX_LISTED} more)" if len(values) > MAX_LISTED else ""
    return ", ".join(map(str, values[:MAX_LISTED])) + more


def _values(col: pd.Series) -> str:
    present = col.dropna().unique()
    ordered = sorted(present) if pd.api.types.is_numeric_dtype(col) else sorted(map(str, present))
    return _listed(value_text(v) for v in ordered) or "none (not set in any reported row)"


def unmatched(frame: pd.DataFrame, reference, split: str) -> str:
    """Why no row matches: the first value absent from its column, with the values that exist;
    else (each value exists, never together) the combinations that do."""
    for key, value in reference:
        if not _matches(frame[key], value).any():
            return f"no row of split {split!r} has {key}={value}; the {key} values are: {_values(frame[key])}"
    keys = [k for k, _ in reference]
    combos = frame[keys].drop_duplicates().sort_values(keys, kind="stable")
    shown = ("(" + ", ".join("—" if pd.isna(v) else value_text(v) for v in row) + ")" for row in combos.to_numpy())
    return f"no row of split {split!r} has them together; the ({', '.join(keys)}) values are: {_listed(shown)}"


def _missing_tables(frame: pd.DataFrame, is_ref: pd.Series, blocks: list[str]) -> tuple[list[str], pd.Index]:
    """The (probe, match keys) tables without a reference row, and their rows."""
    missing, rows = [], []
    for key, block in frame.groupby(blocks, dropna=False, sort=False):
        if not is_ref.loc[block.index].any():
            values = key if isinstance(key, tuple) else (key,)
            rows.append(block.index)
            missing.append(
                ", ".join(f"{k}={'—' if pd.isna(v) else value_text(v)}" for k, v in zip(blocks, values, strict=True))
            )
    return missing, (rows[0].append(rows[1:]) if rows else frame.index[:0])


def check_reference(frame: pd.DataFrame, text: str | None, match, split: str) -> str | None:
    """None when the reference (``text``; None = the default) has a row in every table of ``frame``
    (labelled headline rows; a table = probe x ``match`` keys); else the warning to show. Raises
    ConfigError when a reference the user gave matches no row at all."""
    given = text is not None
    text = DEFAULT_REFERENCE if text is None else text
    reference = parse_reference(text)
    is_ref = reference_mask(frame, reference)
    if not is_ref.any():
        why = unmatched(frame, reference, split)
        if given:
            raise ConfigError(f"--reference {text}: {why}; use one of those values (or leave --reference out)")
        return f"--reference {text} (the default): {why}; nothing is tested: pass --reference COLUMN=VALUE"
    blocks = ["probe", *(k for k in dict.fromkeys(match) if k != "probe")]
    missing, rows = _missing_tables(frame, is_ref, blocks)
    if not missing:
        return None
    n = frame.groupby(blocks, dropna=False).ngroups
    why = unmatched(frame.loc[rows], reference, split).replace(f"no row of split {split!r} has", "none has", 1)
    return (
        f"--reference {text} matches no row where {'; '.join(missing[:MAX_LISTED])} ({len(missing)} of {n} "
        f"tables): {why}; settings there are reported untested"
    )
