"""Ports of the log query proxy: the Log Analytics query API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from service.domain.kql import Timespan
from service.ports.identity import TokenCredential


@dataclass(frozen=True)
class LogTarget:
    """What a query runs against: a Log Analytics workspace (App* tables) or an App Insights
    resource (classic tables)."""

    kind: str  # "workspace" (id = workspace GUID) | "resource" (id = ARM resource id)
    id: str


@dataclass(frozen=True)
class LogQuerySpec:
    """One query as the adapter sends it. ``timespan`` None: the query's own filters decide."""

    query: str
    timespan: Timespan | None
    server_timeout_s: int
    include_statistics: bool = False


@dataclass(frozen=True)
class LogTable:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, Kusto type)
    rows: list[list[Any]]  # JSON values; dynamic columns parsed, datetimes as RFC 3339 text


@dataclass(frozen=True)
class LogQueryResult:
    """A complete or partial result. ``error`` is Azure's full error object of a partial one."""

    tables: tuple[LogTable, ...]
    error: dict[str, Any] | None
    statistics: dict[str, Any] | None
    response_bytes: int

    @property
    def partial(self) -> bool:
        return self.error is not None

    @property
    def row_count(self) -> int:
        return sum(len(t.rows) for t in self.tables)


@dataclass
class RawLogResponse:
    """An Azure answer passed through unparsed: status, safe headers and a body stream."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    close: Callable[[], None]


class LogQuery(Protocol):
    """The Log Analytics query API, called with a tenant's TokenCredential.

    Failures raise ServiceErrors; Azure's own error answers raise ``AzureQueryError``
    (``service.errors``) carrying Azure's status, error object and Retry-After, so that the
    use case decides about retries.
    """

    def query(
        self, credential: TokenCredential, target: LogTarget, spec: LogQuerySpec
    ) -> LogQueryResult:
        """Run one query with the typed SDK and return its tables (or a partial result)."""
        ...

    def forward(
        self, credential: TokenCredential, path: str, body: bytes, prefer: str | None
    ) -> RawLogResponse:
        """POST ``body`` to ``{endpoint}{path}`` and stream Azure's answer back unparsed."""
        ...
