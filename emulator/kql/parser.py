"""Recursive-descent parser: query text -> ``syntax.Query``.

Grammar (subset): statements separated by ``;``: ``let name = expr-or-pipeline`` and at least one
tabular expression statement (a pipeline: a source - table name, ``print``, ``union``, ``range``,
``materialize(...)``, parenthesised pipeline - followed by ``| operator`` steps).
Scalar expressions are parsed by ``ExpressionParser`` (expressions.py).
"""

from __future__ import annotations

from . import syntax as s
from .expressions import ExpressionParser
from .lexer import EOF, NAME, OP, STRING
from .model import unsupported

# Real KQL operators the emulator does not implement: a clear SemanticError beats a parse error.
_UNSUPPORTED_OPERATORS = frozenset(
    {
        "join", "lookup", "mv-expand", "mv-apply", "parse", "parse-where", "parse-kv",
        "make-series", "evaluate", "sample", "sample-distinct", "as", "getschema", "search",
        "serialize", "invoke", "scan", "fork", "facet", "partition", "reduce", "top-nested",
        "top-hitters", "project-reorder", "find", "externaldata", "datatable",
    }
)  # fmt: skip


class Parser(ExpressionParser):
    """Parses one query text; use ``parse(text)``."""

    # ---- statements and pipelines -----------------------------------------------------------

    def query(self) -> s.Query:
        statements: list[s.Let | s.Pipeline] = []
        while True:
            while self.at_op(";"):
                self.advance()
            if self.tok.kind == EOF:
                break
            if self.at_word("let"):
                self.advance()
                name = self.identifier()
                self.expect_op("=")
                statements.append(s.Let(name, self.pipeline_or_expr()))
                self.expect_op(";")  # a let is always followed by another statement
                continue
            statements.append(self.pipeline())
            if self.tok.kind != EOF and not self.at_op(";"):
                self.fail()
        if not any(isinstance(statement, s.Pipeline) for statement in statements):
            self.fail()  # only lets: there is no tabular expression to run
        return s.Query(tuple(statements))

    def _at_range(self) -> bool:
        return (
            self.at_word("range")
            and self.peek().kind == NAME
            and self.peek(2).kind == NAME
            and self.peek(2).text == "from"
        )

    def _at_materialize(self) -> bool:
        return self.at_word("materialize") and self._is_op(self.peek(), "(")

    def pipeline_or_expr(self) -> s.Expr | s.Pipeline:
        if (
            self.at_word("print", "union")
            or self._at_range()
            or self._at_materialize()
            or (self.at_op("(") and self._paren_is_tabular())
        ):
            return self.pipeline()
        if self.at_op("(", "[") and self.peek().kind == OP and self.peek().text == ")":
            raise unsupported("let: user-defined functions are not supported by the emulator")
        expr = self.expression()
        if self.at_op("|"):
            if not isinstance(expr, s.Name):
                self.fail()
            return s.Pipeline(s.TableRef(expr.name, expr.pos), self.operators())
        return expr

    def _paren_is_tabular(self) -> bool:
        """Whether the ``(`` here opens a sub-pipeline: its depth-1 contents contain a ``|``."""
        depth = 0
        for tok in self.tokens[self.i :]:
            if tok.kind == OP and tok.text in "([":
                depth += 1
            elif tok.kind == OP and tok.text in ")]":
                depth -= 1
                if depth == 0:
                    return False
            elif depth == 1 and tok.kind == OP and tok.text == "|":
                return True
        return False

    def pipeline(self) -> s.Pipeline:
        return s.Pipeline(self.source(), self.operators())

    def source(self) -> s.TableRef | s.PrintSource | s.UnionSource | s.RangeSource | s.Pipeline:
        tok = self.tok
        if self._at_materialize():
            # materialize() only caches a result the service may reuse; the value is the same.
            self.advance()
            self.advance()
            inner = self.pipeline()
            self.expect_op(")")
            return inner
        if self._at_range():
            self.advance()
            name = self.identifier()
            self.expect_word("from")
            start = self.expression()
            self.expect_word("to")
            stop = self.expression()
            self.expect_word("step")
            return s.RangeSource(name, start, stop, self.expression())
        if self.at_op("("):
            self.advance()
            inner = self.pipeline()
            self.expect_op(")")
            return inner
        if self.at_word("print"):
            self.advance()
            return s.PrintSource(self.assignments())
        if self.at_word("union"):
            self.advance()
            with_source, sources = self.union_args()
            return s.UnionSource(sources, with_source)
        if tok.kind == NAME and tok.text in _UNSUPPORTED_OPERATORS:
            raise unsupported(f"The '{tok.text}' operator is not supported by the emulator")
        if tok.kind == NAME and not tok.text.startswith("!"):
            self.advance()
            return s.TableRef(tok.text, tok.pos)
        self.fail()

    def union_args(self) -> tuple[str | None, tuple[s.Pipeline, ...]]:
        with_source = None
        while self.tok.kind == NAME and self.peek().kind == OP and self.peek().text == "=":
            option = self.advance().text
            self.advance()
            if option != "withsource":
                raise unsupported(
                    f"union: the '{option}' parameter is not supported by the emulator"
                )
            with_source = self.identifier()
        if self.at_word("kind", "isfuzzy"):
            self.fail()
        sources = [self.union_leg()]
        while self.at_op(","):
            self.advance()
            sources.append(self.union_leg())
        return with_source, tuple(sources)

    def union_leg(self) -> s.Pipeline:
        if self.at_op("("):
            self.advance()
            inner = self.pipeline()
            self.expect_op(")")
            return inner
        tok = self.tok
        return s.Pipeline(s.TableRef(self.identifier(), tok.pos), ())

    def operators(self) -> tuple[s.Operator, ...]:
        ops: list[s.Operator] = []
        while self.at_op("|"):
            self.advance()
            ops.append(self.operator())
        return tuple(ops)

    def operator(self) -> s.Operator:
        tok = self.tok
        word = tok.text if tok.kind == NAME else ""
        if word in ("where", "filter"):
            self.advance()
            return s.Where(self.expression())
        if word == "project":
            self.advance()
            return s.Project(self.assignments())
        if word in ("project-away", "project-keep"):
            self.advance()
            patterns = self.name_patterns()
            return s.ProjectAway(patterns) if word == "project-away" else s.ProjectKeep(patterns)
        if word == "project-rename":
            self.advance()
            return s.ProjectRename(self.rename_pairs())
        if word == "extend":
            self.advance()
            return s.Extend(self.assignments())
        if word == "summarize":
            self.advance()
            return self.summarize()
        if word in ("order", "sort"):
            self.advance()
            self.expect_word("by")
            keys = [self.sort_key()]
            while self.at_op(","):
                self.advance()
                keys.append(self.sort_key())
            return s.Sort(tuple(keys))
        if word in ("take", "limit"):
            self.advance()
            return s.Take(self.expression())
        if word == "top":
            self.advance()
            count = self.expression()
            self.expect_word("by")
            return s.Top(count, self.sort_key())
        if word == "count":
            self.advance()
            return s.Count()
        if word == "distinct":
            self.advance()
            if self.at_op("*"):
                self.advance()
                return s.Distinct((s.Star(),))
            items = [self.expression()]
            while self.at_op(","):
                self.advance()
                items.append(self.expression())
            return s.Distinct(tuple(items))
        if word == "union":
            self.advance()
            with_source, sources = self.union_args()
            return s.UnionOp(sources, with_source)
        if word == "render":
            self.skip_render()
            return s.Render()
        if word in _UNSUPPORTED_OPERATORS:
            raise unsupported(f"The '{word}' operator is not supported by the emulator")
        self.fail()

    def skip_render(self) -> None:
        self.advance()
        depth = 0
        while self.tok.kind != EOF:
            if self.at_op("(", "["):
                depth += 1
            elif self.at_op(")", "]"):
                if depth == 0:
                    return
                depth -= 1
            elif depth == 0 and self.at_op("|", ";"):
                return
            self.advance()

    def summarize(self) -> s.Summarize:
        aggregates: tuple[s.Assign, ...] = ()
        if not self.at_word("by"):
            aggregates = self.assignments()
        by: tuple[s.Assign, ...] = ()
        if self.at_word("by"):
            self.advance()
            by = self.assignments()
        if not aggregates and not by:
            self.fail()
        return s.Summarize(aggregates, by)

    def sort_key(self) -> s.SortKey:
        expr = self.expression()
        descending = True  # KQL sorts descending unless told otherwise
        if self.at_word("asc", "desc"):
            descending = self.advance().text == "desc"
        nulls_first = not descending
        if self.at_word("nulls"):
            self.advance()
            if not self.at_word("first", "last"):
                self.fail()
            nulls_first = self.advance().text == "first"
        return s.SortKey(expr, descending, nulls_first)

    def assignments(self) -> tuple[s.Assign, ...]:
        items = [self.assignment()]
        while self.at_op(","):
            self.advance()
            items.append(self.assignment())
        return tuple(items)

    def assignment(self) -> s.Assign:
        if self.tok.kind == NAME and self._is_op(self.peek(), "="):
            name = self.identifier()
            self.advance()
            return s.Assign(name, self.expression())
        if (
            self.at_op("[")
            and self.peek().kind == STRING
            and self._is_op(self.peek(2), "]")
            and self._is_op(self.peek(3), "=")
        ):
            name = self.identifier()
            self.advance()
            return s.Assign(name, self.expression())
        return s.Assign(None, self.expression())

    def name_patterns(self) -> tuple[str, ...]:
        names = [self.name_pattern()]
        while self.at_op(","):
            self.advance()
            names.append(self.name_pattern())
        return tuple(names)

    def name_pattern(self) -> str:
        """A column name, possibly with ``*`` wildcards (``customDim*``, ``*Id``)."""
        parts: list[str] = []
        last_end = -1
        while (self.tok.kind == NAME and not self.tok.text.startswith("!")) or self.at_op("*"):
            if parts and self.tok.pos != last_end:
                break  # wildcards only glue to adjacent text
            last_end = self.tok.pos + len(self.tok.text)
            parts.append(self.advance().text)
        if not parts:
            return self.identifier()
        return "".join(parts)

    def rename_pairs(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        while True:
            new = self.identifier()
            self.expect_op("=")
            pairs.append((new, self.identifier()))
            if not self.at_op(","):
                return tuple(pairs)
            self.advance()


def parse(text: str) -> s.Query:
    """Parse a query; raise KqlError (SyntaxError, or SemanticError for unsupported operators)."""
    return Parser(text).query()
