"""The reconciler's retry policy: exponential backoff with jitter that honours Retry-After,
and the one parser of a server's Retry-After header."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A server asking for longer than this is taken to mean this long: no wait, backoff or
# Retry-After of ours is ever unbounded (or infinite, or NaN) because of one header.
MAX_RETRY_AFTER_S = 86_400.0
# delta-seconds (RFC 9110 10.2.3) is digits; Azure services send fractions too. Never a sign,
# exponent, "inf" or "nan" (float() alone accepts all of those).
_DELTA_SECONDS = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,9})?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date (RFC 9110
    10.2.3). None when absent or unreadable (the caller's own backoff decides); a date in the
    past is 0; anything longer than :data:`MAX_RETRY_AFTER_S` is capped to it."""
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "no zone information"; HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(0.0, delta), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts attempts of one operation; delays grow from ``base_s`` up to
    ``max_s``."""

    base_s: float = 2.0
    max_s: float = 300.0
    max_attempts: int = 5

    def should_retry(self, attempts_made: int, *, temporary: bool) -> bool:
        """Permanent errors never retry; temporary ones until the attempts are spent."""
        return temporary and attempts_made < self.max_attempts

    def delay_s(
        self,
        attempts_made: int,
        retry_after_s: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before the next attempt.

        "Equal jitter": half the exponential step is fixed, half random, so retries of many
        operations that failed together spread out. A server's Retry-After is a floor (never
        retry earlier than asked), spread by up to 20% so throttled callers do not return in
        lock-step.
        """
        step = min(self.max_s, self.base_s * 2 ** max(0, attempts_made - 1))
        delay = step / 2 + rand() * step / 2
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, retry_after_s * (1 + 0.2 * rand()))
        return float(min(delay, max(self.max_s, retry_after_s or 0.0)))
