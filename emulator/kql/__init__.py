"""A KQL subset engine over in-memory tables, for the emulated Log Analytics query API.

``execute(query, tables, now=..., timespan=...)`` returns ``[Table("PrimaryResult", ...)]`` or
raises ``KqlError``; nothing else escapes for any input text. The supported subset, its type
rules and its deliberate differences from the service are documented in ``emulator/KQL.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

# Importing these modules registers the scalar operators, functions and aggregates.
from . import aggregates as _aggregates  # noqa: F401
from . import functions as _functions  # noqa: F401
from . import functions_general as _functions_general  # noqa: F401
from . import scalar_membership as _scalar_membership  # noqa: F401
from . import scalar_ops as _scalar_ops  # noqa: F401
from .engine import Executor
from .model import UNSUPPORTED, Column, KqlError, Table
from .parser import parse
from .syntax import Query

__all__ = [
    "UNSUPPORTED",
    "Column",
    "KqlError",
    "Outcome",
    "Table",
    "execute",
    "parse_cached",
    "run",
]

# Deeply nested input can exhaust Python's recursion limit in the recursive-descent parser; the
# service rejects such text as unparseable, and so do we.
_MAX_QUERY_LENGTH = 1_000_000


@lru_cache(maxsize=512)
def parse_cached(query: str) -> Query:
    """Parse ``query`` once per distinct text (syntax trees are immutable, so sharing is safe)."""
    return parse(query)


@dataclass(frozen=True)
class Outcome:
    """The result tables of a query, and the group budget a summarize overflowed (or None)."""

    tables: list[Table]
    overflowed_groups: int | None = None


def execute(
    query: str,
    tables: Mapping[str, Table],
    *,
    now: datetime,
    timespan: tuple[datetime, datetime] | None = None,
) -> list[Table]:
    """Run ``query`` over ``tables``: one ``PrimaryResult`` table per tabular statement."""
    return run(query, tables, now=now, timespan=timespan).tables


def run(
    query: str,
    tables: Mapping[str, Table],
    *,
    now: datetime,
    timespan: tuple[datetime, datetime] | None = None,
    max_groups: int | None = None,
) -> Outcome:
    """Run ``query`` over ``tables``; one ``PrimaryResult`` table per tabular statement.

    ``now`` anchors ``ago()`` and ``now()``. ``timespan`` (start, end), when given, restricts
    every source table to rows whose time column (``TimeGenerated`` for App* tables,
    ``timestamp`` for classic ones) lies in [start, end] before the query runs, as the service
    applies the request's timespan. Naive datetimes are taken as UTC.

    ``max_groups``, when given, is the summarize group budget: a summarize past it keeps the
    first ``max_groups`` groups and the outcome reports the overflow (the service answers such
    a query with a partial error).

    Raises KqlError (code SyntaxError, SemanticError, BadArgumentError or
    NotSupportedByEmulator) for any query the engine cannot run; result rows may share list
    objects with the input tables.
    """
    if len(query) > _MAX_QUERY_LENGTH:
        raise KqlError("BadArgumentError", "The query is too long")
    now = _utc(now)
    span = (_utc(timespan[0]), _utc(timespan[1])) if timespan is not None else None
    try:
        syntax_tree = parse_cached(query)
        executor = Executor(tables, now, span, max_groups)
        results = executor.run(syntax_tree)
        return Outcome(results, executor.overflowed_groups)
    except KqlError:
        raise
    except RecursionError:
        raise KqlError("SyntaxError", "The query is nested too deeply to be parsed") from None
    except (ArithmeticError, TypeError, ValueError) as exc:
        # A value the type checks let through but Python cannot compute (an overflowing
        # datetime, a huge timespan): the service answers such queries with a 400 as well.
        raise KqlError("BadArgumentError", f"The query could not be evaluated: {exc}") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
