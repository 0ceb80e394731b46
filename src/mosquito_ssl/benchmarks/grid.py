"""Validating the tables of a sweep spec: ``--set`` overrides, ``[grid]``, ``[pretrain]``, ``[probe]``.

    mosquito-ssl benchmarks run configs/mask_strength.toml --set grid.seed=[0,1,2] --dry-run

Every mistake is a ``ConfigError`` naming the key and the fix, raised before any work. Freeze
values go through ``model/freeze.py`` (the one freeze vocabulary) and are stored in canonical
form (``none`` -> ``full``); probe kinds and their pairing with freeze come from ``probe/kinds.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tomllib

from ..errors import ConfigError
from ..model.freeze import parse_freeze
from ..probe.kinds import PROBES, pairs

TABLES = ("sweep", "grid", "pretrain", "probe")
# A grid that sweeps one of these axes is about the reconstruct method, which they alone shape:
# its method axis defaults to reconstruct. Any other grid defaults to PretrainConfig's method.
RECONSTRUCT_AXES = ("mask_strength", "mask_kind", "loss_on")
GRID_DEFAULTS: dict[str, list[Any]] = {
    "method": ["reconstruct"],
    "mask_strength": [1.0],
    "mask_kind": ["specaugment"],
    "loss_on": ["all"],
    "freeze": ["frozen"],
    "probe": ["linear"],
    "pooling": ["freq_stack"],
    "seed": [0],
}
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


def check_freeze(value: Any, key: str = "grid.freeze", num_layers: int | None = None) -> str:
    """A grid freeze value in canonical form; the rules are ``model/freeze.py``'s."""
    if not isinstance(value, str):
        raise ConfigError(f'{key} {value!r} is not valid: write it as a string, e.g. "partial:1"')
    return str(parse_freeze(value, num_layers=num_layers, flag=key))  # str() is the canonical form


def as_list(value: Any, key: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{key} is empty: give at least one value, e.g. {key} = {GRID_DEFAULTS[key.split('.')[1]]}")
    return list(dict.fromkeys(values))  # drop repeats, keep order


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


def check_section(values: dict, cls: type, table: str, owned: dict[str, str]) -> dict:
    """``[pretrain]`` / ``[probe]``: only fields of ``cls`` the sweep does not set itself."""
    valid = sorted({f.name for f in dataclasses.fields(cls)} - set(owned))
    for key in values:
        if key in owned:
            raise ConfigError(f"{table}.{key} is set by the sweep: remove it and use {owned[key]} instead")
        if key not in valid:
            raise ConfigError(f"{table}.{key} is not a setting; valid keys of [{table}] are: {', '.join(valid)}")
    return dict(values)


def check_method_settings(pretrain: dict, grid: dict[str, tuple]) -> dict:
    """A method setting in [pretrain] must belong to a method of grid.method (else it is a typo)."""
    from ..model.methods import METHOD_FIELDS, methods_with

    for key in pretrain:
        owners = methods_with(key)
        if key in METHOD_FIELDS and not set(owners) & set(grid["method"]):
            raise ConfigError(
                f"pretrain.{key} is a setting of method {' / '.join(owners)}, none of which is in grid.method "
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
    from ..pretrain.train import PretrainConfig

    return next(f.default for f in dataclasses.fields(PretrainConfig) if f.name == name)


def check_grid(grid: dict, num_layers: int | None = None) -> dict[str, tuple]:
    """Every axis as a tuple (defaults filled in), values checked, freeze values canonical.

    ``num_layers``: the encoder depth when the spec fixes it (a preset), so ``partial:K``
    deeper than the encoder fails here rather than in the first fine-tune.
    """
    from ..model.methods import METHODS

    bad = sorted(set(grid) - set(GRID_DEFAULTS))
    if bad:
        raise ConfigError(f"grid.{bad[0]} is not a grid axis; axes are: {', '.join(GRID_DEFAULTS)}")
    out = {k: tuple(as_list(grid.get(k, default), f"grid.{k}")) for k, default in GRID_DEFAULTS.items()}
    if "method" not in grid and not any(k in grid for k in RECONSTRUCT_AXES):
        out["method"] = (_pretrain_default("method"),)  # no masking axis swept: pretraining's default
    out["freeze"] = tuple(dict.fromkeys(check_freeze(f, num_layers=num_layers) for f in out["freeze"]))
    for m in out["method"]:
        if m not in METHODS:
            raise ConfigError(f"grid.method: {m!r} is not a method; use {', '.join(METHODS)}")
    for p in out["probe"]:
        if p not in PROBES:
            raise ConfigError(f"grid.probe: {p!r} is not a probe; use {', '.join(PROBES)}")
    _check_numbers(out)
    out["mask_strength"] = tuple(float(v) for v in out["mask_strength"])
    for fr in out["freeze"]:
        if not pairs(fr, out["probe"]):
            raise ConfigError(
                f"grid.freeze {fr!r} pairs only with probe 'finetune': add 'finetune' to "
                f"grid.probe or remove {fr!r} from grid.freeze"
            )
    return out
