"""Runs a parsed query: binds ``let`` statements, resolves tables (applying the request's
timespan), and pipes relations through the tabular operators."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import operators as ops
from . import syntax as s
from .compiler import Compiled, Scope, check_type, compile_expr, derive_name
from .model import (
    DATETIME,
    INTEGRAL,
    LONG,
    NUMERIC,
    REAL,
    TIMESPAN,
    Column,
    KqlError,
    Table,
    semantic,
    unsupported,
)
from .operators import Relation, unique_name
from .summarize import summarize

# The emulator materialises every row of a range in memory; past this it declines the query.
MAX_RANGE_ROWS = 1_000_000

# The column the service filters on for a request's timespan: workspace (App*) tables use
# TimeGenerated, classic Application Insights tables use timestamp.
TIME_COLUMNS = ("TimeGenerated", "timestamp")


def time_column(table: Table) -> int | None:
    """Index of the table's timespan-filter column, or None if it has none."""
    for name in TIME_COLUMNS:
        for index, column in enumerate(table.columns):
            if column.name == name and column.type == DATETIME:
                return index
    return None


class Executor:
    """Evaluates one query against a set of tables at a fixed ``now``."""

    def __init__(
        self,
        tables: Mapping[str, Table],
        now: datetime,
        timespan: tuple[datetime, datetime] | None,
        max_groups: int | None = None,
    ) -> None:
        self.tables = tables
        self.now = now
        self.timespan = timespan
        # Summarize group budget (the service's per-node aggregation memory): past it a
        # summarize keeps the first groups and the query ends with a partial error.
        self.max_groups = max_groups
        self.overflowed_groups: int | None = None
        self.scalars: dict[str, Compiled] = {}
        self.tabular: dict[str, Relation] = {}
        self._filtered: dict[str, Relation] = {}

    def scope(self, columns: list[Column], operator_name: str) -> Scope:
        names = frozenset(self.tabular) | frozenset(self.tables)
        return Scope(columns, self.scalars, self.now, operator_name, names)

    def run(self, query: s.Query) -> list[Table]:
        """One ``PrimaryResult`` table per tabular expression statement, in text order (the
        Log Analytics API names every result table of a multi-statement query so)."""
        results = []
        for statement in query.statements:
            if isinstance(statement, s.Let):
                self.bind(statement)
            else:
                columns, rows = self.pipeline(statement)
                results.append(Table("PrimaryResult", columns, rows))
        return results

    def bind(self, let: s.Let) -> None:
        value = let.value
        if isinstance(value, s.Name) and (value.name in self.tabular or value.name in self.tables):
            value = s.Pipeline(s.TableRef(value.name, value.pos), ())
        if isinstance(value, s.Pipeline):
            self.tabular[let.name] = self.pipeline(value)
            self.scalars.pop(let.name, None)
            return
        compiled = compile_expr(value, self.scope([], ""))
        if not compiled.is_const:
            raise semantic(f"let statement '{let.name}' must be a constant scalar value")
        self.scalars[let.name] = compiled
        self.tabular.pop(let.name, None)

    # ---- sources ----------------------------------------------------------------------------

    def pipeline(self, pipeline: s.Pipeline) -> Relation:
        rel = self.source(pipeline.source)
        for operator in pipeline.operators:
            rel = self.apply(operator, rel)
        return rel

    def source(
        self, source: s.TableRef | s.PrintSource | s.UnionSource | s.RangeSource | s.Pipeline
    ) -> Relation:
        if isinstance(source, s.TableRef):
            return self.table(source.name)
        if isinstance(source, s.RangeSource):
            return self.range(source)
        if isinstance(source, s.PrintSource):
            return self.print_row(source)
        if isinstance(source, s.UnionSource):
            return self.union([self.pipeline(p) for p in source.sources], source)
        return self.pipeline(source)

    def table(self, name: str) -> Relation:
        if name in self.tabular:
            return self.tabular[name]
        cached = self._filtered.get(name)
        if cached is not None:
            return cached
        table = self.tables.get(name)
        if table is None:
            if name in self.scalars:
                raise semantic(f"'{name}' is a scalar value, not a table")
            raise semantic(f"Failed to resolve table or column expression named '{name}'")
        for column in table.columns:
            check_type(column.type)
        rows = table.rows
        index = time_column(table)
        if self.timespan is not None and index is not None:
            start, end = self.timespan
            rows = [row for row in rows if (t := row[index]) is not None and start <= t <= end]
        rel: Relation = (list(table.columns), rows)
        self._filtered[name] = rel
        return rel

    def print_row(self, source: s.PrintSource) -> Relation:
        scope = self.scope([], "print")
        columns: list[Column] = []
        values = []
        taken: dict[str, None] = {}
        for k, item in enumerate(source.items):
            compiled = compile_expr(item.expr, scope)
            name = item.name or derive_name(item.expr, through_calls=False) or f"print_{k}"
            name = unique_name(name, taken)
            taken[name] = None
            columns.append(Column(name, compiled.type))
            values.append(compiled.fn([]))
        return columns, [values]

    def range(self, source: s.RangeSource) -> Relation:
        """``range x from a to b step s``: a, a+s, ... up to b inclusive (empty if b < a)."""
        scope = self.scope([], "range")
        start, stop, step = (
            compile_expr(e, scope) for e in (source.start, source.stop, source.step)
        )
        if not (start.is_const and stop.is_const and step.is_const):
            raise semantic("'range' operator: from, to and step must be constant values")
        kinds = (start.type, stop.type, step.type)
        if kinds in ((DATETIME, DATETIME, TIMESPAN), (TIMESPAN, TIMESPAN, TIMESPAN)):
            kql_type = start.type
        elif all(k in NUMERIC for k in kinds):
            kql_type = LONG if all(k in INTEGRAL for k in kinds) else REAL
        else:
            raise semantic(
                f"'range' operator: cannot range from {start.type} to {stop.type} by {step.type}"
            )
        columns = [Column(source.name, kql_type)]
        a, b, d = start.value, stop.value, step.value
        if a is None or b is None or d is None:
            return columns, []
        if not d:
            raise KqlError("BadArgumentError", "'range' operator: step must not be zero")
        count = int((b - a) / d) + 1 if (b - a) / d >= 0 else 0
        if count > MAX_RANGE_ROWS:
            raise unsupported(
                f"'range' operator: {count} rows is more than the emulator's {MAX_RANGE_ROWS}"
            )
        if kql_type == REAL:
            a, d = float(a), float(d)
        return columns, [[a + d * k] for k in range(count)]

    def union(self, legs: list[Relation], node: s.UnionSource | s.UnionOp) -> Relation:
        """Columns are merged by name (first-seen order); a name used with two types becomes
        ``name_type`` for each, as KQL does; missing columns are null."""
        types_by_name: dict[str, set[str]] = {}
        for columns, _ in legs:
            for column in columns:
                types_by_name.setdefault(column.name, set()).add(column.type)
        out: dict[tuple[str, str], int] = {}
        columns_out: list[Column] = []
        if node.with_source:
            columns_out.append(Column(node.with_source, "string"))
        for columns, _ in legs:
            for column in columns:
                key = (column.name, column.type)
                if key not in out:
                    name = column.name
                    if len(types_by_name[name]) > 1:
                        name = f"{name}_{column.type}"
                    out[key] = len(columns_out)
                    columns_out.append(Column(name, column.type))
        width = len(columns_out)
        rows = []
        names = self._leg_names(node)
        for leg_index, (columns, leg_rows) in enumerate(legs):
            targets = [out[(c.name, c.type)] for c in columns]
            for row in leg_rows:
                new: list[Any] = [None] * width
                for target, value in zip(targets, row, strict=True):
                    new[target] = value
                if node.with_source:
                    new[0] = names[leg_index]
                rows.append(new)
        return columns_out, rows

    @staticmethod
    def _leg_names(node: s.UnionSource | s.UnionOp) -> list[str]:
        names = []
        if isinstance(node, s.UnionOp):
            names.append("")  # the piped input has no table name of its own
        for leg in node.sources:
            source = leg.source
            names.append(source.name if isinstance(source, s.TableRef) else "")
        return names

    # ---- operators --------------------------------------------------------------------------

    def apply(self, node: s.Operator, rel: Relation) -> Relation:
        columns = rel[0]
        if isinstance(node, s.Where):
            return ops.where(rel, node, self.scope(columns, "where"))
        if isinstance(node, s.Project):
            return ops.project(rel, node, self.scope(columns, "project"))
        if isinstance(node, s.Extend):
            return ops.extend(rel, node, self.scope)
        if isinstance(node, s.Summarize):
            out_columns, rows = summarize(rel, node, self.scope(columns, "summarize"))
            if self.max_groups is not None and len(rows) > self.max_groups:
                self.overflowed_groups = self.max_groups
                rows = rows[: self.max_groups]
            return out_columns, rows
        if isinstance(node, s.Sort):
            return ops.sort(rel, node.keys, self.scope(columns, "sort"))
        if isinstance(node, s.Take):
            return ops.take(rel, node, self.scope(columns, "take"))
        if isinstance(node, s.Top):
            return ops.top(rel, node, self.scope(columns, "top"))
        if isinstance(node, s.Count):
            return ops.count(rel)
        if isinstance(node, s.Distinct):
            return ops.distinct(rel, node, self.scope(columns, "distinct"))
        if isinstance(node, s.ProjectAway | s.ProjectKeep):
            return ops.project_away(rel, node.patterns, keep=isinstance(node, s.ProjectKeep))
        if isinstance(node, s.ProjectRename):
            return ops.project_rename(rel, node)
        if isinstance(node, s.UnionOp):
            return self.union([rel, *(self.pipeline(p) for p in node.sources)], node)
        if isinstance(node, s.Render):
            return rel
        raise KqlError("SemanticError", f"Unsupported operator {type(node).__name__}")
