"""Grid cells: the expansion of a validated sweep spec into ``Cell`` s, each with a stable id.

    mosquito-ssl benchmarks run configs/mask_strength.toml --dry-run   # prints the cell counts

Owns the expansion order (cells of one encoder together), which baselines each probe setting gets
(``random`` always; ``handcrafted`` / ``audioset`` when the spec asks), which cells a setting
axis expands (``applies``) and the ``cell_id``: a hash of the cell's settings and of the science
of its pretraining and probe, so renaming or moving a sweep keeps its ids and changing a setting
that alters a result changes them.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import runs
from ..data.feature_settings import FRONT_END
from ..errors import ConfigError
from ..model import methods
from ..probe.config import PATCH_FIELDS
from ..probe.kinds import FINETUNE, HANDCRAFTED_PROBES, pairs
from ..store.schema import SETTING_COLUMNS
from .axes import Axis

if TYPE_CHECKING:
    from .spec import SweepSpec

EXTRA_BASELINES = ("handcrafted", "logmel", "audioset")
NETWORKLESS = ("handcrafted", "logmel")  # probe/config.py BASELINES: no layers, no pooling


@dataclass(frozen=True)
class Cell:
    """One grid cell: an encoder (ssl or a baseline) x freeze x probe x pooling x seed x settings."""

    cell_id: str
    sweep: str
    encoder: str  # ssl | random | handcrafted | logmel | audioset
    method: str | None  # the SSL method of an ssl cell (model/methods.py); None for baselines
    mask_strength: float | None
    mask_kind: str | None
    loss_on: str | None
    freeze: str
    probe: str
    pooling: str
    seed: int
    # The encoder the cell probes (one pretraining, or a baseline at one seed): cells sharing it
    # share that work, so it is the unit of sharding and of the run order.
    encoder_key: str
    # (store column, value) of every swept setting (axes.py) this cell uses; settings the cell
    # does not use (another method's, a fine-tuning setting of a frozen probe) are absent.
    axes: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """Readable, unique run-directory name."""
        mask = ""
        if self.mask_strength is not None:
            mask = f"-ms{self.mask_strength:g}-{self.mask_kind}-{self.loss_on}"
        elif self.method:
            mask = f"-{self.method}"
        axes = "".join(f"-{column}-{_short(value)}" for column, value in self.axes)
        freeze = self.freeze.replace(":", "")
        return f"{self.encoder}{mask}{axes}-{freeze}-{self.probe}-{self.pooling}-s{self.seed}-{self.cell_id[:8]}"

    def columns(self) -> dict[str, Any]:
        """The setting columns shared by the store's ``cells`` and ``results`` tables, axes included."""
        return {k: getattr(self, k) for k in SETTING_COLUMNS} | dict(self.axes)


def _short(value: Any) -> str:
    """A value as a file-name part: numbers as %g, lists joined by '+', odd characters as '_'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_short(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.+_]", "_", str(value).rstrip("/").rsplit("/", 1)[-1])[:24]


def applies(axis: Axis, encoder: str, method: str | None, probe: str) -> bool:
    """Whether a cell uses the setting of ``axis`` (else the axis does not expand it)."""
    from ..probe.config import FINETUNE_FIELDS

    if axis.table == "probe":  # fine-tuning's recipe is read by finetune cells only
        if axis.key in PATCH_FIELDS:  # the patch grid of random:<preset>; a checkpoint has its own
            return encoder == "random"
        return probe == FINETUNE or axis.key not in FINETUNE_FIELDS
    if encoder == "ssl":  # a method's setting shapes that method's pretraining only
        return not axis.owners or method in axis.owners
    if axis.owners:
        return False
    if axis.key in FRONT_END:  # random:<preset> and the networkless baselines take the sweep's front end
        return encoder in ("random", *NETWORKLESS)
    return encoder == "random" and axis.key in ("preset", "patch_size")  # random:<preset> at that patch


def _settings(axes: tuple[Axis, ...], keep) -> Iterator[tuple[tuple[Axis, Any], ...]]:
    """Every combination of the values of the axes ``keep`` accepts (one empty one if none)."""
    used = [[(a, v) for v in a.values] for a in axes if keep(a)]
    return itertools.product(*used)


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell, baselines included, in a stable order (cells of one encoder together)."""
    g = spec.grid
    pre_axes = tuple(a for a in spec.axes if a.table == "pretrain")
    probe_axes = tuple(a for a in spec.axes if a.table == "probe")
    combos = [
        (fr, pr, po, seed)
        for seed in g["seed"]
        for fr in g["freeze"]
        for pr in pairs(fr, g["probe"])
        for po in g["pooling"]
    ]

    def cells(encoder: str, method: str | None = None) -> Iterator[Cell]:
        for pre in _settings(pre_axes, lambda a: applies(a, encoder, method, "")):
            for fr, pr, po, seed in combos:
                if encoder in NETWORKLESS and (pr not in HANDCRAFTED_PROBES or po != g["pooling"][0]):
                    continue  # no network to unfreeze, no layers, no pooling choice
                for probe in _settings(probe_axes, lambda a, pr=pr: applies(a, encoder, method, pr)):
                    yield make_cell(spec, encoder, fr, pr, po, seed, method, pre + probe)

    out = [c for method in g["method"] for c in cells("ssl", method)]
    for encoder in ("random", *[b for b in EXTRA_BASELINES if b in spec.baselines]):
        out += cells(encoder)
    for name in NETWORKLESS:
        if name in spec.baselines and not any(c.encoder == name for c in out):
            raise ConfigError(
                f"sweep.baselines: {name!r} needs 'linear' or 'mlp' in grid.probe "
                "with 'frozen' in grid.freeze; add them or drop the baseline"
            )
    return out


def make_cell(
    spec: SweepSpec,
    encoder: str,
    freeze: str,
    probe: str,
    pooling: str,
    seed: int,
    method: str | None = None,
    settings: tuple[tuple[Axis, Any], ...] = (),
) -> Cell:
    """One cell with its id; building its configs validates them (``ConfigError`` before work)."""
    fixed = {a.key: v for a, v in settings if a.fixed}
    axes = tuple((a.column, v) for a, v in settings if not a.fixed)
    pooling = "none" if encoder in NETWORKLESS else pooling  # what the probe writes in rows
    masks = (fixed.get("mask_strength"), fixed.get("mask_kind"), fixed.get("loss_on"))
    draft = Cell("", spec.name, encoder, method, *masks, freeze, probe, pooling, seed, "", axes)
    try:
        science = spec.probe_config(draft).science()
        pre = spec.pretrain_config(draft) if encoder == "ssl" else None
    except ConfigError as exc:
        swept = [(a, v) for a, v in settings if not a.fixed]
        if not swept:
            raise
        values = ", ".join(f"grid.{a.label} = {v!r}" for a, v in swept)
        raise ConfigError(f"{values} ({method or encoder} cells): {exc}") from exc
    if pre is not None:
        science["encoder"] = pre.science()  # the pretraining, not where it is written
        encoder_key = f"pretrain-{runs.settings_hash(pre.science(), 12)}"
    else:
        # the front end, preset or patch grid it was given
        own = {a.key: v for a, v in settings if a.table == "pretrain" or a.key in PATCH_FIELDS}
        encoder_key = f"{encoder}-s{seed}" + (f"-{runs.settings_hash(own, 8)}" if own else "")
    science["pretrain_preset"] = spec.cell_preset(draft)  # random:<preset> baselines depend on it
    columns = draft.columns() | {"cell_id": None, "sweep": None}
    if method is None or methods.get(method).legacy_hash:  # ids from before the method axis stay valid
        del columns["method"]
    cell_id = runs.settings_hash({"cell": columns, "science": science}, 16)
    return dataclasses.replace(draft, cell_id=cell_id, encoder_key=encoder_key)
