"""Command-line options built from the settings' declarations (``settings.setting``).

A command whose settings live in a config dataclass takes its options from that class: the flag,
the type, the help text with the declared default and the ``--help`` panel come from the one
declaration, so nothing is retyped. The methods' settings (flat fields of ``PretrainConfig``) get
one panel per set of methods that share them::

    command = config_command(PretrainConfig, run, doc="Pretrain AST self-supervised.", arguments=("data",))
    app.command("pretrain")(command)       # mosquito-ssl pretrain --help
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .settings import base_type, declared, default_text, flag_name

CONFIG_PANEL = "Output"


def method_panel(owners: list[str]) -> str:
    return "Method " + " / ".join(owners)


def _method_help(name: str, help_text: str) -> tuple[str, str]:
    """(help with the default of every method that has the setting, the panel) of a method setting."""
    from .model.methods import METHODS, methods_with

    owners = methods_with(name)
    defaults = {m: default_text(METHODS[m].settings, name) for m in owners}
    shown = (
        next(iter(defaults.values()))
        if len(set(defaults.values())) == 1
        else ", ".join(f"{m} {d}" for m, d in defaults.items())
    )
    return f"{help_text} (default: {shown})", method_panel(owners)


def field_help(cls: type, field: dataclasses.Field) -> tuple[str, str | None]:
    """(help text with the declared default, panel) of one declared field."""
    from .model.methods import METHOD_FIELDS

    help_text = field.metadata["help"]
    if field.metadata.get("choices"):
        help_text += " One of: " + ", ".join(field.metadata["choices"]) + "."
    if field.name in METHOD_FIELDS and field.default is None and not field.metadata.get("panel"):
        return _method_help(field.name, help_text)
    shown = default_text(cls, field.name)
    unset = field.default is None or field.default is False  # not "0": a zero default is shown
    if field.default is dataclasses.MISSING or (unset and not field.metadata["default_text"]):
        return help_text, field.metadata.get("panel")
    return f"{help_text} (default: {shown})", field.metadata.get("panel")


def _option(cls: type, field: dataclasses.Field, kind: Any) -> inspect.Parameter:
    help_text, panel = field_help(cls, field)
    names = [field.metadata.get("flag") or flag_name(field.name)]
    if kind is bool and not field.metadata.get("flag"):
        names = [f"{names[0]}/--no-{names[0][2:]}"]
    if field.metadata.get("short"):
        names.append(field.metadata["short"])
    info = typer.Option(*names, help=help_text, rich_help_panel=panel, hidden=field.metadata.get("hidden", False))
    annotation = Annotated[Optional[kind], info]  # None = not given: the TOML file or the default applies
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _argument(cls: type, field: dataclasses.Field, kind: Any) -> inspect.Parameter:
    annotation = Annotated[kind, typer.Argument(help=field.metadata["help"], show_default=False)]
    return inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)


def _panel_rank(panels: tuple[str, ...]) -> Callable[[inspect.Parameter], int]:
    """Sort key: panels in ``panels`` order, the methods' panels before the last two (optimisation, output)."""

    def rank(param: inspect.Parameter) -> int:
        panel = typing.get_args(param.annotation)[1].rich_help_panel
        if panel in panels:
            index = panels.index(panel)
            return index if index < len(panels) - 2 else index + 100
        return len(panels) - 2  # a method panel (sorted() is stable: registry order kept)

    return rank


def parameters(cls: type, arguments: tuple[str, ...] = (), panels: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The command-line parameters of every declared field of ``cls`` that has a flag, panel by panel."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in declared(cls) if f.metadata.get("cli", True)]
    params = [_argument(cls, f, base_type(hints[f.name])[0]) for f in fields if f.name in arguments]
    options = [_option(cls, f, base_type(hints[f.name])[0]) for f in fields if f.name not in arguments]
    params += sorted(options, key=_panel_rank(panels)) if panels else options
    config = Annotated[
        Optional[Path],
        typer.Option(
            "--config", "-c", help="TOML file with settings; flags given here win.", rich_help_panel=CONFIG_PANEL
        ),
    ]
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=config))
    return params


def config_command(
    cls: type,
    run: Callable[[Path | None, dict[str, Any]], None],
    doc: str,
    arguments: tuple[str, ...] = (),
    panels: tuple[str, ...] = (),
) -> Callable[..., None]:
    """A Typer command whose options are ``cls``'s declared fields; ``run(config_file, flags)`` does the work.

    ``panels``: the ``--help`` panels in order; the methods' panels come before the last two.
    """
    params = parameters(cls, arguments, panels)

    def command(**flags: Any) -> None:
        config = flags.pop("config", None)
        run(config, flags)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command


def declared_help(command: Callable[..., Any], cls: type) -> Callable[..., Any]:
    """Give every option of a hand-written command that is a declared field of ``cls`` its declared help.

    For commands whose signature is written out (the probes, ``embed``): the help text and the
    default it names come from the declaration, never from the command.
    """
    fields = {f.name: f for f in declared(cls)}
    signature = inspect.signature(command, eval_str=True)
    params = []
    for param in signature.parameters.values():
        args = typing.get_args(param.annotation)
        if param.name in fields and len(args) == 2 and isinstance(args[1], typer.models.OptionInfo):
            info = copy.copy(args[1])
            info.help = field_help(cls, fields[param.name])[0]
            param = param.replace(annotation=Annotated[args[0], info])
        params.append(param)
    command.__dict__["__signature__"] = signature.replace(parameters=params)
    return command
