"""Azure's error shape for every answer under ``/loganalytics``: the one renderer.

The Log Analytics-compatible endpoint speaks Azure's wire format, errors included: the official
clients read ``error.code`` from ``{"error": {"code", "message", "correlationId", ...}}`` (the
``errorResponse`` of the Log Analytics OpenAPI document) and crash on problem+json. Every layer
that can answer a request under ``/loganalytics`` - the compat views, the app's error handlers
(routing misses, 405, 413, 415) and the HTTP server's own early errors (400/414/431) - renders
through ``azure_error_body`` so the shape and the codes are the same everywhere.

Codes: Azure's own where its public answers show them (BadArgumentError, PathNotFoundError,
WorkspaceNotFoundError, InsufficientAccessError, AuthorizationRequiredError, ThrottledError,
GatewayTimeout, InternalServerError); for statuses no public Log Analytics answer shows (405,
413, 414, 415, 424, 431) the code follows the same ``<Reason>Error`` naming.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "/loganalytics"

AZURE_CODES: dict[int, str] = {
    400: "BadArgumentError",
    401: "AuthorizationRequiredError",
    403: "InsufficientAccessError",
    404: "PathNotFoundError",
    405: "MethodNotAllowedError",
    406: "NotAcceptableError",
    409: "ConflictError",
    411: "LengthRequiredError",
    413: "PayloadTooLargeError",
    414: "RequestUriTooLongError",
    415: "UnsupportedMediaTypeError",
    424: "FailedDependencyError",
    429: "ThrottledError",
    431: "RequestHeaderFieldsTooLargeError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeout",
}
CONTENT_TYPE = "application/json; charset=utf-8"


def is_loganalytics_path(path: str) -> bool:
    """Whether a request path belongs to the Azure-compatible endpoint."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def azure_code(status: int) -> str:
    """Azure's error code for an HTTP status (InternalServerError for anything unknown)."""
    return AZURE_CODES.get(status, "InternalServerError")


def azure_error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    correlation_id: str | None = None,
    service_code: str | None = None,
    service_title: str | None = None,
) -> dict[str, Any]:
    """``{"error": {"code", "message", "correlationId"?, "innererror"?}}``.

    ``service_code`` / ``service_title`` (this service's own problem code, e.g. ``query_rejected``)
    go into ``innererror``, where Azure puts the more specific cause.
    """
    error: dict[str, Any] = {"code": code or azure_code(status), "message": message}
    if correlation_id:
        error["correlationId"] = correlation_id
    if service_code:
        error["innererror"] = {"code": service_code, "message": service_title or service_code}
    return {"error": error}


def azure_error_bytes(status: int, message: str, **kwargs: Any) -> bytes:
    """``azure_error_body`` serialised, for servers that write raw bytes (gunicorn's own errors)."""
    return json.dumps(azure_error_body(status, message, **kwargs)).encode()
