"""Grid cells: the expansion of a validated sweep spec into ``Cell`` s, each with a stable id.

    mosquito-ssl benchmarks run configs/mask_strength.toml --dry-run   # prints the cell counts

Owns the expansion order (cells of one encoder together), which baselines each probe setting gets
(``random`` always; ``handcrafted`` / ``audioset`` when the spec asks), and the ``cell_id``: a
hash of the cell's settings and of the science of its pretraining and probe, so renaming or
moving a sweep keeps its ids and changing a setting that alters a result changes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import runs
from ..errors import ConfigError
from ..probe.kinds import HANDCRAFTED_PROBES, pairs
from .schema import SETTING_COLUMNS

if TYPE_CHECKING:
    from .spec import SweepSpec

EXTRA_BASELINES = ("handcrafted", "logmel", "audioset")
NETWORKLESS = ("handcrafted", "logmel")  # probe/config.py BASELINES: no layers, no pooling


@dataclass(frozen=True)
class Cell:
    """One grid cell: an encoder (ssl or a baseline) x freeze x probe x pooling x seed."""

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
        return {k: getattr(self, k) for k in SETTING_COLUMNS}


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell, baselines included, in a stable order (cells of one encoder together)."""
    g = spec.grid
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
            out += [make_cell(spec, "ssl", fr, pr, po, seed, mask, method) for fr, pr, po, seed in combos]
    for encoder in ("random", *[b for b in EXTRA_BASELINES if b in spec.baselines]):
        for fr, pr, po, seed in combos:
            if encoder in NETWORKLESS and (pr not in HANDCRAFTED_PROBES or po != g["pooling"][0]):
                continue  # no network to unfreeze, no layers, no pooling choice
            out.append(make_cell(spec, encoder, fr, pr, po, seed))
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
    mask: tuple | None = None,
    method: str | None = None,
) -> Cell:
    """One cell with its id; building its configs validates them (``ConfigError`` before work)."""
    ms, kind, loss_on = mask or (None, None, None)
    pooling = "none" if encoder in NETWORKLESS else pooling  # what the probe writes in rows
    draft = Cell("", spec.name, encoder, method, ms, kind, loss_on, freeze, probe, pooling, seed, "")
    science = spec.probe_config(draft).science()
    if encoder == "ssl":
        pre = spec.pretrain_config(draft)
        science["encoder"] = pre.science()  # the pretraining, not where it is written
        encoder_key = f"pretrain-{runs.settings_hash(pre.science(), 12)}"
    else:
        encoder_key = f"{encoder}-s{seed}"
    science["pretrain_preset"] = spec.preset  # random:<preset> baselines depend on it
    columns = draft.columns() | {"cell_id": None, "sweep": None}
    if method in (None, "reconstruct"):  # cell ids of sweeps made before the method axis stay valid
        del columns["method"]
    cell_id = runs.settings_hash({"cell": columns, "science": science}, 16)
    return dataclasses.replace(draft, cell_id=cell_id, encoder_key=encoder_key)
