"""Azure SDK clients kept between calls: one cache shape for every adapter, bounded, and closed
whenever one is dropped.

A client holds connection pools (open sockets). One dropped without ``close()`` leaves its
sockets to the garbage collector, which holds the descriptors until it runs and then warns
(ResourceWarning). So this cache closes a client when it is evicted (least recently used first),
when another thread built the same one first, on ``close()``, and, as a last resort, when the
cache itself is collected (a finalizer that holds the entries, never the cache).

Entries are keyed by the credential's identity plus the adapter's own key, and keep the
credential referenced: its ``id()`` cannot be reused by another object while the entry lives, and
a replaced credential (rotated secret) never reaches the clients built for the old one.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

V = TypeVar("V")


def close_quietly(*objects: object) -> None:
    """``close()`` each object that has one; a failing close is logged, never raised."""
    for obj in objects:
        close = getattr(obj, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.debug("closing a %s failed", type(obj).__name__, exc_info=True)


def _close_entries(
    entries: OrderedDict[Hashable, tuple[object, V]],
    lock: threading.Lock,
    close: Callable[[V], None],
) -> None:
    with lock:
        values = [value for _, value in entries.values()]
        entries.clear()
    for value in values:
        close(value)


class ClientCache(Generic[V]):
    """Clients per (credential, key): least recently used evicted past ``max_size``."""

    def __init__(self, *, max_size: int = 512, close: Callable[[V], None] = close_quietly) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._entries: OrderedDict[Hashable, tuple[object, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_size
        self._close = close
        self._finalizer = weakref.finalize(self, _close_entries, self._entries, self._lock, close)

    def get(self, credential: object, key: Hashable, build: Callable[[], V]) -> V:
        """The client for ``(credential, key)``, built by ``build()`` (outside the lock) if new."""
        full = (id(credential), key)
        with self._lock:
            hit = self._entries.get(full)
            if hit is not None:
                self._entries.move_to_end(full)
                return hit[1]
        value = build()
        dropped: list[V] = []
        with self._lock:
            hit = self._entries.get(full)
            if hit is not None:
                # Another thread built it first: use theirs, close ours (nobody else has it).
                dropped.append(value)
                value = hit[1]
            else:
                self._entries[full] = (credential, value)
                while len(self._entries) > self._max:
                    dropped.append(self._entries.popitem(last=False)[1][1])
        for old in dropped:
            self._close(old)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        """Close every client; the cache stays usable (the next ``get`` builds again)."""
        _close_entries(self._entries, self._lock, self._close)
