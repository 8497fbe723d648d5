"""Syntax tree of a parsed query. Immutable nodes let a parsed query be cached and shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ---- scalar expressions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant of a KQL type (``value`` None is that type's null)."""

    value: Any
    type: str


@dataclass(frozen=True, slots=True)
class Name:
    """A column, a ``let`` name or a table name; resolved against the schema at compile time."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Star:
    """``*`` inside ``arg_max(x, *)`` and ``distinct *``."""


@dataclass(frozen=True, slots=True)
class Member:
    """``base.key`` or ``base["key"]`` or ``base[0]`` on a dynamic value."""

    base: Expr
    key: str | int


@dataclass(frozen=True, slots=True)
class Call:
    """A scalar or aggregate function call."""

    name: str
    args: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Unary:
    """``-x``, ``+x``."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic, comparison, string operators, ``and`` / ``or``."""

    op: str
    left: Expr
    right: Expr
    pos: int


@dataclass(frozen=True, slots=True)
class InList:
    """``x in (a, b)``, ``!in``, ``in~``, ``!in~``."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    case_insensitive: bool


@dataclass(frozen=True, slots=True)
class Between:
    """``x between (low .. high)`` and ``!between``."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool


Expr = Literal | Name | Star | Member | Call | Unary | Binary | InList | Between


@dataclass(frozen=True, slots=True)
class Assign:
    """``name = expr`` or a bare ``expr`` (name None: the engine derives one as KQL does)."""

    name: str | None
    expr: Expr


# ---- tabular operators --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Where:
    predicate: Expr


@dataclass(frozen=True, slots=True)
class Project:
    items: tuple[Assign, ...]


@dataclass(frozen=True, slots=True)
class ProjectAway:
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProjectKeep:
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProjectRename:
    pairs: tuple[tuple[str, str], ...]  # (new, old)


@dataclass(frozen=True, slots=True)
class Extend:
    items: tuple[Assign, ...]


@dataclass(frozen=True, slots=True)
class Summarize:
    aggregates: tuple[Assign, ...]
    by: tuple[Assign, ...]


@dataclass(frozen=True, slots=True)
class SortKey:
    expr: Expr
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class Sort:
    keys: tuple[SortKey, ...]


@dataclass(frozen=True, slots=True)
class Take:
    count: Expr


@dataclass(frozen=True, slots=True)
class Top:
    count: Expr
    key: SortKey


@dataclass(frozen=True, slots=True)
class Count:
    pass


@dataclass(frozen=True, slots=True)
class Distinct:
    items: tuple[Expr, ...]  # a single Star means every column


@dataclass(frozen=True, slots=True)
class UnionOp:
    """``| union T2, ...``: the piped input comes first."""

    sources: tuple[Tabular, ...]
    with_source: str | None


@dataclass(frozen=True, slots=True)
class Render:
    """``render`` only shapes the client's chart; the engine ignores it."""


Operator = (
    Where
    | Project
    | ProjectAway
    | ProjectKeep
    | ProjectRename
    | Extend
    | Summarize
    | Sort
    | Take
    | Top
    | Count
    | Distinct
    | UnionOp
    | Render
)


# ---- tabular sources and statements -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableRef:
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class PrintSource:
    items: tuple[Assign, ...]


@dataclass(frozen=True, slots=True)
class UnionSource:
    sources: tuple[Tabular, ...]
    with_source: str | None


@dataclass(frozen=True, slots=True)
class RangeSource:
    """``range name from start to stop step step``: one column of evenly spaced values."""

    name: str
    start: Expr
    stop: Expr
    step: Expr


@dataclass(frozen=True, slots=True)
class Pipeline:
    source: TableRef | PrintSource | UnionSource | RangeSource | Pipeline
    operators: tuple[Operator, ...]


Tabular = Pipeline


@dataclass(frozen=True, slots=True)
class Let:
    """``let name = value;``: a scalar expression or a tabular pipeline."""

    name: str
    value: Expr | Pipeline


@dataclass(frozen=True, slots=True)
class Query:
    """Statements in text order: ``let``s and one or more tabular expression statements, each
    of which produces one result table."""

    statements: tuple[Let | Pipeline, ...]
