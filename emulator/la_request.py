"""Parsing of the query API's inputs: the `timespan` property and the `Prefer` header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from emulator import la_errors

# ISO 8601 durations as clients send them: PT3600.0S (azure-monitor-query), PT1H, P1D, P1DT2H30M,
# P2W. Years and months are refused: their length depends on the calendar, and no SDK emits them.
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta | None:
    """An ISO 8601 duration (weeks to seconds) as a timedelta, or None if it is not one."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        return None
    parts = {name: float(value) for name, value in match.groupdict().items() if value is not None}
    return timedelta(**parts)


def _parse_instant(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    # A timestamp without an offset is UTC, as the service reads it.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_timespan(value: object, now: datetime) -> tuple[datetime, datetime] | None:
    """The [start, end) window of a `timespan` property, or None when it is absent.

    Accepted forms: a duration ending now (`PT3600.0S`, `P1D`), `start/duration`,
    `duration/end` and `start/end`. Anything else raises a 400 BadArgumentError.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise la_errors.bad_argument("timespan must be a string", target="timespan")
    first, sep, second = value.partition("/")
    window: tuple[datetime, datetime] | None = None
    if not sep:
        duration = parse_duration(first)
        if duration is not None:
            window = (now - duration, now)
    else:
        start, end = _parse_instant(first), _parse_instant(second)
        if start is not None and end is not None:
            window = (start, end)
        elif start is not None and (duration := parse_duration(second)) is not None:
            window = (start, start + duration)
        elif end is not None and (duration := parse_duration(first)) is not None:
            window = (end - duration, end)
    if window is None or window[0] > window[1]:
        raise la_errors.bad_argument(
            f"Invalid timespan '{value}': expected an ISO 8601 duration or interval",
            target="timespan",
            value=value,
        )
    return window


@dataclass(frozen=True)
class Preferences:
    """What a `Prefer` header asked for. `wait_s` is None when no server timeout was given."""

    wait_s: int | None = None
    include_statistics: bool = False
    include_render: bool = False


NO_PREFERENCES = Preferences()


def parse_prefer(header: str | None) -> Preferences:
    """Parse `Prefer: wait=N, include-statistics=true, include-render=true` (any may be absent).

    Unknown or malformed preferences are ignored, as RFC 7240 asks of a server.
    """
    if not header:
        return NO_PREFERENCES
    wait: int | None = None
    stats = render = False
    for item in header.split(","):
        name, _, raw = item.strip().partition("=")
        name, raw = name.strip().lower(), raw.strip().strip('"').lower()
        if name == "wait":
            try:
                wait = int(float(raw))
            except ValueError:
                continue
        elif name == "include-statistics":
            stats = raw == "true"
        elif name == "include-render":
            render = raw == "true"
    return Preferences(wait, stats, render)
