"""The tenants' Azure credentials recently built by this runtime (see ``Runtime.credentials``).

Reading and decrypting the credential row costs a few database round trips; log queries need
the credential on every call. A change made through this runtime drops the entry at once; other
processes see it after at most ``RECENT_TTL_S``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

RECENT_TTL_S = 5.0


class CredentialMemo:
    """Tenant id -> (TokenCredential, expiry), thread-safe."""

    def __init__(
        self, ttl_s: float = RECENT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, tenant_id: str, load: Callable[[], Any]) -> Any:
        """The memoised credential of ``tenant_id``, or ``load()``'s, kept for the TTL."""
        now = self._clock()
        with self._lock:
            hit = self._entries.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        credential = load()
        with self._lock:
            self._entries[tenant_id] = (now + self._ttl_s, credential)
        return credential

    def put(self, tenant_id: str, credential: Any) -> None:
        """Keep ``credential`` (just loaded) for the TTL."""
        with self._lock:
            self._entries[tenant_id] = (self._clock() + self._ttl_s, credential)

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant's entry (its credential was changed or deleted)."""
        with self._lock:
            self._entries.pop(tenant_id, None)
