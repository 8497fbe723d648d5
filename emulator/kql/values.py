"""Value conversions with KQL semantics: parsing literals, tostring(), dynamic JSON text, terms."""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

EPOCH_0001: Final = datetime(1, 1, 1, tzinfo=UTC)  # .NET DateTime ticks count from here
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_TIMESPAN_CLOCK_RE: Final = re.compile(
    r"(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?$"
)
_TIMESPAN_UNIT_RE: Final = re.compile(
    r"(-)?(\d+(?:\.\d+)?)\s*(d|h|m|s|ms|microsecond|tick|days?|hours?|minutes?|seconds?)$"
)
_UNIT_SECONDS: Final = {
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "m": 60.0, "minute": 60.0, "minutes": 60.0,
    "s": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "microsecond": 1e-6, "tick": 1e-7,
}  # fmt: skip
_DUMPS: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode


def parse_datetime(text: str, *, strict: bool = False) -> datetime | None:
    """Parse an ISO 8601 datetime as KQL does (naive means UTC; up to 7 fractional digits).

    ``null`` gives None. Unparseable text raises ValueError when ``strict`` (a literal), else
    gives None (``todatetime`` of garbage is null).
    """
    text = text.strip()
    if text == "null":
        return None
    if _DATE_RE.match(text):
        fixed = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Python keeps microseconds, KQL ticks
        try:
            value = datetime.fromisoformat(fixed)
        except ValueError:
            value = None
        if value is not None:
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
    if strict:
        raise ValueError(text)
    return None


def parse_timespan(text: str, *, strict: bool = False) -> timedelta | None:
    """Parse ``1.02:03:04.5``, ``00:05:00`` or ``5m`` text; None (ValueError if strict) if bad."""
    text = text.strip()
    if text == "null":
        return None
    m = _TIMESPAN_CLOCK_RE.match(text)
    if m:
        sign, days, hours, minutes, seconds, fraction = m.groups()
        value = timedelta(
            days=int(days or 0),
            hours=int(hours),
            minutes=int(minutes),
            seconds=int(seconds or 0),
            microseconds=int((fraction or "0").ljust(7, "0")) / 10,
        )
        return -value if sign else value
    m = _TIMESPAN_UNIT_RE.match(text)
    if m:
        value = timedelta(seconds=float(m.group(2)) * _UNIT_SECONDS[m.group(3)])
        return -value if m.group(1) else value
    if strict:
        raise ValueError(text)
    return None


def parse_guid(text: str) -> str | None:
    """Validate a guid literal; KQL guids travel as their canonical lowercase text."""
    text = text.strip()
    if text == "null":
        return None
    return str(uuid.UUID(text))


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` and trailing fractional zeros dropped, as Azure sends it."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    text = value.replace(tzinfo=None).isoformat()
    if value.microsecond:
        text = text.rstrip("0")
    return text + "Z"


def format_timespan(value: timedelta) -> str:
    """``[-][d.]hh:mm:ss[.fffffff]``: the .NET TimeSpan text KQL returns."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{value.days}." if value.days else sign
    text += f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        text += f".{value.microseconds * 10:07d}"
    return text


def format_real(value: float) -> str:
    """tostring() of a real: shortest round-trip text, integral values without ``.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# JSON text of bags and arrays by object identity: `traces | where customDimensions contains`
# would otherwise re-encode every row's bag on every query. Entries hold the object, so its id
# cannot be reused while cached; tables are read-only by contract, so the text cannot go stale.
_TEXT_CACHE: dict[int, tuple[Any, str]] = {}
_TEXT_CACHE_LIMIT: Final = 500_000


def dynamic_text(value: Any) -> str:
    """The text of a dynamic value: compact JSON for bags and arrays, the string itself for
    strings, ``""`` for null. This is what ``tostring()`` and ``contains`` see."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        cached = _TEXT_CACHE.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        text = str(_DUMPS(value))
        if len(_TEXT_CACHE) >= _TEXT_CACHE_LIMIT:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[id(value)] = (value, text)
        return text
    return to_string(value)


def to_string(value: Any) -> str:
    """KQL ``tostring()`` of any value."""
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return format_real(value)
    if kind is datetime:
        return format_datetime(value)
    if kind is timedelta:
        return format_timespan(value)
    return dynamic_text(value)


def to_json_value(value: Any) -> Any:
    """A value as it may sit inside a dynamic (datetimes and timespans become text)."""
    if isinstance(value, datetime | timedelta):
        return to_string(value)
    return value


@lru_cache(maxsize=512)
def term_regex(needle: str, case_sensitive: bool, prefix: bool, suffix: bool) -> re.Pattern[str]:
    """Regex for KQL term operators: a term is a maximal run of ASCII letters and digits.

    ``has`` needs term boundaries on both sides of the needle, ``hasprefix`` only before it and
    ``hassuffix`` only after it; a needle edge that is not alphanumeric needs no boundary there.
    """
    body = re.escape(needle)
    before = r"(?<![A-Za-z0-9])" if needle[:1].isalnum() and needle[:1].isascii() else ""
    after = r"(?![A-Za-z0-9])" if needle[-1:].isalnum() and needle[-1:].isascii() else ""
    pattern = (before if not suffix else "") + body + (after if not prefix else "")
    return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)


def sort_key_dynamic(value: Any) -> tuple[int, Any]:
    """A total order over mixed dynamic values: numbers, then strings, then JSON text."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, dynamic_text(value))


def hashable(value: Any) -> Any:
    """A dict/list made hashable (its JSON text) for grouping and distinct counts."""
    if isinstance(value, dict | list):
        return dynamic_text(value)
    return value
