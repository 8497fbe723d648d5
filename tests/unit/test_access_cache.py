"""The access cache: what one process remembers of who may reach what, and when it forgets.

The API-key side and the real counters (the host file, Redis) are covered by
tests/api/test_key_cache.py; the log queries' use of it by
tests/integration/test_log_target_cache.py.
"""

from __future__ import annotations

import pytest

from service.ports import CoordinationUnavailable
from service.services import access_cache
from service.services.access_cache import AccessCache
from tests.support.clock import Clock

TTL = 2.0


class SharedCounter:
    """One counter, as every process of a deployment reads it (Redis, the host's file)."""

    def __init__(self) -> None:
        self.value = 0
        self.down = False

    def stamp(self) -> int:
        if self.down:
            raise CoordinationUnavailable("ConnectionError")
        return self.value

    def bump(self) -> None:
        if self.down:
            raise CoordinationUnavailable("ConnectionError")
        self.value += 1


class Loader:
    """Counts the look-ups that reached the 'database'."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def test_an_entry_is_reused_within_its_ttl_and_looked_up_again_after() -> None:
    clock = Clock()
    cache = AccessCache(clock=clock)
    load = Loader("ws-1")
    assert cache.remember("k", TTL, load) == "ws-1"
    clock.now += TTL - 0.01
    assert cache.remember("k", TTL, load) == "ws-1"
    assert load.calls == 1
    clock.now += 0.02
    assert cache.remember("k", TTL, load) == "ws-1"
    assert load.calls == 2


def test_a_ttl_of_zero_never_reuses() -> None:
    cache = AccessCache(clock=Clock())
    load = Loader("ws-1")
    cache.remember("k", 0.0, load)
    cache.remember("k", 0.0, load)
    assert load.calls == 2


def test_nothing_found_and_failures_are_not_remembered() -> None:
    cache = AccessCache(clock=Clock())
    missing = Loader(None)
    assert cache.remember("k", TTL, missing) is None
    assert cache.remember("k", TTL, missing) is None
    assert missing.calls == 2  # registered a moment later: found at once

    def fails() -> object:
        raise LookupError("the database, briefly")

    with pytest.raises(LookupError):
        cache.remember("j", TTL, fails)
    found = Loader("ws-2")
    assert cache.remember("j", TTL, found) == "ws-2"
    assert found.calls == 1


def test_a_change_announced_by_another_process_is_seen_at_the_next_look_up() -> None:
    clock, counter = Clock(), SharedCounter()  # frozen clock: the TTL plays no part
    here = AccessCache(revocations=counter, clock=clock)
    there = AccessCache(revocations=counter, clock=clock)
    load = Loader("before")
    here.remember("k", TTL, load)
    here.remember("k", TTL, load)
    assert load.calls == 1
    load.value = "after"
    there.forget_all()  # what a workspace change does after its commit, in the other process
    assert here.remember("k", TTL, load) == "after"
    assert load.calls == 2


def test_while_the_counter_cannot_be_read_nothing_is_reused() -> None:
    counter = SharedCounter()
    cache = AccessCache(revocations=counter, clock=Clock())
    load = Loader("ws-1")
    cache.remember("k", TTL, load)
    counter.down = True
    cache.remember("k", TTL, load)
    cache.remember("k", TTL, load)
    assert load.calls == 3
    cache.forget_all()  # an announcement that cannot be made is logged, not raised
    counter.down = False
    cache.remember("k", TTL, load)
    assert load.calls == 4  # forgotten here all the same


def test_what_was_loaded_while_access_changed_is_not_remembered() -> None:
    """A look-up that read the database before a change committed must not outlive it."""
    cache = AccessCache(clock=Clock())

    def load_during_a_change() -> object:
        cache.forget_all()  # the change commits and is announced while this look-up runs
        return "stale"

    assert cache.remember("k", TTL, load_during_a_change) == "stale"
    fresh = Loader("fresh")
    assert cache.remember("k", TTL, fresh) == "fresh"
    assert fresh.calls == 1


def test_the_entries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_cache, "MAX_ENTRIES", 3)
    cache = AccessCache(clock=Clock())
    loads = [Loader(i) for i in range(4)]
    for i, load in enumerate(loads):
        cache.remember(i, TTL, load)
    cache.remember(0, TTL, loads[0])  # dropped when the fourth came in
    cache.remember(3, TTL, loads[3])  # the fourth stayed
    assert [load.calls for load in loads] == [2, 1, 1, 1]
