"""Traffic shaping without I/O: budgets, fairness between keys, coalescing and the TTL cache."""

from __future__ import annotations

import threading
import time

import pytest

from service.config import LogQuerySettings
from service.errors import TooManyRequests
from service.services.query_shaping import Coalescer, TrafficShaper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_budget_refuses_at_once_with_the_time_until_a_send_leaves_the_window() -> None:
    clock = Clock()
    shaper = TrafficShaper(LogQuerySettings(rate_limit=3, rate_window_s=30), clock=clock)
    for _ in range(3):
        with shaper.slot("tenant", "key"):
            clock.now += 1
    with pytest.raises(TooManyRequests) as caught, shaper.slot("tenant", "key"):
        pass
    assert caught.value.headers["Retry-After"] == "27"
    clock.now += 27
    with shaper.slot("tenant", "key"):
        pass


def test_the_budget_is_divided_between_the_api_processes() -> None:
    shaper = TrafficShaper(LogQuerySettings(max_concurrent=5, rate_limit=200, processes=2))
    assert (shaper.concurrency, shaper.rate_limit) == (2, 100)


def test_a_query_waiting_too_long_for_a_slot_gets_our_429_and_its_send_back() -> None:
    shaper = TrafficShaper(LogQuerySettings(max_concurrent=1, queue_timeout_s=0.05))
    shaper.acquire("tenant", "a")
    with pytest.raises(TooManyRequests):
        shaper.acquire("tenant", "b")
    shaper.release("tenant")
    assert shaper.stats("tenant") == {
        "in_flight": 0,
        "max_in_flight": 1,
        "waiting": 0,
        "refused": 1,
    }


def test_freed_slots_go_round_robin_so_a_noisy_key_cannot_starve_a_quiet_one() -> None:
    shaper = TrafficShaper(LogQuerySettings(max_concurrent=1, queue_timeout_s=5, queue_per_key=50))
    shaper.acquire("tenant", "holder")
    order: list[str] = []
    lock = threading.Lock()

    def run(key: str) -> None:
        with shaper.slot("tenant", key):
            with lock:
                order.append(key)
            time.sleep(0.002)

    threads = [threading.Thread(target=run, args=("noisy",)) for _ in range(10)]
    for t in threads:
        t.start()
    while shaper.stats("tenant")["waiting"] < 10:
        time.sleep(0.001)
    quiet = threading.Thread(target=run, args=("quiet",))
    quiet.start()
    while shaper.stats("tenant")["waiting"] < 11:
        time.sleep(0.001)
    shaper.release("tenant")
    for t in [*threads, quiet]:
        t.join()
    assert order.index("quiet") <= 1  # served second at the latest, not after ten noisy ones
    assert shaper.stats("tenant")["max_in_flight"] == 1


def test_a_key_with_too_many_waiters_is_refused_at_once() -> None:
    shaper = TrafficShaper(LogQuerySettings(max_concurrent=1, queue_per_key=0))
    shaper.acquire("tenant", "a")
    started = time.monotonic()
    with pytest.raises(TooManyRequests):
        shaper.acquire("tenant", "a")
    assert time.monotonic() - started < 0.1
    shaper.release("tenant")


def test_identical_concurrent_calls_share_one_execution() -> None:
    coalescer = Coalescer(enabled=True, ttl_s=0)
    calls = 0
    gate = threading.Event()

    def slow() -> int:
        nonlocal calls
        calls += 1
        gate.wait(2)
        return 42

    results: list[tuple[int, str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(coalescer.run("q", slow))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join()
    assert calls == 1
    assert sorted(how for _, how in results) == ["azure"] + ["coalesced"] * 7
    assert {value for value, _ in results} == {42}


def test_the_ttl_cache_answers_repeats_until_it_expires() -> None:
    clock = Clock()
    coalescer = Coalescer(enabled=True, ttl_s=5, clock=clock)
    assert coalescer.run("q", lambda: 1) == (1, "azure")
    assert coalescer.run("q", lambda: 2) == (1, "cache")
    clock.now += 6
    assert coalescer.run("q", lambda: 3) == (3, "azure")


def test_an_error_reaches_every_coalesced_caller_and_is_not_cached() -> None:
    coalescer = Coalescer(enabled=True, ttl_s=60)

    def boom() -> int:
        raise TooManyRequests("no", retry_after_s=1)

    with pytest.raises(TooManyRequests):
        coalescer.run("q", boom)
    assert coalescer.run("q", lambda: 7) == (7, "azure")
