"""Prometheus metrics (prometheus-client). Multi-process aware: under gunicorn every worker
writes to PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "amlcp_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "amlcp_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
AZURE_CALLS = Counter(
    "amlcp_azure_calls_total", "Calls to Azure by service and outcome", ["service", "outcome"]
)
AZURE_LATENCY = Histogram(
    "amlcp_azure_call_duration_seconds",
    "Latency of calls to Azure",
    ["service"],
    buckets=_LATENCY_BUCKETS,
)
THROTTLE_WAITS = Counter(
    "amlcp_throttle_waits_total", "Times work waited for a rate or concurrency budget", ["budget"]
)
WRITE_SLOTS_MISSED = Counter(
    "amlcp_write_slots_missed_total",
    "Subscription write slots given up, the write taking a later one: late (an overloaded "
    "reconciler), read_failed / read_slow (the read before the write failed or ended late)",
    ["reason"],
)
THROTTLED_RESPONSES = Counter(
    "amlcp_throttled_responses_total", "429 answers this service gave callers", ["reason"]
)
LOG_QUERIES = Counter(
    "amlcp_log_queries_total", "Log queries proxied, by tenant and outcome", ["tenant", "outcome"]
)
LOG_QUERY_CACHE = Counter(
    "amlcp_log_query_cache_total", "Log query cache and coalescing results", ["result"]
)
RECONCILE_SWEEP = Histogram(
    "amlcp_reconcile_sweep_duration_seconds",
    "Duration of one reconcile sweep",
    buckets=_LATENCY_BUCKETS,
)
RECONCILE_LAG = Gauge(
    "amlcp_reconcile_lag_seconds",
    "Age of the oldest due operation at the last sweep",
    multiprocess_mode="max",
)
OPERATIONS = Gauge(
    "amlcp_operations",
    "Operations by state (read at scrape time)",
    ["state"],
    multiprocess_mode="max",
)
FOLLOWING = Gauge(
    "amlcp_operations_following",
    "Running operations whose Azure operation the reconciler follows without a thread "
    "(read at scrape time)",
    multiprocess_mode="max",
)


def render() -> tuple[bytes, str]:
    """The exposition text for every process of this service (gunicorn workers included)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class PrometheusMeter:
    """The use cases' :class:`service.services.meter.Meter`, counted in the collectors above."""

    def throttle_wait(self, budget: str) -> None:
        THROTTLE_WAITS.labels(budget).inc()

    def throttled_response(self, reason: str) -> None:
        THROTTLED_RESPONSES.labels(reason).inc()

    def log_query(self, tenant_id: str, outcome: str) -> None:
        LOG_QUERIES.labels(tenant_id, outcome).inc()

    def log_query_cache(self, result: str) -> None:
        LOG_QUERY_CACHE.labels(result).inc()

    def write_slot_missed(self, reason: str) -> None:
        WRITE_SLOTS_MISSED.labels(reason).inc()
