"""RFC 9457 problem+json at the edge: the one place errors become HTTP responses."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from service.domain.azure_errors import CONTENT_TYPE, azure_error_bytes, is_loganalytics_path
from service.errors import ServiceError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if is_loganalytics_path(request.path):
        # The Azure-compatible endpoint answers every error in Azure's shape, even the ones
        # raised before its blueprint is reached (authentication, routing, body limits).
        from service.api.loganalytics import azure_response

        return azure_response(
            status, detail, headers=headers, service_code=code, service_title=title
        )
    body: dict[str, Any] = {
        "type": f"urn:amlcp:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path,
    }
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra or {})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_document(
    path: str, status: int, code: str, title: str, detail: str, request_id: str | None = None
) -> tuple[str, bytes]:
    """(content type, body) of an error for ``path``, outside any Flask request.

    For answers the server gives itself (gunicorn's 400/408/413/414/431): problem+json, or
    Azure's error shape (``{"error": {...}}``) under ``/loganalytics``, as the views answer.
    """
    if is_loganalytics_path(path):
        return CONTENT_TYPE, azure_error_bytes(
            status, detail, correlation_id=request_id, service_code=code, service_title=title
        )
    body: dict[str, Any] = {
        "type": f"urn:amlcp:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": path,
    }
    if request_id:
        body["request_id"] = request_id
    return PROBLEM_JSON, json.dumps(body).encode()


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        if exc.status >= 500:
            log.error("service error %s: %s", exc.code, exc.detail)
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail, extra=exc.extra, headers=exc.headers
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status >= 500:
            log.error("HTTP %s raised: %s", status, exc.name)
            return _internal()
        code = _HTTP_CODES.get(status, "http_error")
        detail = {
            404: "no such route",
            405: f"{request.method} is not allowed on this route",
            413: "the request body is too large",
        }.get(status, exc.name)
        headers = {}
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        return problem_response(status, code, exc.name, detail, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The traceback goes to the log; the caller gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _internal()


def _internal() -> Response:
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        "an unexpected error occurred; quote the request id when reporting it",
    )
