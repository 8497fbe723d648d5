"""Per-identity query limits of the Log Analytics API: concurrency with a queue, and query rate.

Azure's documented user limits (Azure Monitor service limits, "User query throttling"): five
concurrent queries per user; more wait in a FIFO queue; a query queued for over 3 minutes, or
arriving when 200 are already queued, is answered 429; at most 200 queries per 30 seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator import la_errors


@dataclass
class LogAnalyticsLimits:
    """The knobs of the emulated service; replace the whole object to change them at runtime."""

    max_concurrent_per_identity: int = 5
    queue_timeout_s: float = 180.0
    max_queue_per_identity: int = 200
    rate_limit: int = 200
    rate_window_s: float = 30.0
    max_rows: int = 500_000
    max_response_bytes: int = 64 * 1024 * 1024
    default_wait_s: int = 180
    max_wait_s: int = 600
    # Summarize group budget: a summarize with more groups keeps the first ones and the answer
    # is a 200 with a PartialError (Kusto's aggregation memory limit); 0 means no budget.
    max_summarize_groups: int = 0
    # Simulated service time of every query, spent while holding a concurrency slot, so that
    # callers can observe in-flight counts and server timeouts.
    latency_s: float = 0.0
    # Clock for ago(), duration timespans and statistics; None means the wall clock (UTC).
    now: Callable[[], datetime] | None = None


@dataclass
class _IdentityState:
    in_flight: int = 0
    max_in_flight: int = 0
    queue: deque[threading.Event] = field(default_factory=deque)
    max_queued: int = 0
    accepted: deque[float] = field(default_factory=deque)  # monotonic start times, rate window
    queries: int = 0
    completed: int = 0
    throttled_rate: int = 0
    throttled_queue_full: int = 0
    throttled_queue_timeout: int = 0


class IdentityGate:
    """Admits queries per identity under a rate limit and a concurrency limit with a FIFO queue.

    A freed slot is handed directly to the head of the queue, so a waiter never races a
    newcomer for it and the in-flight count can never exceed the limit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _IdentityState] = {}

    def acquire(self, identity: str, limits: LogAnalyticsLimits) -> None:
        """Take a slot for one query, waiting in the queue if needed; raise a 429 LaError."""
        now = time.monotonic()
        with self._lock:
            state = self._states.get(identity)
            if state is None:
                state = self._states[identity] = _IdentityState()
            state.queries += 1
            accepted = state.accepted
            while accepted and accepted[0] <= now - limits.rate_window_s:
                accepted.popleft()
            if len(accepted) >= limits.rate_limit:
                state.throttled_rate += 1
                retry = (accepted[0] if accepted else now) + limits.rate_window_s - now
                raise la_errors.throttled("UserRateLimitExceeded", math.ceil(retry))
            accepted.append(now)
            if state.in_flight < limits.max_concurrent_per_identity and not state.queue:
                self._start(state)
                return
            if len(state.queue) >= limits.max_queue_per_identity:
                state.throttled_queue_full += 1
                raise la_errors.throttled("ConcurrencyQueueFull", math.ceil(limits.queue_timeout_s))
            ticket = threading.Event()
            state.queue.append(ticket)
            state.max_queued = max(state.max_queued, len(state.queue))
        if ticket.wait(limits.queue_timeout_s):
            return
        with self._lock:
            if ticket.is_set():  # the slot arrived between the timeout and taking the lock
                return
            state.queue.remove(ticket)
            state.throttled_queue_timeout += 1
        raise la_errors.throttled("ConcurrencyQueueTimeout", math.ceil(limits.queue_timeout_s))

    def release(self, identity: str, limits: LogAnalyticsLimits) -> None:
        """Give back a slot: to the head of the queue if anyone waits, else free it."""
        with self._lock:
            state = self._states[identity]
            state.completed += 1
            # A lowered limit at runtime drains the excess instead of handing slots on.
            if state.queue and state.in_flight <= limits.max_concurrent_per_identity:
                state.queue.popleft().set()
            else:
                state.in_flight -= 1

    @staticmethod
    def _start(state: _IdentityState) -> None:
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)

    def stats(self) -> dict[str, Any]:
        """Counters per identity plus totals, for tests and the admin API."""
        with self._lock:
            identities = {
                identity: {
                    "in_flight": s.in_flight,
                    "max_in_flight": s.max_in_flight,
                    "queued": len(s.queue),
                    "max_queued": s.max_queued,
                    "queries": s.queries,
                    "completed": s.completed,
                    "throttled_rate": s.throttled_rate,
                    "throttled_queue_full": s.throttled_queue_full,
                    "throttled_queue_timeout": s.throttled_queue_timeout,
                }
                for identity, s in self._states.items()
            }
        return {
            "identities": identities,
            "in_flight": sum(s["in_flight"] for s in identities.values()),
            "max_in_flight_per_identity": max(
                (s["max_in_flight"] for s in identities.values()), default=0
            ),
            "queries": sum(s["queries"] for s in identities.values()),
            "throttled": sum(
                s["throttled_rate"] + s["throttled_queue_full"] + s["throttled_queue_timeout"]
                for s in identities.values()
            ),
        }

    def reset_stats(self) -> None:
        """Forget peak and count statistics (not the live in-flight state or the rate window)."""
        with self._lock:
            for s in self._states.values():
                s.max_in_flight = s.in_flight
                s.max_queued = len(s.queue)
                s.queries = s.completed = 0
                s.throttled_rate = s.throttled_queue_full = s.throttled_queue_timeout = 0
