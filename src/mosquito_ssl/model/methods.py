"""The SSL methods behind ``mosquito-ssl pretrain --method NAME``: one registry, one settings dataclass each.

==============  ==========================================================================
``reconstruct``  the original objective: reconstruct the clean spectrogram from a
                 SpecAugment-masked input, every token encoded (``ssl.ASTSSL``)
``mae``          AudioMAE: visible patches only, narrow decoder, norm-pix loss (``mae.ASTMAE``)
``teacher``      data2vec 2.0 / EAT: EMA teacher targets + clip loss (``teacher.ASTTeacher``)
``byol``         BYOL-A: clip-level invariance between two views (``byol.ASTBYOL``)
==============  ==========================================================================

Method settings are flat options (``--mask-ratio``, ``--ema-decay``...) resolved like every other
setting; ``method_settings`` builds the method's dataclass from those given and refuses one that
belongs to another method::

    model = build_ssl_model("mae", encoder, {"mask_ratio": 0.75})
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from ..errors import ConfigError
from .byol import ASTBYOL, BYOLSettings
from .mae import ASTMAE, MAESettings
from .teacher import ASTTeacher, TeacherSettings

METHODS = ("reconstruct", "mae", "teacher", "byol")
SETTINGS: dict[str, type] = {"mae": MAESettings, "teacher": TeacherSettings, "byol": BYOLSettings}
MODELS: dict[str, type] = {"mae": ASTMAE, "teacher": ASTTeacher, "byol": ASTBYOL}
# Settings of the new methods, as flat PretrainConfig fields / CLI flags (None = method default).
METHOD_FIELDS = tuple(dict.fromkeys(f.name for cls in SETTINGS.values() for f in dataclasses.fields(cls)))


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not valid: use one of {', '.join(METHODS)}")
    return method


def methods_with(field: str) -> list[str]:
    return [m for m, cls in SETTINGS.items() if field in {f.name for f in dataclasses.fields(cls)}]


def method_settings(method: str, given: dict[str, Any]) -> Any:
    """The method's settings dataclass from the options given (None = not given)."""
    check_method(method)
    given = {k: v for k, v in given.items() if v is not None}
    cls = SETTINGS.get(method)
    own = {f.name for f in dataclasses.fields(cls)} if cls else set()
    for name in given:
        if name not in own:
            flag = "--" + name.replace("_", "-")
            owners = ", ".join(methods_with(name)) or "no method"
            raise ConfigError(f"{flag} is a setting of --method {owners}, not of --method {method}: drop it")
    return cls(**given) if cls else None


def build_ssl_model(method: str, encoder: nn.Module, settings: Any) -> nn.Module:
    """A method model around ``encoder``; ``settings`` is the dataclass (or a dict of its fields)."""
    check_method(method)
    if isinstance(settings, dict):
        settings = method_settings(method, settings)
    model: nn.Module = MODELS[method](encoder, settings)
    return model
