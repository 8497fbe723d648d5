"""Scalar functions: each registers a compiler that checks argument types and returns a closure."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from . import syntax as s
from .compiler import SCALAR_FUNCTIONS, Compiled, Row, Scope, const, fold, text_fn
from .model import (
    BOOL,
    DATETIME,
    DYNAMIC,
    INT,
    INTEGRAL,
    LONG,
    NUMERIC,
    REAL,
    STRING,
    TIMESPAN,
    semantic,
)
from .values import EPOCH_0001, parse_datetime, parse_timespan

FunctionCompiler = Callable[[s.Call, list[Compiled], Scope], Compiled]
_INT_RANGE = (-(2**31), 2**31 - 1)


def register(*names: str) -> Callable[[FunctionCompiler], FunctionCompiler]:
    """Register a function compiler under one or more KQL names (aliases)."""

    def decorate(compiler: FunctionCompiler) -> FunctionCompiler:
        for name in names:
            SCALAR_FUNCTIONS[name] = compiler
        return compiler

    return decorate


def arity(node: s.Call, args: list[Compiled], scope: Scope, low: int, high: int) -> None:
    if not low <= len(args) <= high:
        expected = str(low) if low == high else f"{low} to {high}"
        raise semantic(
            f"{scope.error_prefix()}function '{node.name}' expects {expected} argument(s), "
            f"got {len(args)}"
        )


def require(node: s.Call, scope: Scope, arg: Compiled, allowed: set[str] | frozenset[str]) -> None:
    if arg.type not in allowed and arg.type != DYNAMIC:
        raise semantic(
            f"{scope.error_prefix()}function '{node.name}' does not accept a {arg.type} argument"
        )


def map_values(arg: Compiled, impl: Callable[[Any], Any], result: str) -> Compiled:
    """``impl(value)`` per row, null in -> null out."""
    fn = arg.fn

    def apply(row: Row) -> Any:
        value = fn(row)
        return None if value is None else impl(value)

    return fold(apply, result, arg)


# ---- time ---------------------------------------------------------------------------------


@register("ago")
def _ago(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    require(node, scope, args[0], {TIMESPAN})
    now = scope.now
    return map_values(args[0], lambda span: now - span, DATETIME)


@register("now")
def _now(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 0, 1)
    if not args:
        return const(scope.now, DATETIME)
    require(node, scope, args[0], {TIMESPAN})
    now = scope.now
    return map_values(args[0], lambda span: now + span, DATETIME)


_DAY = timedelta(days=1)


def _datetime_binner(size: timedelta) -> Callable[[datetime], datetime]:
    """Floor datetimes to multiples of ``size`` counted from 0001-01-01, as KQL's ticks are.

    Sizes that divide a day (the usual 1m/5m/1h bins) align to midnight whatever the origin,
    so they are floored within the day with replace(), several times cheaper per row.
    """
    whole_seconds = size.microseconds == 0 and size.seconds > 0 and size.days == 0
    if size == timedelta(hours=1):
        return lambda v: v.replace(minute=0, second=0, microsecond=0)
    if size == _DAY:
        return lambda v: v.replace(hour=0, minute=0, second=0, microsecond=0)
    if whole_seconds and 86400 % size.seconds == 0:
        step = size.seconds

        def within_day(v: datetime) -> datetime:
            second = v.hour * 3600 + v.minute * 60 + v.second
            second -= second % step
            return v.replace(hour=second // 3600, minute=second // 60 % 60, second=second % 60,
                             microsecond=0)  # fmt: skip

        return within_day
    return lambda v: EPOCH_0001 + ((v - EPOCH_0001) // size) * size


@register("bin", "floor")
def _bin(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 2, 2)
    value, size = args
    size_fn, value_fn = size.fn, value.fn
    if value.type == DATETIME or value.type == TIMESPAN:
        require(node, scope, size, {TIMESPAN})
        if value.type == DATETIME and size.is_const and size.value:
            floor_to = _datetime_binner(size.value)
            return fold(lambda row: None if (v := value_fn(row)) is None else floor_to(v),
                        DATETIME, value, size)  # fmt: skip

        def bin_time(row: Row) -> Any:
            v, step = value_fn(row), size_fn(row)
            if v is None or not step:
                return None
            if value.type == DATETIME:
                return _datetime_binner(step)(v)
            return (v // step) * step

        return fold(bin_time, value.type, value, size)
    require(node, scope, value, NUMERIC)
    require(node, scope, size, NUMERIC)
    integral = value.type in INTEGRAL and size.type in INTEGRAL
    result = (LONG if LONG in (value.type, size.type) else INT) if integral else REAL

    def bin_number(row: Row) -> Any:
        v, step = value.fn(row), size_fn(row)
        if v is None or not step or not isinstance(v, int | float):
            return None
        if integral:
            return (v // step) * step
        return float(math.floor(v / step) * step)

    return fold(bin_number, result, value, size)


@register("startofday")
def _startofday(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    require(node, scope, args[0], {DATETIME})
    return map_values(
        args[0], lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0), DATETIME
    )


@register("hourofday")
def _hourofday(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    require(node, scope, args[0], {DATETIME})
    return map_values(args[0], lambda d: d.hour, INT)


# ---- conversions --------------------------------------------------------------------------


def _to_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, timedelta):
        return (value // timedelta(microseconds=1)) * 10  # ticks
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) else None
    return None


def _to_int32(value: Any) -> int | None:
    number = _to_integer(value)
    if number is None or not _INT_RANGE[0] <= number <= _INT_RANGE[1]:
        return None
    return number


def _to_real(value: Any) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower())
    return None


def _to_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return parse_datetime(value) if isinstance(value, str) else None


def _to_timespan(value: Any) -> timedelta | None:
    if isinstance(value, timedelta):
        return value
    return parse_timespan(value) if isinstance(value, str) else None


def parse_json_value(value: Any) -> Any:
    """``parse_json``: JSON text becomes a bag/array/value; anything else stays as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


_CONVERSIONS: dict[tuple[str, ...], tuple[Callable[[Any], Any], str]] = {
    ("toint",): (_to_int32, INT),
    ("tolong",): (_to_integer, LONG),
    ("todouble", "toreal"): (_to_real, REAL),
    ("tobool", "toboolean"): (_to_bool, BOOL),
    ("todatetime",): (_to_datetime, DATETIME),
    ("totimespan", "totime"): (_to_timespan, TIMESPAN),
    ("parse_json", "todynamic"): (parse_json_value, DYNAMIC),
}


def _conversion(impl: Callable[[Any], Any], result: str) -> FunctionCompiler:
    def compile_conversion(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
        arity(node, args, scope, 1, 1)
        if args[0].type == result and result != DYNAMIC:
            return args[0]
        return map_values(args[0], impl, result)

    return compile_conversion


for _names, (_impl, _result) in _CONVERSIONS.items():
    register(*_names)(_conversion(_impl, _result))


@register("tostring")
def _tostring(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
    arity(node, args, scope, 1, 1)
    if args[0].type == STRING:
        return args[0]
    return fold(text_fn(args[0]), STRING, args[0])


# ---- null and emptiness -------------------------------------------------------------------


def _null_test(empty: bool, negate: bool) -> FunctionCompiler:
    def compile_test(node: s.Call, args: list[Compiled], scope: Scope) -> Compiled:
        arity(node, args, scope, 1, 1)
        fn = args[0].fn
        if args[0].type == STRING or empty:
            return fold(lambda row: (fn(row) in (None, "")) != negate, BOOL, args[0])
        return fold(lambda row: (fn(row) is None) != negate, BOOL, args[0])

    return compile_test


register("isnull")(_null_test(empty=False, negate=False))
register("isnotnull")(_null_test(empty=False, negate=True))
register("isempty")(_null_test(empty=True, negate=False))
register("isnotempty")(_null_test(empty=True, negate=True))
