"""What one process remembers of who may reach what: API keys by their hash, and the
registered workspace behind a log query's target (issue 16: that look-up was a database
session and a statement on every query, ~0.5 ms of the service's CPU per query).

An entry is reused while it is younger than its TTL *and* the deployment's access counter (a
:class:`RevocationFeed`: Redis, the host's file, or this process) has not moved since it was
stored. Every change that can make an entry wrong (an API key revoked or deleted, a tenant
deleted, a workspace registered, changed or deleted) calls :meth:`AccessCache.forget_all`
after its commit: every process drops its entries at its next look-up. When the counter
cannot be read (Redis down) nothing is reused. Look-ups that found nothing are never stored:
what is registered now is found at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from service.ports import CoordinationUnavailable, RevocationFeed

log = logging.getLogger(__name__)

V = TypeVar("V")
MAX_ENTRIES = 10_000  # then every entry is dropped at once (a flood of distinct look-ups)


class AccessCache:
    """One per process (the Runtime's ``access_cache``); thread- and greenlet-safe."""

    def __init__(
        self,
        *,
        revocations: RevocationFeed | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = revocations
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, int, Any]] = {}
        self._generation = 0

    def _stamp(self) -> int | None:
        if self._feed is None:
            return 0
        try:
            return self._feed.stamp()
        except CoordinationUnavailable:
            return None

    def remember(self, key: Hashable, ttl_s: float, load: Callable[[], V | None]) -> V | None:
        """The entry for ``key`` while it is fresh, else ``load()`` (stored unless None; an
        exception it raises is not stored). ``ttl_s`` 0: always ``load()``."""
        if ttl_s <= 0:
            return load()
        now = self._clock()
        stamp = self._stamp()
        with self._lock:
            hit = self._entries.get(key)
            generation = self._generation
        if hit is not None and stamp is not None and hit[0] > now and hit[1] == stamp:
            value: V = hit[2]
            return value
        loaded = load()
        if loaded is not None and stamp is not None:
            with self._lock:
                # A forget_all while loading: what was loaded may predate that change.
                if generation == self._generation:
                    if len(self._entries) >= MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[key] = (now + ttl_s, stamp, loaded)
        return loaded

    def forget_all(self) -> None:
        """Something that decides access changed (after its commit): every process must look
        again."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
        if self._feed is not None:
            try:
                self._feed.bump()
            except CoordinationUnavailable:
                # Processes that still reach the store keep their entries for at most the TTL.
                log.warning("could not announce an access change to the other processes")
