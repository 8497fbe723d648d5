"""Traffic shaping of log queries per tenant identity: Azure's budget, shared fairly.

Log Analytics allows each identity 5 concurrent queries and 200 per 30 s; past that it queues
for minutes, then answers 429. The proxy keeps each identity under the budget itself and answers
its own 429 with Retry-After at once rather than letting a caller stall:

- one budget per identity for the whole deployment, kept in a :class:`BudgetStore`: Redis
  (``REDIS_URL``) for several replicas, a file shared by one host's gunicorn workers, or this
  process's memory; the rules are ``service.domain.budget`` (leased slots, a send window, a fair
  queue between API keys);
- a query beyond the slots waits a bounded time in the fair queue; each key may hold only a few
  waiters (more are refused at once);
- when the shared store does not answer, each process falls back to its own conservative share
  of the budget (``1/LOG_QUERY_PROCESSES``, counting the queries it still has running) and tries
  the store again after ``REDIS_RETRY_S``: never more traffic than the budget's shares, never a
  500;
- coalescing (``coalescing``): identical queries in flight at the same time share one Azure
  call (across replicas too when the store is Redis), and an optional short TTL cache answers
  repeats.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from service.config import LogQuerySettings
from service.domain.budget import GRANTED, KEY_QUEUE, RATE, BudgetState, Decision, Limits
from service.errors import TooManyRequests
from service.ports import BudgetStore, CoordinationUnavailable
from service.services.meter import Meter, NoMeter

T = TypeVar("T")
log = logging.getLogger(__name__)

# Waking a waiter when its turn may have come:
# - a release in the waiter's own process wakes it as soon as enough releases happened for its
#   turn to have come, whatever its place in the queue;
# - releases in other processes are seen by polling the store again after the time its turn
#   should take: the releases it needs x the time between two releases, learnt from how fast
#   the waiters of this process move up the queue (starting at POLL_STEP_S, kept within
#   POLL_MIN_S..POLL_MAX_S). A fixed step per release capped the whole deployment at
#   1 / step releases per second (4 ms: 250 queries/s whatever the workers), and a small fixed
#   step would poll hundreds of times a second while slow queries hold every slot.
POLL_STEP_S = 0.004
POLL_MIN_S = 0.0005
POLL_MAX_S = 0.1


class MemoryBudgetStore:
    """Budgets in this process's memory (one process, or the fallback when Redis is down)."""

    name = "memory"
    shared = False

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, BudgetState] = {}

    def _step(self, identity: str, step: Callable[[BudgetState, float], T]) -> T:
        with self._lock:
            state = self._states.setdefault(identity, BudgetState())
            result = step(state, self._clock())
            if state.idle:
                del self._states[identity]
            return result

    def acquire(self, identity: str, token: str, caller: str, limits: Limits) -> Decision:
        return self._step(identity, lambda s, now: s.acquire(token, caller, now, limits))

    def release(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._step(identity, lambda s, now: s.release(token, sends, now, limits))

    def charge(self, identity: str, token: str, sends: int, limits: Limits) -> Decision:
        return self._step(identity, lambda s, now: s.charge(token, sends, now, limits))

    def renew(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._step(identity, lambda s, now: s.renew(token, sends, now, limits))

    def cancel(self, identity: str, token: str) -> None:
        self._step(identity, lambda s, now: s.cancel(token))

    def in_flight(self, identity: str) -> int:
        return self._step(identity, lambda s, now: len(s.slots))

    def ping(self) -> None:
        return None

    def watch_releases(self, on_release: Callable[[str], None]) -> None:
        return None  # one process: its own releases wake its waiters


class MemoryRevocationFeed:
    """The revocation counter of a single process."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def stamp(self) -> int:
        return self._value

    def bump(self) -> None:
        with self._lock:
            self._value += 1


@dataclass
class Lease:
    """One held query slot; ``sends`` counts the sends charged to it (first + retries)."""

    identity: str
    token: str
    store: BudgetStore
    limits: Limits
    sends: int = 1
    released: bool = False


class TrafficShaper:
    """Per-identity concurrency and rate limits with fair, bounded queueing (thread-safe)."""

    def __init__(
        self,
        settings: LogQuerySettings,
        store: BudgetStore | None = None,
        *,
        lease_s: float = 15.0,
        retry_shared_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        meter: Meter | None = None,
    ) -> None:
        self.meter: Meter = meter or NoMeter()
        self.limits = Limits(
            concurrency=settings.max_concurrent,
            rate_limit=settings.rate_limit,
            window_s=settings.rate_window_s,
            lease_s=lease_s,
            ticket_ttl_s=max(2.0, 4 * POLL_MAX_S),
            queue_per_key=settings.queue_per_key,
        )
        processes = max(1, settings.processes)
        # The fallback share of one process while the shared store is unreachable.
        self.fallback_limits = replace(
            self.limits,
            concurrency=max(1, settings.max_concurrent // processes),
            rate_limit=max(1, settings.rate_limit // processes),
        )
        self.queue_timeout_s = settings.queue_timeout_s
        self.store: BudgetStore = store or MemoryBudgetStore()
        self.local = self.store if not self.store.shared else MemoryBudgetStore()
        self.retry_shared_s = retry_shared_s
        self._clock = clock
        self._cond = threading.Condition()
        self._held: dict[str, Lease] = {}
        self._down_until = 0.0
        self._releases: dict[str, int] = {}  # identity -> slots freed (wakes its waiters)
        self._watching = 0  # the pid that asked the store for other processes' releases
        self._pace_s = POLL_STEP_S  # learnt time between two releases of the deployment
        self._renewer: threading.Thread | None = None
        self.refused = 0

    # -- the public face -------------------------------------------------------------------
    @contextmanager
    def slot(self, identity: str, caller: str) -> Iterator[Lease]:
        """Hold one of the identity's query slots (and one send of its rate budget)."""
        lease = self.acquire(identity, caller)
        try:
            yield lease
        finally:
            self.release(lease)

    def acquire(self, identity: str, caller: str) -> Lease:
        """Take a slot, waiting at most ``queue_timeout_s`` in the fair queue; else our 429."""
        token = secrets.token_hex(8)
        deadline = self._clock() + self.queue_timeout_s
        counted = False
        polled: tuple[float, int] | None = None  # when this waiter last asked, its place then
        while True:
            seen = self._released(identity)  # before asking: a release from now on wakes it
            store, limits = self._choose(identity)
            try:
                decision = store.acquire(identity, token, caller, limits)
            except CoordinationUnavailable as exc:
                self._degrade(exc)
                continue
            if decision.outcome == GRANTED:
                return self._hold(Lease(identity, token, store, limits))
            if decision.outcome == RATE:
                self._refuse("log_query_rate")
                raise TooManyRequests(
                    f"this tenant's identity used its {limits.rate_limit} queries per "
                    f"{limits.window_s:g} s; retry later",
                    retry_after_s=max(1, math.ceil(decision.retry_after_s)),
                )
            if decision.outcome == KEY_QUEUE:
                self._refuse("log_query_key_queue")
                raise TooManyRequests(
                    "this API key already has the most queries waiting for this tenant; "
                    "retry when some finish",
                    retry_after_s=1,
                )
            if not counted:
                self.meter.throttle_wait("log_query_slot")
                counted = True
            remaining = deadline - self._clock()
            if remaining <= 0:
                with contextlib.suppress(CoordinationUnavailable):
                    store.cancel(identity, token)
                self._refuse("log_query_queue_timeout")
                raise TooManyRequests(
                    f"all {limits.concurrency} query slots of this tenant's identity stayed "
                    f"busy for {self.queue_timeout_s:g} s",
                    retry_after_s=max(1, math.ceil(self.queue_timeout_s / 2)),
                )
            # Its turn comes after ``ahead + 1 - free`` more releases (the free slots go to
            # waiters ahead of it). Those of this process wake it; the timer catches those of
            # other processes and waiters ahead that gave up.
            now = self._clock()
            if polled is not None:
                self._learn_pace(now - polled[0], polled[1] - decision.ahead)
            polled = (now, decision.ahead)
            needed = max(1, decision.ahead + 1 - decision.free)
            step = max(POLL_MIN_S, min(self._pace_s * needed, POLL_MAX_S))
            pause = min(remaining, step)
            self._watch()
            with self._cond:
                self._cond.wait_for(
                    partial(self._turn_may_have_come, identity, seen + needed), pause
                )

    def release(self, lease: Lease) -> None:
        """Give a slot back (idempotent); waiters of this process look again at once."""
        with self._cond:
            if lease.released:
                return
            lease.released = True
            self._held.pop(lease.token, None)
        try:
            lease.store.release(lease.identity, lease.token, lease.sends, lease.limits)
        except CoordinationUnavailable as exc:
            self._degrade(exc)  # the lease lapses on its own
        self._count_release(lease.identity)

    def _count_release(self, identity: str) -> None:
        """A slot of ``identity`` was freed here or (told by the store) in another process."""
        with self._cond:
            self._releases[identity] = self._releases.get(identity, 0) + 1
            self._cond.notify_all()

    def _released(self, identity: str) -> int:
        return self._releases.get(identity, 0)

    def _turn_may_have_come(self, identity: str, releases: int) -> bool:
        return self._released(identity) >= releases

    def _watch(self) -> None:
        if self._watching != os.getpid():  # once per process (a forked worker watches anew)
            self._watching = os.getpid()
            self.store.watch_releases(self._count_release)

    def charge(self, lease: Lease) -> None:
        """Spend one more send of the rate budget (a retry); raise our 429 when none is left."""
        try:
            decision = lease.store.charge(lease.identity, lease.token, lease.sends, lease.limits)
        except CoordinationUnavailable as exc:
            self._degrade(exc)
            decision = self.local.charge(
                lease.identity, lease.token, lease.sends, self.fallback_limits
            )
        if decision.outcome != GRANTED:
            self._refuse("log_query_rate")
            raise TooManyRequests(
                f"this tenant's identity used its {lease.limits.rate_limit} queries per "
                f"{lease.limits.window_s:g} s; retry later",
                retry_after_s=max(1, math.ceil(decision.retry_after_s)),
            )
        lease.sends += 1

    @property
    def mode(self) -> str:
        """``redis``, ``host`` or ``memory``; ``degraded`` while the shared store is down."""
        if self.store.shared and self._clock() < self._down_until:
            return "degraded"
        return self.store.name

    def check(self) -> str:
        """Ping the shared store now and report the mode (readiness)."""
        if self.store.shared:
            try:
                self.store.ping()
            except CoordinationUnavailable as exc:
                self._degrade(exc)
        return self.mode

    # -- internals -------------------------------------------------------------------------
    def _choose(self, identity: str) -> tuple[BudgetStore, Limits]:
        if not self.store.shared or self._clock() >= self._down_until:
            return self.store, self.limits
        # Degraded: this process's share, counting the queries the shared store granted it
        # that still run (they are invisible to the local store).
        with self._cond:
            running = sum(
                1
                for lease in self._held.values()
                if lease.identity == identity and lease.store is self.store
            )
        limits = self.fallback_limits
        return self.local, replace(limits, concurrency=max(0, limits.concurrency - running))

    def _learn_pace(self, elapsed_s: float, moved_up: int) -> None:
        """A waiter moved up ``moved_up`` places in ``elapsed_s``: update the time between two
        releases (moving average; none moved up means that time is longer than ``elapsed_s``)."""
        sample = elapsed_s / moved_up if moved_up > 0 else 2 * elapsed_s
        pace = 0.7 * self._pace_s + 0.3 * sample
        self._pace_s = max(POLL_MIN_S, min(pace, POLL_MAX_S))

    def _degrade(self, reason: Exception) -> None:
        if self._clock() >= self._down_until:
            log.warning(
                "coordination store %s unavailable (%s): this process uses its share of the "
                "budget for %g s",
                self.store.name,
                reason,
                self.retry_shared_s,
            )
        self._down_until = self._clock() + self.retry_shared_s

    def _refuse(self, reason: str) -> None:
        self.refused += 1
        self.meter.throttled_response(reason)

    def _hold(self, lease: Lease) -> Lease:
        with self._cond:
            self._held[lease.token] = lease
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="slot-lease-renewer", daemon=True
                )
                self._renewer.start()
        return lease

    def _renew_forever(self) -> None:
        """Keep the leases of running queries alive (a crashed process's lapse on their own)."""
        while True:
            time.sleep(self.limits.lease_s / 3)
            with self._cond:
                leases = list(self._held.values())
                if not leases:  # idle: stop; the next lease starts a new renewer
                    self._renewer = None
                    return
            for lease in leases:
                try:
                    lease.store.renew(lease.identity, lease.token, lease.sends, lease.limits)
                except CoordinationUnavailable as exc:
                    self._degrade(exc)
                    break
                except Exception:  # the renewer must outlive any one failure
                    log.exception("renewing a query slot lease failed")
