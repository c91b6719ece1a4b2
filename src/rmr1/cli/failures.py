"""How the command line ends when something goes wrong: one line on stderr, never a traceback by accident.

``run`` drives the Typer app without Click's standalone mode so that every failure passes through one place:
usage errors and ``Rmr1Error`` (bad input, bad settings) and ``OSError`` (a file the system refused) become
``error: <one line>`` and exit code 2; anything else is a bug, told as ``error: internal error ...`` with
exit code 1. ``--debug`` anywhere on the command line, or ``RMR1_DEBUG=1``, prints the traceback first.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, cast

import click
import typer

from rmr1.errors import Rmr1Error

# Typer ships its own copy of Click's exceptions; code may raise either family.
_CLICK_ERRORS = (typer.TyperException, click.ClickException)
_ABORTS = (KeyboardInterrupt, typer.Abort, click.exceptions.Abort)

DEBUG_FLAG, DEBUG_ENV = "--debug", "RMR1_DEBUG"
BAD_INPUT, INTERNAL, INTERRUPTED = 2, 1, 130


def split_debug(args: Sequence[str]) -> tuple[list[str], bool]:
    """``args`` without ``--debug`` (accepted before or after the command name), and whether debugging."""
    stop = list(args).index("--") if "--" in args else len(args)
    kept = [a for i, a in enumerate(args) if i >= stop or a != DEBUG_FLAG]
    env = os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return kept, env or len(kept) != len(args)


# Options whose value may be left out (``--ray`` alone), each with the value it then takes. Typer cannot
# declare such an option, so the value is filled in before Click reads the line. Commands register here.
OPTIONAL_VALUES: dict[str, str] = {}


def fill_optional_values(args: Sequence[str]) -> list[str]:
    """``args`` with the implied value after an optional-value option that has none (end, or a flag next)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out


def one_line(text: str) -> str:
    return " ".join(text.split())


def _usage(exc: Any) -> str:
    message = one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"
    return message


def _oserror(exc: OSError) -> str:
    reason = exc.strerror or one_line(str(exc)) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _fail(message: str, code: int, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    click.echo(f"error: {message}", err=True)
    return code


def run(app: Any, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` on ``argv`` (default: ``sys.argv[1:]``) and return the exit code; prints at most the
    command's own output and, on failure, one ``error:`` line (plus the traceback when debugging)."""
    args, debug = split_debug(list(sys.argv[1:] if argv is None else argv))
    args = fill_optional_values(args)
    try:
        code = app(args=args, prog_name="rmr1", standalone_mode=False)
    except _CLICK_ERRORS as exc:  # bad flags and arguments: Click's usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare ``rmr1`` or ``rmr1 train``: the help
            cast(Any, exc).show()
            return BAD_INPUT
        return _fail(_usage(exc), BAD_INPUT, exc, debug)
    except Rmr1Error as exc:
        return _fail(one_line(str(exc)), BAD_INPUT, exc, debug)
    except OSError as exc:  # permissions, a full disk, a path that is a folder
        return _fail(_oserror(exc), BAD_INPUT, exc, debug)
    except _ABORTS as exc:
        return _fail("interrupted", INTERRUPTED, exc, debug)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else INTERNAL)
    except Exception as exc:
        summary = one_line(f"{type(exc).__name__}: {exc}")[:300]
        hint = "" if debug else f"; run again with {DEBUG_FLAG} (or {DEBUG_ENV}=1) to see the traceback"
        return _fail(f"internal error ({summary}){hint}", INTERNAL, exc, debug)
    return code if isinstance(code, int) else 0


__all__ = ["DEBUG_ENV", "DEBUG_FLAG", "OPTIONAL_VALUES", "fill_optional_values", "run", "split_debug"]
