"""Ports of coordination between the processes and replicas of a deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from service.domain.budget import Decision, Limits


class CoordinationUnavailable(Exception):
    """The shared store (Redis) did not answer in time; callers degrade instead of failing."""


class BudgetStore(Protocol):
    """Where the identities' query budgets live (see ``service.domain.budget``): each method is
    one atomic step on one identity's state, shared by every process that uses the same store.
    Raises :class:`CoordinationUnavailable` when the store cannot be reached."""

    name: str  # "memory" (this process), "host" (a file for one host's workers) or "redis"
    shared: bool  # True: a remote store that may be unreachable (the caller then degrades)

    def acquire(self, identity: str, token: str, caller: str, limits: Limits) -> Decision: ...

    def release(self, identity: str, token: str, sends: int, limits: Limits) -> None: ...

    def charge(self, identity: str, token: str, sends: int, limits: Limits) -> Decision: ...

    def renew(self, identity: str, token: str, sends: int, limits: Limits) -> None: ...

    def cancel(self, identity: str, token: str) -> None: ...

    def in_flight(self, identity: str) -> int: ...

    def ping(self) -> None:
        """Raise :class:`CoordinationUnavailable` unless the store answers now."""
        ...

    def watch_releases(self, on_release: Callable[[str], None]) -> None:
        """Call ``on_release(identity)`` whenever another process frees one of the identity's
        slots, so that its waiters here look at once. Best effort: a store that cannot tell
        does nothing, and waiters find freed slots by polling."""
        ...


class RevocationFeed(Protocol):
    """A counter every process can read: bumped whenever an API key is revoked or deleted, or
    a tenant or workspace changes what a key may reach (``AccessCache.forget_all``)."""

    def stamp(self) -> int: ...

    def bump(self) -> None: ...


class SharedResults(Protocol):
    """Query results shared between replicas: a short cache and in-flight leadership."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def lead(self, key: str, token: str, ttl_s: float) -> str | None:
        """Become the one running ``key`` (None), or learn the token of the one who is."""
        ...

    def leader(self, key: str) -> str | None:
        """The token of the one running ``key`` now, if any."""
        ...

    def renew_lead(self, key: str, token: str, ttl_s: float) -> None: ...

    def unlead(self, key: str, token: str) -> None: ...

    def follow(self, key: str, leader: str) -> None:
        """Tell the leader someone waits for its answer (else it does not publish one)."""
        ...

    def followers(self, key: str, token: str) -> int: ...
