"""The Log Analytics-compatible endpoint: ``/loganalytics/v1/...`` in Azure's wire format.

Endpoint strings for the official clients (README, "Log Analytics-compatible endpoint"):
Python ``LogsQueryClient(cred, endpoint="<service>/loganalytics")`` (the SDK adds ``/v1``) and
JavaScript ``new LogsQueryClient(cred, {endpoint: "<service>/loganalytics/v1"})`` (used as
given). The credential's token is an API key. Routes follow Azure's contract (swagger
``OperationalInsights/stable/2022-10-27``): ``GET|POST .../workspaces/{id}/query``,
``GET|POST .../{resourceId}/query`` and ``POST .../$batch``.

Every answer under ``/loganalytics``, errors included, has Azure's shape (``{"error": {"code",
"message", ...}}``, rendered by ``service.domain.azure_errors``), not problem+json: the SDKs
parse these. The routes are not in openapi.yaml: their contract is Azure's.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, Response, g, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from service.api.hooks import runtime
from service.api.responses import call_context
from service.domain.azure_errors import CONTENT_TYPE, azure_error_body
from service.errors import BadRequest, MethodNotAllowed, NotFound, ServiceError
from service.ports import LogTarget
from service.services import log_compat

log = logging.getLogger(__name__)
bp = Blueprint("loganalytics", __name__)
PREFIX = "/loganalytics/v1/"
# Every common method reaches a view, so even a wrong one is answered in Azure's shape with the
# resource's own Allow (other methods get werkzeug's routing 405, rendered the same way).
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_QUERY_METHODS = ("GET", "POST")
_BATCH_METHODS = ("POST",)
# JSON nesting deeper than any query body needs; deeper input is refused before parsing.
_MAX_JSON_DEPTH = 64


class _AnyPath(PathConverter):
    """A path converter that also matches control characters (``%0A``) and empty segments, so
    that every path under ``/loganalytics`` reaches this blueprint instead of a routing miss."""

    regex = r"[\s\S]*?"
    part_isolating = False


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("la_anypath", _AnyPath)


@bp.route(PREFIX + "<la_anypath:rest>", methods=_METHODS, provide_automatic_options=False)
def query(rest: str) -> Response:
    if rest == "$batch":
        _allow(_BATCH_METHODS)
        body = log_compat.batch(runtime(), call_context(), _json_body())
        return Response(body, 200, content_type=CONTENT_TYPE)
    if rest.startswith("workspaces/") and rest.endswith("/metadata"):
        # Azure's metadata API (GET|POST) is not proxied by this service.
        _allow(_QUERY_METHODS)
        raise NotFound("The metadata API is not available through this endpoint")
    target = _target(rest)
    _allow(_QUERY_METHODS)
    payload = _json_body() if request.method == "POST" else _query_string_body()
    answer = log_compat.query(
        runtime(), call_context(), target, payload, request.headers.get("Prefer")
    )
    return Response(answer.chunks, answer.status, headers=answer.headers)


class _Options(Exception):
    """Carries the answer to an OPTIONS request out of the checks."""

    def __init__(self, response: Response) -> None:
        self.response = response


@bp.errorhandler(_Options)
def _options(exc: _Options) -> Response:
    return exc.response


@bp.route("/loganalytics", methods=_METHODS)
def root() -> Response:
    """The endpoint's root is no resource either (clients must add /v1/...)."""
    raise NotFound("The requested path does not exist")


@bp.route("/loganalytics/<la_anypath:rest>", methods=_METHODS)
def not_found(rest: str) -> Response:
    """Anything under /loganalytics that is not /loganalytics/v1/...: Azure's routing miss."""
    raise NotFound("The requested path does not exist")


def _allow(methods: tuple[str, ...]) -> None:
    """Pass for the resource's methods; answer OPTIONS with its Allow; refuse others with 405."""
    if request.method == "OPTIONS":
        allow = ", ".join([*methods, "OPTIONS"])
        raise _Options(Response(status=204, headers={"Allow": allow}))
    if request.method not in methods:
        error = MethodNotAllowed(
            f"The requested resource does not support http method '{request.method}'."
        )
        error.headers["Allow"] = ", ".join(methods)
        raise error


def _target(rest: str) -> LogTarget:
    if not rest.endswith("/query"):
        raise NotFound("The requested path does not exist")
    scope = rest[: -len("/query")]
    parts = scope.split("/")
    if len(parts) == 2 and parts[0] == "workspaces":
        return LogTarget("workspace", parts[1])
    # Clients may percent-encode the whole ARM id into one segment.
    resource = "/" + unquote(scope).strip("/")
    if not resource.lower().startswith("/subscriptions/"):
        raise NotFound("The requested path does not exist")
    return LogTarget("resource", resource)


def _query_string_body() -> dict[str, Any]:
    """GET .../query?query=&timespan=&workspaces=a,b as the body a POST would carry."""
    args = request.args
    body: dict[str, Any] = {"query": args.get("query"), "timespan": args.get("timespan") or None}
    workspaces = args.get("workspaces")
    if workspaces:
        body["workspaces"] = [w.strip() for w in workspaces.split(",") if w.strip()]
    return body


def _json_body() -> object:
    raw = request.get_data(cache=True) or b"null"
    if _nesting_depth(raw) > _MAX_JSON_DEPTH:
        raise BadRequest(f"the request body is nested deeper than {_MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the request body is not valid JSON") from None


def _nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings ignored); cheap
    enough to run before the recursive parser, which a deep body would exhaust."""
    if raw.count(b"[") + raw.count(b"{") <= _MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def azure_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    service_code: str | None = None,
    service_title: str | None = None,
) -> Response:
    """An error answer in Azure's shape: the one Flask-side renderer for ``/loganalytics``
    (``problems.problem_response`` hands every error under ``/loganalytics`` to it)."""
    body = azure_error_body(
        status,
        message,
        code=code,
        service_code=service_code,
        service_title=service_title,
    )
    return _error_response(body, status, headers)


def _error_response(body: dict[str, Any], status: int, headers: dict[str, str] | None) -> Response:
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["error"].setdefault("correlationId", request_id)
    response = Response(json.dumps(body), status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _service_response(error: ServiceError) -> Response:
    return _error_response(log_compat.azure_error(error), error.status, error.headers)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    if exc.status >= 500:
        log.error("log analytics endpoint: %s: %s", exc.code, exc.detail)
    return _service_response(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {}
    allow = exc.get_response().headers.get("Allow") if status == 405 else None
    if allow:
        headers["Allow"] = allow
    if status >= 500:
        log.error("log analytics endpoint: HTTP %s raised: %s", status, exc.name)
        return azure_response(500, "Something went wrong on the server.")
    return azure_response(status, exc.description or exc.name, headers=headers)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return azure_response(
        500, "an unexpected error occurred; quote the correlation id when reporting it"
    )
