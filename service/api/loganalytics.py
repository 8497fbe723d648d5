"""The Log Analytics-compatible endpoint: ``/loganalytics/v1/...`` in Azure's wire format.

Point an unmodified ``LogsQueryClient`` at ``<service>/loganalytics`` (the SDK adds ``/v1``)
with a credential whose token is an API key. Every answer, errors included, has Azure's shape
(``{"error": {"code", "message", ...}}``), not problem+json: the SDK parses these. The routes
are not in openapi.yaml: their contract is Azure's (swagger ``LogAnalytics/.../2022-10-27``).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException

from service.api.hooks import runtime
from service.api.responses import call_context
from service.errors import BadRequest, MethodNotAllowed, NotFound, ServiceError
from service.ports import LogTarget
from service.services import log_compat

log = logging.getLogger(__name__)
bp = Blueprint("loganalytics", __name__)
PREFIX = "/loganalytics/v1/"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route(PREFIX + "<path:rest>", methods=_METHODS)
def query(rest: str) -> Response:
    if request.method != "POST":
        raise MethodNotAllowed("only POST is supported")
    rt, ctx = runtime(), call_context()
    payload = _json_body()
    if rest == "$batch":
        body = log_compat.batch(rt, ctx, payload)
        return Response(body, 200, content_type="application/json; charset=utf-8")
    resolved = log_compat.resolve(rt, ctx.principal, _target(rest))
    clean = log_compat.clean_body(rt, ctx.principal, resolved, payload)
    prefer = log_compat.clean_prefer(rt, request.headers.get("Prefer"))
    answer = log_compat.forward(rt, ctx, resolved, clean, prefer)
    return Response(answer.chunks, answer.status, headers=answer.headers)


def _target(rest: str) -> LogTarget:
    if not rest.endswith("/query"):
        raise NotFound("the requested path does not exist")
    scope = rest[: -len("/query")]
    parts = scope.split("/")
    if len(parts) == 2 and parts[0] == "workspaces":
        return LogTarget("workspace", parts[1])
    # Clients may percent-encode the whole ARM id into one segment.
    resource = "/" + unquote(scope).strip("/")
    if not resource.lower().startswith("/subscriptions/"):
        raise NotFound("the requested path does not exist")
    return LogTarget("resource", resource)


def _json_body() -> object:
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None


def _azure_response(error: ServiceError) -> Response:
    body = log_compat.azure_error(error)
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["error"].setdefault("correlationId", request_id)
    response = Response(json.dumps(body), error.status, content_type="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    if exc.status >= 500:
        log.error("log analytics endpoint: %s: %s", exc.code, exc.detail)
    return _azure_response(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    error = ServiceError(exc.description or exc.name)
    error.status, error.code, error.title = status, "http_error", exc.name
    return _azure_response(error)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _azure_response(
        ServiceError("an unexpected error occurred; quote the request id when reporting it")
    )
