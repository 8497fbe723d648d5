"""Compile scalar expressions into closures over a row, once per query, with static KQL types.

Each ``Compiled`` carries ``fn(row) -> value`` and its KQL type; constants are folded so that,
e.g., ``timestamp > ago(1h)`` becomes one comparison against a precomputed datetime per row.
Nulls are Python ``None``; a string column's ``None`` counts as ``""`` (KQL strings are never null).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from . import syntax as s
from .model import BOOL, DYNAMIC, GUID, NUMERIC, REAL, STRING, TYPES, Column, semantic, unsupported
from .values import dynamic_text, to_string

Row = list[Any]
RowFn = Callable[[Row], Any]


class Compiled:
    """A compiled scalar expression: ``fn(row)``, its KQL ``type``, and its value if constant."""

    __slots__ = ("fn", "is_const", "type", "value")

    def __init__(self, fn: RowFn, kql_type: str, is_const: bool = False, value: Any = None) -> None:
        self.fn = fn
        self.type = kql_type
        self.is_const = is_const
        self.value = value


def const(value: Any, kql_type: str) -> Compiled:
    """A constant expression."""
    return Compiled(lambda _row: value, kql_type, True, value)


def fold(fn: RowFn, kql_type: str, *parts: Compiled) -> Compiled:
    """``fn`` as an expression, evaluated now if every part it depends on is constant."""
    if all(p.is_const for p in parts):
        try:
            return const(fn([]), kql_type)
        except Exception:  # noqa: BLE001 - a failing fold is left to fail (as null) per row
            pass
    return Compiled(fn, kql_type)


class Scope:
    """What names mean while compiling one operator: the input columns, scalar lets, ``now``."""

    def __init__(
        self,
        columns: list[Column],
        lets: dict[str, Compiled],
        now: datetime,
        operator_name: str,
        tabular_names: frozenset[str] = frozenset(),
    ) -> None:
        self.columns = columns
        self.index = {c.name: i for i, c in enumerate(columns)}
        self.lets = lets
        self.now = now
        self.operator_name = operator_name
        self.tabular_names = tabular_names

    def error_prefix(self) -> str:
        return f"'{self.operator_name}' operator: " if self.operator_name else ""


# Registries filled by the ``scalar_ops``, ``functions`` and ``aggregates`` modules at import
# (they build on this module, so it cannot import them).
ScalarCompiler = Callable[[s.Call, list[Compiled], Scope], Compiled]
SCALAR_FUNCTIONS: dict[str, ScalarCompiler] = {}
AGGREGATE_NAMES: set[str] = set()
NODE_COMPILERS: dict[type, Callable[[Any, Scope], Compiled]] = {}


def compile_expr(node: s.Expr, scope: Scope) -> Compiled:
    """Compile ``node`` against ``scope``; raise KqlError(SemanticError) on unknown names/types."""
    if isinstance(node, s.Literal):
        return const(node.value, node.type)
    if isinstance(node, s.Name):
        return _compile_name(node, scope)
    if isinstance(node, s.Member):
        return _compile_member(node, scope)
    if isinstance(node, s.Call):
        return _compile_call(node, scope)
    node_compiler = NODE_COMPILERS.get(type(node))
    if node_compiler is not None:
        return node_compiler(node, scope)
    if isinstance(node, s.Unary):
        return _compile_unary(node, scope)
    raise semantic(f"{scope.error_prefix()}'*' is not allowed here")


def _compile_name(node: s.Name, scope: Scope) -> Compiled:
    index = scope.index.get(node.name)
    if index is not None:
        return Compiled(operator.itemgetter(index), scope.columns[index].type)
    if node.name in scope.lets:
        return scope.lets[node.name]
    if node.name in scope.tabular_names:
        raise semantic(
            f"{scope.error_prefix()}'{node.name}' is a tabular expression, not a scalar value"
        )
    raise semantic(f"{scope.error_prefix()}Failed to resolve scalar expression named '{node.name}'")


def _member_get(value: Any, key: str | int) -> Any:
    if isinstance(key, str):
        return value.get(key) if type(value) is dict else None
    if type(value) is list and -len(value) <= key < len(value):
        return value[key]
    return None


def _compile_member(node: s.Member, scope: Scope) -> Compiled:
    base = compile_expr(node.base, scope)
    if base.type != DYNAMIC:
        raise semantic(
            f"{scope.error_prefix()}Member access (.{node.key}) needs a dynamic value, "
            f"not {base.type}"
        )
    key = node.key
    base_fn = base.fn
    if isinstance(key, str):

        def get(row: Row) -> Any:
            value = base_fn(row)
            return value.get(key) if type(value) is dict else None

        return fold(get, DYNAMIC, base)
    return fold(lambda row: _member_get(base_fn(row), key), DYNAMIC, base)


# Real KQL functions outside the emulator's subset: calling one is NotSupportedByEmulator, not
# the "Unknown function" SemanticError the service gives for a name it does not know.
KQL_FUNCTIONS_NOT_EMULATED = frozenset(
    {
        "format_datetime", "format_timespan", "datetime_add", "datetime_diff", "datetime_part",
        "startofweek", "startofmonth", "startofyear", "endofday", "endofweek", "endofmonth",
        "endofyear", "dayofweek", "dayofmonth", "dayofyear", "monthofyear", "getmonth",
        "getyear", "make_datetime", "make_timespan", "todecimal", "toguid", "parse_url",
        "parse_urlquery", "parse_path", "parse_ipv4", "parse_user_agent", "parse_xml",
        "parse_csv", "replace_string", "replace_regex", "trim", "trim_start", "trim_end",
        "indexof", "countof", "reverse", "strrep", "translate", "pack", "bag_pack",
        "pack_array", "pack_all", "bag_keys", "bag_merge", "array_concat", "array_slice",
        "array_sort_asc", "array_sort_desc", "array_index_of", "set_union", "set_intersect",
        "set_difference", "set_has_element", "extract_all", "extract_json", "hash",
        "hash_sha256", "hash_md5", "base64_encode_tostring", "base64_decode_tostring",
        "url_encode", "url_decode", "sign", "sqrt", "pow", "log", "log10", "log2", "exp",
        "ceiling", "percentrank_tdigest", "toscalar", "row_number", "prev", "next",
        "series_stats", "series_fir", "geo_point_to_s2cell", "ipv4_is_match",
        "ipv4_is_private", "gettype", "binary_and", "binary_or", "bin_at", "range",
        "zip", "materialize", "column_ifexists", "current_principal", "new_guid", "rand",
    }
)  # fmt: skip


def _compile_call(node: s.Call, scope: Scope) -> Compiled:
    if node.name in AGGREGATE_NAMES:
        raise semantic(
            f"{scope.error_prefix()}the aggregation function '{node.name}' can only be used "
            "in summarize"
        )
    compiler = SCALAR_FUNCTIONS.get(node.name)
    if compiler is None:
        if node.name in KQL_FUNCTIONS_NOT_EMULATED:
            raise unsupported(
                f"{scope.error_prefix()}the function '{node.name}' is not supported by the emulator"
            )
        raise semantic(f"{scope.error_prefix()}Unknown function: '{node.name}'.")
    if any(isinstance(a, s.Star) for a in node.args):
        raise semantic(f"{scope.error_prefix()}'{node.name}': '*' is not a valid argument")
    args = [compile_expr(a, scope) for a in node.args]
    return compiler(node, args, scope)


def _compile_unary(node: s.Unary, scope: Scope) -> Compiled:
    operand = compile_expr(node.operand, scope)
    if operand.type not in NUMERIC and operand.type not in ("timespan", DYNAMIC):
        raise semantic(f"{scope.error_prefix()}unary '{node.op}' cannot apply to {operand.type}")
    if node.op == "+":
        return operand
    fn = operand.fn
    if operand.type == DYNAMIC:

        def negate_dynamic(row: Row) -> Any:
            value = fn(row)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return -float(value) if ok else None

        return fold(negate_dynamic, REAL, operand)

    def negate(row: Row) -> Any:
        value = fn(row)
        return None if value is None else -value

    return fold(negate, operand.type, operand)


def text_fn(compiled: Compiled) -> RowFn:
    """A row function giving the operand as text (what string operators compare)."""
    fn = compiled.fn
    if compiled.type in (STRING, GUID):
        return lambda row: fn(row) or ""
    if compiled.type == DYNAMIC:
        return lambda row: dynamic_text(fn(row))
    return lambda row: to_string(fn(row))


def bool_fn(compiled: Compiled, scope: Scope, what: str) -> RowFn:
    """A row function giving True/False/None for a boolean (or dynamic) operand."""
    if compiled.type == BOOL:
        return compiled.fn
    if compiled.type == DYNAMIC:
        fn = compiled.fn
        return lambda row: v if type(v := fn(row)) is bool else None
    raise semantic(f"{scope.error_prefix()}{what} expects a bool value, not {compiled.type}")


def derive_name(node: s.Expr, *, through_calls: bool) -> str | None:
    """The column name KQL infers for an unnamed expression, or None (then ``ColumnN``).

    A column keeps its name, ``a.b["c"]`` becomes ``a_b_c``, and with ``through_calls`` (used
    for aggregates and ``by``) a call takes the name of its first nameable argument, so
    ``bin(timestamp, 1h)`` is ``timestamp`` and ``tostring(customDimensions.x)`` is
    ``customDimensions_x``.
    """
    if isinstance(node, s.Name):
        return node.name
    if isinstance(node, s.Member):
        base = derive_name(node.base, through_calls=through_calls)
        return f"{base}_{node.key}" if base is not None else None
    if through_calls and isinstance(node, s.Call):
        for arg in node.args:
            name = derive_name(arg, through_calls=True)
            if name is not None:
                return name
    if through_calls and isinstance(node, s.Binary | s.Unary):
        parts = (node.left, node.right) if isinstance(node, s.Binary) else (node.operand,)
        for part in parts:
            name = derive_name(part, through_calls=True)
            if name is not None:
                return name
    return None


def check_type(kql_type: str) -> str:
    """Guard for types coming from callers' tables (a typo would otherwise surface late)."""
    if kql_type not in TYPES:
        raise semantic(f"Unknown column type '{kql_type}'")
    return kql_type
