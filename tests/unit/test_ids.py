"""Ids are UUIDv7: unique, and sorted by creation even within one millisecond."""

from __future__ import annotations

import threading
import time
import uuid

from service.domain.ids import new_id


def test_ids_are_version_7_uuids_with_the_rfc_variant() -> None:
    parsed = uuid.UUID(new_id())
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_ids_sort_in_creation_order_even_within_a_millisecond() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_carry_the_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    ms = uuid.UUID(new_id()).int >> 80
    after = time.time_ns() // 1_000_000
    assert before <= ms <= after + 1


def test_ids_made_on_several_threads_are_unique() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(new_id() for _ in range(1000))

    threads = [threading.Thread(target=work, args=(m,)) for m in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for m in made for i in m]
    assert len(set(everything)) == len(everything)
    for m in made:
        assert m == sorted(m)
