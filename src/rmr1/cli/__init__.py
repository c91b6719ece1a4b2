"""The ``rmr1`` command line: a thin Typer app, one small module per command.

Every command calls into the library; an ``Rmr1Error`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from rmr1.errors import Rmr1Error

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reasoning reward models: judge, evaluate, train and serve LLM judges.",
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """Reasoning reward models: judge, evaluate, train and serve LLM judges."""
    if version:
        from rmr1 import __version__

        typer.echo(__version__)
        raise typer.Exit()


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


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except Rmr1Error as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
