"""Scalar-expression half of the recursive-descent parser (token helpers included).

Precedence, loosest first: ``or``, ``and``, comparisons and string operators, ``+ -``,
``* / %``, unary ``-``, member access (``.x``, ``["x"]``, ``[0]``), primaries.
"""

from __future__ import annotations

from typing import NoReturn

from . import syntax as s
from .lexer import (
    DYNAMIC,
    EOF,
    LONG,
    NAME,
    OP,
    RAW,
    REAL,
    STRING,
    TIMESPAN,
    Token,
    syntax_error,
    tokenize,
)
from .model import BOOL, DATETIME, DECIMAL, GUID, INT
from .model import DYNAMIC as T_DYNAMIC
from .model import LONG as T_LONG
from .model import REAL as T_REAL
from .model import STRING as T_STRING
from .model import TIMESPAN as T_TIMESPAN
from .values import parse_datetime, parse_guid, parse_timespan

_COMPARISON_OPS = frozenset({"==", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~"})
_STRING_OPS = frozenset(
    f"{neg}{op}{cs}"
    for neg in ("", "!")
    for op in ("contains", "has", "startswith", "endswith", "hasprefix", "hassuffix")
    for cs in ("", "_cs")
)
_TYPED_LITERALS = {
    "int": INT,
    "long": T_LONG,
    "real": T_REAL,
    "double": T_REAL,
    "bool": BOOL,
    "boolean": BOOL,
    "decimal": DECIMAL,
}


class ExpressionParser:
    """Token cursor plus scalar expressions; ``Parser`` adds statements and operators."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # ---- token helpers ----------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def fail(self, tok: Token | None = None) -> NoReturn:
        tok = tok or self.tok
        raise syntax_error(self.text, tok.pos, tok.text)

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == OP and self.tok.text in ops

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == NAME and self.tok.text in words

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            self.fail()
        return self.advance()

    def expect_word(self, word: str) -> Token:
        if not self.at_word(word):
            self.fail()
        return self.advance()

    def identifier(self) -> str:
        """A name: a plain identifier or the bracketed form ``['any text']``."""
        if self.tok.kind == NAME and not self.tok.text.startswith("!"):
            return str(self.advance().text)
        if self.at_op("[") and self.peek().kind == STRING and self._is_op(self.peek(2), "]"):
            self.advance()
            name = str(self.advance().value)
            self.advance()
            return name
        self.fail()

    @staticmethod
    def _is_op(tok: Token, op: str) -> bool:
        return tok.kind == OP and tok.text == op

    # ---- scalar expressions -----------------------------------------------------------------

    def expression(self) -> s.Expr:
        left = self.conjunction()
        while self.at_word("or"):
            tok = self.advance()
            left = s.Binary("or", left, self.conjunction(), tok.pos)
        return left

    def conjunction(self) -> s.Expr:
        left = self.comparison()
        while self.at_word("and"):
            tok = self.advance()
            left = s.Binary("and", left, self.comparison(), tok.pos)
        return left

    def comparison(self) -> s.Expr:
        left = self.additive()
        tok = self.tok
        if tok.kind == OP and tok.text in _COMPARISON_OPS:
            self.advance()
            op = "!=" if tok.text == "<>" else tok.text
            return s.Binary(op, left, self.additive(), tok.pos)
        if tok.kind != NAME:
            return left
        word = tok.text
        if word in _STRING_OPS:
            self.advance()
            return s.Binary(word, left, self.additive(), tok.pos)
        if word in ("in", "!in", "in~", "!in~"):
            self.advance()
            self.expect_op("(")
            items = [self.expression()]
            while self.at_op(","):
                self.advance()
                items.append(self.expression())
            self.expect_op(")")
            return s.InList(left, tuple(items), word.startswith("!"), word.endswith("~"))
        if word in ("between", "!between"):
            self.advance()
            self.expect_op("(")
            low = self.additive()
            self.expect_op("..")
            high = self.additive()
            self.expect_op(")")
            return s.Between(left, low, high, word.startswith("!"))
        if word == "matches" and self.peek().kind == NAME and self.peek().text == "regex":
            self.advance()
            self.advance()
            return s.Binary("matches regex", left, self.additive(), tok.pos)
        return left

    def additive(self) -> s.Expr:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            tok = self.advance()
            left = s.Binary(tok.text, left, self.multiplicative(), tok.pos)
        return left

    def multiplicative(self) -> s.Expr:
        left = self.unary()
        while self.at_op("*", "/", "%"):
            tok = self.advance()
            left = s.Binary(tok.text, left, self.unary(), tok.pos)
        return left

    def unary(self) -> s.Expr:
        if self.at_op("-", "+"):
            op = self.advance().text
            operand = self.unary()
            # fold negative literals so `take -1` and `ago(-1h)` see a constant
            if op == "-" and isinstance(operand, s.Literal) and _negatable(operand):
                return s.Literal(-operand.value, operand.type)
            return s.Unary(op, operand)
        return self.postfix()

    def postfix(self) -> s.Expr:
        expr = self.primary()
        while True:
            if self.at_op("."):
                self.advance()
                if self.tok.kind != NAME or self.tok.text.startswith("!"):
                    self.fail()
                expr = s.Member(expr, self.advance().text)
            elif self.at_op("[") and not isinstance(expr, s.Literal):
                self.advance()
                key = self.tok
                if key.kind == STRING:
                    expr = s.Member(expr, str(key.value))
                elif key.kind == LONG:
                    expr = s.Member(expr, int(key.value))
                elif self.at_op("-") and self.peek().kind == LONG:
                    self.advance()
                    key = self.tok
                    expr = s.Member(expr, -int(key.value))
                else:
                    self.fail()
                self.advance()
                self.expect_op("]")
            else:
                return expr

    def primary(self) -> s.Expr:
        tok = self.tok
        kind = tok.kind
        if kind == STRING:
            # KQL concatenates adjacent string literals.
            parts = []
            while self.tok.kind == STRING:
                parts.append(str(self.advance().value))
            return s.Literal("".join(parts), T_STRING)
        if kind in (LONG, REAL, TIMESPAN, DYNAMIC):
            self.advance()
            types = {LONG: T_LONG, REAL: T_REAL, TIMESPAN: T_TIMESPAN, DYNAMIC: T_DYNAMIC}
            return s.Literal(tok.value, types[kind])
        if kind == RAW:
            self.advance()
            return self.raw_literal(tok)
        if kind == OP and tok.text == "(":
            self.advance()
            inner = self.expression()
            self.expect_op(")")
            return inner
        if kind == OP and tok.text == "[" and self.peek().kind == STRING:
            return s.Name(self.identifier(), tok.pos)
        if kind == NAME and not tok.text.startswith("!"):
            self.advance()
            if tok.text in ("true", "false"):
                return s.Literal(tok.text == "true", BOOL)
            if self.at_op("("):
                if tok.text in _TYPED_LITERALS:
                    return self.typed_literal(tok)
                return s.Call(tok.text, self.call_args(), tok.pos)
            return s.Name(tok.text, tok.pos)
        self.fail()

    def call_args(self) -> tuple[s.Expr, ...]:
        self.expect_op("(")
        args: list[s.Expr] = []
        if self.at_op(")"):
            self.advance()
            return ()
        while True:
            if self.at_op("*") and self.peek().kind == OP and self.peek().text in (",", ")"):
                self.advance()
                args.append(s.Star())
            else:
                args.append(self.expression())
            if self.at_op(")"):
                self.advance()
                return tuple(args)
            self.expect_op(",")

    def raw_literal(self, tok: Token) -> s.Literal:
        body = str(tok.value)
        try:
            if tok.text == "datetime":
                return s.Literal(parse_datetime(body, strict=True), DATETIME)
            if tok.text == "guid":
                return s.Literal(parse_guid(body), GUID)
            return s.Literal(parse_timespan(body, strict=True), T_TIMESPAN)
        except ValueError:
            self.fail(tok)

    def typed_literal(self, name: Token) -> s.Literal:
        kql_type = _TYPED_LITERALS[name.text]
        self.expect_op("(")
        sign = 1
        if self.at_op("-", "+"):
            sign = -1 if self.advance().text == "-" else 1
        tok = self.advance()
        value: object
        if tok.kind == NAME and tok.text == "null":
            value = None
        elif kql_type == BOOL and tok.kind == NAME and tok.text in ("true", "false"):
            value = tok.text == "true"
        elif kql_type in (T_REAL, DECIMAL) and tok.kind == NAME and tok.text in ("nan", "inf"):
            value = sign * float(tok.text)
        elif tok.kind in (LONG, REAL) and kql_type != BOOL:
            value = sign * tok.value
            if kql_type in (INT, T_LONG):
                if tok.kind == REAL:
                    self.fail(tok)
                value = int(value)  # type: ignore[call-overload]
            else:
                value = float(value)  # type: ignore[arg-type]
        else:
            self.fail(tok)
        self.expect_op(")")
        return s.Literal(value, kql_type)


def _negatable(literal: s.Literal) -> bool:
    return literal.value is not None and literal.type in (T_LONG, T_REAL, INT, T_TIMESPAN)
