"""Traffic shaping without I/O: the budget rules, fairness, degradation, coalescing, the cache.

The same rules against the host file and Redis: tests/integration/test_coordination_stores.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from service.config import LogQuerySettings
from service.domain.budget import GRANTED, KEY_QUEUE, RATE, WAITING, BudgetState, Limits
from service.errors import TooManyRequests
from service.ports import CoordinationUnavailable
from service.services import query_shaping
from service.services.coalescing import Coalescer
from service.services.query_shaping import MemoryBudgetStore, TrafficShaper
from tests.support.clock import Clock

LIMITS = Limits(concurrency=2, rate_limit=3, window_s=30, lease_s=10, ticket_ttl_s=2)


def test_a_send_leaves_the_window_only_window_s_after_its_answer() -> None:
    s = BudgetState()
    assert s.acquire("a", "k", 0.0, LIMITS).outcome == GRANTED
    s.release("a", 1, 5.0, LIMITS)  # answered 5 s later: counts until 35 s, not 30 s
    for token in ("b", "c"):
        assert s.acquire(token, "k", 6.0, LIMITS).outcome == GRANTED
        s.release(token, 1, 6.0, LIMITS)
    refused = s.acquire("d", "k", 34.9, LIMITS)
    assert (refused.outcome, round(refused.retry_after_s, 1)) == (RATE, 0.1)
    assert s.acquire("d", "k", 35.0, LIMITS).outcome == GRANTED


def test_a_send_whose_answer_never_came_counts_until_its_lease_lapses_plus_the_window() -> None:
    s = BudgetState()
    lim = Limits(concurrency=5, rate_limit=1, window_s=30, lease_s=10)
    assert s.acquire("a", "k", 0.0, lim).outcome == GRANTED  # never released: its process died
    assert s.acquire("b", "k", 39.9, lim).outcome == RATE
    assert s.acquire("b", "k", 40.0, lim).outcome == GRANTED


def test_a_crashed_holders_slot_lapses_with_its_lease_and_renewal_keeps_a_live_one() -> None:
    s = BudgetState()
    lim = Limits(concurrency=1, rate_limit=100, window_s=30, lease_s=10)
    s.acquire("dead", "k", 0.0, lim)
    s.acquire("live", "k", 0.0, Limits(concurrency=2, rate_limit=100, window_s=30, lease_s=10))
    s.renew("live", 1, 9.0, lim)
    assert s.acquire("new", "k", 9.9, lim).outcome == WAITING
    assert s.acquire("new", "k", 10.0, lim).outcome == WAITING  # dead lapsed; live still held
    s.release("live", 1, 12.0, lim)
    assert s.acquire("new", "k", 12.0, lim).outcome == GRANTED


def test_the_queue_serves_callers_round_robin_and_bounds_each_callers_waiters() -> None:
    s = BudgetState()
    lim = Limits(concurrency=1, rate_limit=100, window_s=30, queue_per_key=3, ticket_ttl_s=60)
    assert s.acquire("holder", "x", 0.0, lim).outcome == GRANTED
    for i in range(3):
        assert s.acquire(f"noisy{i}", "noisy", 0.0, lim).outcome == WAITING
    assert s.acquire("noisy3", "noisy", 0.0, lim).outcome == KEY_QUEUE
    assert s.acquire("quiet0", "quiet", 0.0, lim).ahead == 1  # behind noisy0 only
    order = []
    held = "holder"
    for _ in range(4):
        s.release(held, 1, 0.0, lim)
        waiting = sorted(s.queue, key=lambda t: (s.queue[t][0], t))
        for token in waiting:
            if s.acquire(token, s.queue[token][1], 0.0, lim).outcome == GRANTED:
                order.append(token)
                held = token
                break
    assert order.index("quiet0") <= 1  # second at the latest, not after all the noisy ones


def test_a_waiter_that_stops_polling_leaves_the_queue() -> None:
    s = BudgetState()
    lim = Limits(concurrency=1, rate_limit=100, window_s=30, ticket_ttl_s=2)
    s.acquire("holder", "x", 0.0, lim)
    assert s.acquire("gone", "a", 0.0, lim).outcome == WAITING
    assert s.acquire("next", "b", 1.0, lim).ahead == 1
    s.release("holder", 1, 2.5, lim)
    assert s.acquire("next", "b", 2.5, lim).outcome == GRANTED  # "gone" expired at 2.0


def test_the_state_survives_its_json_form() -> None:
    s = BudgetState()
    s.acquire("a", "k", 0.0, LIMITS)
    s.acquire("b", "k", 0.0, LIMITS)
    s.acquire("c", "other", 0.0, LIMITS)
    again = BudgetState.from_json(s.to_json())
    assert again == s


# -- the shaper over the in-memory store ----------------------------------------------------
def shaper(**overrides: object) -> TrafficShaper:
    return TrafficShaper(LogQuerySettings(**overrides))  # type: ignore[arg-type]


def test_one_process_uses_the_whole_budget_whatever_the_worker_count() -> None:
    s = shaper(max_concurrent=5, processes=2, queue_timeout_s=0.05)
    leases = [s.acquire("tenant", f"k{i}") for i in range(5)]  # not 5 // 2
    with pytest.raises(TooManyRequests):
        s.acquire("tenant", "k")
    for lease in leases:
        s.release(lease)


def test_the_rate_budget_refuses_at_once_with_the_time_until_a_send_leaves_the_window() -> None:
    s = shaper(rate_limit=3, rate_window_s=30)
    for _ in range(3):
        with s.slot("tenant", "key"):
            pass
    started = time.monotonic()
    with pytest.raises(TooManyRequests) as caught, s.slot("tenant", "key"):
        pass
    assert time.monotonic() - started < 0.5
    assert caught.value.headers["Retry-After"] in ("30", "31")


def test_a_query_waiting_too_long_for_a_slot_gets_our_429_and_leaves_the_queue() -> None:
    store = MemoryBudgetStore()
    s = TrafficShaper(LogQuerySettings(max_concurrent=1, queue_timeout_s=0.05), store)
    held = s.acquire("tenant", "a")
    with pytest.raises(TooManyRequests):
        s.acquire("tenant", "b")
    s.release(held)
    s.release(held)  # idempotent
    assert store.in_flight("tenant") == 0
    assert s.refused == 1
    with s.slot("tenant", "c"):  # nobody left in the queue ahead of it
        pass


def test_freed_slots_go_round_robin_so_a_noisy_key_cannot_starve_a_quiet_one() -> None:
    s = shaper(max_concurrent=1, queue_timeout_s=5, queue_per_key=50)
    holder = s.acquire("tenant", "holder")
    order: list[str] = []
    lock = threading.Lock()

    def run(key: str) -> None:
        with s.slot("tenant", key), lock:
            order.append(key)

    threads = [threading.Thread(target=run, args=("noisy",)) for _ in range(10)]
    for t in threads:
        t.start()
    wait_until(lambda: _queued(s) >= 10)
    quiet = threading.Thread(target=run, args=("quiet",))
    quiet.start()
    wait_until(lambda: _queued(s) >= 11)
    s.release(holder)
    for t in [*threads, quiet]:
        t.join()
    assert order.index("quiet") <= 1  # served second at the latest, not after ten noisy ones


def test_a_release_in_the_process_hands_the_slot_on_without_waiting_for_a_poll_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Poll timers far longer than the test's patience: only in-process wake-ups can pass it.
    # (Before, waiters behind the first ``concurrency`` slept their timer whatever was freed:
    # a queue of 16 callers for 5 slots served 240 queries/s where 4 callers got 470.)
    monkeypatch.setattr(query_shaping, "POLL_STEP_S", 60.0)
    monkeypatch.setattr(query_shaping, "POLL_MAX_S", 60.0)
    s = shaper(max_concurrent=2, queue_timeout_s=120, queue_per_key=50)
    holders = [s.acquire("tenant", "holder") for _ in range(2)]
    served: list[int] = []

    def run(i: int) -> None:
        with s.slot("tenant", "key"):
            served.append(i)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(8)]
    for i, t in enumerate(threads):
        t.start()
        wait_until(lambda i=i: _queued(s) >= i + 1)  # type: ignore[misc]
    for lease in holders:
        s.release(lease)
    for t in threads:
        t.join(timeout=10)
    assert sorted(served) == list(range(8))
    assert _queued(s) == 0


def _queued(s: TrafficShaper) -> int:
    store = s.store
    assert isinstance(store, MemoryBudgetStore)
    return store._step("tenant", lambda state, now: len(state.queue))


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


def test_a_key_with_too_many_waiters_is_refused_at_once() -> None:
    s = shaper(max_concurrent=1, queue_per_key=0)
    held = s.acquire("tenant", "a")
    started = time.monotonic()
    with pytest.raises(TooManyRequests):
        s.acquire("tenant", "a")
    assert time.monotonic() - started < 0.1
    s.release(held)


# -- degradation: the shared store does not answer --------------------------------------------
class FlakyStore(MemoryBudgetStore):
    """A shared store (a fake of Redis) that can be taken down and brought back."""

    name = "redis"
    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _step(self, identity: str, step: Callable[..., object]) -> object:  # type: ignore[override]
        if self.down:
            raise CoordinationUnavailable("ConnectionError")
        return super()._step(identity, step)

    def ping(self) -> None:
        if self.down:
            raise CoordinationUnavailable("ConnectionError")


def test_without_its_store_a_process_falls_back_to_its_share_and_says_so() -> None:
    store = FlakyStore()
    settings = LogQuerySettings(max_concurrent=5, processes=2, queue_timeout_s=0.05)
    s = TrafficShaper(settings, store, retry_shared_s=0.2)
    assert s.check() == "redis"
    store.down = True
    leases = [s.acquire("tenant", "k"), s.acquire("tenant", "k")]  # 5 // 2: no error
    assert s.mode == "degraded"
    with pytest.raises(TooManyRequests):  # never more than the share
        s.acquire("tenant", "k")
    for lease in leases:
        s.release(lease)
    store.down = False
    wait_until(lambda: s.check() == "redis")
    leases = [s.acquire("tenant", f"k{i}") for i in range(5)]  # the whole budget again
    assert store.in_flight("tenant") == 5
    for lease in leases:
        s.release(lease)


def test_queries_still_running_from_the_shared_store_count_against_the_fallback_share() -> None:
    store = FlakyStore()
    settings = LogQuerySettings(max_concurrent=5, processes=2, queue_timeout_s=0.05)
    s = TrafficShaper(settings, store, retry_shared_s=5)
    running = [s.acquire("tenant", "k") for _ in range(2)]
    store.down = True
    with pytest.raises(TooManyRequests):
        s.acquire("tenant", "k")  # 2 still run: the share (2) is used
    s.release(running[0])  # its release cannot reach the store: the lease lapses there
    with s.slot("tenant", "k"):
        pass
    s.release(running[1])


def test_a_retry_is_charged_to_the_fallback_when_the_store_goes_down_mid_query() -> None:
    store = FlakyStore()
    s = TrafficShaper(LogQuerySettings(rate_limit=4, processes=2), store, retry_shared_s=5)
    lease = s.acquire("tenant", "k")
    store.down = True
    s.charge(lease)
    s.charge(lease)  # 4 // 2 = 2 sends in the fallback window
    with pytest.raises(TooManyRequests):
        s.charge(lease)
    s.release(lease)


# -- coalescing and the cache -------------------------------------------------------------------
def test_identical_concurrent_calls_share_one_execution() -> None:
    coalescer = Coalescer(enabled=True, ttl_s=0)
    calls = 0
    started = threading.Event()
    gate = threading.Event()

    def slow() -> int:
        nonlocal calls
        calls += 1
        started.set()
        gate.wait(5)
        return 42

    results: list[tuple[int, str]] = []
    leader = threading.Thread(target=lambda: results.append(coalescer.run("q", slow)))
    leader.start()
    started.wait(5)
    followers = [
        threading.Thread(target=lambda: results.append(coalescer.run("q", slow))) for _ in range(7)
    ]
    for t in followers:
        t.start()
    # every follower is blocked on the leader's future before the leader may finish
    wait_until(lambda: len(coalescer._running["q"]._condition._waiters) >= 7)  # type: ignore[attr-defined]
    gate.set()
    for t in [leader, *followers]:
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
