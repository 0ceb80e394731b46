"""Stage configurations: frozen dataclasses resolved as defaults < TOML file < CLI flags.

Each stage owns its dataclass (``PretrainConfig`` in ``pretrain/train.py`` and so on); this
module only knows how to layer the three sources::

    cfg = resolve(PretrainConfig, config_file=Path("pretrain.toml"), section="pretrain",
                  overrides={"lr": 3e-4, "epochs": None})   # None = flag not given
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from .errors import ConfigError
from .settings import SettingError

T = TypeVar("T")


def load_toml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing TOML file to --config")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix the line it names") from exc


def _coerce(value: Any, annotation: Any) -> Any:
    """Turn TOML/CLI values into the field's type where that is unambiguous (paths, tuples)."""
    if value is None:
        return None
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
        origin = typing.get_origin(hint)
    if hint is Path:
        return Path(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def resolve(
    cls: type[T],
    config_file: Path | None = None,
    section: str | None = None,
    overrides: dict[str, Any] | None = None,
    spelled: dict[str, str] | None = None,
) -> T:
    """Build ``cls`` from its defaults, then the TOML file (its ``[section]`` if given), then flags.

    Overrides whose value is None are flags the user did not give and are ignored.
    Unknown keys in the TOML file are an error that names the key and the file. A bad value is
    named as the user wrote it: the flag, the file's key, or ``spelled[key]`` (a sweep spec's
    ``pretrain.lr``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    if config_file is not None:
        data = load_toml(config_file)
        if section is not None and isinstance(data.get(section), dict):
            data = data[section]  # a shared file with [pretrain], [probe]... tables
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{config_file}: unknown key(s) {', '.join(unknown)}; valid keys are: {', '.join(sorted(fields))}"
            )
        values.update(data)
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r} for {cls.__name__}")
        if value is not None:
            values[key] = value
    values = {k: _coerce(v, hints[k]) for k, v in values.items()}
    flags = {k for k, v in (overrides or {}).items() if v is not None}
    where = dict(spelled or {})
    if config_file is not None:
        table = f" [{section}]" if section else ""
        where |= {k: f"{config_file}{table} {k}" for k in set(values) - flags}
    try:
        return cls(**values)
    except SettingError as exc:
        if exc.field in where:
            raise exc.spelled(where[exc.field]) from None
        raise
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid {cls.__name__} setting: {exc}") from exc
