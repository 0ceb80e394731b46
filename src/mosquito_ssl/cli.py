"""Root of the ``mosquito-ssl`` command line: each stage adds its sub-app here.

    mosquito-ssl --help
    mosquito-ssl data synth data/synth
    mosquito-ssl -v pretrain data/synth --preset tiny --epochs 5    # -v: DEBUG logging

User mistakes (``MosquitoSSLError``) print one line and exit 1; ``MOSQUITO_SSL_DEBUG=1``
shows the traceback. Logging is configured here and nowhere else. Stage CLIs import torch
inside their commands, so ``--help`` and ``reports`` stay light.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .errors import MosquitoSSLError

# Commands in data-flow order in the root --help (Typer lists single commands before groups).
ORDER = ("data", "pretrain", "probe", "embed", "benchmarks", "reports", "demo")


# typer runs its own copy of click; its usage errors (a bad option value, an unknown option, a
# missing argument) are the bases of the BadParameter it exports.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


def usage_line(exc: Exception, args: list[str]) -> str:
    """A click usage error as one line: the flag, the bad value and where the help is."""
    ctx = getattr(exc, "ctx", None)
    where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    param = getattr(exc, "param", None)
    text = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    flags = [f for f in getattr(param, "opts", []) if f in args or any(a.startswith(f + "=") for a in args)]
    if flags and getattr(param, "param_type_name", "") == "option":
        flag = flags[0]
        given = next((a.split("=", 1)[1] for a in args if a.startswith(flag + "=")), None)
        if given is None and args.index(flag) + 1 < len(args):
            given = args[args.index(flag) + 1]
        reason = text.split(": ", 1)[-1]
        return f"{flag} {given!r} is not valid: {reason}{where}"
    return f"{text[0].lower()}{text[1:].rstrip('.')}{where}"


def _shows_help(exc: Exception) -> bool:
    """A command given no arguments raises a usage error that prints its help: let it."""
    return type(exc).__name__ == "NoArgsIsHelpError"


class _Group(TyperGroup):
    """Root command group: a ``MosquitoSSLError`` or a usage error anywhere below becomes one line, exit 1."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))

    def make_context(self, info_name, args, parent=None, **extra) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:  # the root's own options (mosquito-ssl --bogus)
            if os.environ.get("MOSQUITO_SSL_DEBUG") or _shows_help(exc):
                raise
            typer.echo(f"error: {usage_line(exc, list(args))}", err=True)
            raise typer.Exit(1) from None

    def invoke(self, ctx) -> Any:  # ctx: the click Context of typer's own click copy
        try:
            return super().invoke(ctx)
        except MosquitoSSLError as exc:
            if os.environ.get("MOSQUITO_SSL_DEBUG"):
                raise
            # typer's Exit, not click's: typer (0.29 here) runs its own copy of click, which would let
            # a click.exceptions.Exit through as a traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except UsageError as exc:
            if os.environ.get("MOSQUITO_SSL_DEBUG") or _shows_help(exc):
                raise
            typer.echo(f"error: {usage_line(exc, sys.argv[1:])}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="mosquito-ssl",
    cls=_Group,
    help="Self-supervised AST pretraining and evaluation on mosquito flight sounds.",
    epilog="Example: mosquito-ssl demo --out demo_out\n\nExample: mosquito-ssl -v pretrain data/synth --preset tiny",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from .benchmarks.cli import app as benchmarks_app
    from .data.cli import app as data_app
    from .demo import EPILOG as DEMO_EPILOG
    from .demo import demo
    from .pretrain.cli import EPILOG as PRETRAIN_EPILOG
    from .pretrain.cli import pretrain
    from .probe import embed_cli
    from .probe.cli import app as probe_app
    from .reports.cli import app as reports_app

    app.add_typer(data_app, name="data")
    app.command("pretrain", epilog=PRETRAIN_EPILOG)(pretrain)
    app.add_typer(probe_app, name="probe")
    app.command("embed", epilog=embed_cli.EPILOG)(embed_cli.embed)
    app.add_typer(benchmarks_app, name="benchmarks")
    app.add_typer(reports_app, name="reports")
    app.command("demo", epilog=DEMO_EPILOG)(demo)


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr``: a stream captured once (by a test runner, say)
    may be closed by the time a later message arrives."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Formatter(logging.Formatter):
    """Progress lines with their time; a warning as one ``warning: ...`` line a user notices."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.WARNING:
            return f"warning: {record.getMessage()}"
        return super().format(record)


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose or os.environ.get("MOSQUITO_SSL_DEBUG") else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=level, force=True, handlers=[handler])
    for noisy in ("urllib3", "matplotlib", "numba", "PIL", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging (also the Trainer's raw log dictionaries).")
    ] = False,
) -> None:
    """Self-supervised AST pretraining and evaluation on mosquito flight sounds."""
    setup_logging(verbose)


_register()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
