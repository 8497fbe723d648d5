"""Traffic shaping of log queries per tenant identity: Azure's budget, shared fairly.

Log Analytics allows each identity 5 concurrent queries and 200 per 30 s; past that it queues
for minutes, then answers 429. The proxy keeps each identity under the budget itself and answers
its own 429 with Retry-After at once rather than letting a caller stall:

- rate: a sliding window of send times; a query over the budget is refused with the time until
  the oldest send leaves the window;
- concurrency: a query beyond the slots waits a bounded time, in a per-API-key queue; a freed
  slot goes to the next key in round-robin order, so one noisy key cannot starve the others,
  and each key may hold only a few waiters (more are refused at once);
- coalescing: identical queries in flight at the same time share one Azure call, and an optional
  short TTL cache answers repeats.

Limits are per process: the composition root divides the deployment's budget by the number of
API processes (``LogQuerySettings.processes``) so that N gunicorn workers never exceed it.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.config import LogQuerySettings
from service.errors import TooManyRequests
from service.metrics import THROTTLE_WAITS, THROTTLED_RESPONSES

T = TypeVar("T")


@dataclass
class _Identity:
    in_flight: int = 0
    sent: deque[float] = field(default_factory=deque)  # send times inside the rate window
    waiters: dict[str, deque[threading.Event]] = field(default_factory=dict)
    turn: deque[str] = field(default_factory=deque)  # keys with waiters, round-robin order
    max_in_flight: int = 0
    refused: int = 0


class TrafficShaper:
    """Per-identity concurrency and rate limits with fair, bounded queueing (thread-safe)."""

    def __init__(
        self, settings: LogQuerySettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        processes = max(1, settings.processes)
        self.concurrency = max(1, settings.max_concurrent // processes)
        self.rate_limit = max(1, settings.rate_limit // processes)
        self.window_s = settings.rate_window_s
        self.queue_timeout_s = settings.queue_timeout_s
        self.queue_per_key = settings.queue_per_key
        self._clock = clock
        self._lock = threading.Lock()
        self._identities: dict[str, _Identity] = {}

    @contextmanager
    def slot(self, identity: str, caller: str) -> Iterator[None]:
        """Hold one of the identity's query slots (and one send of its rate budget)."""
        self.acquire(identity, caller)
        try:
            yield
        finally:
            self.release(identity)

    def charge(self, identity: str) -> None:
        """Spend one more send of the rate budget (a retry); raise our 429 when none is left."""
        with self._lock:
            self._spend(self._state(identity))

    def stats(self, identity: str) -> dict[str, int]:
        with self._lock:
            s = self._state(identity)
            return {
                "in_flight": s.in_flight,
                "max_in_flight": s.max_in_flight,
                "waiting": sum(len(q) for q in s.waiters.values()),
                "refused": s.refused,
            }

    # -- internals -------------------------------------------------------------------------
    def _state(self, identity: str) -> _Identity:
        state = self._identities.get(identity)
        if state is None:
            state = self._identities[identity] = _Identity()
        return state

    def _spend(self, s: _Identity) -> float:
        now = self._clock()
        while s.sent and s.sent[0] <= now - self.window_s:
            s.sent.popleft()
        if len(s.sent) >= self.rate_limit:
            s.refused += 1
            THROTTLED_RESPONSES.labels("log_query_rate").inc()
            wait = s.sent[0] + self.window_s - now
            raise TooManyRequests(
                f"this tenant's identity used its {self.rate_limit} queries per "
                f"{self.window_s:g} s; retry later",
                retry_after_s=math.ceil(wait),
            )
        s.sent.append(now)
        return now

    def _refund(self, s: _Identity, stamp: float) -> None:
        with contextlib.suppress(ValueError):  # already out of the window
            s.sent.remove(stamp)

    def acquire(self, identity: str, caller: str) -> None:
        """Take a slot, waiting at most ``queue_timeout_s``; else raise our 429."""
        with self._lock:
            s = self._state(identity)
            stamp = self._spend(s)
            if s.in_flight < self.concurrency and not s.turn:
                s.in_flight += 1
                s.max_in_flight = max(s.max_in_flight, s.in_flight)
                return
            mine = s.waiters.setdefault(caller, deque())
            if len(mine) >= self.queue_per_key:
                self._refund(s, stamp)
                s.refused += 1
                THROTTLED_RESPONSES.labels("log_query_key_queue").inc()
                raise TooManyRequests(
                    "this API key already has the most queries waiting for this tenant; "
                    "retry when some finish",
                    retry_after_s=1,
                )
            ticket = threading.Event()
            mine.append(ticket)
            THROTTLE_WAITS.labels("log_query_slot").inc()
            if caller not in s.turn:
                s.turn.append(caller)
        if ticket.wait(self.queue_timeout_s):
            return
        with self._lock:
            if ticket.is_set():  # handed a slot between the timeout and the lock
                return
            mine.remove(ticket)
            if not mine:
                s.waiters.pop(caller, None)
                s.turn.remove(caller)
            self._refund(s, stamp)
            s.refused += 1
        THROTTLED_RESPONSES.labels("log_query_queue_timeout").inc()
        raise TooManyRequests(
            f"all {self.concurrency} query slots of this tenant's identity stayed busy for "
            f"{self.queue_timeout_s:g} s",
            retry_after_s=max(1, math.ceil(self.queue_timeout_s / 2)),
        )

    def release(self, identity: str) -> None:
        """Give a slot back: to the next API key in turn, or free it."""
        with self._lock:
            s = self._identities[identity]
            if not s.turn:
                s.in_flight -= 1
                return
            caller = s.turn.popleft()  # the next key in turn gets the slot: fairness
            queue = s.waiters[caller]
            ticket = queue.popleft()
            if queue:
                s.turn.append(caller)
            else:
                del s.waiters[caller]
            ticket.set()  # the slot passes on; in_flight is unchanged


class Coalescer:
    """Identical concurrent calls share one execution; results may be cached for ``ttl_s``."""

    def __init__(
        self,
        *,
        enabled: bool,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1000,
    ) -> None:
        self.enabled = enabled
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[Any]] = {}
        self._cache: dict[Hashable, tuple[float, Any]] = {}

    def run(self, key: Hashable, call: Callable[[], T]) -> tuple[T, str]:
        """``call()``'s result and how it was obtained: ``azure``, ``coalesced`` or ``cache``."""
        if not self.enabled and self.ttl_s <= 0:
            return call(), "azure"
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > self._clock():
                value: T = cached[1]
                return value, "cache"
            leader = self._running.get(key) if self.enabled else None
            if leader is None:
                future: Future[Any] = Future()
                if self.enabled:
                    self._running[key] = future
        if leader is not None:
            return leader.result(), "coalesced"  # re-raises the leader's error
        try:
            result = call()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._running.pop(key, None)
        future.set_result(result)
        if self.ttl_s > 0:
            with self._lock:
                if len(self._cache) >= self._max_entries:
                    self._evict()
                self._cache[key] = (self._clock() + self.ttl_s, result)
        return result, "azure"

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
        while len(self._cache) >= self._max_entries:
            self._cache.pop(next(iter(self._cache)))
