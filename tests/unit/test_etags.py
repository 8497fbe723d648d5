"""If-Match evaluation (RFC 9110 13.1.1): strong comparison, lists and the wildcard."""

from __future__ import annotations

import pytest

from service.domain.etags import etag_for, if_match_satisfied


def test_an_etag_is_the_quoted_version() -> None:
    assert etag_for(1) == '"1"'
    assert etag_for(42) == '"42"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, True),
        ("*", True),
        ('"3"', True),
        ('"1", "3"', True),
        (' "2" ,"3" ', True),
        ('"2", *', True),
        ('"2"', False),
        ('W/"3"', False),
        ("3", False),
        ("", False),
        (",", False),
        ('"33"', False),
    ],
)
def test_if_match_names_the_current_tag_or_the_wildcard(header: str | None, expected: bool) -> None:
    assert if_match_satisfied(header, '"3"') is expected
