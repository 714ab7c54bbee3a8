"""The project's own exception types: every expected failure is one of these, with a message for a person."""
from __future__ import annotations

MAX_LISTED = 5


class RecsysError(Exception):
    """Base class: a problem with the user's input, explained in the message."""


class ConfigError(RecsysError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class DataError(RecsysError, ValueError):
    """An input file or data set cannot be used as given."""


def rows_text(lines, values=None, unit: str = "line") -> str:
    """'line 3' or 'lines 3, 17, 40 (and 12 more)', with the offending values when given."""
    lines = list(lines)
    shown = lines[:MAX_LISTED]
    if values is not None:
        parts = [f"{line} ({value!r})" for line, value in zip(shown, list(values)[:MAX_LISTED])]
    else:
        parts = [str(line) for line in shown]
    more = f" (and {len(lines) - MAX_LISTED} more)" if len(lines) > MAX_LISTED else ""
    return f"{unit}{'s' if len(lines) > 1 else ''} " + ", ".join(parts) + more
