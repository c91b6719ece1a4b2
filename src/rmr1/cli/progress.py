"""A progress bar for long work, shown only on a terminal, with live accuracy when labels are known."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rmr1.types import Judgment


@contextlib.contextmanager
def progress_bar(
    console: Console, total: int, label: str
) -> Iterator[Callable[[int, Judgment | None], None]]:
    """Yield ``advance(n, judgment)``; a no-op bar when stderr is not a terminal."""
    right = wrong = 0
    if not console.is_terminal:

        def ignore(n: int, judgment: Judgment | None = None) -> None:
            return None

        yield ignore
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[acc]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, acc="")

        def advance(n: int, judgment: Judgment | None = None) -> None:
            nonlocal right, wrong
            if judgment is not None and judgment.correct is not None:
                right += judgment.correct
                wrong += not judgment.correct
            acc = f"acc {right / (right + wrong):.3f}" if right + wrong else ""
            progress.update(task, advance=n, acc=acc)

        yield advance
