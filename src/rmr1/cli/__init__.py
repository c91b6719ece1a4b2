"""The ``rmr1`` command line: a thin Typer app, one small module per command.

Every command calls into the library; an ``Rmr1Error`` becomes one line on stderr and exit code 2 (see
``rmr1.cli.failures`` for every way a command can end).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import typer

from rmr1.cli.failures import DEBUG_ENV, run

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reasoning reward models: judge, evaluate, train and serve LLM judges.",
)


def _print_version(value: bool) -> None:
    # An eager callback: it runs while the flags are parsed, before Click asks for a command.
    if value:
        from rmr1 import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help=f"Show the traceback of an error (also after the command name, or {DEBUG_ENV}=1).",
    ),
) -> None:
    """Reasoning reward models: judge, evaluate, train and serve LLM judges."""


# Each module registers its command(s) on ``app`` when imported.
_COMMANDS = [
    "rmr1.cli.judge",
    "rmr1.cli.eval",
    "rmr1.cli.rescore",
    "rmr1.cli.report",
    "rmr1.cli.merge",
    "rmr1.cli.compare",
    "rmr1.cli.serve",
    "rmr1.cli.demo",
    "rmr1.cli.distill",
    "rmr1.cli.train",
]

for _module in _COMMANDS:
    importlib.import_module(_module)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: run the app and exit with its code (0, 2 on bad input, 1 on an internal error)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(run(app, argv))
