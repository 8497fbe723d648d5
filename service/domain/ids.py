"""Identifier helpers."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    """A UUIDv7-shaped id (RFC 9562): time-ordered, so ordering by id is creation order.

    Ordering by a time-ordered primary key gives stable keyset pagination without a second
    sort column, and keeps B-tree inserts append-mostly.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))
