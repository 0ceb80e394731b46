"""Setting axes of a sweep grid: any ``[pretrain]`` or ``[probe]`` key swept over a list of values.

    mosquito-ssl benchmarks run spec.toml --set 'grid.pretrain.mask_ratio=[0.6,0.8]' --dry-run

In ``[grid]`` a setting is swept with a quoted dotted key, ``"pretrain.mask_ratio" = [0.6, 0.8]``
or ``"probe.max_clips_per_group" = [5, 20]`` (the unquoted TOML form, a ``pretrain`` sub-table
of ``[grid]``, means the same). ``mask_strength``, ``mask_kind`` and ``loss_on`` are such axes
with a bare name, a fixed store column and a default list (``grid.mask_strength`` is
``grid."pretrain.mask_strength"``). Owns the key checks, the value types, which methods own a
setting (``owners``), the store column of an axis and its ``meta.axes`` entry. Which cells an
axis expands is ``cells.py``'s.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..store.schema import AXIS_COLUMN, FIXED_COLUMNS

SETTING_TABLES = ("pretrain", "probe")
# [pretrain] settings with a bare [grid] name, their own store column and a default list; they
# shape the reconstruct method only (their owners), so other methods' cells never get them.
FIXED_SETTINGS: dict[str, list[Any]] = {"mask_strength": [1.0], "mask_kind": ["specaugment"], "loss_on": ["all"]}


@dataclass(frozen=True)
class Axis:
    """One swept setting: ``table.key`` over ``values``, stored in column ``column``."""

    table: str  # pretrain | probe
    key: str  # a field of PretrainConfig / ProbeConfig
    values: tuple
    column: str
    owners: tuple[str, ...] = ()  # the methods whose setting it is; () = not a method setting
    fixed: bool = False  # one of FIXED_SETTINGS: a field of Cell, not an entry of Cell.axes

    @property
    def label(self) -> str:
        """How the spec spells it after ``grid.``: ``mask_strength`` or ``"pretrain.mask_ratio"``."""
        return self.key if self.fixed else f'"{self.table}.{self.key}"'

    @property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.values)

    def meta(self) -> dict[str, Any]:
        """Its entry in the store's ``meta.axes`` (schema.py)."""
        return {"table": self.table, "key": self.key, "numeric": self.numeric}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _config(table: str) -> type:
    if table == "pretrain":
        from ..pretrain.config import PretrainConfig

        return PretrainConfig
    from ..probe.config import ProbeConfig

    return ProbeConfig


def _fields(table: str) -> set[str]:
    return {f.name for f in dataclasses.fields(_config(table))}


@functools.cache
def owners(key: str) -> tuple[str, ...]:
    """The SSL methods whose setting ``key`` is (empty: a setting of every pretraining)."""
    from ..model.methods import methods_with

    return tuple(methods_with(key))


def column_name(table: str, key: str) -> str:
    """The store column of ``table.key``: the key, or ``<table>_<key>`` when both tables have it."""
    return f"{table}_{key}" if key in _fields("pretrain") & _fields("probe") else key


def check_key(table: str, key: str, owned: dict[str, str], name: str | None = None) -> None:
    """``key`` is a setting of ``[table]`` the sweep does not set itself (``name``: how to call it)."""
    name = name or f"{table}.{key}"
    if key in owned:
        raise ConfigError(f"{name} is set by the sweep: remove it and use {owned[key]} instead")
    valid = sorted(_fields(table) - set(owned))
    if key not in valid:
        raise ConfigError(f"{name} is not a setting; valid keys of [{table}] are: {', '.join(valid)}")


def flatten(grid: dict) -> dict:
    """``[grid]`` with the nested form (``pretrain.mask_ratio = [...]`` unquoted) as dotted keys."""
    out: dict[str, Any] = {}
    for key, value in grid.items():
        if key in SETTING_TABLES and isinstance(value, dict):
            out.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            out[key] = value
    return out


def setting_key(key: str, grid: dict, sections: dict[str, dict], owned: dict[str, dict[str, str]]) -> str:
    """A dotted ``[grid]`` key checked; returns its canonical spelling (``pretrain.mask_strength`` -> bare)."""
    table, _, name = key.partition(".")
    label = f'grid."{key}"'
    if table == "pretrain" and name in FIXED_SETTINGS:
        if name in grid:
            raise ConfigError(f"{label} and grid.{name} are the same axis: keep one")
        return name
    check_key(table, name, owned[table], label)
    if name in sections[table]:
        raise ConfigError(
            f"{label} and {table}.{name} both set {name}: remove {table}.{name} to sweep it, or the grid key"
        )
    column = column_name(table, name)
    if column in FIXED_COLUMNS or not AXIS_COLUMN.match(column):
        raise ConfigError(
            f"{label} cannot be swept: its store column would be {column!r}, one of the store's own "
            f"columns; set it in [{table}] instead"
        )
    return key


def coerce(table: str, key: str, value: Any) -> Any:
    """A value as the config field holds it: an int for a float field is a float (one cell, one id)."""
    hint = typing.get_type_hints(_config(table)).get(key)
    floats = hint is float or float in typing.get_args(hint)
    return float(value) if floats and _is_number(value) else value


def setting_axes(grid: dict[str, tuple]) -> tuple[Axis, ...]:
    """The setting axes of a checked grid (fixed ones first), each with its column and owners."""
    axes = []
    for name in (*FIXED_SETTINGS, *(k for k in grid if "." in k)):
        table, _, key = name.rpartition(".")
        table = table or "pretrain"
        own = owners(key) if table == "pretrain" else ()
        axes.append(Axis(table, key, grid[name], column_name(table, key), own, fixed=name in FIXED_SETTINGS))
    return tuple(axes)


def check_owners(axes: tuple[Axis, ...], methods: tuple[str, ...], given: set[str]) -> None:
    """A method setting swept in [grid] needs one of its methods in grid.method (else a typo)."""
    for axis in axes:
        spelled = axis.key if axis.fixed else f"{axis.table}.{axis.key}"
        if axis.owners and spelled in given and not set(axis.owners) & set(methods):
            add = " or ".join(f'"{m}"' for m in axis.owners)
            raise ConfigError(
                f"grid.{axis.label} is a setting of method {' / '.join(axis.owners)}, none of which is in "
                f"grid.method {list(methods)}: add {add} to grid.method, or remove grid.{axis.label}"
            )
