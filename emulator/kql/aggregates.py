"""Aggregation functions for ``summarize``: result types and column names as KQL gives them.

Each aggregate compiles to ``compute(rows) -> list of values`` over one group's rows (most give
one value; ``percentiles`` and ``arg_max``/``arg_min`` give several columns). Nulls are ignored;
an aggregate with no non-null input gives null (``count``-like ones give 0).
``percentile`` is exact nearest-rank (the service estimates with t-digest): the smallest value
with at least p% of the values at or below it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from . import syntax as s
from .compiler import AGGREGATE_NAMES, Compiled, Row, Scope, bool_fn, compile_expr, derive_name
from .model import DYNAMIC, INTEGRAL, LONG, NUMERIC, REAL, TIMESPAN, Column, semantic
from .values import hashable, sort_key_dynamic

Compute = Callable[[list[Row]], list[Any]]


class Aggregate:
    """One compiled aggregate call: its output columns and how to compute them for a group."""

    __slots__ = ("columns", "compute", "from_star")

    def __init__(self, columns: list[Column], compute: Compute, from_star: int = -1) -> None:
        self.columns = columns
        self.compute = compute
        # Columns at index >= from_star (if >= 0) came from ``*``; summarize drops those that
        # repeat a by-key, as KQL's arg_max(x, *) does.
        self.from_star = from_star


AggregateCompiler = Callable[[s.Call, Scope], Aggregate]
AGGREGATES: dict[str, AggregateCompiler] = {}


def _register(*names: str) -> Callable[[AggregateCompiler], AggregateCompiler]:
    def decorate(compiler: AggregateCompiler) -> AggregateCompiler:
        for name in names:
            AGGREGATES[name] = compiler
            AGGREGATE_NAMES.add(name)
        return compiler

    return decorate


def _args(node: s.Call, scope: Scope, low: int, high: int) -> list[Compiled]:
    if not low <= len(node.args) <= high:
        raise semantic(f"{scope.error_prefix()}{node.name}() got {len(node.args)} argument(s)")
    if any(isinstance(a, s.Star) for a in node.args):
        raise semantic(f"{scope.error_prefix()}{node.name}(): '*' is not a valid argument")
    return [compile_expr(a, scope) for a in node.args]


def _suffix(node: s.Call) -> str:
    name = derive_name(node.args[0], through_calls=True) if node.args else None
    return name or ""


def _values(fn: Callable[[Row], Any]) -> Callable[[list[Row]], list[Any]]:
    return lambda rows: [v for v in map(fn, rows) if v is not None]


def _single(name: str, kql_type: str, compute: Callable[[list[Row]], Any]) -> Aggregate:
    return Aggregate([Column(name, kql_type)], lambda rows: [compute(rows)])


@_register("count")
def _count(node: s.Call, scope: Scope) -> Aggregate:
    args = _args(node, scope, 0, 1)
    if not args:
        return _single("count_", LONG, len)
    values = _values(args[0].fn)
    return _single("count_", LONG, lambda rows: len(values(rows)))


@_register("countif")
def _countif(node: s.Call, scope: Scope) -> Aggregate:
    (predicate,) = _args(node, scope, 1, 1)
    test = bool_fn(predicate, scope, "countif()")
    return _single("countif_", LONG, lambda rows: sum(1 for r in rows if test(r) is True))


def _sum_type(node: s.Call, scope: Scope, arg: Compiled) -> str:
    if arg.type in INTEGRAL:
        return LONG
    if arg.type in (REAL, "decimal", DYNAMIC):
        return REAL
    if arg.type == TIMESPAN:
        return TIMESPAN
    raise semantic(f"{scope.error_prefix()}{node.name}() cannot sum {arg.type} values")


def _total(values: list[Any], kql_type: str) -> Any:
    if not values:
        return None
    if kql_type == TIMESPAN:
        return sum(values, timedelta(0))
    if kql_type == REAL:
        return math.fsum(float(v) for v in values if not isinstance(v, bool | str))
    return sum(values)


def _filtered(node: s.Call, scope: Scope, args: list[Compiled]) -> Callable[[Row], Any]:
    """The value function of sum/avg, or of sumif/avgif with their predicate applied."""
    fn = args[0].fn
    if not node.name.endswith("if"):
        return fn
    test = bool_fn(args[1], scope, f"{node.name}()")
    return lambda row: fn(row) if test(row) is True else None


@_register("sum", "sumif")
def _sum(node: s.Call, scope: Scope) -> Aggregate:
    args = _args(node, scope, *((2, 2) if node.name == "sumif" else (1, 1)))
    kql_type = _sum_type(node, scope, args[0])
    values = _values(_filtered(node, scope, args))
    name = f"{node.name}_{_suffix(node)}"
    return _single(name, kql_type, lambda rows: _total(values(rows), kql_type))


@_register("avg", "avgif")
def _avg(node: s.Call, scope: Scope) -> Aggregate:
    args = _args(node, scope, *((2, 2) if node.name == "avgif" else (1, 1)))
    kql_type = TIMESPAN if args[0].type == TIMESPAN else REAL
    _sum_type(node, scope, args[0])
    values = _values(_filtered(node, scope, args))

    def average(rows: list[Row]) -> Any:
        found = values(rows)
        if not found:
            return None
        if kql_type == TIMESPAN:
            return sum(found, timedelta(0)) / len(found)
        numbers = [float(v) for v in found if not isinstance(v, bool | str)]
        return math.fsum(numbers) / len(numbers) if numbers else None

    return _single(f"{node.name}_{_suffix(node)}", kql_type, average)


def _extreme(pick: Callable[..., Any]) -> Callable[[list[Any]], Any]:
    def choose(values: list[Any]) -> Any:
        if not values:
            return None
        try:
            return pick(values)
        except TypeError:  # mixed dynamic values
            return pick(values, key=sort_key_dynamic)

    return choose


@_register("min", "max")
def _min_max(node: s.Call, scope: Scope) -> Aggregate:
    (arg,) = _args(node, scope, 1, 1)
    values = _values(arg.fn)
    choose = _extreme(min if node.name == "min" else max)
    return _single(f"{node.name}_{_suffix(node)}", arg.type, lambda rows: choose(values(rows)))


@_register("dcount")
def _dcount(node: s.Call, scope: Scope) -> Aggregate:
    args = _args(node, scope, 1, 2)  # the accuracy argument is accepted; counts are exact
    values = _values(args[0].fn)
    return _single(
        f"dcount_{_suffix(node)}", LONG, lambda rows: len({hashable(v) for v in values(rows)})
    )


def nearest_rank(sorted_values: list[Any], percent: float) -> Any:
    """The nearest-rank percentile of already sorted values (None if there are none)."""
    if not sorted_values:
        return None
    rank = math.ceil(percent / 100.0 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def _percent_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value).replace(".", "_")


def weighted_rank(pairs: list[tuple[Any, int]], percent: float) -> Any:
    """Nearest-rank over (value, weight) pairs sorted by value: the smallest value whose
    cumulative weight reaches ``percent`` of the total (each row counts ``weight`` times)."""
    total = sum(w for _, w in pairs)
    if total <= 0:
        return None
    rank = max(math.ceil(percent / 100.0 * total), 1)
    seen = 0
    for value, weight in pairs:
        seen += weight
        if seen >= rank:
            return value
    return pairs[-1][0]


@_register("percentile", "percentiles", "percentilew", "percentilesw")
def _percentiles(node: s.Call, scope: Scope) -> Aggregate:
    weighted = node.name.endswith("w")
    single = node.name in ("percentile", "percentilew")
    low = 3 if weighted else 2
    args = _args(node, scope, low, low if single else 64)
    arg = args[0]
    if arg.type not in NUMERIC | {TIMESPAN, "datetime"}:
        raise semantic(f"{scope.error_prefix()}{node.name}() needs numbers, not {arg.type}")
    if weighted and args[1].type not in INTEGRAL:
        raise semantic(f"{scope.error_prefix()}{node.name}(): the weight must be an integer")
    percents: list[float] = []
    for p in args[low - 1 :]:
        if not p.is_const or not isinstance(p.value, int | float) or not 0 <= p.value <= 100:
            raise semantic(f"{scope.error_prefix()}{node.name}(): percentage must be 0..100")
        percents.append(float(p.value))
    base = _suffix(node)
    columns = [Column(f"percentile_{base}_{_percent_label(p)}", arg.type) for p in percents]
    if weighted:
        value_fn, weight_fn = arg.fn, args[1].fn

        def compute_weighted(rows: list[Row]) -> list[Any]:
            pairs = []
            for row in rows:
                value, weight = value_fn(row), weight_fn(row)
                if value is not None and weight is not None and weight > 0:
                    pairs.append((value, weight))
            pairs.sort(key=operator.itemgetter(0))
            return [weighted_rank(pairs, p) for p in percents]

        return Aggregate(columns, compute_weighted)
    values = _values(arg.fn)

    def compute(rows: list[Row]) -> list[Any]:
        ordered = sorted(values(rows))
        return [nearest_rank(ordered, p) for p in percents]

    return Aggregate(columns, compute)


@_register("make_list", "make_set")
def _make_list(node: s.Call, scope: Scope) -> Aggregate:
    args = _args(node, scope, 1, 2)
    limit = args[1].value if len(args) == 2 and args[1].is_const else 1_048_576
    values = _values(args[0].fn)
    unique = node.name == "make_set"

    def collect(rows: list[Row]) -> list[Any]:
        found = values(rows)
        if unique:
            seen: dict[Any, Any] = {}
            for v in found:
                seen.setdefault(hashable(v), v)
            found = list(seen.values())
        return found[: int(limit)]

    prefix = "list" if node.name == "make_list" else "set"
    return _single(f"{prefix}_{_suffix(node)}", DYNAMIC, collect)


@_register("arg_max", "arg_min")
def _arg_extreme(node: s.Call, scope: Scope) -> Aggregate:
    if not node.args or isinstance(node.args[0], s.Star):
        raise semantic(f"{scope.error_prefix()}{node.name}() needs an expression to maximize")
    target = compile_expr(node.args[0], scope)
    columns = [Column(derive_name(node.args[0], through_calls=True) or "Column", target.type)]
    getters: list[Callable[[Row], Any]] = []
    from_star = -1
    for extra in node.args[1:]:
        if isinstance(extra, s.Star):
            from_star = len(columns)
            for index, column in enumerate(scope.columns):
                if column.name != columns[0].name:
                    columns.append(column)
                    getters.append(operator.itemgetter(index))
            continue
        compiled = compile_expr(extra, scope)
        name = derive_name(extra, through_calls=True) or f"Column{len(columns)}"
        columns.append(Column(name, compiled.type))
        getters.append(compiled.fn)
    key = target.fn
    better: Callable[[Any, Any], Any] = operator.gt if node.name == "arg_max" else operator.lt

    def compute(rows: list[Row]) -> list[Any]:
        best_row, best = None, None
        for row in rows:
            value = key(row)
            if value is not None and (best is None or better(value, best)):
                best_row, best = row, value
        if best_row is None:
            return [None] * len(columns)
        return [best, *(g(best_row) for g in getters)]

    return Aggregate(columns, compute, from_star)


def compile_aggregate(node: s.Call, scope: Scope) -> Aggregate:
    """Compile one aggregate call (the caller has checked ``node.name`` is an aggregate)."""
    return AGGREGATES[node.name](node, scope)
