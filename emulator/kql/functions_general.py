"""String, choice (iff/case/coalesce/not) and numeric scalar functions."""

from __future__ import annotations

import math
import re
from typing import Any

from . import syntax as s
from .compiler import Compiled, Row, Scope, bool_fn, fold, text_fn
from .functions import arity, map_values, register, require
from .model import BOOL, DYNAMIC, LONG, NUMERIC, REAL, STRING, TIMESPAN, semantic

# ---- strings ------------------------------------------------------------------------------


@register("strlen")
def _strlen(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    text = text_fn(args[0])
    return fold(lambda row: len(text(row)), LONG, args[0])


@register("tolower", "toupper")
def _case(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    text = text_fn(args[0])
    if node.name == "tolower":
        return fold(lambda row: text(row).lower(), STRING, args[0])
    return fold(lambda row: text(row).upper(), STRING, args[0])


@register("strcat")
def _strcat(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 64)
    parts = [text_fn(a) for a in args]
    return fold(lambda row: "".join(p(row) for p in parts), STRING, *args)


@register("substring")
def _substring(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 2, 3)
    text = text_fn(args[0])
    start_fn = args[1].fn
    length_fn = args[2].fn if len(args) == 3 else (lambda _row: None)

    def substring(row: Row) -> str:
        value: str = text(row)
        start, length = max(int(start_fn(row) or 0), 0), length_fn(row)
        return value[start:] if length is None else value[start : start + max(int(length), 0)]

    return fold(substring, STRING, *args)


@register("split")
def _split(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 2, 2)
    text, delimiter = text_fn(args[0]), text_fn(args[1])
    return fold(lambda row: text(row).split(delimiter(row) or " "), DYNAMIC, *args)


@register("extract")
def _extract(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 3, 3)
    pattern, group = args[0], args[1]
    if not (pattern.is_const and group.is_const and isinstance(pattern.value, str)):
        raise semantic(f"{scope.error_prefix()}extract needs a constant regex and group")
    try:
        search = re.compile(pattern.value).search
    except re.error as exc:
        raise semantic(f"{scope.error_prefix()}invalid regex: {exc}") from None
    index = int(group.value or 0)
    text = text_fn(args[2])

    def extract(row: Row) -> str:
        match = search(text(row))
        if match is None or index > (match.re.groups or 0):
            return ""
        return match.group(index) or ""

    return fold(extract, STRING, args[2])


# ---- logic and choice ---------------------------------------------------------------------


def _common_type(node: s.Call, scope: Scope, values: list[Compiled]) -> str:
    types = {v.type for v in values if not (v.is_const and v.value is None)} or {values[0].type}
    if len(types) == 1:
        return types.pop()
    if types <= NUMERIC:
        return REAL if REAL in types else LONG
    raise semantic(
        f"{scope.error_prefix()}{node.name}(): all results must have the same type, "
        f"got {', '.join(sorted(types))}"
    )


@register("iff", "iif")
def _iff(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 3, 3)
    condition = bool_fn(args[0], scope, f"{node.name}()")
    then_fn, else_fn = args[1].fn, args[2].fn
    result = _common_type(node, scope, args[1:])
    return fold(lambda row: then_fn(row) if condition(row) is True else else_fn(row), result, *args)


@register("case")
def _case_fn(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    if len(args) < 3 or len(args) % 2 == 0:
        raise semantic(f"{scope.error_prefix()}case() expects predicate/value pairs and an else")
    pairs = [
        (bool_fn(args[i], scope, "case()"), args[i + 1].fn) for i in range(0, len(args) - 1, 2)
    ]
    otherwise = args[-1].fn
    result = _common_type(node, scope, [*args[1::2], args[-1]])

    def choose(row: Row) -> Any:
        for condition, value in pairs:
            if condition(row) is True:
                return value(row)
        return otherwise(row)

    return fold(choose, result, *args)


@register("coalesce")
def _coalesce(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 64)
    result = _common_type(node, scope, args)
    fns = [a.fn for a in args]

    def first(row: Row) -> Any:
        for fn in fns:
            value = fn(row)
            if value is not None and value != "":
                return value
        return None

    return fold(first, result, *args)


@register("not")
def _not(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    fn = bool_fn(args[0], scope, "not()")
    return fold(lambda row: None if (v := fn(row)) is None else not v, BOOL, args[0])


# ---- numbers and arrays -------------------------------------------------------------------


@register("round")
def _round(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 2)
    require(node, scope, args[0], NUMERIC)
    digits_fn = args[1].fn if len(args) == 2 else (lambda _row: 0)
    fn = args[0].fn

    def round_half_away(row: Row) -> Any:
        value, digits = fn(row), digits_fn(row)
        if not isinstance(value, int | float) or digits is None:
            return None
        scale = 10.0 ** int(digits)
        return math.copysign(math.floor(abs(value) * scale + 0.5) / scale, value)

    return fold(round_half_away, REAL, *args)


@register("abs")
def _abs(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    require(node, scope, args[0], NUMERIC | {TIMESPAN})
    return map_values(args[0], abs, args[0].type if args[0].type != DYNAMIC else REAL)


@register("array_length")
def _array_length(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    require(node, scope, args[0], {DYNAMIC})
    fn = args[0].fn
    return fold(lambda row: len(v) if type(v := fn(row)) is list else None, LONG, args[0])
