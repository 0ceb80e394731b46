"""Sweep specification: a TOML file (+ ``--set key=value`` overrides) read into a ``SweepSpec``.

    mosquito-ssl benchmarks run configs/mask_strength.toml --set pretrain.epochs=3 --dry-run

Owns the spec format (tables ``[sweep]``, ``[grid]``, ``[pretrain]``, ``[probe]``), the
``[sweep]`` table (names, paths, baselines) and the per-cell pretraining and probe
configurations: ``[pretrain]`` / ``[probe]`` with the cell's swept settings on top. Checking the
other tables lives in ``grid.py`` (setting axes: ``axes.py``), expanding the grid into cells
(with their stable ``cell_id``) in ``cells.py``; the probe kinds and their pairing with
``freeze`` are the probe stage's (``probe/kinds.py``). The ``random`` baseline is always included.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_toml
from ..data.feature_settings import FRONT_END
from ..errors import ConfigError
from ..probe.config import PATCH_FIELDS
from ..probe.kinds import FROZEN_PROBES, PROBES, pairs
from .axes import Axis, owners, setting_axes
from .cells import EXTRA_BASELINES, NETWORKLESS, Cell, expand
from .grid import (
    GRID_DEFAULTS,
    TABLES,
    apply_overrides,
    as_list,
    check_freeze,
    check_grid,
    check_method_settings,
    check_section,
)

# Public names of this module before grid.py / cells.py / probe/kinds.py took them over.
__all__ = [
    "EXTRA_BASELINES",
    "FROZEN_PROBES",
    "GRID_DEFAULTS",
    "PROBES",
    "SWEEP_KEYS",
    "Cell",
    "SweepSpec",
    "apply_overrides",
    "check_freeze",
    "pairs",
]

SWEEP_KEYS = ("name", "out", "store", "pretrain_data", "probe_data", "baselines", "audioset")


def _path(value: Any, key: str) -> Path:
    """An existing path from [sweep] (``sweep.<key>``), resolved against the current directory."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise ConfigError(f'sweep.{key} is missing: set {key} = "path/to/data" in [sweep] or --set sweep.{key}=PATH')
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise ConfigError(
            f"sweep.{key} = {value!r} does not exist: fix the path (relative paths are read from the current directory)"
        )
    return path


def _baselines(sweep: dict) -> tuple[str, ...]:
    if not sweep.get("baselines"):
        return ()
    baselines = tuple(b for b in as_list(sweep["baselines"], "sweep.baselines") if b != "random")
    for b in baselines:
        if b not in EXTRA_BASELINES:
            raise ConfigError(
                f"sweep.baselines: {b!r} is not a baseline; use {', '.join(EXTRA_BASELINES)} "
                "('random' is always included)"
            )
    return baselines


def _default(cls: type, name: str) -> Any:
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: paths, the grid (canonical values), the [pretrain] / [probe] settings."""

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
        """``sweep.store``, else ``<out>/results.sqlite``."""
        return self.store or self.out / "results.sqlite"

    @property
    def preset(self) -> str:
        from ..pretrain.config import PretrainConfig

        return self.pretrain.get("preset", _default(PretrainConfig, "preset"))

    @functools.cached_property
    def axes(self) -> tuple[Axis, ...]:
        """The setting axes of the grid (axes.py): mask_strength, mask_kind, loss_on, then the dotted ones."""
        return setting_axes(self.grid)

    def axes_meta(self) -> dict[str, dict[str, Any]]:
        """``meta.axes`` of the store (schema.py): the swept settings with a column of their own."""
        return {a.column: a.meta() for a in self.axes if not a.fixed}

    def swept(self, cell: Cell, table: str) -> dict[str, Any]:
        """The cell's swept settings of ``[table]`` (key -> value): its mask settings, its axes."""
        by_column = {a.column: a for a in self.axes}
        values = {k: getattr(cell, k) for k in ("mask_strength", "mask_kind", "loss_on") if table == "pretrain"}
        values |= {by_column[c].key: v for c, v in cell.axes if by_column[c].table == table}
        return {k: v for k, v in values.items() if v is not None}

    def cell_preset(self, cell: Cell) -> str:
        """The preset of the cell's encoder (a ``"pretrain.preset"`` axis, else [pretrain]'s)."""
        return self.swept(cell, "pretrain").get("preset", self.preset)

    @classmethod
    def load(
        cls, path: Path | None, overrides: list[str] | dict[str, Any] | None = None, raw: dict | None = None
    ) -> SweepSpec:
        """Read and validate a spec file (or an already parsed ``raw`` dict) plus overrides."""
        if raw is None:
            if path is None:
                raise ConfigError("no sweep spec: pass a TOML file, e.g. configs/mask_strength.toml")
            raw = load_toml(Path(path))
        raw = apply_overrides(raw, overrides)
        where = str(path) if path else "spec"
        unknown = sorted(set(raw) - set(TABLES))
        if unknown:
            raise ConfigError(
                f"{where}: unknown table(s) {', '.join(unknown)}; use [sweep], [grid], [pretrain], [probe]"
            )
        spec = cls._build(raw, default_name=Path(path).stem if path else "sweep")
        spec.cells()  # validates every per-cell configuration before any work starts
        return spec

    @classmethod
    def _build(cls, raw: dict, default_name: str) -> SweepSpec:
        sweep = dict(raw.get("sweep", {}))
        bad = sorted(set(sweep) - set(SWEEP_KEYS))
        if bad:
            raise ConfigError(f"sweep.{bad[0]} is not a setting; valid keys of [sweep] are: {', '.join(SWEEP_KEYS)}")
        pretrain = check_section(raw.get("pretrain", {}), "pretrain")
        probe = check_section(raw.get("probe", {}), "probe")
        grid = check_grid(raw.get("grid", {}), pretrain, probe)
        baselines = _baselines(sweep)
        name = str(sweep.get("name", default_name))
        return cls(
            name=name,
            out=Path(sweep.get("out", Path("runs") / name)).expanduser().resolve(),
            pretrain_data=_path(sweep.get("pretrain_data"), "pretrain_data"),
            probe_data=_path(sweep.get("probe_data", sweep.get("pretrain_data")), "probe_data"),
            grid=grid,
            baselines=baselines,
            audioset=_path(sweep.get("audioset"), "audioset") if "audioset" in baselines else None,
            pretrain=check_method_settings(pretrain, grid),
            probe=probe,
            store=Path(sweep["store"]).expanduser().resolve() if sweep.get("store") else None,
        )

    # ---- per-cell configurations -------------------------------------------------------
    def pretrain_config(self, cell: Cell, force: bool = False):
        """The pretraining of an ssl cell; its run dir is named by the hash of its science."""
        from ..config import resolve
        from ..pretrain.config import PretrainConfig

        # [pretrain] may hold settings of several methods: each cell takes its own method's.
        own = {k: v for k, v in self.pretrain.items() if not owners(k) or cell.method in owners(k)}
        values = dict(
            own,
            **self.swept(cell, "pretrain"),
            data=self.pretrain_data,
            out=self.out / "pretrain",
            method=cell.method,
            seed=cell.seed,
            resume=True,
            force=force,
        )
        return resolve(PretrainConfig, overrides=values, spelled={k: f"pretrain.{k}" for k in own})

    def encoder_source(self, cell: Cell) -> str:
        if cell.encoder == "ssl":
            return str(self.pretrain_config(cell).run_dir())
        if cell.encoder == "random":
            return f"random:{self.cell_preset(cell)}"
        if cell.encoder == "audioset":
            return str(self.audioset)
        return cell.encoder  # handcrafted or logmel

    def probe_config(self, cell: Cell, force: bool = False):
        from ..config import resolve
        from ..probe.config import ProbeConfig

        pooling = self.grid["pooling"][0] if cell.encoder in NETWORKLESS else cell.pooling
        # random:<preset> and the networkless baselines see the front end the ssl cells are
        # pretrained with (the cell's, when swept), random:<preset> also their patch size; a
        # checkpoint (ssl, audioset) carries its own, and only random:<preset> has a patch grid
        random = cell.encoder == "random"
        takes = (*FRONT_END, *PATCH_FIELDS) if random else FRONT_END if cell.encoder in NETWORKLESS else ()
        pretrain = {**self.pretrain, **self.swept(cell, "pretrain")}
        probe = {**self.probe, **self.swept(cell, "probe")}
        probe = {k: v for k, v in probe.items() if random or k not in PATCH_FIELDS}
        values = dict(
            {**{k: pretrain[k] for k in takes if k in pretrain}, **probe},
            data=self.probe_data,
            encoder=self.encoder_source(cell),
            out=self.out / "probe",
            run_name=cell.name,
            probe=cell.probe,
            freeze=cell.freeze,
            pooling=pooling,
            seed=cell.seed,
            encoder_name=cell.encoder,
            force=force,
        )
        return resolve(ProbeConfig, overrides=values, spelled={k: f"probe.{k}" for k in self.probe})

    def cells(self) -> list[Cell]:
        """Every cell, baselines included, in a stable order (cells of one encoder together)."""
        return expand(self)
