"""One error family. Every message is a single line a user can act on.

Where the fault lies in a file, the message names the file, the line (or record) and the field.
The CLI turns any ``Rmr1Error`` into ``error: <message>`` on stderr and a non-zero exit code.
"""

from __future__ import annotations


class Rmr1Error(Exception):
    """Base class of every error rmr1 raises on purpose."""


class InputError(Rmr1Error, ValueError):
    """Bad user input: a malformed file, a missing or wrongly typed field, an empty text."""

    def __init__(
        self, message: str, *, source: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.source, self.line, self.field, self.bare = source, line, field, message
        where = []
        if source:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def located(
        self, source: str | None = None, line: int | None = None, field: str | None = None
    ) -> InputError:
        """The same error with the file, line (or record) and field filled in where still unknown."""
        return InputError(
            self.bare,
            source=self.source or source,
            line=self.line if self.line is not None else line,
            field=self.field or field,
        )


class ConfigError(Rmr1Error, ValueError):
    """A setting that cannot work: unknown template, backend, benchmark or preset key."""


class MissingDependencyError(Rmr1Error, ImportError):
    """An optional part was asked for but its extra is not installed."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        super().__init__(f"{what} needs the '{module}' package: pip install 'rmr1[{extra}]'")


class ModelLoadError(Rmr1Error):
    """A model could not be found, downloaded or converted."""


class BackendError(Rmr1Error):
    """A backend failed in a way that retries could not mend."""


class EngineStalledError(BackendError):
    """An engine call stopped making progress: it used no CPU time for a long stretch and never returned."""


def require(module: str, *, what: str, extra: str) -> None:
    """Raise MissingDependencyError unless ``module`` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(what, extra, module)
