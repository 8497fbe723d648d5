"""Fault injection, the request log and ARM-style token-bucket throttling.

Faults are matched per request by route name (exact, a family prefix such as ``"mms."``, or
``"*"``) and optionally by tenant, subscription or identity, so tests can target only their own
data on a shared emulator. Everything here is thread-safe: the server runs many worker threads.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Literal

FaultKind = Literal["latency", "status", "throttle", "hang", "drop"]
FAULT_KINDS: tuple[str, ...] = ("latency", "status", "throttle", "hang", "drop")


@dataclass
class Fault:
    """One injected fault. `count` None means every matching call; `probability` < 1 samples."""

    id: int
    kind: FaultKind
    route: str = "*"
    tenant_id: str | None = None
    subscription_id: str | None = None
    identity: str | None = None
    count: int | None = None
    probability: float = 1.0
    latency_s: float = 0.0
    status: int = 500
    retry_after_s: int = 1
    hang_s: float | None = None
    message: str | None = None
    hits: int = 0
    release: threading.Event = field(default_factory=threading.Event, repr=False)

    def matches(
        self, route: str, tenant: str | None, subscription: str | None, ident: str | None
    ) -> bool:
        """Whether this fault's filters select a request."""
        if self.route != "*":
            family = self.route.endswith(".") and route.startswith(self.route)
            if not family and route != self.route:
                return False
        if self.tenant_id is not None and self.tenant_id != tenant:
            return False
        if (
            self.subscription_id is not None
            and (subscription or "").lower() != self.subscription_id
        ):
            return False
        return self.identity is None or self.identity == ident

    def describe(self) -> dict[str, Any]:
        """A JSON-able view for the admin API."""
        # asdict() would deep-copy the Event (and its lock); read the plain fields instead.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "release"}


class FaultInjector:
    """Registry of active faults; `select` consumes budgets atomically."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: dict[int, Fault] = {}
        # Spent hang faults may still hold requests; `clear` must be able to release them.
        self._spent_hangs: dict[int, Fault] = {}
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)

    def add(self, kind: FaultKind, route: str = "*", **options: Any) -> Fault:
        """Register a fault; options are the `Fault` fields (count, probability, status, ...)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if options.get("subscription_id"):
            options["subscription_id"] = options["subscription_id"].lower()
        with self._lock:
            fault = Fault(id=next(self._ids), kind=kind, route=route, **options)
            self._faults[fault.id] = fault
        return fault

    def reseed(self, seed: int) -> None:
        """Make fractional faults reproducible from here on."""
        with self._lock:
            self._rng = random.Random(seed)

    def clear(self, fault_id: int | None = None) -> int:
        """Remove one fault or all of them; release requests they hold. Returns how many."""
        with self._lock:
            if fault_id is None:
                removed = list(self._faults.values())
                released = removed + list(self._spent_hangs.values())
                self._faults.clear()
                self._spent_hangs.clear()
            else:
                one = self._faults.pop(fault_id, None)
                removed = [one] if one else []
                spent = self._spent_hangs.pop(fault_id, None)
                released = removed + ([spent] if spent else [])
        for fault in released:
            fault.release.set()
        return len(removed) or len(released)

    def list(self) -> list[Fault]:
        """Active faults, oldest first."""
        with self._lock:
            return list(self._faults.values())

    def select(
        self, route: str, tenant: str | None, subscription: str | None, identity: str | None
    ) -> list[Fault]:
        """Faults that fire for this request: latencies plus at most one terminal fault."""
        fired: list[Fault] = []
        terminal = False
        with self._lock:
            for fault in list(self._faults.values()):
                if not fault.matches(route, tenant, subscription, identity):
                    continue
                is_terminal = fault.kind not in ("latency", "hang")
                if is_terminal and terminal:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[fault.id]
                        if fault.kind == "hang":
                            self._spent_hangs[fault.id] = fault
                terminal = terminal or is_terminal
                fired.append(fault)
        return fired


@dataclass(frozen=True)
class RequestLogEntry:
    """One served (or dropped) request."""

    seq: int
    time: float
    method: str
    path: str
    query: str
    route: str
    status: int
    duration_ms: float
    identity: str | None
    tenant_id: str | None
    subscription_id: str | None
    fault: str | None
    # x-ms-client-request-id as the client sent it (None when absent): correlation checks.
    client_request_id: str | None = None


class RequestLog:
    """Bounded, append-only log of requests for assertions and the admin API."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[RequestLogEntry] = deque(maxlen=maxlen)
        self._seq = itertools.count(1)

    def append(self, **fields: Any) -> RequestLogEntry:
        """Record a request (fields of `RequestLogEntry` except `seq`)."""
        with self._lock:
            entry = RequestLogEntry(seq=next(self._seq), **fields)
            self._entries.append(entry)
        return entry

    def entries(
        self,
        *,
        route: str | None = None,
        since: int = 0,
        subscription_id: str | None = None,
        tenant_id: str | None = None,
    ) -> list[RequestLogEntry]:
        """Entries after sequence number `since`, optionally filtered (route may be a prefix.)."""
        with self._lock:
            snapshot = list(self._entries)
        result = []
        for entry in snapshot:
            if entry.seq <= since:
                continue
            if route and not (
                entry.route == route or (route.endswith(".") and entry.route.startswith(route))
            ):
                continue
            if subscription_id and (entry.subscription_id or "") != subscription_id.lower():
                continue
            if tenant_id and entry.tenant_id != tenant_id:
                continue
            result.append(entry)
        return result

    def last_seq(self) -> int:
        """Sequence number of the newest entry (0 when empty); use as a `since` bookmark."""
        with self._lock:
            return self._entries[-1].seq if self._entries else 0

    def clear(self) -> None:
        """Forget every entry (sequence numbers keep increasing)."""
        with self._lock:
            self._entries.clear()


@dataclass
class ThrottleLimits:
    """ARM token-bucket parameters (per subscription and principal)."""

    enabled: bool = False
    read_burst: float = 250.0
    read_rate: float = 25.0
    write_burst: float = 200.0
    write_rate: float = 10.0


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class ArmThrottle:
    """Token buckets keyed by (subscription, principal, reads|writes), plus write-rate stats.

    Buckets are always accounted so the `x-ms-ratelimit-remaining-*` headers are meaningful; a
    request is refused only when `limits.enabled`.
    """

    def __init__(self, limits: ThrottleLimits | None = None) -> None:
        self.limits = limits or ThrottleLimits()
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._writes: dict[str, deque[float]] = {}
        self._max_writes: dict[str, int] = {}

    def configure(self, **changes: Any) -> ThrottleLimits:
        """Change limits (fields of `ThrottleLimits`) and reset all buckets."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.limits, key):
                    raise ValueError(f"unknown throttle limit {key!r}")
                setattr(self.limits, key, type(getattr(self.limits, key))(value))
            self._buckets.clear()
        return self.limits

    def take(
        self, subscription: str, principal: str, kind: Literal["reads", "writes"]
    ) -> tuple[bool, int, float]:
        """Spend one token. Returns (allowed, remaining, retry_after_seconds)."""
        limits = self.limits
        burst, rate = (
            (limits.read_burst, limits.read_rate)
            if kind == "reads"
            else (limits.write_burst, limits.write_rate)
        )
        now = time.monotonic()
        key = (subscription.lower(), principal, kind)
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(burst, now))
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0 or not limits.enabled:
                bucket.tokens = max(bucket.tokens - 1.0, 0.0)
                if kind == "writes":
                    self._record_write(subscription.lower(), now)
                return True, int(bucket.tokens), 0.0
            wait = (1.0 - bucket.tokens) / rate if rate > 0 else 60.0
            return False, 0, wait

    def _record_write(self, subscription: str, now: float) -> None:
        window = self._writes.setdefault(subscription, deque())
        window.append(now)
        while window and now - window[0] >= 1.0:
            window.popleft()
        self._max_writes[subscription] = max(self._max_writes.get(subscription, 0), len(window))

    def max_writes_per_second(self, subscription: str | None = None) -> dict[str, int] | int:
        """Highest number of accepted writes seen in any 1 s window, per subscription."""
        with self._lock:
            if subscription is not None:
                return self._max_writes.get(subscription.lower(), 0)
            return dict(self._max_writes)

    def reset_stats(self) -> None:
        """Forget observed write rates (e.g. between benchmark phases)."""
        with self._lock:
            self._writes.clear()
            self._max_writes.clear()
