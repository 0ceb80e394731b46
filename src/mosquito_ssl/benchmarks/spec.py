"""Sweep specification: a TOML file (+ ``--set key=value`` overrides) expanded into grid cells.

    mosquito-ssl benchmarks run configs/mask_strength.toml --set pretrain.epochs=3 --dry-run

Owns the spec format (tables ``[sweep]``, ``[grid]``, ``[pretrain]``, ``[probe]``), its
validation (``ConfigError`` naming the key and the fix, before any work), the combination rule
(``frozen`` pairs with linear/layerwise/mlp and finetune; ``partial:K``/``full`` only with
finetune), the always-included ``random`` baseline and the stable ``cell_id`` of each cell.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .. import runs
from ..config import load_toml
from ..errors import ConfigError

log = logging.getLogger(__name__)

FROZEN_PROBES = ("linear", "layerwise", "mlp")
PROBES = (*FROZEN_PROBES, "finetune")
EXTRA_BASELINES = ("handcrafted", "audioset")
GRID_DEFAULTS = {
    "method": ["reconstruct"],
    "mask_strength": [1.0],
    "mask_kind": ["specaugment"],
    "loss_on": ["all"],
    "freeze": ["frozen"],
    "probe": ["linear"],
    "pooling": ["mean"],
    "seed": [0],
}
SWEEP_KEYS = ("name", "out", "store", "pretrain_data", "probe_data", "baselines", "audioset")
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
    "encoder_label": "the sweep",
    "force": "--force",
}


@dataclass(frozen=True)
class Cell:
    """One grid cell: an encoder (ssl or a baseline) x freeze x probe x pooling x seed."""

    cell_id: str
    sweep: str
    encoder: str  # ssl | random | handcrafted | audioset
    method: str | None  # the SSL method of an ssl cell (model/methods.py); None for baselines
    mask_strength: float | None
    mask_kind: str | None
    loss_on: str | None
    freeze: str
    probe: str
    pooling: str
    seed: int
    group: str  # cells sharing a pretraining / an encoder: the unit of sharding

    @property
    def name(self) -> str:
        """Readable, unique run-directory name."""
        mask = ""
        if self.method == "reconstruct":
            mask = f"-ms{self.mask_strength:g}-{self.mask_kind}-{self.loss_on}"
        elif self.method:
            mask = f"-{self.method}"
        freeze = self.freeze.replace(":", "")
        return f"{self.encoder}{mask}-{freeze}-{self.probe}-{self.pooling}-s{self.seed}-{self.cell_id[:8]}"

    def columns(self) -> dict[str, Any]:
        """The setting columns shared by the store's ``cells`` and ``results`` tables."""
        return {
            k: getattr(self, k)
            for k in (
                "cell_id",
                "sweep",
                "encoder",
                "method",
                "mask_strength",
                "mask_kind",
                "loss_on",
                "freeze",
                "probe",
                "pooling",
                "seed",
            )
        }


def check_freeze(value: Any, key: str = "grid.freeze") -> str:
    if isinstance(value, str) and (value in ("frozen", "full") or re.fullmatch(r"partial:[1-9]\d*", value)):
        return value
    raise ConfigError(f"{key}: {value!r} is not a freeze setting; use 'frozen', 'partial:K' (K >= 1) or 'full'")


def pairs(freeze: str, probes: tuple[str, ...]) -> list[str]:
    """Probes run under ``freeze``: frozen takes all of them, partial/full only finetune."""
    if freeze == "frozen":
        return list(probes)
    return [p for p in probes if p == "finetune"]


def _as_list(value: Any, key: str) -> list:
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


def apply_overrides(raw: dict, overrides: list[str] | dict[str, Any] | None) -> dict:
    """Apply ``table.key=value`` overrides (strings from ``--set``, or a dict) to the raw spec."""
    items = overrides.items() if isinstance(overrides, dict) else []
    if isinstance(overrides, (list, tuple)):
        parsed = []
        for text in overrides:
            key, eq, value = text.partition("=")
            if not eq or "." not in key:
                raise ConfigError(f"--set {text!r} must look like table.key=value, e.g. --set pretrain.epochs=3")
            parsed.append((key.strip(), _parse_value(value.strip())))
        items = parsed
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for key, value in items:
        table, _, name = key.partition(".")
        if table not in ("sweep", "grid", "pretrain", "probe") or not name:
            raise ConfigError(f"--set {key}: the table must be sweep, grid, pretrain or probe, e.g. grid.seed=[0,1]")
        raw.setdefault(table, {})[name] = value
    return raw


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_section(values: dict, cls, table: str, owned: dict[str, str]) -> dict:
    valid = sorted(set(_fields(cls)) - set(owned))
    for key in values:
        if key in owned:
            raise ConfigError(f"{table}.{key} is set by the sweep: remove it and use {owned[key]} instead")
        if key not in valid:
            raise ConfigError(f"{table}.{key} is not a setting; valid keys of [{table}] are: {', '.join(valid)}")
    return dict(values)


def _path(value: Any, key: str, must_exist: bool = True) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise ConfigError(f'sweep.{key} is missing: set {key} = "path/to/data" in [sweep] or --set sweep.{key}=PATH')
    path = Path(value).expanduser().resolve()
    if must_exist and not path.exists():
        raise ConfigError(
            f"sweep.{key} = {value!r} does not exist: fix the path (relative paths are read from the current directory)"
        )
    return path


@dataclass(frozen=True)
class SweepSpec:
    name: str
    out: Path
    pretrain_data: Path
    probe_data: Path
    grid: dict[str, tuple] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = ()
    audioset: Path | None = None
    store: Path | None = None

    @property
    def store_path(self) -> Path:
        return self.store or self.out / "results.sqlite"

    @property
    def preset(self) -> str:
        from ..pretrain.train import PretrainConfig

        return self.pretrain.get("preset", _fields(PretrainConfig)["preset"].default)

    @classmethod
    def load(
        cls, path: Path | None, overrides: list[str] | dict[str, Any] | None = None, raw: dict | None = None
    ) -> SweepSpec:
        """Read and validate a spec file (or an already parsed ``raw`` dict) plus overrides."""
        if raw is None:
            raw = load_toml(Path(path))
        raw = apply_overrides(raw, overrides)
        where = str(path) if path else "spec"
        unknown = sorted(set(raw) - {"sweep", "grid", "pretrain", "probe"})
        if unknown:
            raise ConfigError(
                f"{where}: unknown table(s) {', '.join(unknown)}; use [sweep], [grid], [pretrain], [probe]"
            )
        spec = cls._build(raw, default_name=Path(path).stem if path else "sweep")
        spec.cells()  # validates every per-cell configuration before any work starts
        return spec

    @classmethod
    def _build(cls, raw: dict, default_name: str) -> SweepSpec:
        from ..pretrain.train import PretrainConfig
        from ..probe.config import ProbeConfig

        sweep = dict(raw.get("sweep", {}))
        bad = sorted(set(sweep) - set(SWEEP_KEYS))
        if bad:
            raise ConfigError(f"sweep.{bad[0]} is not a setting; valid keys of [sweep] are: {', '.join(SWEEP_KEYS)}")
        grid = _check_grid(raw.get("grid", {}))
        baselines = (
            tuple(b for b in _as_list(sweep.get("baselines", []), "sweep.baselines") if b != "random")
            if sweep.get("baselines")
            else ()
        )
        for b in baselines:
            if b not in EXTRA_BASELINES:
                raise ConfigError(
                    f"sweep.baselines: {b!r} is not a baseline; use {', '.join(EXTRA_BASELINES)} "
                    "('random' is always included)"
                )
        audioset = None
        if "audioset" in baselines:
            audioset = _path(sweep.get("audioset"), "audioset")
        name = str(sweep.get("name", default_name))
        out = Path(sweep.get("out", Path("runs") / name)).expanduser().resolve()
        return cls(
            name=name,
            out=out,
            pretrain_data=_path(sweep.get("pretrain_data"), "pretrain_data"),
            probe_data=_path(sweep.get("probe_data", sweep.get("pretrain_data")), "probe_data"),
            grid=grid,
            baselines=baselines,
            audioset=audioset,
            pretrain=_check_method_settings(
                _check_section(raw.get("pretrain", {}), PretrainConfig, "pretrain", PRETRAIN_OWNED), grid
            ),
            probe=_check_section(raw.get("probe", {}), ProbeConfig, "probe", PROBE_OWNED),
            store=Path(sweep["store"]).expanduser().resolve() if sweep.get("store") else None,
        )

    # ---- per-cell configurations -------------------------------------------------------
    def pretrain_config(self, cell: Cell, force: bool = False):
        """The pretraining of an ssl cell; its run dir is named by the hash of its science."""
        from ..config import resolve
        from ..model.methods import METHOD_FIELDS, methods_with
        from ..pretrain.train import PretrainConfig

        # [pretrain] may hold settings of several methods: each cell takes its own method's.
        own = {k: v for k, v in self.pretrain.items() if k not in METHOD_FIELDS or cell.method in methods_with(k)}
        mask = {"mask_strength": cell.mask_strength, "mask_kind": cell.mask_kind, "loss_on": cell.loss_on}
        values = dict(
            own,
            data=self.pretrain_data,
            out=self.out / "pretrain",
            method=cell.method,
            **(mask if cell.method == "reconstruct" else {}),
            seed=cell.seed,
            resume=True,
            force=force,
        )
        return resolve(PretrainConfig, overrides=values)

    def encoder_source(self, cell: Cell) -> str:
        if cell.encoder == "ssl":
            return str(self.pretrain_config(cell).run_dir())
        if cell.encoder == "random":
            return f"random:{self.preset}"
        if cell.encoder == "audioset":
            return str(self.audioset)
        return "handcrafted"

    def probe_config(self, cell: Cell, force: bool = False):
        from ..config import resolve
        from ..probe.config import ProbeConfig

        pooling = self.grid["pooling"][0] if cell.encoder == "handcrafted" else cell.pooling
        values = dict(
            self.probe,
            data=self.probe_data,
            encoder=self.encoder_source(cell),
            out=self.out / "probe",
            run_name=cell.name,
            probe=cell.probe,
            freeze=cell.freeze,
            pooling=pooling,
            seed=cell.seed,
            encoder_label=cell.encoder,
            force=force,
        )
        return resolve(ProbeConfig, overrides=values)

    # ---- grid expansion ------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """Every cell, baselines included, in a stable order (grouped by pretraining)."""
        g = self.grid
        combos = [
            (fr, pr, po, seed)
            for seed in g["seed"]
            for fr in g["freeze"]
            for pr in pairs(fr, g["probe"])
            for po in g["pooling"]
        ]
        out: list[Cell] = []
        for method in g["method"]:
            # mask_strength / mask_kind / loss_on shape only the reconstruct method
            masks = [(ms, k, lo) for ms in g["mask_strength"] for k in g["mask_kind"] for lo in g["loss_on"]]
            for mask in masks if method == "reconstruct" else [None]:
                out += [self._cell("ssl", fr, pr, po, seed, mask, method) for fr, pr, po, seed in combos]
        for encoder in ("random", *[b for b in EXTRA_BASELINES if b in self.baselines]):
            for fr, pr, po, seed in combos:
                if encoder == "handcrafted" and (pr not in ("linear", "mlp") or po != g["pooling"][0]):
                    continue  # no network to unfreeze, no layers, no pooling choice
                out.append(self._cell(encoder, fr, pr, po, seed))
        if "handcrafted" in self.baselines and not any(c.encoder == "handcrafted" for c in out):
            raise ConfigError(
                "sweep.baselines: 'handcrafted' needs 'linear' or 'mlp' in grid.probe "
                "with 'frozen' in grid.freeze; add them or drop the baseline"
            )
        return out

    def _cell(
        self,
        encoder: str,
        freeze: str,
        probe: str,
        pooling: str,
        seed: int,
        mask: tuple | None = None,
        method: str | None = None,
    ) -> Cell:
        ms, kind, loss_on = mask or (None, None, None)
        pooling = "none" if encoder == "handcrafted" else pooling  # what the probe writes in rows
        draft = Cell("", self.name, encoder, method, ms, kind, loss_on, freeze, probe, pooling, seed, "")
        probe_cfg = self.probe_config(draft)
        science = probe_cfg.science()
        if encoder == "ssl":
            pre = self.pretrain_config(draft)
            science["encoder"] = pre.science()  # the pretraining, not where it is written
            group = f"pretrain-{runs.settings_hash(pre.science(), 12)}"
        else:
            group = f"{encoder}-s{seed}"
        science["pretrain_preset"] = self.preset  # random:<preset> baselines depend on it
        columns = draft.columns() | {"cell_id": None, "sweep": None}
        if method in (None, "reconstruct"):  # cell ids of sweeps made before the method axis stay valid
            del columns["method"]
        cell_id = runs.settings_hash({"cell": columns, "science": science}, 16)
        return dataclasses.replace(draft, cell_id=cell_id, group=group)


def _check_method_settings(pretrain: dict, grid: dict[str, tuple]) -> dict:
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


def _check_grid(grid: dict) -> dict[str, tuple]:
    bad = sorted(set(grid) - set(GRID_DEFAULTS))
    if bad:
        raise ConfigError(f"grid.{bad[0]} is not a grid axis; axes are: {', '.join(GRID_DEFAULTS)}")
    out = {k: tuple(_as_list(grid.get(k, default), f"grid.{k}")) for k, default in GRID_DEFAULTS.items()}
    out["freeze"] = tuple(check_freeze(f) for f in out["freeze"])
    from ..model.methods import METHODS

    for m in out["method"]:
        if m not in METHODS:
            raise ConfigError(f"grid.method: {m!r} is not a method; use {', '.join(METHODS)}")
    for p in out["probe"]:
        if p not in PROBES:
            raise ConfigError(f"grid.probe: {p!r} is not a probe; use {', '.join(PROBES)}")
    for k in ("mask_strength", "seed"):
        kind = float if k == "mask_strength" else int
        for v in out[k]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
                raise ConfigError(f"grid.{k}: {v!r} is not a{'n integer' if kind is int else ' number'}")
    out["mask_strength"] = tuple(float(v) for v in out["mask_strength"])
    for fr in out["freeze"]:
        if not pairs(fr, out["probe"]):
            raise ConfigError(
                f"grid.freeze {fr!r} pairs only with probe 'finetune': add 'finetune' to "
                f"grid.probe or remove {fr!r} from grid.freeze"
            )
    return out
