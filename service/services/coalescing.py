"""Coalescing of identical log queries, and an optional short cache of their answers.

Identical queries in flight at the same time share one Azure call; with a :class:`SharedResults`
store (Redis) replicas share both the call and the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service.ports import CoordinationUnavailable, SharedResults

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a result travels between replicas (shared cache and cross-replica coalescing)."""

    encode: Callable[[T], bytes | None]  # None: too large to share
    decode: Callable[[bytes], T]


class Coalescer:
    """Identical concurrent calls share one execution; results may be cached for ``ttl_s``.

    With a :class:`SharedResults` store, replicas share both: the first replica to start a
    query leads it, the others poll for its answer (a few small reads) instead of spending
    another slot of the identity's budget.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1000,
        shared: SharedResults | None = None,
        lead_ttl_s: float = 15.0,
        follow_max_s: float = 610.0,
        poll_s: float = 0.02,
    ) -> None:
        self.enabled = enabled
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[Any]] = {}
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._shared = shared
        self._lead_ttl_s = lead_ttl_s  # renewed while the query runs: a dead leader's lapses
        self._follow_max_s = follow_max_s
        self._poll_s = poll_s
        self._leads: dict[str, str] = {}  # digest -> token of the queries this process leads
        self._renewer: threading.Thread | None = None

    def run(
        self, key: Hashable, call: Callable[[], T], codec: Codec[T] | None = None
    ) -> tuple[T, str]:
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
            result, how = self._run_shared(key, call, codec)
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
        return result, how

    def _run_shared(
        self, key: Hashable, call: Callable[[], T], codec: Codec[T] | None
    ) -> tuple[T, str]:
        shared = self._shared
        if shared is None or codec is None:
            return call(), "azure"
        digest = hashlib.sha256(repr(key).encode()).hexdigest()
        try:
            if self.ttl_s > 0:
                hit = shared.get(f"cache:{digest}")
                if hit:
                    return codec.decode(hit), "cache"
            token = secrets.token_hex(8)
            if self.enabled:
                leader = shared.lead(digest, token, self._lead_ttl_s)
                if leader is not None:
                    answer = self._follow(shared, digest, leader)
                    if answer:
                        return codec.decode(answer), "coalesced"
                    token = ""  # the leader failed or its answer was too large: run it here
        except CoordinationUnavailable:
            return call(), "azure"
        if token:
            self._hold_lead(digest, token)
        try:
            result = call()
        except BaseException:
            if token:
                self._leads.pop(digest, None)
                with contextlib.suppress(CoordinationUnavailable):
                    shared.unlead(digest, token)
            raise
        if token:
            self._leads.pop(digest, None)
        with contextlib.suppress(CoordinationUnavailable):
            encoded = codec.encode(result)
            # The answer goes to Redis only when another replica waits for it (a few seconds,
            # enough for followers polling every ``poll_s``), not for every query.
            if token and shared.followers(digest, token) > 0:
                shared.put(f"answer:{digest}:{token}", encoded or b"", 5.0)
            if token:
                shared.unlead(digest, token)
            if encoded and self.ttl_s > 0:
                shared.put(f"cache:{digest}", encoded, self.ttl_s)
        return result, "azure"

    def _follow(self, shared: SharedResults, digest: str, leader: str) -> bytes | None:
        """Wait for another replica's answer; None when it ends without a usable one."""
        shared.follow(digest, leader)
        deadline = self._clock() + self._follow_max_s
        while self._clock() < deadline:
            answer = shared.get(f"answer:{digest}:{leader}")
            if answer is not None:
                return answer or None
            if shared.leader(digest) != leader:  # it finished (or failed) meanwhile
                answer = shared.get(f"answer:{digest}:{leader}")
                return answer or None
            time.sleep(self._poll_s)
        return None

    def _hold_lead(self, digest: str, token: str) -> None:
        with self._lock:
            self._leads[digest] = token
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_leads, name="coalescing-lead-renewer", daemon=True
                )
                self._renewer.start()

    def _renew_leads(self) -> None:
        """Keep this process's leads alive while their queries run (a crash lets them lapse)."""
        shared = self._shared
        assert shared is not None
        while True:
            time.sleep(self._lead_ttl_s / 3)
            with self._lock:
                leads = list(self._leads.items())
                if not leads:
                    self._renewer = None
                    return
            for digest, token in leads:
                with contextlib.suppress(CoordinationUnavailable):
                    shared.renew_lead(digest, token, self._lead_ttl_s)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
        while len(self._cache) >= self._max_entries:
            self._cache.pop(next(iter(self._cache)))
