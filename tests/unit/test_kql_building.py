"""KQL building: literal escaping, guardrails, timespans and the telemetry views' shape.

The property tests tokenize generated queries with the emulator's KQL lexer (which decodes
literals as the service does): whatever a caller sends, the query keeps its tokens and the
literal decodes back to exactly what was sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.kql.lexer import STRING, tokenize
from service.domain.kql import (
    KqlInputError,
    check_query,
    is_control_command,
    parse_timespan,
    string_literal,
)
from service.domain.telemetry_views import CLASSIC, WORKSPACE, requests_view, traces_view

# Everything a caller could send that string_literal accepts.
TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(0x20) if chr(c) not in "\n\t\r"] + ["\x7f"],
    )
)
ATTACKS = ['" | take 1 //', "' or 1 == 1 //", '\\"; .drop table x', "a\\", '"\n| project x']


def shape(query: str) -> list[tuple[str, str]]:
    """The token stream with every string literal's text replaced by a placeholder."""
    return [(t.kind, "<s>" if t.kind == STRING else t.text) for t in tokenize(query)]


@given(TEXT)
def test_a_string_literal_always_decodes_to_exactly_the_value(value: str) -> None:
    tokens = tokenize(f"print x = {string_literal(value)}")
    (literal,) = [t for t in tokens if t.kind == STRING]
    assert literal.value == value


@given(endpoint=TEXT, contains=TEXT)
def test_no_parameter_can_change_the_shape_of_a_view(endpoint: str, contains: str) -> None:
    for schema in (CLASSIC, WORKSPACE):
        baseline = traces_view(schema, "svc", "input", 10)
        assert shape(traces_view(schema, endpoint, contains or "x", 10)) == shape(baseline)
        base = requests_view(schema, "svc", timedelta(hours=1))
        assert shape(requests_view(schema, endpoint, timedelta(hours=1))) == shape(base)


@pytest.mark.parametrize("attack", ATTACKS)
def test_known_injection_attempts_stay_inside_their_literal(attack: str) -> None:
    query = traces_view(WORKSPACE, attack, attack, 5)
    assert shape(query) == shape(traces_view(WORKSPACE, "svc", "input", 5))
    assert [t.value for t in tokenize(query) if t.kind == STRING] == [attack, attack]


def test_control_characters_without_a_portable_escape_are_refused() -> None:
    with pytest.raises(KqlInputError):
        string_literal("a\x00b")


@pytest.mark.parametrize(
    "query", [".show tables", "  .set x", "// hi\n.drop table T", "\n\t// a\n// b\n  .alter"]
)
def test_control_commands_are_recognised_after_whitespace_and_comments(query: str) -> None:
    assert is_control_command(query)
    with pytest.raises(KqlInputError, match="control commands"):
        check_query(query, max_chars=1000)


@pytest.mark.parametrize("query", ["AppRequests | take 1", "print x = '.show'", "// .show\nT"])
def test_ordinary_queries_pass_the_guardrails(query: str) -> None:
    assert not is_control_command(query)
    check_query(query, max_chars=1000)


def test_over_long_and_empty_queries_are_refused() -> None:
    with pytest.raises(KqlInputError, match="limit is 10"):
        check_query("T | take 10", max_chars=10)
    with pytest.raises(KqlInputError, match="empty"):
        check_query("  \n", max_chars=10)


def test_timespans_in_every_form_azure_takes() -> None:
    assert parse_timespan("PT1H").iso() == "PT1H"
    assert parse_timespan("P1DT12H").length() == timedelta(hours=36)
    span = parse_timespan("2024-01-01T00:00:00Z/2024-01-01T06:00:00Z")
    assert span.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert span.iso() == "2024-01-01T00:00:00Z/2024-01-01T06:00:00Z"
    assert parse_timespan("2024-01-01T00:00:00+02:00/PT2H").iso() == ("2023-12-31T22:00:00Z/PT2H")


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("P1D", "P1D"),
        ("PT24H", "P1D"),
        ("PT86400S", "P1D"),
        ("P1DT12H", "P1DT12H"),
        ("PT90M", "PT1H30M"),
        ("PT1M30.5S", "PT1M30.5S"),
        ("PT0.25S", "PT0.25S"),
        ("P3650D", "P3650D"),
    ],
)
def test_a_timespan_comes_back_in_canonical_iso_form_not_in_seconds(
    sent: str, canonical: str
) -> None:
    assert parse_timespan(sent).iso() == canonical
    assert parse_timespan(canonical).length() == parse_timespan(sent).length()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "PT",
        "P",
        "1H",
        "PT0S",
        "P4000D",
        "2024-01-01/PT1H",
        "2024-01-02T00:00Z/2024-01-01T00:00Z",
    ],
)
def test_malformed_timespans_are_refused(bad: str) -> None:
    with pytest.raises(KqlInputError):
        parse_timespan(bad)
