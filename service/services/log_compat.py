"""The Log Analytics-compatible endpoint: Azure's own query API, answered for API keys.

A standard client (``LogsQueryClient(credential, endpoint=<this service>/loganalytics)``
with a credential that returns an API key) queries workspaces registered here, with the owning
tenant's credential. Bodies are checked (guardrails), rebuilt from the known fields only, and
answers stream back unparsed: a 50 MB result never sits in memory whole.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from service.db.models import Workspace
from service.domain.access import Principal
from service.domain.azure_errors import azure_error_body
from service.domain.kql import KqlInputError, check_query, parse_timespan
from service.errors import BadRequest, NotFound, ServiceError
from service.ports import LogTarget, RawLogResponse
from service.services.azure_credentials import tenant_credential
from service.services.context import CallContext
from service.services.log_queries import AuditTarget, record_query
from service.services.runtime import Runtime

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_WAIT = re.compile(r"^wait=(\d{1,6})$")
_FLAGS = ("include-statistics=true", "include-render=true")


# Two columns, built once, run below the ORM: this runs on every compat query (issue 16).
_COLUMNS = select(Workspace.id, Workspace.tenant_id).order_by(Workspace.id)
_BY_WORKSPACE = _COLUMNS.where(Workspace.log_analytics_workspace_id == bindparam("key"))
_BY_RESOURCE = _COLUMNS.where(func.lower(Workspace.app_insights_resource_id) == bindparam("key"))


@dataclass(frozen=True)
class Resolved:
    """A compat target the caller may read: the registered workspace and its tenant."""

    target: LogTarget
    audit: AuditTarget


def resolve(rt: Runtime, principal: Principal, target: LogTarget) -> Resolved:
    """The registered workspace behind a Log Analytics id or App Insights resource id.

    Anything not registered under a tenant the key sees is reported as not found. The
    registrations of an id are remembered for ``LOG_TARGET_CACHE_TTL_S`` (``AccessCache``).
    """
    if target.kind == "workspace":
        if not _GUID.fullmatch(target.id):
            raise NotFound("the requested path does not exist")
        stmt, key = _BY_WORKSPACE, target.id.lower()
    else:
        stmt, key = _BY_RESOURCE, target.id.rstrip("/").lower()

    def load() -> tuple[tuple[str, str], ...] | None:
        with rt.uow(read_only=True) as uow:
            found = uow.session.connection().execute(stmt, {"key": key})
            return tuple((ws.id, ws.tenant_id) for ws in found) or None

    # Every registration of the id, whoever's: the caller's tenant is checked on each use.
    rows = rt.access_cache.remember(
        ("log-target", target.kind, key), rt.settings.log_target_cache_ttl_s, load
    )
    for workspace_id, tenant_id in rows or ():
        if principal.sees_tenant(tenant_id):
            return Resolved(target, AuditTarget(tenant_id, "workspace", workspace_id))
    what = "workspace" if target.kind == "workspace" else "resource"
    raise NotFound(f"the {what} '{target.id}' could not be found")


def clean_body(rt: Runtime, principal: Principal, resolved: Resolved, raw: Any) -> dict[str, Any]:
    """The body to forward: only query, timespan and workspaces, each checked."""
    if not isinstance(raw, dict):
        raise BadRequest("the request body must be a JSON object")
    query = raw.get("query")
    if not isinstance(query, str):
        raise BadRequest("the query property is required")
    _check_unicode(query, "query")
    try:
        check_query(query, max_chars=rt.settings.log_query.max_query_chars)
        timespan = raw.get("timespan")
        if timespan is not None and not isinstance(timespan, str):
            raise KqlInputError("timespan must be a string")
        if timespan is not None:
            _check_unicode(timespan, "timespan")
        if timespan:
            parse_timespan(timespan)
    except KqlInputError as exc:
        raise BadRequest(str(exc)) from None
    body: dict[str, Any] = {"query": query, "timespan": timespan or None}
    extra = raw.get("workspaces")
    # null is "not given": azure-monitor-query sends "workspaces": null, and Azure accepts it.
    if extra is not None and (
        not isinstance(extra, list) or not all(isinstance(w, str) for w in extra)
    ):
        raise BadRequest("workspaces must be a list of workspace ids")
    if extra:
        for other in extra:
            _check_unicode(other, "workspaces")
            # Additional workspaces must be registered under the same tenant: the query runs
            # with that tenant's credential, which must not reach beyond what it registered.
            kind = "workspace" if _GUID.fullmatch(other) else "resource"
            found = resolve(rt, principal, LogTarget(kind, other))
            if found.audit.tenant_id != resolved.audit.tenant_id:
                raise NotFound(f"the workspace '{other}' could not be found")
        body["workspaces"] = extra
    return body


def _check_unicode(value: str, name: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate such as \\ud800): it cannot be
    audited, so the query must not run (the encoder is C: cheap even for a long query)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"the {name} property is not valid Unicode (lone surrogate)") from None


def clean_prefer(rt: Runtime, header: str | None) -> str | None:
    """Keep only the documented Prefer options; cap ``wait`` at the configured maximum."""
    if not header:
        return None
    kept = []
    for part in (p.strip().lower() for p in header.split(",")):
        wait = _WAIT.match(part)
        if wait:
            capped = min(max(1, int(wait.group(1))), rt.settings.log_query.max_server_timeout_s)
            kept.append(f"wait={capped}")
        elif part in _FLAGS:
            kept.append(part)
    return ",".join(kept) or None


def query(
    rt: Runtime, ctx: CallContext, target: LogTarget, payload: Any, prefer: str | None
) -> RawLogResponse:
    """Answer one query to ``target`` (a workspace or resource id): resolve it, check the body
    and the Prefer header, forward; the answer streams back."""
    resolved = resolve(rt, ctx.principal, target)
    body = clean_body(rt, ctx.principal, resolved, payload)
    return forward(rt, ctx, resolved, body, clean_prefer(rt, prefer))


def forward(
    rt: Runtime, ctx: CallContext, resolved: Resolved, body: dict[str, Any], prefer: str | None
) -> RawLogResponse:
    """Send one query; the answer streams back, and the audit event is written once it ends."""
    target = resolved.target
    path = (
        f"/workspaces/{target.id}/query"
        if target.kind == "workspace"
        else "/" + target.id.strip("/") + "/query"
    )
    started = time.perf_counter()

    def audit(outcome: dict[str, Any]) -> None:
        record_query(
            rt,
            ctx,
            resolved.audit,
            action="logs.compat",
            query=body["query"],
            timespan=body.get("timespan"),
            target=target,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            outcome=outcome,
        )

    try:
        credential = tenant_credential(rt, resolved.audit.tenant_id)
        answer = rt.logs.forward(
            resolved.audit.tenant_id,
            ctx.principal.key_id,
            credential,
            path,
            json.dumps(body).encode(),
            prefer,
        )
    except ServiceError as exc:
        audit({"status": "error", "error": exc.code})
        raise
    limit = rt.settings.log_query.max_bytes
    declared = answer.headers.get("Content-Length")
    if declared is not None and int(declared) > limit:
        answer.close()
        audit({"status": "error", "error": "result_too_large", "bytes": int(declared)})
        raise ResultTooLargeCompat(int(declared), limit)
    answer.chunks = _metered(answer, answer.chunks, limit, audit)
    return answer


class ResultTooLargeCompat(BadRequest):
    code, title = "result_too_large", "Query result too large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the result is {size} bytes; the limit is {limit} (LOG_QUERY_MAX_BYTES): "
            "narrow the query"
        )


def _metered(
    answer: RawLogResponse, source: Iterator[bytes], limit: int, audit: Any
) -> Iterator[bytes]:
    """Pass chunks on, counting bytes; cut the stream past the byte cap; audit at the end."""
    sent = 0
    status = "success" if answer.status == 200 else "error"
    try:
        for chunk in source:
            sent += len(chunk)
            if sent > limit:
                status = "truncated"
                break
            yield chunk
    finally:
        answer.close()
        audit({"status": status, "http_status": answer.status, "bytes": sent})


# -- $batch -------------------------------------------------------------------------------------
def batch(rt: Runtime, ctx: CallContext, payload: Any) -> bytes:
    """Answer a ``$batch``: each entry is checked, shaped and audited like a single query.

    Entries run one after another (each holds a slot of its tenant's budget); every id comes
    back, with Azure's answer or our error in Azure's shape.
    """
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        raise BadRequest("requests must be a non-empty list")
    ids = [item.get("id") if isinstance(item, dict) else None for item in requests]
    if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
        raise BadRequest("every request needs a distinct string id")
    parts = []
    for request_id, item in zip(ids, requests, strict=True):
        status, headers, body = _batch_entry(rt, ctx, item)
        head = json.dumps({"id": request_id, "status": status, "headers": headers})
        parts.append(head[:-1].encode() + b',"body":' + body + b"}")
    return b'{"responses":[' + b",".join(parts) + b"]}"


def _batch_entry(
    rt: Runtime, ctx: CallContext, item: dict[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    try:
        if item.get("path", "/query") != "/query" or item.get("method", "POST") != "POST":
            raise BadRequest("only POST /query is supported in a batch")
        workspace = item.get("workspace")
        if not isinstance(workspace, str) or not workspace:
            raise BadRequest("workspace is required")
        kind = "workspace" if _GUID.fullmatch(workspace) else "resource"
        given = item.get("headers")
        headers: dict[str, Any] = given if isinstance(given, dict) else {}
        prefer = next((v for k, v in headers.items() if k.lower() == "prefer"), None)
        answer = query(
            rt,
            ctx,
            LogTarget(kind, workspace),
            item.get("body"),
            prefer if isinstance(prefer, str) else None,
        )
        data = b"".join(answer.chunks)
        kept = {
            k: v for k, v in answer.headers.items() if k in ("Preference-Applied", "Retry-After")
        }
        return answer.status, kept, data or b"null"
    except ServiceError as exc:
        return exc.status, dict(exc.headers), json.dumps(azure_error(exc)).encode()


def azure_error(exc: ServiceError) -> dict[str, Any]:
    """A service error in Log Analytics' error shape ``{"error": {"code", "message", ...}}``.

    Azure's own error object, when the failure came from Azure, is returned as it was.
    """
    original = exc.extra.get("azure_error")
    if isinstance(original, dict) and original.get("code"):
        return {"error": dict(original)}
    code = None
    if exc.status == 404 and "workspace" in exc.detail:
        code = "WorkspaceNotFoundError"
    elif exc.status == 404 and "resource" in exc.detail:
        code = "ResourceNotFoundError"
    return azure_error_body(
        exc.status, exc.detail, code=code, service_code=exc.code, service_title=exc.title
    )
