"""Every command of ``mosquito-ssl``: its ``--help`` shows an example and lists only options it uses.

The commands are found by walking the click command tree Typer builds, so a new command is
checked without being listed here. "Uses" is checked two ways:

* statically, for every command: each parameter of the callback is read in its body (a
  ``dict(locals())`` that collects the flags for ``config.resolve`` counts as reading all);
* by running the command, for commands that build a config with ``config.resolve(Cls, ...)``:
  ``resolve`` is replaced by one that builds the real config, records it and stops the command
  before any work. Every listed option must then reach ``Cls`` as one of its fields (or be read
  by the command itself, or be one of ``ALLOWED``), and giving an option (at the config's
  default) must not be an error: an option the command rejects must not be listed.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import logging
import re
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import pytest
import typer
from typer.testing import CliRunner

from mosquito_ssl import config
from mosquito_ssl.cli import app

# Options that never reach a config: the config file itself and output switches.
ALLOWED = {"config", "json", "verbose", "help"}
runner = CliRunner()


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) of every leaf command below ``command``."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path, command
        return
    for name, sub in sorted(subcommands.items()):
        yield from walk(sub, (*path, name))


def command_tree(cli: typer.Typer) -> dict[tuple[str, ...], Any]:
    return dict(walk(typer.main.get_command(cli)))


COMMANDS = command_tree(app)
IDS = [" ".join(p) for p in COMMANDS]


def plain(text: str) -> str:
    """Help text without rich's box characters and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def callback_of(command: Any):
    """The function the command was declared with (Typer wraps it)."""
    func = command.callback
    return getattr(func, "__wrapped__", func)


def body_of(func) -> ast.FunctionDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef), func
    return node


def names_read(node: ast.FunctionDef) -> set[str]:
    """Names loaded in the body (not in the signature's defaults or annotations)."""
    return {
        n.id for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def calls(node: ast.FunctionDef, name: str) -> bool:
    for stmt in node.body:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Call):
                f = n.func
                if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                    return True
    return False


def listed_options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_help_shows_an_example_kept_out_of_the_docstring(path):
    command = COMMANDS[path]
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    wanted = "Example: mosquito-ssl" if getattr(command, "hidden", False) else f"Example: mosquito-ssl {' '.join(path)}"
    assert wanted in plain(result.output), f"`mosquito-ssl {' '.join(path)}` needs epilog={wanted!r}..."
    assert "Example:" in (command.epilog or ""), "the example belongs in the command's epilog"
    assert "Example:" not in (command.help or ""), "the docstring is one short sentence, the example a field"


def test_root_help_has_an_example_and_verbose_sets_debug():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "Example: mosquito-ssl" in plain(result.output)
    assert "--verbose" in result.output and "-v" in result.output
    root = logging.getLogger()
    try:
        runner.invoke(app, ["-v", "reports", "build", "--help"])
        assert root.level == logging.DEBUG
        runner.invoke(app, ["reports", "build", "--help"])
        assert root.level == logging.INFO
    finally:
        root.setLevel(logging.WARNING)


def unread_parameters(command: Any) -> list[str]:
    """Parameters of the command its body never reads; ``dict(locals())`` or ``**flags`` (a command
    built from a config's declarations) reads them all (they go to ``config.resolve``, where
    test_listed_options_reach_the_config checks them)."""
    node = body_of(callback_of(command))
    if calls(node, "locals") or node.args.kwarg is not None:
        return []
    return [p.name for p in command.params if p.name not in names_read(node)]


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_every_parameter_is_read_by_the_command(path):
    unread = unread_parameters(COMMANDS[path])
    assert not unread, f"`mosquito-ssl {' '.join(path)}` declares {unread} but never reads them"


class _Stop(Exception):
    """Raised by the stand-in ``resolve`` once the config is built: nothing else runs."""


def _base_type(func, name: str) -> str:
    """The parameter's type as text, without Annotated / Optional, e.g. "Path", "list[Path]", "bool"."""
    hint = typing.get_type_hints(func)[name]  # drops Annotated's typer metadata
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    return getattr(hint, "__name__", str(hint)) if typing.get_origin(hint) is None else str(hint)


def _argument_values(command: Any, tmp_path: Path) -> list[str]:
    """A value for each argument (an existing folder for paths)."""
    func = callback_of(command)
    values = []
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        kind = _base_type(func, param.name)
        if "Path" in kind:
            folder = tmp_path / f"arg-{param.name}"
            folder.mkdir(exist_ok=True)
            values.append(str(folder))
        else:
            values.append({"int": "1", "float": "0.5"}.get(kind, "x"))
    return values


def _run_until_resolve(cli, path, args, monkeypatch) -> tuple[Any, dict, Any]:
    """Invoke the command; return (cls, overrides, result) of its first ``config.resolve``."""
    seen: list[tuple[type, dict]] = []
    real = config.resolve

    def stand_in(cls, config_file=None, section=None, overrides=None):
        real(cls, None, section, overrides)  # the config's own checks run, as they would
        seen.append((cls, dict(overrides or {})))
        raise _Stop

    with monkeypatch.context() as patch:
        patch.setattr(config, "resolve", stand_in)
        func = callback_of(command_tree(cli)[path])
        if func.__globals__.get("resolve") is real:  # imported at module level
            patch.setitem(func.__globals__, "resolve", stand_in)
        result = runner.invoke(cli, [*path, *args])
    cls, overrides = seen[0] if seen else (None, {})
    return cls, overrides, result


def unused_options(cli, path, tmp_path, monkeypatch) -> tuple[list[str], list[str]]:
    """(listed options that reach neither the config nor the command, listed options it rejects)."""
    command = command_tree(cli)[path]
    args = _argument_values(command, tmp_path)
    cls, overrides, result = _run_until_resolve(cli, path, args, monkeypatch)
    assert isinstance(result.exception, _Stop), f"did not reach config.resolve: {result.output}"
    fields = {f.name: f for f in dataclasses.fields(cls)}
    read_directly = names_read(body_of(callback_of(command)))
    unused = [
        p.opts[0]
        for p in listed_options(command)
        if p.name not in ALLOWED and not (p.name in fields and p.name in overrides) and p.name not in read_directly
    ]
    rejected = []
    for param in listed_options(command):
        default = fields[param.name].default if param.name in fields else None
        if param.name in ALLOWED or default is None or default is dataclasses.MISSING:
            continue
        if isinstance(default, (tuple, list, dict)):
            continue
        is_flag = _base_type(callback_of(command), param.name) == "bool"
        given = [param.opts[0]] if is_flag else [param.opts[0], str(default)]
        _, _, result = _run_until_resolve(cli, path, [*args, *given], monkeypatch)
        if not isinstance(result.exception, _Stop):
            rejected.append(f"{' '.join(given)}: {result.output.strip() or result.exception!r}")
    return unused, rejected


def resolves(command: Any) -> bool:
    """The command builds a config: it calls ``resolve``, or it is built from a config's declarations."""
    node = body_of(callback_of(command))
    return calls(node, "resolve") or node.args.kwarg is not None


RESOLVING = [p for p, c in COMMANDS.items() if resolves(c)]


@pytest.mark.parametrize("path", RESOLVING, ids=[" ".join(p) for p in RESOLVING])
def test_listed_options_reach_the_config(path, tmp_path, monkeypatch):
    unused, rejected = unused_options(app, path, tmp_path, monkeypatch)
    assert not unused, f"`mosquito-ssl {' '.join(path)}` lists {unused}, which are not settings of its config"
    assert not rejected, f"`mosquito-ssl {' '.join(path)}` lists options it rejects: {rejected}"


# ---- the checks themselves catch what they are for ------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Settings:
    data: Path
    lr: float = 0.1
    epochs: int = 5


_bad = typer.Typer()


@_bad.callback()
def _bad_root() -> None:
    """A group, so that commands have names."""


@_bad.command("probe", epilog="Example: mosquito-ssl probe data")
def _bad_probe(
    data: Annotated[Path, typer.Argument()],
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs")] = None,
    colour: Annotated[Optional[str], typer.Option("--colour")] = None,
) -> None:
    """Lists --colour (no setting) and --epochs (which it rejects)."""
    flags = dict(locals())
    from mosquito_ssl.config import resolve
    from mosquito_ssl.errors import ConfigError

    if epochs is not None:
        raise ConfigError("--epochs is a finetune option: use the finetune command")
    resolve(_Settings, overrides={k: v for k, v in flags.items() if k != "colour"})


@_bad.command("stats", epilog="Example: mosquito-ssl stats")
def _bad_stats(
    alpha: Annotated[float, typer.Option("--alpha")] = 0.05,
    unused: Annotated[int, typer.Option("--unused")] = 0,
) -> None:
    """Never reads --unused."""
    typer.echo(alpha)


def test_the_option_checks_can_fail(tmp_path, monkeypatch):
    unused, rejected = unused_options(_bad, ("probe",), tmp_path, monkeypatch)
    assert unused == ["--colour"]
    assert len(rejected) == 1 and rejected[0].startswith("--epochs 5: ") and "a finetune option" in rejected[0]
    assert unread_parameters(command_tree(_bad)[("stats",)]) == ["unused"]
    assert unread_parameters(command_tree(_bad)[("probe",)]) == []  # dict(locals()) reads them all


# ---- defaults: every default --help shows is the declared one ------------------------------


def _declared_commands() -> dict[tuple[str, ...], type]:
    from mosquito_ssl.pretrain.config import PretrainConfig
    from mosquito_ssl.probe.config import ProbeConfig

    probes = {p: ProbeConfig for p in COMMANDS if p[0] == "probe" and p[1] != "presence"}
    return {("pretrain",): PretrainConfig, ("embed",): ProbeConfig, **probes}


DECLARED = _declared_commands()


def _parsed(text: str, like: Any) -> Any:
    """A default as --help shows it, read back as the type of the declared value."""
    if isinstance(like, bool):
        return {"on": True, "off": False}[text]
    return type(like)(text) if isinstance(like, (int, float, Path)) else text


@pytest.mark.parametrize("path", list(DECLARED), ids=[" ".join(p) for p in DECLARED])
def test_every_default_in_help_is_the_declared_default(path):
    from mosquito_ssl.cli_options import field_help
    from mosquito_ssl.model.methods import METHODS, methods_with
    from mosquito_ssl.settings import declared

    cls = DECLARED[path]
    fields = {f.name: f for f in declared(cls)}
    checked = 0
    for param in listed_options(COMMANDS[path]):
        if param.name not in fields:
            continue
        field = fields[param.name]
        assert param.help == field_help(cls, field)[0], f"--{param.name}: help is not the declaration's"
        shown = re.search(r"\(default: ([^)]*)\)$", param.help or "")
        if not shown or field.metadata.get("default_text"):
            continue
        owners = methods_with(param.name) if field.default is None else []
        if owners:  # a method setting: "0.8" or "teacher 0.999, byol 0.99"
            texts = dict(part.rsplit(" ", 1) for part in shown.group(1).split(", ")) if "," in shown.group(1) else {}
            for m in owners:
                want = getattr(METHODS[m].settings(), param.name)
                assert _parsed(texts.get(m, shown.group(1)), want) == want, f"--{param.name} of {m}"
        else:
            assert _parsed(shown.group(1), field.default) == field.default, f"--{param.name}"
        checked += 1
    assert checked >= 5, f"only {checked} defaults found in `mosquito-ssl {' '.join(path)} --help`"


def test_pretrain_help_groups_options_in_panels():
    result = runner.invoke(app, ["pretrain", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    width = max(len(line) for line in result.output.splitlines())
    assert width <= 80
    for panel in ("Data", "Front end", "Model", "Method reconstruct", "Method byol", "Optimisation", "Output"):
        assert f"─ {panel} ─" in result.output, panel
    text = plain(result.output)
    assert text.index("--mask-strength") > text.index("Method reconstruct") > text.index("--preset")
