"""Row-shaping tabular operators: where, project(-away/-keep/-rename), extend, sort, take, top,
count, distinct. Each takes a ``Relation`` (columns, rows) and returns a new one; input rows are
never mutated (unchanged rows may be shared with the input)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from . import syntax as s
from .compiler import Compiled, Row, Scope, bool_fn, compile_expr, derive_name
from .model import (
    BOOL,
    DATETIME,
    DECIMAL,
    DYNAMIC,
    GUID,
    INT,
    LONG,
    REAL,
    STRING,
    TIMESPAN,
    Column,
    KqlError,
    semantic,
)
from .values import hashable, sort_key_dynamic

Relation = tuple[list[Column], list[Row]]
ScopeFactory = Callable[[list[Column], str], Scope]


def unique_name(name: str, taken: set[str] | dict[str, Any]) -> str:
    """``name``, or ``name1``, ``name2``... if taken, as KQL disambiguates output columns."""
    if name not in taken:
        return name
    n = 1
    while f"{name}{n}" in taken:
        n += 1
    return f"{name}{n}"


_KINDS = {STRING: "text", GUID: "text", BOOL: "bool", DATETIME: "datetime", TIMESPAN: "timespan",
          INT: "number", LONG: "number", REAL: "number", DECIMAL: "number"}  # fmt: skip


def _column_vs_constant(node: s.Where, scope: Scope, rows: list[Row]) -> list[Row] | None:
    """``column <op> constant`` filtered by one list comprehension (no per-row calls), or None
    when the predicate has another shape. The most common predicates take this path."""
    pred = node.predicate
    if not (isinstance(pred, s.Binary) and isinstance(pred.left, s.Name)):
        return None
    i = scope.index.get(pred.left.name)
    if i is None or pred.op not in ("==", "!=", "<", "<=", ">", ">="):
        return None
    right = compile_expr(pred.right, scope)
    b = right.value
    kind = _KINDS.get(scope.columns[i].type)
    if not right.is_const or b is None or kind is None or kind != _KINDS.get(right.type):
        return None
    op = pred.op
    if kind == "text":
        if b == "" or op not in ("==", "!="):
            return None  # "" must also match a missing string; ordering keeps the general path
        # None stands for "" here, and b is not "", so plain comparison is already right
        return [r for r in rows if r[i] == b] if op == "==" else [r for r in rows if r[i] != b]
    if op == "==":
        return [r for r in rows if r[i] == b]
    compare = {"!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
               ">=": operator.ge}[op]  # fmt: skip
    if op == ">":
        return [r for r in rows if (v := r[i]) is not None and v > b]
    if op == "<":
        return [r for r in rows if (v := r[i]) is not None and v < b]
    return [r for r in rows if (v := r[i]) is not None and compare(v, b)]


def where(rel: Relation, node: s.Where, scope: Scope) -> Relation:
    """Keep the rows whose predicate is true (null and false both drop the row)."""
    columns, rows = rel
    fast = _column_vs_constant(node, scope, rows)
    if fast is not None:
        return columns, fast
    predicate = compile_expr(node.predicate, scope)
    if predicate.type not in (BOOL, DYNAMIC):
        raise semantic(f"'where' operator: the predicate must be bool, not {predicate.type}")
    if predicate.is_const:
        return columns, rows if predicate.value is True else []
    # bool_fn yields only True/False/None, so filter()'s truthiness is exactly KQL's rule.
    return columns, list(filter(bool_fn(predicate, scope, "where"), rows))


def _named(items: tuple[s.Assign, ...], scope: Scope) -> list[tuple[str, Compiled, s.Assign]]:
    out: list[tuple[str, Compiled, s.Assign]] = []
    taken: set[str] = set()
    for k, item in enumerate(items, start=1):
        compiled = compile_expr(item.expr, scope)
        name = item.name or derive_name(item.expr, through_calls=False) or f"Column{k}"
        if item.name is None:
            name = unique_name(name, taken)
        elif name in taken:
            raise semantic(f"'{scope.operator_name}' operator: duplicate column name '{name}'")
        taken.add(name)
        out.append((name, compiled, item))
    return out


def project(rel: Relation, node: s.Project, scope: Scope) -> Relation:
    """Keep, rename and compute columns, in the order given."""
    _, rows = rel
    named = _named(node.items, scope)
    columns = [Column(name, compiled.type) for name, compiled, _ in named]
    plain = [
        scope.index.get(item.expr.name) for _, _, item in named if isinstance(item.expr, s.Name)
    ]
    if len(plain) == len(named) and None not in plain:
        indexes = [i for i in plain if i is not None]
        if len(indexes) == 1:
            (only,) = indexes
            return columns, [[row[only]] for row in rows]
        getter = operator.itemgetter(*indexes)
        return columns, [list(getter(row)) for row in rows]
    fns = [compiled.fn for _, compiled, _ in named]
    return columns, [[fn(row) for fn in fns] for row in rows]


def extend(rel: Relation, node: s.Extend, make_scope: ScopeFactory) -> Relation:
    """Add (or replace) computed columns; later items may use earlier ones."""
    columns, rows = rel
    for k, item in enumerate(node.items, start=1):
        scope = make_scope(columns, "extend")
        compiled = compile_expr(item.expr, scope)
        name = item.name or derive_name(item.expr, through_calls=False) or f"Column{k}"
        fn = compiled.fn
        if name in scope.index:
            index = scope.index[name]
            columns = [*columns[:index], Column(name, compiled.type), *columns[index + 1 :]]
            rows = [_replaced(row, index, fn(row)) for row in rows]
        else:
            columns = [*columns, Column(name, compiled.type)]
            if compiled.is_const:
                value = compiled.value
                rows = [[*row, value] for row in rows]
            else:
                rows = [[*row, fn(row)] for row in rows]
    return columns, rows


def _replaced(row: Row, index: int, value: Any) -> Row:
    copy = list(row)
    copy[index] = value
    return copy


def _match(patterns: tuple[str, ...], columns: list[Column], op: str) -> set[str]:
    names = {c.name for c in columns}
    matched: set[str] = set()
    for pattern in patterns:
        if "*" in pattern:
            matched.update(n for n in names if fnmatchcase(n, pattern))
        elif pattern in names:
            matched.add(pattern)
        else:
            raise semantic(f"'{op}' operator: Failed to resolve column named '{pattern}'")
    return matched


def select_columns(rel: Relation, keep: list[int]) -> Relation:
    """The relation restricted to the columns at ``keep`` (in that order)."""
    columns, rows = rel
    kept = [columns[i] for i in keep]
    if not keep:
        return kept, [[] for _ in rows]
    if len(keep) == 1:
        (only,) = keep
        return kept, [[row[only]] for row in rows]
    getter = operator.itemgetter(*keep)
    return kept, [list(getter(row)) for row in rows]


def project_away(rel: Relation, patterns: tuple[str, ...], *, keep: bool) -> Relation:
    """``project-away`` (drop matches) or ``project-keep`` (keep only matches)."""
    columns = rel[0]
    op = "project-keep" if keep else "project-away"
    matched = _match(patterns, columns, op)
    return select_columns(rel, [i for i, c in enumerate(columns) if (c.name in matched) == keep])


def project_rename(rel: Relation, node: s.ProjectRename) -> Relation:
    """Rename columns in place; rows are untouched."""
    columns, rows = rel
    renames = {old: new for new, old in node.pairs}
    names = {c.name for c in columns}
    for old in renames:
        if old not in names:
            raise semantic(f"'project-rename' operator: Failed to resolve column named '{old}'")
    return [Column(renames.get(c.name, c.name), c.type) for c in columns], rows


def _sort_key(key: s.SortKey, scope: Scope) -> Callable[[Row], Any]:
    compiled = compile_expr(key.expr, scope)
    fn = compiled.fn
    null_key = (0,) if key.nulls_first != key.descending else (2,)
    if compiled.type == DYNAMIC:
        return lambda row: null_key if (v := fn(row)) is None else (1, sort_key_dynamic(v))
    if compiled.type == STRING:
        return lambda row: (1, fn(row) or "")
    return lambda row: null_key if (v := fn(row)) is None else (1, v)


def sort(rel: Relation, keys: tuple[s.SortKey, ...], scope: Scope) -> Relation:
    """Stable multi-key sort (sorting by the last key first)."""
    columns, rows = rel
    ordered = list(rows)
    for key in reversed(keys):
        ordered.sort(key=_sort_key(key, scope), reverse=key.descending)
    return columns, ordered


def row_count(count: Compiled, op: str) -> int:
    """The constant, non-negative row count of take/top."""
    if not count.is_const or not isinstance(count.value, int) or isinstance(count.value, bool):
        raise semantic(f"'{op}' operator: the row count must be a constant integer")
    if count.value < 0:
        raise KqlError("BadArgumentError", f"'{op}' operator: the row count must not be negative")
    return count.value


def take(rel: Relation, node: s.Take, scope: Scope) -> Relation:
    """The first N rows."""
    columns, rows = rel
    return columns, rows[: row_count(compile_expr(node.count, scope), "take")]


def top(rel: Relation, node: s.Top, scope: Scope) -> Relation:
    """The first N rows by one key."""
    n = row_count(compile_expr(node.count, scope), "top")
    columns, ordered = sort(rel, (node.key,), scope)
    return columns, ordered[:n]


def count(rel: Relation) -> Relation:
    """A single ``Count`` (long) row."""
    return [Column("Count", LONG)], [[len(rel[1])]]


def distinct(rel: Relation, node: s.Distinct, scope: Scope) -> Relation:
    """Unique combinations of the given columns (or of whole rows for ``*``)."""
    columns, rows = rel
    if len(node.items) == 1 and isinstance(node.items[0], s.Star):
        fns: list[Callable[[Row], Any]] = [operator.itemgetter(i) for i in range(len(columns))]
        out_columns = list(columns)
    else:
        items = tuple(s.Assign(None, e) for e in node.items)
        named = _named(items, scope)
        fns = [compiled.fn for _, compiled, _ in named]
        out_columns = [Column(name, compiled.type) for name, compiled, _ in named]
    seen: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        values = [fn(row) for fn in fns]
        seen.setdefault(tuple(hashable(v) for v in values), values)
    return out_columns, list(seen.values())
