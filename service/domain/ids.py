"""Identifier helpers."""

from __future__ import annotations

import os
import threading
import time
import uuid

_RAND_BITS = 74  # rand_a (12 bits) + rand_b (62 bits)
_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)  # (unix ms, random bits) of the previous id in this process


def new_id() -> str:
    """A UUIDv7-shaped id (RFC 9562): time-ordered, so ordering by id is creation order.

    Ordering by a time-ordered primary key gives stable keyset pagination without a second
    sort column, and keeps B-tree inserts append-mostly. Within one process the ids are strictly
    increasing even within a millisecond (RFC 9562 section 6.2, method 2: the random bits act as
    a counter seeded at random, so same-millisecond ids still sort in creation order).
    """
    global _last
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") >> (80 - _RAND_BITS)
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms:  # same millisecond, or the clock stepped back
            ms, rand = last_ms, last_rand + 1
            if rand >> _RAND_BITS:  # counter overflow: borrow the next millisecond
                ms, rand = ms + 1, 0
        _last = (ms, rand)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= (rand >> 62) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))
