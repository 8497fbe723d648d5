"""Per-identity concurrency, queue and rate limits of the emulated Log Analytics API."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from werkzeug.wrappers import Response

from emulator.loganalytics import LogAnalyticsLimits
from tests.emulator.test_la_support import WORKSPACE, body_of, call, make_service

QUERY_PATH = f"/v1/workspaces/{WORKSPACE}/query"
QUERY = {"query": "AppRequests"}


def test_concurrent_callers_of_one_identity_never_exceed_the_concurrency_limit() -> None:
    service = make_service(LogAnalyticsLimits(max_concurrent_per_identity=3, latency_s=0.05))
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: call(service, QUERY_PATH, QUERY).status_code, range(24)))
    assert statuses == [200] * 24  # the excess waited in the queue instead of failing
    stats = service.stats()["identities"]["sp-1"]
    assert stats["max_in_flight"] == 3
    assert stats["max_queued"] > 0
    assert (stats["in_flight"], stats["queued"], stats["completed"]) == (0, 0, 24)


def test_each_identity_has_its_own_concurrency_slots() -> None:
    service = make_service(LogAnalyticsLimits(max_concurrent_per_identity=2, latency_s=0.05))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(lambda i: call(service, QUERY_PATH, QUERY, identity=f"sp-{i % 2}"), range(16))
        )
    identities = service.stats()["identities"]
    assert {identities["sp-0"]["max_in_flight"], identities["sp-1"]["max_in_flight"]} == {2}
    assert service.stats()["max_in_flight_per_identity"] == 2


def test_a_full_queue_answers_429_at_once() -> None:
    limits = LogAnalyticsLimits(
        max_concurrent_per_identity=1, max_queue_per_identity=1, latency_s=0.3, queue_timeout_s=5
    )
    service = make_service(limits)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(call, service, QUERY_PATH, QUERY)
        _wait_for(lambda: service.stats()["in_flight"] == 1)
        second = pool.submit(call, service, QUERY_PATH, QUERY)
        _wait_for(lambda: service.stats()["identities"]["sp-1"]["queued"] == 1)
        rejected = call(service, QUERY_PATH, QUERY)
        assert (first.result().status_code, second.result().status_code) == (200, 200)
    _assert_throttled(rejected, "ConcurrencyQueueFull")
    assert service.stats()["identities"]["sp-1"]["throttled_queue_full"] == 1


def test_a_query_queued_past_the_queue_timeout_answers_429() -> None:
    limits = LogAnalyticsLimits(max_concurrent_per_identity=1, latency_s=0.4, queue_timeout_s=0.1)
    service = make_service(limits)
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(call, service, QUERY_PATH, QUERY)
        _wait_for(lambda: service.stats()["in_flight"] == 1)
        started = time.monotonic()
        timed_out = call(service, QUERY_PATH, QUERY)
        assert 0.09 <= time.monotonic() - started < 0.35
        assert running.result().status_code == 200
    _assert_throttled(timed_out, "ConcurrencyQueueTimeout")
    stats = service.stats()["identities"]["sp-1"]
    assert (stats["throttled_queue_timeout"], stats["queued"]) == (1, 0)


def test_the_query_rate_limit_answers_429_with_the_time_left_in_the_window() -> None:
    service = make_service(LogAnalyticsLimits(rate_limit=3, rate_window_s=30))
    statuses = [call(service, QUERY_PATH, QUERY).status_code for _ in range(3)]
    limited = call(service, QUERY_PATH, QUERY)
    assert statuses == [200, 200, 200]
    _assert_throttled(limited, "UserRateLimitExceeded")
    assert 29 <= int(limited.headers["Retry-After"]) <= 30
    assert call(service, QUERY_PATH, QUERY, identity="sp-2").status_code == 200


def test_limits_replaced_at_runtime_apply_to_the_next_query() -> None:
    service = make_service()
    service.limits = LogAnalyticsLimits(rate_limit=0, now=service.limits.now)
    _assert_throttled(call(service, QUERY_PATH, QUERY), "UserRateLimitExceeded")


def test_reset_stats_forgets_peaks_and_counts() -> None:
    service = make_service()
    call(service, QUERY_PATH, QUERY)
    service.reset_stats()
    stats = service.stats()["identities"]["sp-1"]
    assert (stats["max_in_flight"], stats["queries"], stats["completed"]) == (0, 0, 0)


def test_a_batch_entry_over_the_rate_limit_fails_alone_with_retry_after() -> None:
    service = make_service(LogAnalyticsLimits(rate_limit=1))
    batch = {"requests": [{"id": str(i), "workspace": WORKSPACE, "body": QUERY} for i in range(2)]}
    first, second = body_of(call(service, "/v1/$batch", batch))["responses"]
    assert first["status"] == 200
    assert second["status"] == 429
    assert int(second["headers"]["Retry-After"]) >= 1


def _assert_throttled(response: Response, reason: str) -> None:
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    error = body_of(response)["error"]
    assert error["code"] == "ThrottledError"
    assert error["innererror"]["code"] == reason


def _wait_for(condition: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never became true"
        threading.Event().wait(0.005)
