"""The SSL methods behind ``mosquito-ssl pretrain --method NAME``: one registry entry each.

==============  ==========================================================================
``reconstruct``  the original objective: reconstruct the clean spectrogram from a
                 SpecAugment-masked input, every token encoded (``ssl.ASTSSL``)
``mae``          AudioMAE: visible patches only, narrow decoder, norm-pix loss (``mae.ASTMAE``)
``teacher``      data2vec 2.0 / EAT: EMA teacher targets + clip loss (``teacher.ASTTeacher``)
``byol``         BYOL-A: clip-level invariance between two views (``byol.ASTBYOL``)
==============  ==========================================================================

An entry holds the method's settings class, its model class and its traits; nothing outside
this module compares a method name. Method settings are flat options (``--mask-ratio``,
``--ema-decay``...); ``method_settings`` builds the method's dataclass from those given and
refuses one that belongs to another method. Importing this module does not import torch::

    model = build_ssl_model("mae", encoder, {"mask_ratio": 0.75})
    METHODS["teacher"].ema_target     # True: keeps the last checkpoint, no early stopping
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .method_settings import BYOLSettings, MAESettings, ReconstructSettings, TeacherSettings


@dataclass(frozen=True)
class Method:
    name: str
    settings: type  # the settings dataclass (model/method_settings.py)
    model: str  # "module:Class" of the model, imported when a model is built (torch)
    loss_name: str  # what its validation loss (``eval_loss``, checkpoint selection) measures
    speed_label: str  # its row in ``benchmarks speed``
    # Targets that move during training (an EMA teacher) give no comparable eval loss across
    # epochs: such a method keeps the last checkpoint, with no early stopping.
    ema_target: bool = False
    drop_last: bool = False  # BatchNorm (byol's projector) cannot train on a last batch of one clip
    # Its output is a spectrogram: scored against the mean-spectrogram baseline at the end.
    mean_baseline: bool = False
    # Run names of reconstruct runs predate --method: they hash every mask setting and no
    # method name, and stay so (finished runs are found again, sweeps resume).
    legacy_hash: bool = False
    legacy_keys: tuple[tuple[str, str], ...] = ()  # (old, new) setting names in old ssl_config.json

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.settings))

    def model_class(self) -> type:
        module, _, name = self.model.partition(":")
        return getattr(importlib.import_module(module, __package__), name)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "reconstruct",
            ReconstructSettings,
            ".ssl:ASTSSL",
            "reconstruction MSE",
            "reconstruct (cached features)",
            mean_baseline=True,
            legacy_hash=True,
        ),
        Method("mae", MAESettings, ".mae:ASTMAE", "masked-patch MSE", "mae: visible patches only"),
        Method(
            "teacher",
            TeacherSettings,
            ".teacher:ASTTeacher",
            "teacher-target MSE",
            "teacher: EMA teacher + 4 masked views",
            ema_target=True,
        ),
        Method(
            "byol",
            BYOLSettings,
            ".byol:ASTBYOL",
            "BYOL loss (2 - 2 cos)",
            "byol: two views + EMA target",
            ema_target=True,
            drop_last=True,
            legacy_keys=(("mixup", "mixup_ratio"),),
        ),
    )
}
# Every method setting, as flat PretrainConfig fields / CLI flags (None = the method's default).
METHOD_FIELDS = tuple(dict.fromkeys(name for m in METHODS.values() for name in m.fields))


def get(method: str) -> Method:
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not valid: use one of {', '.join(METHODS)}")
    return METHODS[method]


def check_method(method: str) -> str:
    return get(method).name


def methods_with(field: str) -> list[str]:
    """The methods that have setting ``field`` (empty for a setting of no method)."""
    return [m.name for m in METHODS.values() if field in m.fields]


def setting_field(name: str) -> dataclasses.Field:
    """The declaration of a method setting (the first method's: help and type agree across methods)."""
    owner = METHODS[methods_with(name)[0]]
    return next(f for f in dataclasses.fields(owner.settings) if f.name == name)


def method_settings(method: str, given: dict[str, Any]) -> Any:
    """The method's settings dataclass from the options given (None = not given)."""
    entry = get(method)
    given = {k: v for k, v in given.items() if v is not None}
    for name in given:
        if name not in entry.fields:
            owners = ", ".join(methods_with(name)) or "no method"
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} is a setting of --method {owners}, not of --method {method}: drop it")
    return entry.settings(**given)


def build_ssl_model(method: str, encoder: Any, settings: Any) -> Any:
    """A method model around ``encoder``; ``settings`` is the dataclass (or a dict of its fields)."""
    entry = get(method)
    if isinstance(settings, dict):
        settings = method_settings(method, settings)
    return entry.model_class()(encoder, settings)


def saved_method(config: dict[str, Any]) -> tuple[Method, dict[str, Any]]:
    """(method, its settings and extras) of a saved ``ssl_config()`` (no ``method`` key: reconstruct)."""
    config = dict(config)
    entry = get(str(config.pop("method", "reconstruct")))  # reconstruct's first format had no key
    for old, new in entry.legacy_keys:
        if old in config:
            config[new] = config.pop(old)
    return entry, config


def read_ssl_config(folder: Path) -> tuple[Method, dict[str, Any]]:
    """``saved_method`` of a run's ``final/ssl_config.json``."""
    from ..runs import read_json

    return saved_method(read_json(Path(folder) / "ssl_config.json"))


def rebuild(encoder: Any, config: dict[str, Any]) -> Any:
    """The model a saved ``ssl_config()`` describes, around ``encoder`` (weights not loaded)."""
    entry, config = saved_method(config)
    settings = {k: v for k, v in config.items() if k in entry.fields}
    extras = {k: v for k, v in config.items() if k not in entry.fields}
    try:
        return entry.model_class()(encoder, entry.settings(**settings), **extras)
    except TypeError as exc:
        raise ConfigError(
            f"ssl_config.json of method {entry.name} has unknown key(s) {sorted(extras)}: re-save it"
        ) from exc
