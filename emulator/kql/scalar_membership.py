"""Scalar membership operators: ``in``/``!in``/``in~``/``!in~`` and ``between``/``!between``.

``between`` is inclusive at both ends and null when the operand or a bound is null.
"""

from __future__ import annotations

from typing import Any

from . import syntax as s
from .compiler import NODE_COMPILERS, Compiled, Row, Scope, compile_expr, fold, text_fn
from .model import BOOL, GUID, STRING, semantic
from .scalar_ops import comparable


def compile_in(node: s.InList, scope: Scope) -> Compiled:
    """``x in (...)``: a set lookup when the list is constant (the usual case)."""
    operand = compile_expr(node.operand, scope)
    items = [compile_expr(item, scope) for item in node.items]
    fn = text_fn(operand) if node.case_insensitive else operand.fn
    negate = node.negated
    if operand.type in (STRING, GUID) and not node.case_insensitive:
        raw = operand.fn
        fn = lambda row: raw(row) or ""  # noqa: E731
    if all(item.is_const for item in items):
        values: list[Any] = []
        for item in items:
            # a dynamic array in the list contributes its elements
            values.extend(item.value if isinstance(item.value, list) else [item.value])
        if node.case_insensitive:
            values = [str(v).lower() for v in values if v is not None]
            members = frozenset(values)
            return fold(lambda row: (fn(row).lower() in members) != negate, BOOL, operand)
        try:
            members = frozenset(v for v in values if v is not None)
        except TypeError:  # a bag in the list: unhashable, compare one by one
            return fold(lambda row: (fn(row) in values) != negate, BOOL, operand)

        def member(row: Row) -> bool:
            try:
                return (fn(row) in members) != negate
            except TypeError:  # an unhashable dynamic operand is in no list
                return negate

        return fold(member, BOOL, operand)
    item_fns = [text_fn(i) if node.case_insensitive else i.fn for i in items]

    def per_row(row: Row) -> bool:
        value = fn(row)
        candidates = [f(row) for f in item_fns]
        if node.case_insensitive:
            return (value.lower() in [str(c).lower() for c in candidates]) != negate
        return (value in candidates) != negate

    return fold(per_row, BOOL, operand, *items)


def compile_between(node: s.Between, scope: Scope) -> Compiled:
    """``x between (low .. high)``, inclusive at both ends."""
    operand = compile_expr(node.operand, scope)
    low = compile_expr(node.low, scope)
    high = compile_expr(node.high, scope)
    for bound in (low, high):
        if not comparable(operand.type, bound.type):
            raise semantic(
                f"{scope.error_prefix()}between: cannot compare {operand.type} and {bound.type}"
            )
    fn, lo_fn, hi_fn = operand.fn, low.fn, high.fn
    negate = node.negated

    def between(row: Row) -> bool | None:
        value, lo, hi = fn(row), lo_fn(row), hi_fn(row)
        if value is None or lo is None or hi is None:
            return None
        try:
            return bool(lo <= value <= hi) != negate
        except TypeError:
            return None

    return fold(between, BOOL, operand, low, high)


NODE_COMPILERS[s.InList] = compile_in
NODE_COMPILERS[s.Between] = compile_between
