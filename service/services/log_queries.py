"""Log queries for callers without Azure credentials: KQL and the telemetry views of an endpoint.

Each query runs with the tenant's credential, through the gateway's traffic shaping, and is
audited (who, what, how long, how big, outcome) whether it succeeds or not.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from service.db.models import Workspace
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.jsonable import jsonable
from service.domain.kql import KqlInputError, Timespan, check_query, parse_duration, parse_timespan
from service.domain.telemetry_views import (
    CLASSIC,
    WORKSPACE,
    Schema,
    dependencies_view,
    exceptions_view,
    requests_view,
    traces_view,
)
from service.errors import (
    Conflict,
    QueryRejected,
    ResultTooLarge,
    ServiceError,
    ValidationFailed,
)
from service.ports import LogQueryResult, LogQuerySpec, LogTable, LogTarget
from service.services import audit_queue, online_telemetry
from service.services.azure_credentials import tenant_credential
from service.services.context import CallContext
from service.services.lookup import (
    WorkspaceRef,
    cached_workspace_ref,
    visible_endpoint,
    visible_workspace,
)
from service.services.runtime import Runtime

DEFAULT_VIEW_TIMESPAN = "P1D"
DEFAULT_INTERVAL = "PT1H"
MAX_BINS = 1000


@dataclass(frozen=True)
class AuditTarget:
    tenant_id: str
    target_type: str  # workspace | endpoint
    target_id: str


def bad_input(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", [{"field": field, "message": message}])


def log_target(ws: Workspace | WorkspaceRef, source: str | None) -> LogTarget:
    """The workspace's Log Analytics workspace (App* tables) or App Insights resource (classic)."""
    la, ai = ws.log_analytics_workspace_id, ws.app_insights_resource_id
    if source == "app_insights" or (source is None and not la):
        if not ai:
            raise Conflict(f"workspace '{ws.slug}' has no App Insights resource registered")
        return LogTarget("resource", ai)
    if not la:
        raise Conflict(f"workspace '{ws.slug}' has no Log Analytics workspace registered")
    return LogTarget("workspace", la)


def schema_of(target: LogTarget) -> Schema:
    return WORKSPACE if target.kind == "workspace" else CLASSIC


# -- the typed query API ------------------------------------------------------------------------
def run_query(
    rt: Runtime, ctx: CallContext, tenant: str, workspace: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``POST .../logs/query``: one KQL query against the workspace's telemetry."""
    ctx.require(Role.READER)
    settings = rt.settings.log_query
    ws = cached_workspace_ref(rt, ctx.principal, tenant, workspace)
    target = log_target(ws, body.get("source"))
    where = AuditTarget(ws.tenant_id, "workspace", ws.id)
    query = body["query"]
    try:
        check_query(query, max_chars=settings.max_query_chars)
    except KqlInputError as exc:
        raise bad_input("body.query", str(exc)) from None
    spec = LogQuerySpec(
        query=query,
        timespan=_timespan(body.get("timespan"), "body.timespan"),
        server_timeout_s=_server_timeout(rt, body.get("server_timeout")),
        include_statistics=bool(body.get("include_statistics", False)),
    )
    try:
        result, source = execute(rt, ctx, where, target, spec, action="logs.query")
    except QueryRejected as exc:
        raise explain_rejection(exc, target) from None
    return {
        "status": "partial" if result.partial else "success",
        "source": target.kind,
        "tables": [_table_json(t) for t in result.tables],
        "error": result.error,
        "statistics": result.statistics,
        "served_from": source,
    }


# Classic Application Insights tables and their Log Analytics workspace (App*) counterparts.
CLASSIC_TO_WORKSPACE_TABLES = {
    "requests": "AppRequests",
    "dependencies": "AppDependencies",
    "exceptions": "AppExceptions",
    "traces": "AppTraces",
    "pageViews": "AppPageViews",
    "customEvents": "AppEvents",
    "customMetrics": "AppMetrics",
    "availabilityResults": "AppAvailabilityResults",
    "browserTimings": "AppBrowserTimings",
    "performanceCounters": "AppPerformanceCounters",
}
_WORKSPACE_TO_CLASSIC_TABLES = {v: k for k, v in CLASSIC_TO_WORKSPACE_TABLES.items()}
_UNRESOLVED = re.compile(r"Failed to resolve table or column expression named '([^']+)'")


def innermost_message(error: Any) -> str | None:
    """The message at the bottom of an Azure error's ``innererror`` chain (Kusto's own cause,
    e.g. "Failed to resolve table or column expression named 'traces'"), or None."""
    message = None
    depth = 0
    while isinstance(error, dict) and depth < 16:
        if isinstance(error.get("message"), str):
            message = error["message"]
        error = error.get("innererror")
        depth += 1
    return message


def explain_rejection(exc: QueryRejected, target: LogTarget) -> QueryRejected:
    """The rejection with the innermost cause as its detail, and, when a table of the other
    schema was named, which table or source to use instead."""
    detail = innermost_message(exc.extra.get("azure_error")) or exc.detail
    unresolved = _UNRESOLVED.search(detail)
    name = unresolved.group(1) if unresolved else None
    if name in CLASSIC_TO_WORKSPACE_TABLES and target.kind == "workspace":
        detail += (
            f". '{name}' is a classic Application Insights table; this query ran against the "
            f"Log Analytics workspace, whose table is '{CLASSIC_TO_WORKSPACE_TABLES[name]}'. "
            'Use that name, or send "source": "app_insights" to query the App Insights '
            "resource's classic tables"
        )
    elif name in _WORKSPACE_TO_CLASSIC_TABLES and target.kind == "resource":
        detail += (
            f". '{name}' is a Log Analytics workspace table; this query ran against the App "
            f"Insights resource, whose table is '{_WORKSPACE_TO_CLASSIC_TABLES[name]}'. Use "
            'that name, or send "source": "log_analytics" to query the workspace'
        )
    explained = QueryRejected(detail[:2000])
    explained.extra.update(exc.extra)
    return explained


# -- the telemetry views ------------------------------------------------------------------------
def telemetry_view(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str,
    endpoint: str,
    view: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """One of the source document's views of an endpoint (its role name), for either schema."""
    ctx.require(Role.READER)
    with rt.uow(read_only=True) as uow:
        ep = visible_endpoint(uow, ctx.principal, tenant, workspace, endpoint)
        ws = visible_workspace(uow, ctx.principal, tenant, workspace)
        target = log_target(ws, params.get("source"))
        where = AuditTarget(ep.tenant_id, "endpoint", ep.id)
        resolve = online_telemetry.resolver(rt, uow, ep, ws)
        name = ep.name
    role = resolve()
    window = _timespan(params.get("timespan") or DEFAULT_VIEW_TIMESPAN, "query.timespan")
    assert window is not None
    schema = schema_of(target)
    out: dict[str, Any] = {"endpoint": name, "schema": schema.name, "timespan": window.iso()}
    try:
        if view == "requests":
            interval = parse_duration(params.get("interval") or DEFAULT_INTERVAL)
            if window.length() / interval > MAX_BINS:
                raise bad_input("query.interval", f"gives more than {MAX_BINS} bins")
            query = requests_view(schema, role, interval)
            out["interval"] = params.get("interval") or DEFAULT_INTERVAL
        elif view == "dependencies":
            query = dependencies_view(schema, role, window.length())
        elif view == "exceptions":
            query = exceptions_view(schema, role)
        else:
            query = traces_view(schema, role, params.get("contains"), int(params.get("limit", 10)))
    except KqlInputError as exc:
        field = "query.interval" if view == "requests" else "query.contains"
        raise bad_input(field, str(exc)) from None
    spec = LogQuerySpec(
        query=query,
        timespan=window,
        server_timeout_s=rt.settings.log_query.default_server_timeout_s,
    )
    result, _ = execute(rt, ctx, where, target, spec, action=f"logs.view.{view}")
    items = _records(result.tables[0]) if result.tables else []
    if view == "traces":
        for item in items:
            item["data"] = _printed_json(item.get("message"))
    out.update(
        {
            "status": "partial" if result.partial else "success",
            "items": items,
            "error": result.error,
        }
    )
    return out


# -- shared -------------------------------------------------------------------------------------
def execute(
    rt: Runtime,
    ctx: CallContext,
    where: AuditTarget,
    target: LogTarget,
    spec: LogQuerySpec,
    *,
    action: str,
) -> tuple[LogQueryResult, str]:
    """Run one typed query with the tenant's credential, enforce the caps, audit the outcome."""
    # The audit record must be writable before the query may run (lone surrogates, NUL).
    audit_queue.require_storable(spec.query, "body.query")
    started = time.perf_counter()
    outcome: dict[str, Any] = {"status": "error"}
    try:
        credential = tenant_credential(rt, where.tenant_id)
        result, source = rt.logs.query(
            where.tenant_id, ctx.principal.key_id, credential, target, spec
        )
        result = _capped(rt, result)
        outcome = {
            "status": "partial" if result.partial else "success",
            "rows": result.row_count,
            "bytes": result.response_bytes,
            "served_from": source,
        }
        rt.meter.log_query_cache(source)
        return result, source
    except ServiceError as exc:
        outcome = {"status": "error", "error": exc.code}
        raise
    finally:
        rt.meter.log_query(where.tenant_id, str(outcome.get("error", outcome["status"])))
        record_query(
            rt,
            ctx,
            where,
            action=action,
            query=spec.query,
            timespan=spec.timespan.iso() if spec.timespan else None,
            target=target,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            outcome=outcome,
        )


def record_query(
    rt: Runtime,
    ctx: CallContext,
    where: AuditTarget,
    *,
    action: str,
    query: str,
    timespan: str | None,
    target: LogTarget,
    duration_ms: float,
    outcome: dict[str, Any],
) -> None:
    """One audit event per query, written off the request path (the query changes nothing).

    The event is queued for this process's background writer (``audit_queue``); when the queue
    is full it is written here, synchronously. Either way it is never silently dropped.
    """
    limit = rt.settings.log_query.audit_query_chars
    after = {
        "query_sha256": hashlib.sha256(query.encode()).hexdigest(),
        "query": query[:limit],
        "query_truncated": len(query) > limit,
        "timespan": timespan,
        "target_kind": target.kind,
        "duration_ms": duration_ms,
        "rows": None,
        "bytes": None,
        **outcome,
    }
    audit_queue.queue_for(rt).put(
        {
            "occurred_at": utcnow(),
            "actor_key_id": ctx.principal.key_id,
            "action": action,
            "tenant_id": where.tenant_id,
            "target_type": where.target_type,
            "target_id": where.target_id,
            "request_id": ctx.request_id,
            "before": None,
            "after": jsonable(after),
        }
    )


def _capped(rt: Runtime, result: LogQueryResult) -> LogQueryResult:
    settings = rt.settings.log_query
    if result.response_bytes > settings.max_bytes:
        raise ResultTooLarge(
            f"the result is {result.response_bytes} bytes; the limit is {settings.max_bytes} "
            "(LOG_QUERY_MAX_BYTES): narrow the query (fewer rows, columns or a shorter timespan)"
        )
    if result.row_count <= settings.max_rows:
        return result
    budget = settings.max_rows
    tables = []
    for table in result.tables:
        rows = table.rows[: max(budget, 0)]
        budget -= len(rows)
        tables.append(LogTable(table.name, table.columns, rows))
    error = result.error or {
        "code": "ResultTruncated",
        "message": f"the result was cut at {settings.max_rows} rows (LOG_QUERY_MAX_ROWS)",
    }
    return LogQueryResult(tuple(tables), error, result.statistics, result.response_bytes)


def _timespan(raw: str | None, field: str) -> Timespan | None:
    if raw is None:
        return None
    try:
        return parse_timespan(raw)
    except KqlInputError as exc:
        raise bad_input(field, str(exc)) from None


def _server_timeout(rt: Runtime, raw: int | None) -> int:
    settings = rt.settings.log_query
    if raw is None:
        return settings.default_server_timeout_s
    if not 1 <= raw <= settings.max_server_timeout_s:
        raise bad_input(
            "body.server_timeout", f"must be between 1 and {settings.max_server_timeout_s} seconds"
        )
    return int(raw)


def _table_json(table: LogTable) -> dict[str, Any]:
    return {
        "name": table.name,
        "columns": [{"name": n, "type": t} for n, t in table.columns],
        "rows": table.rows,
    }


def _records(table: LogTable) -> list[dict[str, Any]]:
    names = [n for n, _ in table.columns]
    return [dict(zip(names, row, strict=True)) for row in table.rows]


def _printed_json(message: Any) -> Any:
    """score.py prints JSON: give it back parsed (None when the message is plain text)."""
    if not isinstance(message, str) or not message.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(message)
    except ValueError:
        return None
