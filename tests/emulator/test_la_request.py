"""Timespan and Prefer parsing of the emulated Log Analytics API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.la_errors import LaError
from emulator.la_request import Preferences, parse_duration, parse_prefer, parse_timespan

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT3600.0S", timedelta(hours=1)),
        ("PT0.001S", timedelta(milliseconds=1)),
        ("PT1H", timedelta(hours=1)),
        ("PT30M", timedelta(minutes=30)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("P2W", timedelta(weeks=2)),
        ("pt24h", timedelta(hours=24)),
    ],
)
def test_iso_durations_parse_to_timedeltas(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "1H", "P1M", "P1Y", "PT-1S", "soon"])
def test_non_durations_and_calendar_durations_are_refused(text: str) -> None:
    assert parse_duration(text) is None


def test_a_bare_duration_ends_now() -> None:
    assert parse_timespan("PT3600.0S", NOW) == (NOW - timedelta(hours=1), NOW)


def test_start_and_duration_as_the_sdk_sends_them() -> None:
    start = datetime(2021, 6, 2, tzinfo=UTC)
    assert parse_timespan("2021-06-02T00:00:00.000Z/PT86400.0S", NOW) == (
        start,
        start + timedelta(days=1),
    )


def test_start_and_end_as_recorded() -> None:
    window = parse_timespan("2022-11-05T00:00:00.000Z/2022-11-08T00:00:00.000Z", NOW)
    assert window == (datetime(2022, 11, 5, tzinfo=UTC), datetime(2022, 11, 8, tzinfo=UTC))


def test_duration_before_an_end() -> None:
    assert parse_timespan("P1D/2024-05-01T00:00:00Z", NOW) == (
        datetime(2024, 4, 30, tzinfo=UTC),
        datetime(2024, 5, 1, tzinfo=UTC),
    )


def test_a_timestamp_without_offset_is_utc() -> None:
    window = parse_timespan("2024-01-01T00:00:00/2024-01-02T00:00:00", NOW)
    assert window is not None
    assert window[0].tzinfo is not None


@pytest.mark.parametrize("value", [None, ""])
def test_no_timespan_means_no_window(value: object) -> None:
    assert parse_timespan(value, NOW) is None


@pytest.mark.parametrize(
    "value", ["yesterday", "P1M", "2024-01-02T00:00:00Z/2024-01-01T00:00:00Z", "a/b", 3600]
)
def test_invalid_timespans_are_a_bad_argument_error(value: object) -> None:
    with pytest.raises(LaError) as caught:
        parse_timespan(value, NOW)
    assert caught.value.status == 400
    assert caught.value.error["code"] == "BadArgumentError"
    assert caught.value.error["details"][0]["target"] == "timespan"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Preferences()),
        ("", Preferences()),
        ("wait=1", Preferences(wait_s=1)),
        ("wait=5,include-statistics=true", Preferences(5, include_statistics=True)),
        ("include-render=true", Preferences(include_render=True)),
        (
            "wait=600, include-statistics=true, include-render=true",
            Preferences(600, include_statistics=True, include_render=True),
        ),
        ("include-statistics=false,wait=soon,respond-async", Preferences()),
    ],
)
def test_prefer_headers_as_azure_monitor_query_writes_them(
    header: str | None, expected: Preferences
) -> None:
    assert parse_prefer(header) == expected
