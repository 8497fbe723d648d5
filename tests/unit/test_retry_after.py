"""The one Retry-After parser (RFC 9110 10.2.3): delta-seconds or an HTTP-date, never trusted
blindly (no negative, infinite, NaN or unbounded wait comes out of it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from service.domain.retry import MAX_RETRY_AFTER_S, parse_retry_after

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [("0", 0.0), ("7", 7.0), (" 120 ", 120.0)])
def test_delta_seconds_are_the_wait(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_fractional_seconds_as_azure_sends_them_are_kept() -> None:
    assert parse_retry_after("1.5", now=NOW) == 1.5


def test_an_http_date_is_the_time_left_until_it() -> None:
    header = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=NOW) == 90.0


def test_the_rfc_example_date_and_its_obsolete_forms_are_read() -> None:
    before = datetime(1994, 11, 6, 8, 49, 0, tzinfo=UTC)
    for header in (
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # asctime
    ):
        assert parse_retry_after(header, now=before) == 37.0, header


def test_a_date_in_the_past_means_retry_now() -> None:
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


def test_a_date_is_measured_against_the_real_clock_by_default() -> None:
    header = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    waited = parse_retry_after(header)
    assert waited is not None
    assert 590 <= waited <= 600


@pytest.mark.parametrize(
    "header",
    [None, "", "  ", "soon", "-5", "+5", "1e3", "inf", "nan", "5s", "0x10", "5, 6", "1..2"],
)
def test_garbage_and_negative_values_are_no_answer(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_a_huge_wait_is_capped() -> None:
    assert parse_retry_after("9" * 30, now=NOW) == MAX_RETRY_AFTER_S
    far = format_datetime(NOW + timedelta(days=3650), usegmt=True)
    assert parse_retry_after(far, now=NOW) == MAX_RETRY_AFTER_S


def test_an_impossible_date_is_no_answer() -> None:
    assert parse_retry_after("Sun, 31 Feb 2026 08:49:37 GMT", now=NOW) is None
