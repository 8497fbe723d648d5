"""Data model shared by every part of the KQL engine: columns, tables and the one error type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# KQL scalar type names exactly as the Log Analytics wire spells them (case-sensitive).
STRING: Final = "string"
INT: Final = "int"
LONG: Final = "long"
REAL: Final = "real"
BOOL: Final = "bool"
DATETIME: Final = "datetime"
TIMESPAN: Final = "timespan"
DYNAMIC: Final = "dynamic"
GUID: Final = "guid"
DECIMAL: Final = "decimal"

TYPES: Final = frozenset(
    {STRING, INT, LONG, REAL, BOOL, DATETIME, TIMESPAN, DYNAMIC, GUID, DECIMAL}
)
NUMERIC: Final = frozenset({INT, LONG, REAL, DECIMAL})
INTEGRAL: Final = frozenset({INT, LONG})


@dataclass(frozen=True)
class Column:
    """A result or source column: its name and KQL type name (see ``TYPES``)."""

    name: str
    type: str


@dataclass
class Table:
    """A table of rows; each row is a list aligned with ``columns``.

    Cell values are Python natives: tz-aware UTC ``datetime``, ``timedelta``, ``str``, ``int``,
    ``float``, ``bool``, ``dict``/``list`` (or any JSON value) for ``dynamic``, ``None`` for null.
    The engine never mutates the rows it is given; callers must not mutate a table while a query
    over it is running.
    """

    name: str
    columns: list[Column]
    rows: list[list[Any]]


# The code of a query the emulator cannot run although the service may (see KQL.md): no real
# Log Analytics answer uses it, so a test can never mistake it for a real semantic error.
UNSUPPORTED: Final = "NotSupportedByEmulator"

# The service's wording for each error class (outer innererror) and the Kusto code under it.
_INNER: Final = {
    "SyntaxError": ("A recognition error occurred in the query.", "SYN0002"),
    "SemanticError": ("A semantic error occurred.", "SEM0100"),
    "BadArgumentError": ("The query had invalid arguments.", "SEM0001"),
    # Never a real service code: the query may be valid KQL that the emulator does not run.
    UNSUPPORTED: ("The emulator does not implement part of this query.", "EMU0001"),
}


class KqlError(Exception):
    """The only exception the engine raises for a bad or unsupported query.

    ``code`` is ``"SyntaxError"`` (the text does not parse), ``"SemanticError"`` (unknown table,
    column or function, type mismatch), ``"BadArgumentError"`` (a value the query computes is
    out of range) or ``"NotSupportedByEmulator"`` (KQL the service runs but the emulator does not
    implement: an operator, function or option outside the subset). ``message`` is the
    Kusto-style detail, e.g. ``Query could not be parsed at 'xyz' on line [1,12]``. Syntax
    errors also carry ``line`` (1-based), ``pos`` (0-based column in that line) and ``token``,
    as the real innererror does.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        line: int | None = None,
        pos: int | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.line = line
        self.pos = pos
        self.token = token

    @property
    def inner_code(self) -> str:
        """The native Kusto code (SYN0002, SEM0100, ...) of the innermost error."""
        return _INNER.get(self.code, _INNER["SemanticError"])[1]

    def to_innererror(self) -> dict[str, Any]:
        """The ``innererror`` object of the service's 400 answer for this error."""
        native: dict[str, Any] = {"code": self.inner_code, "message": self.message}
        if self.line is not None:
            native["line"] = self.line
        if self.pos is not None:
            native["pos"] = self.pos
        if self.token is not None:
            native["token"] = self.token
        outer_message = _INNER.get(self.code, _INNER["SemanticError"])[0]
        return {"code": self.code, "message": outer_message, "innererror": native}


def semantic(message: str) -> KqlError:
    """A SemanticError (unknown name, wrong type)."""
    return KqlError("SemanticError", message)


def unsupported(message: str) -> KqlError:
    """KQL that the real service runs but the emulator does not implement."""
    return KqlError(UNSUPPORTED, message)
