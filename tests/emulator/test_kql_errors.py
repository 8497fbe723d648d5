"""Bad and unsupported queries raise KqlError with the service's codes; nothing else escapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.kql import UNSUPPORTED, Column, KqlError, Table, execute

NOW = datetime(2024, 1, 1, tzinfo=UTC)
TABLES = {
    "T": Table(
        "T",
        [Column("a", "long"), Column("s", "string"), Column("t", "datetime"),
         Column("d", "dynamic")],
        [[1, "x", NOW, {"k": [1, "v"]}], [None, "", None, None], [2**62, "y", NOW, "text"]],
    )
}  # fmt: skip


def fail(query: str) -> KqlError:
    with pytest.raises(KqlError) as info:
        execute(query, TABLES, now=NOW)
    return info.value


def test_syntax_error_reports_token_line_and_column() -> None:
    error = fail("completely invalid syntax")
    assert error.code == "SyntaxError"
    assert error.message == "Query could not be parsed at 'invalid' on line [1,11]"
    assert (error.line, error.pos, error.token) == (1, 11, "invalid")
    assert error.to_innererror() == {
        "code": "SyntaxError",
        "message": "A recognition error occurred in the query.",
        "innererror": {
            "code": "SYN0002",
            "message": "Query could not be parsed at 'invalid' on line [1,11]",
            "line": 1,
            "pos": 11,
            "token": "invalid",
        },
    }


def test_syntax_error_on_a_later_line() -> None:
    error = fail("T\n| where a >\n| take 1")
    assert (error.code, error.line, error.pos, error.token) == ("SyntaxError", 3, 0, "|")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("Nope | take 1", "Failed to resolve table or column expression named 'Nope'"),
        ("T | where b == 1", "'where' operator: Failed to resolve scalar expression named 'b'"),
        ("T | project frob(a)", "Unknown function: 'frob'"),
        ("T | where s == 1", "Cannot compare values of types string and long"),
        ("T | where a + s > 1", "Cannot apply operator '+'"),
        ("T | where a", "predicate must be bool"),
        ("T | extend x = count()", "can only be used in summarize"),
        ("T | summarize count() by d", "dynamic"),
        ("T | project-away zz", "Failed to resolve column named 'zz'"),
        ("T | summarize a + 1", "needs an aggregation function"),
        ("T | where s.x == 1", "needs a dynamic value"),
    ],
)
def test_semantic_errors(query: str, fragment: str) -> None:
    error = fail(query)
    assert error.code == "SemanticError"
    assert fragment in error.message
    assert error.to_innererror()["innererror"]["code"] == "SEM0100"


@pytest.mark.parametrize(
    "query",
    ["", "T |", "T | where", "T | take", "print", "let x = 1", "T | summarize", "T | where (a",
     "T | order a", "datetime(garbage)", "T | where s == 'unterminated", "T | where a in 1",
     "T | top 3", "T | project a,", "let = 3; T", "T | where a == dynamic({bad json})"],
)  # fmt: skip
def test_syntax_errors(query: str) -> None:
    assert fail(query).code == "SyntaxError"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("T | join T on a", "'join' operator is not supported by the emulator"),
        ("T | extend f = format_datetime(t, 'yyyy')", "'format_datetime' is not supported"),
        ("T | summarize stdev(a)", "'stdev' is not supported"),
        ("T | summarize x = 2 * variance(a)", "'variance' is not supported"),
        ("range x from 1 to 100000000 step 1", "more than the emulator's"),
        ("T | union kind=outer T", "not supported"),
    ],
)
def test_valid_kql_outside_the_subset_has_its_own_code_never_a_real_one(
    query: str, fragment: str
) -> None:
    error = fail(query)
    assert error.code == UNSUPPORTED == "NotSupportedByEmulator"
    assert fragment in error.message
    inner = error.to_innererror()
    assert inner["code"] == "NotSupportedByEmulator"
    assert inner["innererror"]["code"] == "EMU0001"


def test_an_unknown_function_is_still_the_services_semantic_error() -> None:
    assert fail("T | project frob(a)").code == "SemanticError"


def test_bad_arguments() -> None:
    assert fail("T | take -1").code == "BadArgumentError"
    assert fail("print datetime(9999-12-31) + 1d").code == "BadArgumentError"


# Fragments real queries are made of, so random sequences get deep into the parser and engine.
_TOKENS = [
    "T", "Nope", "|", "where", "project", "extend", "summarize", "by", "order", "sort", "take",
    "top", "count", "distinct", "let", "x", "=", "==", "!=", "<", ">=", "=~", "contains", "has",
    "!in", "in", "between", "..", "and", "or", "not", "(", ")", "[", "]", ",", ";", ".", "a", "s",
    "t", "d", "k", "1", "0", "-1", "2.5", "1h", "5m", "'x'", '"v"', "@'p'", "datetime(2024-01-01)",
    "dynamic(null)", "dynamic([1])", "ago", "bin", "count()", "avg", "percentile", "arg_max",
    "*", "/", "+", "-", "%", "iff", "tostring", "toint", "todynamic", "print", "union", "asc",
    "desc", "nulls", "first", "project-away", "render", "1e308", "99999999999999999999",
    "timespan(1.00:00:00)", "long(null)",
]  # fmt: skip


def _only_kql_errors(query: str) -> None:
    code = "ok"
    try:
        execute(query, TABLES, now=NOW)
    except KqlError as error:  # any other exception type fails the test
        code = error.code
    assert code in {"ok", "SyntaxError", "SemanticError", "BadArgumentError", UNSUPPORTED}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_random_text_only_raises_kql_errors(query: str) -> None:
    _only_kql_errors(query)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=14))
def test_random_token_sequences_only_raise_kql_errors(tokens: list[str]) -> None:
    _only_kql_errors(" ".join(tokens))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["T | where ", "T | extend z = ", "T | summarize count() by ",
                     "print "]),
    st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=8),
)  # fmt: skip
def test_random_expressions_only_raise_kql_errors(prefix: str, tokens: list[str]) -> None:
    _only_kql_errors(prefix + " ".join(tokens))


def test_deep_nesting_is_a_syntax_error() -> None:
    assert fail("print " + "(" * 5000 + "1" + ")" * 5000).code == "SyntaxError"
