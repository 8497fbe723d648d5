"""KQL text for the log query proxy: literal escaping, guardrails and timespans.

Nothing here runs a query. Every value that comes from a caller reaches KQL text only through
:func:`string_literal` (strings) or as a validated number (limits, bin sizes), so a parameter can
never change the shape of a generated query.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# Leading whitespace and // comments: what may precede the first token of a query.
_PREAMBLE = re.compile(r"(?:\s+|//[^\n]*(?:\n|$))*")
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
MAX_TIMESPAN = timedelta(days=3650)


class KqlInputError(ValueError):
    """A caller-supplied value cannot be used in a query (the message says why)."""


def string_literal(value: str) -> str:
    """``value`` as a double-quoted KQL string literal that decodes back to exactly ``value``.

    Backslash, both quotes, newline, tab and carriage return are escaped; other control
    characters and lone surrogates have no portable escape in KQL and are refused.
    """
    out = ['"']
    for ch in value:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or unicodedata.category(ch) == "Cs":
            raise KqlInputError(f"control character U+{ord(ch):04X} is not allowed")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def timespan_literal(span: timedelta) -> str:
    """A positive timespan as a KQL literal in whole seconds (``3600s``)."""
    seconds = int(span.total_seconds())
    if seconds <= 0 or seconds != span.total_seconds():
        raise KqlInputError("must be a positive whole number of seconds")
    return f"{seconds}s"


def check_query(query: str, *, max_chars: int) -> None:
    """Refuse what the proxy never forwards: empty, over-long text and control commands."""
    if not query.strip():
        raise KqlInputError("the query is empty")
    if len(query) > max_chars:
        raise KqlInputError(f"the query is {len(query)} characters long; the limit is {max_chars}")
    if is_control_command(query):
        raise KqlInputError("control commands (starting with '.') are not allowed; send a query")


def is_control_command(query: str) -> bool:
    """True when the first token after whitespace and ``//`` comments starts with a dot."""
    preamble = _PREAMBLE.match(query)
    rest = query[preamble.end() if preamble else 0 :]
    return rest.startswith(".")


# -- timespans -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timespan:
    """A query window: a duration ending now, or a start with an end or a duration."""

    duration: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None

    def length(self) -> timedelta:
        if self.duration is not None:
            return self.duration
        assert self.start is not None
        assert self.end is not None
        return self.end - self.start

    def iso(self) -> str:
        """The wire form Log Analytics takes (``PT3600S``, ``start/end`` or ``start/PTnS``)."""
        if self.start is None:
            return _iso_duration(self.length())
        if self.end is not None:
            return f"{_iso_instant(self.start)}/{_iso_instant(self.end)}"
        return f"{_iso_instant(self.start)}/{_iso_duration(self.length())}"


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (``PT1H``, ``P1DT12H``)."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise KqlInputError(f"{text!r} is not an ISO 8601 duration such as PT1H or P1D")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    try:
        span = timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    except OverflowError:
        raise KqlInputError(f"{text!r} is too long") from None
    if span <= timedelta(0) or span > MAX_TIMESPAN:
        raise KqlInputError(f"{text!r} must be longer than zero and at most 3650 days")
    return span


def parse_timespan(text: str) -> Timespan:
    """``PT1H``, ``<start>/<end>`` or ``<start>/<duration>`` (instants in RFC 3339, with zone)."""
    first, sep, second = text.strip().partition("/")
    if not sep:
        return Timespan(duration=parse_duration(first))
    start = _parse_instant(first)
    if second.upper().startswith("P"):
        duration = parse_duration(second)
        _end_of(start, duration)
        return Timespan(duration=duration, start=start)
    end = _parse_instant(second)
    if not start < end or end - start > MAX_TIMESPAN:
        raise KqlInputError("the end must be after the start, at most 3650 days later")
    return Timespan(start=start, end=end)


def _end_of(start: datetime, duration: timedelta) -> datetime:
    """The window's end; refused when it lies past the calendar (9999-12-31T23:59:59Z/P1D)."""
    try:
        return start + duration
    except OverflowError:
        raise KqlInputError("the window ends after the year 9999") from None


def _parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise KqlInputError(f"{text!r} is not an RFC 3339 date-time") from None
    if value.tzinfo is None:
        raise KqlInputError(f"{text!r} needs a time zone (Z or +hh:mm)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise KqlInputError(f"{text!r} is out of range") from None


def _iso_instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_duration(span: timedelta) -> str:
    """The canonical ISO 8601 form: ``P1D``, ``PT1H``, ``P1DT12H``, ``PT1M30.5S``.

    A timespan sent as ``P1D`` comes back as ``P1D`` (and ``PT24H`` as ``P1D``), never as the
    azure-monitor-query SDK's ``PT86400.0S``; Log Analytics takes either form.
    """
    micros = span // timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or micros:
        time += f"{seconds}.{micros:06d}".rstrip("0").rstrip(".") + "S"
    if not days and not time:
        time = "0S"
    date = f"P{days}D" if days else "P"
    return date + (f"T{time}" if time else "")
