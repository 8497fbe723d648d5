"""Emulated Log Analytics query API (`https://api.loganalytics.io/v1`, swagger 2022-10-27).

Routes, below `/v1` (the server hands over every `/v1/...` request after checking the token):

- `POST|GET /workspaces/{workspaceId}/query`  body `{"query", "timespan"?, "workspaces"?}` or
  `?query=&timespan=&workspaces=`
- `POST|GET /{resourceId}/query`  resource-centric; the ARM id may arrive percent-encoded
- `POST /$batch`  `{"requests": [{"id", "workspace", "body", "headers"?, "path"?, "method"?}]}`

`Prefer: wait=N, include-statistics=true, include-render=true` is honoured; per-identity limits
(see `la_limits`) apply to each query, including each entry of a batch. A batch answers per
entry: access (`workspace_allowed`, the server's tenant boundary), KQL and limit errors are
that entry's status; only a body that is no batch (no `requests` list, entries without distinct
ids) is refused whole with 400. Answers follow the real
service: 200 `{"tables": [...]}` (+ statistics/render), 200 with `error` beside `tables` for a
result cut at the row or size limit, and `{"error": {...}}` with 400/403/404/429/504.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from emulator import la_errors
from emulator.la_errors import LaError
from emulator.la_limits import IdentityGate, LogAnalyticsLimits
from emulator.la_request import Preferences, parse_prefer, parse_timespan
from emulator.la_results import dumps, query_body
from emulator.la_store import CannedResponse, Scope, TelemetryStore

if TYPE_CHECKING:
    from emulator.kql import Table

__all__ = [
    "Engine",
    "EngineResult",
    "LogAnalyticsLimits",
    "LogAnalyticsService",
    "TelemetryStore",
    "kql_engine",
]

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
# The caller's tenant boundary: whether it may read a workspace (None: no boundary).
Allowed = Callable[[str], bool] | None
Window = tuple[datetime, datetime] | None


@dataclass
class EngineResult:
    """Wire tables ({"name", "columns", "rows"}) and the PartialError the engine reported."""

    tables: list[JsonObject]
    partial_error: JsonObject | None = None


# Runs one query over named tables (under the current limits) and returns wire tables, or an
# EngineResult when the engine reports a partial failure. Raises LaError for a query the service
# rejects.
Engine = Callable[
    [str, Mapping[str, "Table"], datetime, Window, LogAnalyticsLimits],
    list[JsonObject] | EngineResult,
]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def kql_engine(
    query: str,
    tables: Mapping[str, Table],
    now: datetime,
    window: Window,
    limits: LogAnalyticsLimits,
) -> EngineResult:
    """The default engine: the emulator's KQL subset, errors mapped to Azure's 400 shapes.

    A summarize past `limits.max_summarize_groups` (0: no budget) keeps the first groups and
    the answer carries a PartialError, as the service's aggregation memory budget does.
    """
    # Imported here so that the service can be built (and tested with another engine) without
    # loading the KQL parser.
    from emulator import kql
    from emulator.kql.wire import table_to_wire

    budget = limits.max_summarize_groups or None
    try:
        outcome = kql.run(query, tables, now=now, timespan=window, max_groups=budget)
    except kql.KqlError as exc:
        if exc.code == kql.UNSUPPORTED:
            raise la_errors.not_supported_by_emulator(exc.to_innererror()) from exc
        raise la_errors.kql_error(exc.to_innererror()) from exc
    partial = None
    if outcome.overflowed_groups is not None:
        partial = la_errors.aggregation_overflow_error(outcome.overflowed_groups)
    return EngineResult([table_to_wire(table) for table in outcome.tables], partial)


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    canned: bool = False

    @classmethod
    def of_error(cls, error: LaError) -> _Answer:
        return cls(error.status, dumps(error.body()), list(error.headers.items()))


class LogAnalyticsService:
    """The query API over a TelemetryStore; `handle` is called by the emulator's HTTPS server."""

    def __init__(
        self,
        store: TelemetryStore,
        limits: LogAnalyticsLimits | None = None,
        *,
        engine: Engine | None = None,
    ) -> None:
        self.store = store
        self.limits = limits if limits is not None else LogAnalyticsLimits()
        self._engine = engine if engine is not None else kql_engine
        self._gate = IdentityGate()

    def handle(
        self,
        request: Request,
        identity: str,
        *,
        workspace_allowed: Callable[[str], bool] | None = None,
    ) -> Response:
        """Answer one `/v1/...` request made by `identity` (a stable id of the principal).

        `workspace_allowed(workspace_id)`, when given, is the caller's tenant boundary: a batch
        entry or an additional workspace it refuses is answered 403 (that entry only).
        """
        try:
            answer = self._route(request, identity, workspace_allowed)
        except LaError as error:
            answer = _Answer.of_error(error)
        except Exception:  # a bug in the emulator must still answer in Azure's shape
            log.exception("log analytics emulator failed on %s %s", request.method, request.path)
            answer = _Answer.of_error(la_errors.internal_error())
        return Response(answer.body, answer.status, answer.headers, content_type=_JSON_CONTENT_TYPE)

    def stats(self) -> dict[str, Any]:
        """Limit counters: per identity `in_flight`, `max_in_flight`, `queued`, `throttled_*`..."""
        return self._gate.stats()

    def reset_stats(self) -> None:
        """Reset peak values and counters (live in-flight queries are kept)."""
        self._gate.reset_stats()

    # -- routing -------------------------------------------------------------------------------

    def _route(self, request: Request, identity: str, allowed: Allowed) -> _Answer:
        path = request.path
        if not path.startswith("/v1/"):
            raise la_errors.path_not_found()
        route = path[3:]
        method = request.method
        if route == "/$batch" and method == "POST":
            return self._batch(identity, _json_body(request), allowed)
        if not route.endswith("/query") or method not in ("POST", "GET"):
            raise la_errors.path_not_found()
        if method == "POST":
            body = _json_body(request)
        else:
            args = request.args
            workspaces = args.get("workspaces")
            body = {
                "query": args.get("query"),
                "timespan": args.get("timespan"),
                "workspaces": workspaces.split(",") if workspaces else None,
            }
        prefer = parse_prefer(request.headers.get("Prefer"))
        return self._query(identity, route, body, prefer, allowed)

    def _query(
        self,
        identity: str,
        route: str,
        body: object,
        prefer: Preferences,
        allowed: Allowed = None,
    ) -> _Answer:
        """One query: `route` is `/workspaces/<id>/query` or `/<resource id>/query`."""
        if not isinstance(body, dict):
            raise la_errors.bad_argument("The request body must be a JSON object", target="body")
        canned = self.store.canned_response(route, body.get("query"))
        if canned is not None:
            return self._replay(identity, canned)
        scope = self._resolve(route[: -len("/query")], identity)
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise la_errors.bad_argument("The query property is required", target="query")
        limits = self.limits  # one consistent snapshot even if the admin API swaps it
        now = limits.now() if limits.now is not None else datetime.now(UTC)
        window = parse_timespan(body.get("timespan"), now)
        tables = self._tables(scope, body.get("workspaces"), identity, allowed)
        wait_s = _applied_wait(prefer, limits)
        started = time.perf_counter()
        self._gate.acquire(identity, limits)
        try:
            result = self._engine(query, tables, now, window, limits)
            _simulate_service_time(limits.latency_s, wait_s, started)
        finally:
            self._gate.release(identity, limits)
        scanned = sum(len(t.rows) for t in tables.values()) if prefer.include_statistics else 0
        if not isinstance(result, EngineResult):
            result = EngineResult(result)
        encoded = query_body(
            result.tables,
            prefer,
            limits,
            execution_s=time.perf_counter() - started,
            scanned_rows=scanned,
            engine_error=result.partial_error,
        )
        headers = [] if prefer.wait_s is None else [("Preference-Applied", f"wait={wait_s}")]
        return _Answer(200, encoded, headers)

    def _replay(self, identity: str, canned: CannedResponse) -> _Answer:
        limits = self.limits
        self._gate.acquire(identity, limits)
        try:
            if limits.latency_s > 0:
                time.sleep(limits.latency_s)
        finally:
            self._gate.release(identity, limits)
        return _Answer(canned.status, canned.body, list(canned.headers), canned=True)

    def _resolve(self, target: str, identity: str) -> Scope:
        """The workspace or resource a query path names, checked for the caller's access."""
        if target.startswith("/workspaces/"):
            workspace_id = target[len("/workspaces/") :]
            if not _GUID.fullmatch(workspace_id):
                raise la_errors.path_not_found()
            scope = self.store.workspace(workspace_id)
            if scope is None:
                raise la_errors.workspace_not_found(workspace_id)
        else:
            # Some clients percent-encode the whole ARM id into one segment; decode it again.
            resource_id = unquote(target)
            scope = self.store.resource(resource_id)
            if scope is None:
                if not resource_id.strip("/").lower().startswith("subscriptions/"):
                    raise la_errors.path_not_found()
                raise la_errors.resource_not_found(resource_id)
        if not scope.readable_by(identity):
            raise la_errors.insufficient_access()
        return scope

    def _tables(
        self, scope: Scope, extra: object, identity: str, allowed: Allowed = None
    ) -> Mapping[str, Table]:
        """The primary scope's tables, merged with those of any additional workspaces."""
        if extra is None or extra == []:
            return scope.tables
        if not isinstance(extra, list) or not all(isinstance(w, str) for w in extra):
            raise la_errors.bad_argument(
                "workspaces must be a list of strings", target="workspaces"
            )
        scopes = [scope]
        for name in extra:
            other = self.store.workspace(name) or self.store.resource(name)
            if other is None:
                raise la_errors.bad_argument(
                    f"Failed to resolve workspace '{name}'", target="workspaces", value=name
                )
            if not other.readable_by(identity) or (allowed is not None and not allowed(name)):
                raise la_errors.insufficient_access()
            if other.id != scope.id and other not in scopes:
                scopes.append(other)
        return _merge_tables(scopes) if len(scopes) > 1 else scope.tables

    # -- batch ---------------------------------------------------------------------------------

    def _batch(self, identity: str, payload: object, allowed: Allowed = None) -> _Answer:
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            raise la_errors.bad_argument("requests must be a non-empty list", target="requests")
        ids = [item.get("id") if isinstance(item, dict) else None for item in requests]
        if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
            # Without distinct ids no answer could be matched to its request.
            raise la_errors.bad_argument("every request needs a distinct string id", target="id")
        parts = []
        for request_id, item in zip(ids, requests, strict=True):
            try:
                answer = self._batch_entry(identity, item, allowed)
            except LaError as error:
                answer = _Answer.of_error(error)
            head: JsonObject = {"id": request_id, "status": answer.status}
            if answer.headers:
                head["headers"] = dict(answer.headers)
            body = answer.body if not answer.canned else _json_or_string(answer.body)
            # Bodies are serialised once, then spliced into the batch envelope.
            parts.append(dumps(head)[:-1] + b',"body":' + body + b"}")
        return _Answer(200, b'{"responses":[' + b",".join(parts) + b"]}")

    def _batch_entry(self, identity: str, item: JsonObject, allowed: Allowed = None) -> _Answer:
        if item.get("path", "/query") != "/query" or item.get("method", "POST") != "POST":
            raise la_errors.bad_argument("Only POST /query is supported in a batch", target="path")
        workspace = item.get("workspace")
        if not isinstance(workspace, str) or not workspace:
            raise la_errors.bad_argument("workspace is required", target="workspace")
        headers = item.get("headers") or {}
        prefer = (
            next(
                (v for k, v in headers.items() if k.lower() == "prefer" and isinstance(v, str)),
                None,
            )
            if isinstance(headers, dict)
            else None
        )
        if allowed is not None and not allowed(workspace):
            raise la_errors.insufficient_access()
        route = f"/workspaces/{workspace}/query"
        return self._query(identity, route, item.get("body"), parse_prefer(prefer), allowed)


def _json_body(request: Request) -> object:
    try:
        return json.loads(request.get_data())
    except ValueError:
        raise la_errors.bad_argument("The request body is not valid JSON", target="body") from None


def _json_or_string(body: bytes) -> bytes:
    try:
        json.loads(body)
    except ValueError:
        return dumps(body.decode("utf-8", "replace"))
    return body


def _applied_wait(prefer: Preferences, limits: LogAnalyticsLimits) -> int:
    wait = prefer.wait_s if prefer.wait_s is not None and prefer.wait_s > 0 else None
    return min(wait if wait is not None else limits.default_wait_s, limits.max_wait_s)


def _simulate_service_time(latency_s: float, wait_s: int, started: float) -> None:
    """Spend the simulated service time; past the server timeout, answer 504 at the timeout."""
    if latency_s > wait_s:
        time.sleep(max(0.0, wait_s - (time.perf_counter() - started)))
        raise la_errors.gateway_timeout(wait_s)
    if latency_s > 0:
        time.sleep(latency_s)


def _merge_tables(scopes: Sequence[Scope]) -> dict[str, Table]:
    """Cross-workspace view: same-named tables are unioned, columns matched by name."""
    from emulator.kql import Column, Table

    merged: dict[str, Table] = {}
    for scope in scopes:
        for name, table in scope.tables.items():
            have = merged.get(name)
            if have is None:
                merged[name] = table
            elif have.columns == table.columns:
                merged[name] = replace(have, rows=[*have.rows, *table.rows])
            else:
                columns: list[Column] = list(have.columns)
                columns += [c for c in table.columns if c.name not in {x.name for x in columns}]
                merged[name] = Table(
                    name, columns, [*_align(have, columns), *_align(table, columns)]
                )
    return merged


def _align(table: Table, columns: Sequence[Any]) -> list[list[Any]]:
    index = {c.name: i for i, c in enumerate(table.columns)}
    picks = [index.get(c.name) for c in columns]
    return [[row[i] if i is not None else None for i in picks] for row in table.rows]
