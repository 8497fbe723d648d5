"""Scalar operators: ``and``/``or``, arithmetic, comparisons, string operators.

``in`` and ``between`` are in ``scalar_membership``.

Type rules follow KQL: numbers mix (int < long < real), ``datetime - datetime`` is a timespan,
``datetime +/- timespan`` a datetime, ``timespan * number`` a timespan; comparing unrelated types
is a SemanticError. Null operands give null; ``where`` keeps only rows whose predicate is true.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from . import syntax as s
from .compiler import (
    NODE_COMPILERS,
    Compiled,
    Row,
    Scope,
    bool_fn,
    compile_expr,
    const,
    fold,
    text_fn,
)
from .model import (
    BOOL,
    DATETIME,
    DYNAMIC,
    GUID,
    INT,
    LONG,
    NUMERIC,
    REAL,
    STRING,
    TIMESPAN,
    semantic,
)
from .values import term_regex

Impl = Callable[[Any, Any], Any]


# ---- and / or ---------------------------------------------------------------------------


def _compile_logical(node: s.Binary, scope: Scope) -> Compiled:
    left = compile_expr(node.left, scope)
    right = compile_expr(node.right, scope)
    lf = bool_fn(left, scope, f"'{node.op}'")
    rf = bool_fn(right, scope, f"'{node.op}'")
    if node.op == "and":

        def both(row: Row) -> bool | None:
            a = lf(row)
            if a is False:
                return False
            b = rf(row)
            if b is False:
                return False
            return None if a is None or b is None else True

        return fold(both, BOOL, left, right)

    def either(row: Row) -> bool | None:
        a = lf(row)
        if a is True:
            return True
        b = rf(row)
        if b is True:
            return True
        return None if a is None or b is None else False

    return fold(either, BOOL, left, right)


# ---- arithmetic -------------------------------------------------------------------------


def _divide(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        if b == 0:
            return None
        quotient = abs(a) // abs(b)  # integers truncate toward zero, as in .NET
        return quotient if (a < 0) == (b < 0) else -quotient
    if isinstance(a, timedelta):
        return a / b if b else None
    if b == 0:
        a = float(a)
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _modulo(a: Any, b: Any) -> Any:
    if not b:
        return None
    if type(a) is int and type(b) is int:
        return a - b * _divide(a, b)
    if isinstance(a, timedelta):
        return a % b
    return math.fmod(a, b)


_ARITH: dict[str, Impl] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
    "%": _modulo,
}


def _numeric_type(left: str, right: str) -> str:
    if REAL in (left, right) or "decimal" in (left, right):
        return REAL
    return LONG if LONG in (left, right) else INT


def _arith_type(op: str, left: str, right: str) -> str | None:
    if left == DYNAMIC or right == DYNAMIC:
        return REAL
    if left in NUMERIC and right in NUMERIC:
        return _numeric_type(left, right)
    pair = (left, right)
    table = {
        "+": {(DATETIME, TIMESPAN): DATETIME, (TIMESPAN, DATETIME): DATETIME,
              (TIMESPAN, TIMESPAN): TIMESPAN},
        "-": {(DATETIME, TIMESPAN): DATETIME, (DATETIME, DATETIME): TIMESPAN,
              (TIMESPAN, TIMESPAN): TIMESPAN},
        "*": {(TIMESPAN, LONG): TIMESPAN, (TIMESPAN, INT): TIMESPAN, (TIMESPAN, REAL): TIMESPAN,
              (LONG, TIMESPAN): TIMESPAN, (INT, TIMESPAN): TIMESPAN, (REAL, TIMESPAN): TIMESPAN},
        "/": {(TIMESPAN, TIMESPAN): REAL, (TIMESPAN, LONG): TIMESPAN, (TIMESPAN, INT): TIMESPAN,
              (TIMESPAN, REAL): TIMESPAN},
        "%": {(TIMESPAN, TIMESPAN): TIMESPAN},
    }  # fmt: skip
    return table[op].get(pair)


def _as_number(fn: Callable[[Row], Any]) -> Callable[[Row], Any]:
    """A dynamic operand in arithmetic: its number, else null."""

    def number(row: Row) -> Any:
        value = fn(row)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    return number


def _compile_arith(node: s.Binary, scope: Scope) -> Compiled:
    left = compile_expr(node.left, scope)
    right = compile_expr(node.right, scope)
    result = _arith_type(node.op, left.type, right.type)
    if result is None:
        raise semantic(
            f"{scope.error_prefix()}Cannot apply operator '{node.op}' to types "
            f"{left.type} and {right.type}"
        )
    lf = _as_number(left.fn) if left.type == DYNAMIC else left.fn
    rf = _as_number(right.fn) if right.type == DYNAMIC else right.fn
    impl = _ARITH[node.op]
    if result == REAL and node.op == "/" and TIMESPAN not in (left.type, right.type):
        # real division even when a dynamic or decimal side holds a Python int
        impl = lambda a, b: _divide(float(a), b)  # noqa: E731
    return _binary(lf, rf, right, impl, result, left)


def _binary(
    lf: Callable[[Row], Any],
    rf: Callable[[Row], Any],
    right: Compiled,
    impl: Impl,
    result: str,
    left: Compiled,
) -> Compiled:
    """``impl(left, right)`` with null propagation; a constant right side is hoisted."""
    if right.is_const:
        b = right.value
        if b is None:
            return const(None, result)

        def with_const(row: Row) -> Any:
            a = lf(row)
            return None if a is None else impl(a, b)

        return fold(with_const, result, left, right)

    def general(row: Row) -> Any:
        a = lf(row)
        if a is None:
            return None
        b = rf(row)
        return None if b is None else impl(a, b)

    return fold(general, result, left, right)


# ---- comparisons ------------------------------------------------------------------------

_COMPARE: dict[str, Impl] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def comparable(left: str, right: str) -> bool:
    if DYNAMIC in (left, right) or left == right:
        return True
    if left in NUMERIC and right in NUMERIC:
        return True
    return {left, right} <= {STRING, GUID}


def _compile_compare(node: s.Binary, scope: Scope) -> Compiled:
    left = compile_expr(node.left, scope)
    right = compile_expr(node.right, scope)
    if not comparable(left.type, right.type):
        raise semantic(
            f"{scope.error_prefix()}Cannot compare values of types {left.type} and "
            f"{right.type}. Try adding explicit casts"
        )
    impl = _COMPARE[node.op]
    if left.type in (STRING, GUID) and right.type in (STRING, GUID):
        # strings are never null in KQL: a missing string is ""
        lf, rf = left.fn, right.fn
        if right.is_const:
            b = right.value or ""
            return fold(lambda row: impl(lf(row) or "", b), BOOL, left, right)
        return fold(lambda row: impl(lf(row) or "", rf(row) or ""), BOOL, left, right)
    if DYNAMIC in (left.type, right.type):
        safe = impl

        def impl(a: Any, b: Any) -> Any:
            try:
                return safe(a, b)
            except TypeError:  # dynamic values of unrelated kinds do not compare
                return None

    return _binary(left.fn, right.fn, right, impl, BOOL, left)


def _compile_case_insensitive_eq(node: s.Binary, scope: Scope) -> Compiled:
    left = compile_expr(node.left, scope)
    right = compile_expr(node.right, scope)
    lf, rf = text_fn(left), text_fn(right)
    negate = node.op == "!~"
    if right.is_const:
        b = (right.value or "").lower() if isinstance(right.value, str | type(None)) else None
        if b is not None:
            return fold(lambda row: (lf(row).lower() == b) != negate, BOOL, left, right)
    return fold(lambda row: (lf(row).lower() == rf(row).lower()) != negate, BOOL, left, right)


# ---- string operators -------------------------------------------------------------------


def _string_matcher(op: str, needle: str) -> Callable[[str], bool]:
    """A predicate on the haystack text for one string operator and a fixed needle."""
    case_sensitive = op.endswith("_cs")
    base = op.removesuffix("_cs")
    if base == "contains":
        if case_sensitive:
            return lambda text: needle in text
        low = needle.lower()
        return lambda text: low in text.lower()
    if base == "startswith":
        if case_sensitive:
            return lambda text: text.startswith(needle)
        low = needle.lower()
        return lambda text: text.lower().startswith(low)
    if base == "endswith":
        if case_sensitive:
            return lambda text: text.endswith(needle)
        low = needle.lower()
        return lambda text: text.lower().endswith(low)
    if not needle:
        return lambda _text: True
    search = term_regex(needle, case_sensitive, base == "hasprefix", base == "hassuffix").search
    return lambda text: search(text) is not None


def _compile_string_op(node: s.Binary, scope: Scope) -> Compiled:
    left = compile_expr(node.left, scope)
    right = compile_expr(node.right, scope)
    negate = node.op.startswith("!")
    op = node.op.lstrip("!")
    hay = text_fn(left)
    if right.is_const:
        needle = right.value if isinstance(right.value, str) else text_fn(right)([])
        matcher = _string_matcher(op, needle)
        if negate:
            return fold(lambda row: not matcher(hay(row)), BOOL, left, right)
        return fold(lambda row: matcher(hay(row)), BOOL, left, right)
    needle_fn = text_fn(right)
    return fold(
        lambda row: _string_matcher(op, needle_fn(row))(hay(row)) != negate, BOOL, left, right
    )


def _compile_regex(node: s.Binary, scope: Scope) -> Compiled:
    left = compile_expr(node.left, scope)
    right = compile_expr(node.right, scope)
    if not (right.is_const and isinstance(right.value, str)):
        raise semantic(f"{scope.error_prefix()}matches regex needs a constant string pattern")
    try:
        search = re.compile(right.value).search
    except re.error as exc:
        raise semantic(f"{scope.error_prefix()}invalid regex: {exc}") from None
    hay = text_fn(left)
    return fold(lambda row: search(hay(row)) is not None, BOOL, left, right)


def compile_binary(node: s.Binary, scope: Scope) -> Compiled:
    """Compile any binary operator node."""
    op = node.op
    if op in ("and", "or"):
        return _compile_logical(node, scope)
    if op in _ARITH:
        return _compile_arith(node, scope)
    if op in _COMPARE:
        return _compile_compare(node, scope)
    if op in ("=~", "!~"):
        return _compile_case_insensitive_eq(node, scope)
    if op == "matches regex":
        return _compile_regex(node, scope)
    return _compile_string_op(node, scope)


NODE_COMPILERS[s.Binary] = compile_binary
