"""The reconciler's retry policy: exponential backoff with jitter that honours Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


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
