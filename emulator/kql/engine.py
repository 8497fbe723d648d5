"""Runs a parsed query: binds ``let`` statements, resolves tables (applying the request's
timespan), and pipes relations through the tabular operators."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import operators as ops
from . import syntax as s
from .compiler import Compiled, Scope, check_type, compile_expr, derive_name
from .model import DATETIME, Column, KqlError, Table, semantic
from .operators import Relation, unique_name
from .summarize import summarize

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
    ) -> None:
        self.tables = tables
        self.now = now
        self.timespan = timespan
        self.scalars: dict[str, Compiled] = {}
        self.tabular: dict[str, Relation] = {}
        self._filtered: dict[str, Relation] = {}

    def scope(self, columns: list[Column], operator_name: str) -> Scope:
        names = frozenset(self.tabular) | frozenset(self.tables)
        return Scope(columns, self.scalars, self.now, operator_name, names)

    def run(self, query: s.Query) -> Table:
        for let in query.lets:
            self.bind(let)
        columns, rows = self.pipeline(query.body)
        return Table("PrimaryResult", columns, rows)

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

    def source(self, source: s.TableRef | s.PrintSource | s.UnionSource | s.Pipeline) -> Relation:
        if isinstance(source, s.TableRef):
            return self.table(source.name)
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
            return summarize(rel, node, self.scope(columns, "summarize"))
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
