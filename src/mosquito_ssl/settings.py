"""Settings declared once: default, help, valid range and help panel live in the dataclass field.

A stage's config (``PretrainConfig``, the methods' settings...) declares each setting with
``setting(...)``; checking a value, the ``--help`` text (with its default) and the command-line
option are all derived from that one declaration::

    @dataclass(frozen=True)
    class MAESettings:
        mask_ratio: float = setting(0.8, "Fraction of patches masked.", gt=0, lt=1)

    check_fields(MAESettings(mask_ratio=1.5))   # ConfigError: --mask-ratio 1.5 is not valid: use ...
    default_text(MAESettings, "mask_ratio")     # "0.8"

The command line is built from these declarations in ``cli_options.py``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from .errors import ConfigError

_MISSING = dataclasses.MISSING


class SettingError(ConfigError):
    """A declared setting with a bad value; ``config.resolve`` renames it for a TOML key or spec key."""

    def __init__(self, field: str, flag: str, value: Any, valid: str) -> None:
        super().__init__(f"{flag} {value!r} is not valid: use {valid}")
        self.field, self.value, self.valid = field, value, valid

    def spelled(self, where: str) -> ConfigError:
        """The same mistake named as the user wrote it, e.g. ``spec.toml [pretrain] lr``."""
        return ConfigError(f"{where} = {self.value!r} is not valid: use {self.valid}")


def setting(
    default: Any = _MISSING,
    help: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    panel: str | None = None,
    cli: bool = True,
    hidden: bool = False,
    flag: str | None = None,
    short: str | None = None,
    default_text: str | None = None,
) -> Any:
    """A dataclass field carrying its declaration (``panel``: the ``--help`` group; ``cli=False``: no flag).

    ``flag``: a flag other than ``--field-name`` (a bool given so is a plain switch);
    ``short``: a one-letter alias (``-o``); ``default_text`` says what a ``None`` default means.
    """
    meta = {
        "help": help,
        "range": {"ge": ge, "gt": gt, "le": le, "lt": lt},
        "choices": choices,
        "panel": panel,
        "cli": cli,
        "hidden": hidden,
        "flag": flag,
        "short": short,
        "default_text": default_text,
    }
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not supported; use a tuple")
    return dataclasses.field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def declared(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` declared with ``setting``."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def base_type(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), type(None) in typing.get_args(hint)
    return hint, False


def range_text(field: dataclasses.Field) -> str:
    """The valid values of a field in words: ``a number > 0 and < 1``, ``one of a, b``."""
    if field.metadata.get("choices"):
        return "one of " + ", ".join(field.metadata["choices"])
    bounds = field.metadata.get("range", {})
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = [f"{words[k]} {v:g}" for k, v in bounds.items() if v is not None]
    return " and ".join(parts)


def _type_ok(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    if kind is Path:
        return isinstance(value, (str, Path))
    return True  # tuples and other structured fields are checked by their owners


def _in_range(value: Any, bounds: dict) -> bool:
    checks = {
        "ge": lambda b: value >= b,
        "gt": lambda b: value > b,
        "le": lambda b: value <= b,
        "lt": lambda b: value < b,
    }
    return all(checks[k](b) for k, b in bounds.items() if b is not None)


def _type_word(kind: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}.get(
        kind, str(kind)
    )


def check_value(field: dataclasses.Field, value: Any, kind: Any, optional: bool) -> None:
    """ConfigError naming the flag, the value and the valid range, when ``value`` is not valid."""
    if value is None and optional:
        return
    flag = field.metadata.get("flag") or flag_name(field.name)
    valid = range_text(field)
    if not _type_ok(value, kind):
        raise SettingError(field.name, flag, value, _type_word(kind) + (f" ({valid})" if valid else ""))
    choices = field.metadata.get("choices")
    if (choices and value not in choices) or (kind in (int, float) and not _in_range(value, field.metadata["range"])):
        raise SettingError(field.name, flag, value, valid)


def check_fields(obj: Any) -> None:
    """Check the type and range of every declared field of a dataclass instance."""
    hints = typing.get_type_hints(type(obj))
    for field in declared(type(obj)):
        kind, optional = base_type(hints[field.name])
        check_value(field, getattr(obj, field.name), kind, optional)


def default_text(cls: type, name: str) -> str:
    """The default of a declared field as ``--help`` shows it."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.metadata.get("default_text"):
        return str(field.metadata["default_text"])
    value = field.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
