"""Validating the tables of a sweep spec: ``--set`` overrides, ``[grid]``, ``[pretrain]``, ``[probe]``.

    mosquito-ssl benchmarks run configs/mask_strength.toml --set grid.seed=[0,1,2] --dry-run
    mosquito-ssl benchmarks run spec.toml --set 'grid.pretrain.mask_ratio=[0.6,0.8]' --dry-run

Every mistake is a ``ConfigError`` naming the key and the fix, raised before any work. The grid
has the structural axes (``method``, ``freeze``, ``probe``, ``pooling``, ``seed``) and setting
axes: any ``[pretrain]`` / ``[probe]`` key as ``"table.key" = [values]`` (``axes.py``; the bare
``mask_strength``, ``mask_kind``, ``loss_on`` are such axes). Freeze values go through
``model/freeze.py`` (the one freeze vocabulary) and are stored in canonical form (``none`` ->
``full``); probe kinds and their pairing with freeze come from ``probe/kinds.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tomllib

from ..errors import ConfigError
from ..model.freeze import parse_freeze
from ..probe.kinds import PROBES, pairs
from .axes import FIXED_SETTINGS, check_key, check_owners, coerce, flatten, owners, setting_axes, setting_key

TABLES = ("sweep", "grid", "pretrain", "probe")
# The structural axes; "method" defaults to PretrainConfig's method (the list here is for messages).
STRUCTURAL: dict[str, list[Any]] = {
    "method": ["mae"],
    "freeze": ["frozen"],
    "probe": ["linear"],
    "pooling": ["freq_stack"],
    "seed": [0],
}
GRID_DEFAULTS: dict[str, list[Any]] = {**STRUCTURAL, **FIXED_SETTINGS}
# Set per cell by the sweep itself, so they may not appear in [pretrain] / [probe].
PRETRAIN_OWNED = {
    "data": "sweep.pretrain_data",
    "out": "sweep.out",
    "run_name": "sweep.out",
    "seed": "grid.seed",
    "method": "grid.method",
    "mask_strength": "grid.mask_strength",
    "mask_kind": "grid.mask_kind",
    "loss_on": "grid.loss_on",
    "resume": "the sweep (always on)",
    "force": "--force",
}
PROBE_OWNED = {
    "data": "sweep.probe_data",
    "encoder": "the grid and sweep.baselines",
    "out": "sweep.out",
    "run_name": "sweep.out",
    "probe": "grid.probe",
    "freeze": "grid.freeze",
    "pooling": "grid.pooling",
    "seed": "grid.seed",
    "encoder_name": "the sweep",
    "force": "--force",
}
OWNED = {"pretrain": PRETRAIN_OWNED, "probe": PROBE_OWNED}


def check_freeze(value: Any, key: str = "grid.freeze", num_layers: int | None = None) -> str:
    """A grid freeze value in canonical form; the rules are ``model/freeze.py``'s."""
    if not isinstance(value, str):
        raise ConfigError(f'{key} {value!r} is not valid: write it as a string, e.g. "partial:1"')
    return str(parse_freeze(value, num_layers=num_layers, flag=key))  # str() is the canonical form


def as_list(value: Any, key: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        example = GRID_DEFAULTS.get(key.partition(".")[2], ["..."])
        raise ConfigError(f"{key} is empty: give at least one value, e.g. {key} = {example}")
    # drop repeats, keep order (list values, of tuple settings, as tuples: hashable)
    return list(dict.fromkeys(tuple(v) if isinstance(v, list) else v for v in values))


def _parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (numbers, lists, booleans), else as a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    parsed = []
    for text in overrides:
        key, eq, value = text.partition("=")
        if not eq or "." not in key:
            raise ConfigError(f"--set {text!r} must look like table.key=value, e.g. --set pretrain.epochs=3")
        parsed.append((key.strip(), _parse_value(value.strip())))
    return parsed


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...] | dict[str, Any] | None) -> dict:
    """Apply ``table.key=value`` overrides (strings from ``--set``, or a dict) to the raw spec."""
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = _parse_overrides(overrides or [])
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for key, value in items:
        table, _, name = key.partition(".")
        if table not in TABLES or not name:
            raise ConfigError(f"--set {key}: the table must be sweep, grid, pretrain or probe, e.g. grid.seed=[0,1]")
        raw.setdefault(table, {})[name] = value
    return raw


def check_section(values: dict, table: str) -> dict:
    """``[pretrain]`` / ``[probe]``: only settings the sweep does not set itself."""
    for key in values:
        check_key(table, key, OWNED[table])
    return dict(values)


def check_method_settings(pretrain: dict, grid: dict[str, tuple]) -> dict:
    """A method setting in [pretrain] must belong to a method of grid.method (else it is a typo)."""
    for key in pretrain:
        methods = owners(key)
        if methods and not set(methods) & set(grid["method"]):
            raise ConfigError(
                f"pretrain.{key} is a setting of method {' / '.join(methods)}, none of which is in grid.method "
                f"{list(grid['method'])}: add one or remove pretrain.{key}"
            )
    return pretrain


def _check_numbers(out: dict[str, tuple]) -> None:
    for k in ("mask_strength", "seed"):
        kind = float if k == "mask_strength" else int
        for v in out[k]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
                raise ConfigError(f"grid.{k}: {v!r} is not a{'n integer' if kind is int else ' number'}")


def _pretrain_default(name: str) -> Any:
    from ..pretrain.config import PretrainConfig

    return next(f.default for f in dataclasses.fields(PretrainConfig) if f.name == name)


def _grid_keys(grid: dict, sections: dict[str, dict]) -> dict:
    """[grid] with every key checked and spelled canonically (setting axes as ``table.key``)."""
    grid = flatten(grid)
    out = {}
    for key, value in grid.items():
        if key in GRID_DEFAULTS:
            out[key] = value
        elif key.partition(".")[0] in ("pretrain", "probe") and key.partition(".")[2]:
            out[setting_key(key, grid, sections, OWNED)] = value
        else:
            raise ConfigError(
                f"grid.{key} is not a grid axis; axes are: {', '.join(GRID_DEFAULTS)}, or any setting "
                'of [pretrain] / [probe] as "pretrain.KEY" / "probe.KEY", e.g. "pretrain.epochs" = [1, 2]'
            )
    return out


def depth(pretrain: dict, presets: tuple | None = None) -> int | None:
    """Blocks of the shallowest encoder the sweep builds, when presets fix it (None: a checkpoint decides)."""
    from ..model.presets import PRESETS

    if pretrain.get("pretrained"):
        return None
    names = presets or (pretrain.get("preset", _pretrain_default("preset")),)
    for name in names:
        if name not in PRESETS:
            key = 'grid."pretrain.preset"' if presets else "pretrain.preset"
            raise ConfigError(f"{key} {name!r} is not a preset: use one of {', '.join(PRESETS)}")
    return min(PRESETS[name]["num_hidden_layers"] for name in names)


def check_grid(grid: dict, pretrain: dict, probe: dict) -> dict[str, tuple]:
    """Every axis as a tuple (defaults filled in), values checked, freeze values canonical.

    Setting axes keep their canonical key (``mask_strength``, ``pretrain.mask_ratio``); their
    values are checked when each cell builds its configurations (``cells.make_cell``).
    """
    from ..model.methods import METHODS

    given = _grid_keys(grid, {"pretrain": pretrain, "probe": probe})
    out = {k: tuple(as_list(given.get(k, default), f"grid.{k}")) for k, default in GRID_DEFAULTS.items()}
    if "method" not in given:
        out["method"] = (_pretrain_default("method"),)  # pretraining's default, whatever else is swept
    for key, value in given.items():
        if "." in key:
            table, _, name = key.partition(".")
            out[key] = tuple(dict.fromkeys(coerce(table, name, v) for v in as_list(value, f'grid."{key}"')))
    # a checkpoint decides the depth of an encoder it starts
    num_layers = None if "pretrain.pretrained" in out else depth(pretrain, out.get("pretrain.preset"))
    out["freeze"] = tuple(dict.fromkeys(check_freeze(f, num_layers=num_layers) for f in out["freeze"]))
    for m in out["method"]:
        if m not in METHODS:
            raise ConfigError(f"grid.method: {m!r} is not a method; use {', '.join(METHODS)}")
    for p in out["probe"]:
        if p not in PROBES:
            raise ConfigError(f"grid.probe: {p!r} is not a probe; use {', '.join(PROBES)}")
    _check_numbers(out)
    out["mask_strength"] = tuple(float(v) for v in out["mask_strength"])
    check_owners(setting_axes(out), out["method"], set(given))
    for fr in out["freeze"]:
        if not pairs(fr, out["probe"]):
            raise ConfigError(
                f"grid.freeze {fr!r} pairs only with probe 'finetune': add 'finetune' to "
                f"grid.probe or remove {fr!r} from grid.freeze"
            )
    return out
