"""The log query machinery: the port, traffic shaping, coalescing and retries.

Every query to Log Analytics, typed or passed through, goes through :class:`LogGateway`, so
each one is counted against its tenant identity's budget and Azure's throttling and transient
errors are handled in one place.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.config import LogQuerySettings
from service.domain.retry import parse_retry_after
from service.errors import (
    AzureQueryError,
    AzureUnavailable,
    CredentialRejected,
    FailedDependency,
    QueryRejected,
    QueryTimeout,
    ServiceError,
    TooManyRequests,
)
from service.ports import (
    BudgetStore,
    LogQuery,
    LogQueryResult,
    LogQuerySpec,
    LogTable,
    LogTarget,
    RawLogResponse,
    SharedResults,
)
from service.services.coalescing import Coalescer, Codec
from service.services.meter import Meter, NoMeter
from service.services.query_shaping import Lease, TrafficShaper

T = TypeVar("T")

MAX_RETRIES = 2
# Azure's Retry-After up to this long is waited out inside the request; longer ones become our
# own 429 carrying Azure's Retry-After, so no caller hangs on a throttled identity.
MAX_INLINE_RETRY_WAIT_S = 2.0
TRANSIENT_STATUSES = frozenset({500, 502, 503})
# Results larger than this are not shared between replicas (Redis holds small values well).
SHARED_RESULT_MAX_BYTES = 1024 * 1024


@dataclass
class LogGateway:
    """What the log query use cases run on (one per process, held by the Runtime)."""

    port: LogQuery
    settings: LogQuerySettings
    shaper: TrafficShaper = field(init=False)
    coalescer: Coalescer = field(init=False)
    sleep: Callable[[float], None] = time.sleep
    store: BudgetStore | None = None  # where the budgets live (None: this process's memory)
    shared_results: SharedResults | None = None  # cache and coalescing across replicas
    lease_s: float = 15.0
    retry_shared_s: float = 1.0
    meter: Meter = field(default_factory=NoMeter)

    def __post_init__(self) -> None:
        self.shaper = TrafficShaper(
            self.settings,
            self.store,
            lease_s=self.lease_s,
            retry_shared_s=self.retry_shared_s,
            meter=self.meter,
        )
        self.coalescer = Coalescer(
            enabled=self.settings.coalesce,
            ttl_s=self.settings.cache_ttl_s,
            shared=self.shared_results,
            lead_ttl_s=self.lease_s,
            follow_max_s=self.settings.queue_timeout_s + self.settings.max_server_timeout_s,
        )

    def close(self) -> None:
        """Close the port's clients, when it keeps any (the tests' fakes keep none)."""
        close = getattr(self.port, "close", None)
        if callable(close):
            close()

    def query(
        self, identity: str, caller: str, credential: Any, target: LogTarget, spec: LogQuerySpec
    ) -> tuple[LogQueryResult, str]:
        """Run a typed query under the identity's budget; identical concurrent ones coalesce.

        Returns the result and its source: ``azure``, ``coalesced`` or ``cache``.
        """

        def call() -> LogQueryResult:
            with self.shaper.slot(identity, caller) as lease:
                return self.with_retries(lease, lambda: self.port.query(credential, target, spec))

        return self.coalescer.run((identity, target, spec), call, RESULT_CODEC)

    def forward(
        self,
        identity: str,
        caller: str,
        credential: Any,
        path: str,
        body: bytes,
        prefer: str | None,
    ) -> RawLogResponse:
        """Pass one request through; the slot is held until the answer's stream is closed."""
        lease = self.shaper.acquire(identity, caller)

        def release() -> None:
            self.shaper.release(lease)  # idempotent

        try:
            answer = self.with_retries(
                lease,
                lambda: _raise_retryable(self.port.forward(credential, path, body, prefer)),
                raw=True,
            )
        except BaseException:
            release()
            raise
        close = answer.close

        def close_and_release() -> None:
            try:
                close()
            finally:
                release()

        answer.close = close_and_release
        return answer

    def with_retries(self, lease: Lease, call: Callable[[], T], *, raw: bool = False) -> T:
        """Retry Azure's 429 (short Retry-After) and transient 5xx, charging each retry."""
        attempt = 0
        while True:
            try:
                return call()
            except _RetryableAnswer as answer:
                wait = _retry_wait(answer.status, answer.retry_after_s, attempt)
                if wait is None:
                    return answer.response  # type: ignore[return-value]
                answer.response.close()
            except AzureQueryError as exc:
                wait = _retry_wait(exc.azure_status, exc.retry_after_s, attempt)
                if wait is None:
                    raise map_azure_error(exc) from None
            self.sleep(wait)
            self.shaper.charge(lease)
            attempt += 1


def _encode_result(result: LogQueryResult) -> bytes | None:
    if result.response_bytes > SHARED_RESULT_MAX_BYTES:
        return None
    tables = [[t.name, t.columns, t.rows] for t in result.tables]
    return json.dumps(
        [tables, result.error, result.statistics, result.response_bytes], separators=(",", ":")
    ).encode()


def _decode_result(data: bytes) -> LogQueryResult:
    tables, error, statistics, size = json.loads(data)
    return LogQueryResult(
        tables=tuple(
            LogTable(name, tuple((c[0], c[1]) for c in columns), rows)
            for name, columns, rows in tables
        ),
        error=error,
        statistics=statistics,
        response_bytes=size,
    )


RESULT_CODEC: Codec[LogQueryResult] = Codec(_encode_result, _decode_result)


class _RetryableAnswer(Exception):
    """A passed-through answer that may deserve a retry (429 or transient 5xx)."""

    def __init__(self, response: RawLogResponse, retry_after_s: float | None) -> None:
        super().__init__(response.status)
        self.response = response
        self.status = response.status
        self.retry_after_s = retry_after_s


def _raise_retryable(response: RawLogResponse) -> RawLogResponse:
    if response.status == 429 or response.status in TRANSIENT_STATUSES:
        raise _RetryableAnswer(response, parse_retry_after(response.headers.get("Retry-After")))
    return response


def _retry_wait(status: int, retry_after_s: float | None, attempt: int) -> float | None:
    """How long to wait before retrying, or None to stop retrying."""
    if attempt >= MAX_RETRIES:
        return None
    if status == 429:
        wait = retry_after_s if retry_after_s is not None else 1.0
        return wait if wait <= MAX_INLINE_RETRY_WAIT_S else None
    if status in TRANSIENT_STATUSES:
        return min(retry_after_s or 0.2 * 2**attempt, MAX_INLINE_RETRY_WAIT_S)
    return None


def map_azure_error(exc: AzureQueryError) -> ServiceError:
    """Azure's error answer in the service's error model (Azure's error object attached)."""
    azure = {"azure_error": exc.azure_error}
    status = exc.azure_status
    error: ServiceError
    if status == 400:
        error = QueryRejected(exc.detail)
    elif status == 401:
        error = CredentialRejected("Log Analytics did not accept the tenant's token")
    elif status == 403:
        error = FailedDependency(
            "the tenant's Azure identity may not read this Log Analytics workspace or resource"
        )
    elif status == 404:
        error = FailedDependency(
            "Log Analytics does not know the workspace or resource registered for this workspace"
        )
    elif status == 429:
        retry = math.ceil(exc.retry_after_s) if exc.retry_after_s is not None else 30
        error = TooManyRequests(
            "Log Analytics is throttling this tenant's identity", retry_after_s=retry
        )
    elif status == 504:
        error = QueryTimeout(
            "the query ran past its server timeout; narrow it or raise the timeout"
        )
    else:
        error = AzureUnavailable(f"Log Analytics answered {status}")
    error.extra.update(azure)
    return error
