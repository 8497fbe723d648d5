"""The adapters' client cache: every client it drops is closed (no socket left to the collector)."""

from __future__ import annotations

import gc
import threading

import pytest

from service.adapters.client_cache import ClientCache, close_quietly


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class Credential:
    pass


def test_a_client_is_built_once_per_credential_and_key() -> None:
    cache: ClientCache[Client] = ClientCache()
    cred = Credential()
    built: list[Client] = []

    def build() -> Client:
        built.append(Client("a"))
        return built[-1]

    first = cache.get(cred, "k", build)
    assert cache.get(cred, "k", build) is first
    assert len(built) == 1
    other = cache.get(Credential(), "k", build)
    assert other is not first
    assert len(cache) == 2


def test_the_least_recently_used_client_is_closed_when_evicted() -> None:
    cache: ClientCache[Client] = ClientCache(max_size=2)
    cred = Credential()
    a = cache.get(cred, "a", lambda: Client("a"))
    b = cache.get(cred, "b", lambda: Client("b"))
    cache.get(cred, "a", lambda: Client("a2"))  # a is now the most recently used
    c = cache.get(cred, "c", lambda: Client("c"))
    assert (a.closed, b.closed, c.closed) == (0, 1, 0)
    assert len(cache) == 2
    # b was dropped: asking again builds a new one
    assert cache.get(cred, "b", lambda: Client("b2")).name == "b2"


def test_a_client_built_twice_by_racing_threads_is_closed_and_the_first_is_shared() -> None:
    cache: ClientCache[Client] = ClientCache()
    cred = Credential()
    both_building = threading.Barrier(2)
    built: list[Client] = []
    got: list[Client] = []

    def build() -> Client:
        client = Client(f"c{len(built)}")
        built.append(client)
        both_building.wait(timeout=5)
        return client

    def worker() -> None:
        got.append(cache.get(cred, "k", build))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(built) == 2
    assert got[0] is got[1]
    kept = got[0]
    loser = next(c for c in built if c is not kept)
    assert (kept.closed, loser.closed) == (0, 1)


def test_close_closes_every_client_and_the_cache_builds_again_afterwards() -> None:
    cache: ClientCache[Client] = ClientCache()
    clients = [cache.get(Credential(), i, lambda i=i: Client(str(i))) for i in range(3)]
    cache.close()
    assert [c.closed for c in clients] == [1, 1, 1]
    assert len(cache) == 0
    again = cache.get(Credential(), 0, lambda: Client("again"))
    assert again.closed == 0
    cache.close()
    assert [c.closed for c in clients] == [1, 1, 1]  # never closed twice
    assert again.closed == 1


def test_a_collected_cache_closes_its_clients() -> None:
    cache: ClientCache[Client] = ClientCache()
    client = cache.get(Credential(), "k", lambda: Client("k"))
    cycle: list[object] = [cache]
    cycle.append(cycle)  # collected by the cycle collector, not by reference counting
    del cache, cycle
    assert client.closed == 0
    gc.collect()
    assert client.closed == 1


def test_close_quietly_skips_objects_without_close_and_swallows_failures() -> None:
    class Broken:
        def close(self) -> None:
            raise OSError("already gone")

    client = Client("x")
    close_quietly(object(), Broken(), client)
    assert client.closed == 1


def test_a_cache_needs_room_for_one_client() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ClientCache(max_size=0)
