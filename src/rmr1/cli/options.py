"""The judge options shared by ``judge``, ``eval`` and ``serve``, declared once.

``@judge_options`` appends the shared options to a command's signature and hands the command one
``JudgeOptions`` object (as ``opts``), so each command lists only its own flags.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import fields
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

import typer

from rmr1.judge_options import HELP, JudgeOptions

_DEFAULTS = JudgeOptions()
_TYPES = get_type_hints(JudgeOptions)
_NAMES = [f.name for f in fields(JudgeOptions)]

F = TypeVar("F", bound=Callable[..., Any])


def _parameter(name: str) -> inspect.Parameter:
    annotation = _TYPES[name]
    flag = "--" + name.replace("_", "-")
    if annotation is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    extra: dict[str, Any] = {}
    if list in (get_origin(annotation), *(get_origin(a) for a in get_args(annotation))):
        # A list field is a repeatable flag (--base-url A --base-url B); "URL" reads better than list[str].
        extra["metavar"] = name.rsplit("_", 1)[-1].upper()
    option = typer.Option(flag, help=HELP[name], rich_help_panel="Judge options", **extra)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=getattr(_DEFAULTS, name),
        annotation=Annotated[annotation, option],
    )


def judge_options(fn: F) -> F:
    """Add the shared judge options to a Typer command; the command receives them as ``opts``."""
    signature = inspect.signature(fn)
    # Resolve string annotations (``from __future__ import annotations``) in the command's own module, keeping
    # the Annotated[..., typer.Option(...)] extras; otherwise Typer would see bare strings and drop the options.
    hints = get_type_hints(fn, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "opts"
    ]
    shared = [_parameter(name) for name in _NAMES]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        opts = JudgeOptions(**{name: kwargs.pop(name) for name in _NAMES})
        return fn(opts=opts, **kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper  # type: ignore[return-value]
