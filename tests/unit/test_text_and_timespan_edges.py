"""Issue 10 item 5: the pure rules behind the 400s (service.domain.text, kql timespans)."""

from __future__ import annotations

import pytest

from service.domain.kql import KqlInputError, parse_timespan
from service.domain.text import MAX_JSON_DEPTH, display_name_problem, document_problems, unstorable


@pytest.mark.parametrize(
    "text",
    ["9999-12-31T23:59:59Z/P1D", "9999-12-31T12:00:00Z/PT12H0M1S", "9999-12-31T23:00:00+00:00/P2D"],
)
def test_a_window_ending_past_the_calendar_is_refused(text: str) -> None:
    with pytest.raises(KqlInputError, match="9999"):
        parse_timespan(text)


def test_a_window_ending_inside_the_calendar_is_kept() -> None:
    assert parse_timespan("9999-12-31T00:00:00Z/PT1H").length().total_seconds() == 3600


def test_unstorable_text() -> None:
    assert unstorable("plain ü 東京 \U0001f600") is None
    assert "surrogate" in (unstorable("a\ud800") or "")
    assert "NUL" in (unstorable("a\x00") or "")


def test_display_names() -> None:
    assert display_name_problem("Café Zürich") is None
    for bad in ("a\u202eb", "a\u200bb", "\ufeffa", "a\x85", "a\x7f"):
        assert display_name_problem(bad) is not None, repr(bad)


def test_document_problems_walks_keys_values_and_depth_without_recursion() -> None:
    deep: object = "x"
    for _ in range(10_000):
        deep = [deep]
    problems = list(document_problems({"a": ["ok", "b\ud800"], "c\x00": 1, "deep": deep}))
    fields = [f for f, _ in problems]
    assert "body.a.1" in fields
    assert "body" in fields  # the NUL property name
    assert any(m == f"nested deeper than {MAX_JSON_DEPTH} levels" for _, m in problems)
