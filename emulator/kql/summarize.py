"""``summarize aggs by keys``: group rows, compute aggregates, output keys then aggregates.

An aggregate item may be a plain call (``count()``, ``avg(duration)``) or a scalar expression
over calls (``failures = countif(success == false) * 100.0 / count()``): the calls are lifted
into slots computed per group, and the expression is compiled over those slots.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import syntax as s
from .aggregates import Aggregate, compile_aggregate
from .compiler import AGGREGATE_NAMES, Compiled, RowFn, Scope, compile_expr, derive_name
from .model import DYNAMIC, STRING, Column, semantic, unsupported
from .operators import Relation, unique_name
from .values import hashable

# Real aggregation functions outside the emulator's subset (NotSupportedByEmulator).
AGGREGATES_NOT_EMULATED = frozenset(
    {
        "stdev", "stdevif", "stdevp", "variance", "varianceif", "variancep", "any", "anyif",
        "take_any", "take_anyif", "make_bag", "make_bag_if", "make_list_if", "make_set_if",
        "make_list_with_nulls", "hll", "hll_merge", "tdigest", "tdigest_merge", "dcountif",
        "count_distinct", "count_distinctif", "binary_all_and", "binary_all_or",
        "binary_all_xor", "buildschema", "maxif", "minif", "percentilew_tdigest",
    }
)  # fmt: skip


def _lift(node: s.Expr, calls: list[s.Call]) -> s.Expr:
    """``node`` with every aggregate call replaced by a reference to slot ``#k``."""
    if isinstance(node, s.Call):
        if node.name in AGGREGATES_NOT_EMULATED and node.name not in AGGREGATE_NAMES:
            raise unsupported(
                f"'summarize' operator: the aggregation function '{node.name}' is not "
                "supported by the emulator"
            )
        if node.name in AGGREGATE_NAMES:
            calls.append(node)
            return s.Name(f"#{len(calls) - 1}", node.pos)
        return dataclasses.replace(node, args=tuple(_lift(a, calls) for a in node.args))
    if isinstance(node, s.Binary):
        return dataclasses.replace(
            node, left=_lift(node.left, calls), right=_lift(node.right, calls)
        )
    if isinstance(node, s.Unary):
        return dataclasses.replace(node, operand=_lift(node.operand, calls))
    if isinstance(node, s.Member):
        return dataclasses.replace(node, base=_lift(node.base, calls))
    if isinstance(node, s.InList):
        items = tuple(_lift(i, calls) for i in node.items)
        return dataclasses.replace(node, operand=_lift(node.operand, calls), items=items)
    if isinstance(node, s.Between):
        return dataclasses.replace(
            node,
            operand=_lift(node.operand, calls),
            low=_lift(node.low, calls),
            high=_lift(node.high, calls),
        )
    return node


class _Output:
    """How one summarize item fills its output columns from a group's rows."""

    def __init__(self, columns: list[Column], aggregate: Aggregate, post: Compiled | None) -> None:
        self.columns = columns
        self.aggregate = aggregate
        self.post = post

    def values(self, rows: list[list[Any]]) -> list[Any]:
        computed = self.aggregate.compute(rows)
        return computed if self.post is None else [self.post.fn(computed)]


def _without_keys(aggregate: Aggregate, key_names: set[str]) -> Aggregate:
    """Drop the ``*`` columns of arg_max/arg_min that repeat a by-key."""
    if aggregate.from_star < 0:
        return aggregate
    keep = [
        i
        for i, c in enumerate(aggregate.columns)
        if i < aggregate.from_star or c.name not in key_names
    ]
    if len(keep) == len(aggregate.columns):
        return aggregate
    inner = aggregate.compute

    def compute(rows: list[list[Any]]) -> list[Any]:
        values = inner(rows)
        return [values[i] for i in keep]

    return Aggregate([aggregate.columns[i] for i in keep], compute)


def _compile_item(item: s.Assign, index: int, scope: Scope, key_names: set[str]) -> _Output:
    expr = item.expr
    _lift(expr, [])  # declines unimplemented aggregation functions before anything else
    if isinstance(expr, s.Call) and expr.name in AGGREGATE_NAMES:
        aggregate = _without_keys(compile_aggregate(expr, scope), key_names)
        columns = list(aggregate.columns)
        if item.name is not None:
            columns[0] = Column(item.name, columns[0].type)
        return _Output(columns, aggregate, None)
    calls: list[s.Call] = []
    lifted = _lift(expr, calls)
    if not calls:
        raise semantic(
            "'summarize' operator: each aggregate item needs an aggregation function such as "
            "count() or avg()"
        )
    parts = [compile_aggregate(call, scope) for call in calls]
    slot_columns = [Column(f"#{k}", part.columns[0].type) for k, part in enumerate(parts)]
    post = compile_expr(lifted, Scope(slot_columns, scope.lets, scope.now, "summarize"))

    def compute(rows: list[list[Any]]) -> list[Any]:
        return [part.compute(rows)[0] for part in parts]

    name = item.name or f"Column{index}"
    return _Output([Column(name, post.type)], Aggregate(slot_columns, compute), post)


def _or_empty(fn: RowFn) -> RowFn:
    return lambda row: fn(row) or ""


def summarize(rel: Relation, node: s.Summarize, scope: Scope) -> Relation:
    """Group by the ``by`` keys (first-seen order) and aggregate each group."""
    _, rows = rel
    keys: list[tuple[str, Compiled]] = []
    taken: dict[str, None] = {}
    for k, item in enumerate(node.by, start=1):
        compiled = compile_expr(item.expr, scope)
        if compiled.type == STRING:
            # "" and a missing string are one group (KQL strings are never null)
            compiled = Compiled(_or_empty(compiled.fn), STRING)
        if compiled.type == DYNAMIC:
            raise semantic(
                "'summarize' operator: Summarize group key is of a 'dynamic' type. "
                "Please use an explicit cast (for example tostring())"
            )
        name = item.name or derive_name(item.expr, through_calls=True) or f"Column{k}"
        name = unique_name(name, taken)
        taken[name] = None
        keys.append((name, compiled))
    outputs = [
        _compile_item(item, k, scope, set(taken))
        for k, item in enumerate(node.aggregates, start=len(keys) + 1)
    ]
    columns = [Column(name, compiled.type) for name, compiled in keys]
    for output in outputs:
        renamed = []
        for column in output.columns:
            name = unique_name(column.name, taken)
            taken[name] = None
            renamed.append(Column(name, column.type))
        output.columns = renamed
        columns.extend(renamed)

    groups = _group(rows, [compiled for _, compiled in keys])
    if not keys and not groups:
        groups = {(): ([], [])}  # no by-keys: one row even for no input, as KQL does
    out_rows = []
    for key_values, group_rows in groups.values():
        row = list(key_values)
        for output in outputs:
            row.extend(output.values(group_rows))
        out_rows.append(row)
    return columns, out_rows


def _group(
    rows: list[list[Any]], keys: list[Compiled]
) -> dict[Any, tuple[list[Any], list[list[Any]]]]:
    """Rows grouped by key values, in first-seen order: {hashable key: (values, rows)}."""
    groups: dict[Any, tuple[list[Any], list[list[Any]]]] = {}
    if not keys:
        if rows:
            groups[()] = ([], rows)
        return groups
    if len(keys) == 1:
        fn = keys[0].fn
        for row in rows:
            value = fn(row)
            group = groups.get(value)
            if group is None:
                groups[value] = ([value], [row])
            else:
                group[1].append(row)
        return groups
    fns = [k.fn for k in keys]
    for row in rows:
        values = [fn(row) for fn in fns]
        marker = tuple(hashable(v) for v in values)
        group = groups.get(marker)
        if group is None:
            groups[marker] = (values, [row])
        else:
            group[1].append(row)
    return groups
