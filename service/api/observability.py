"""Operator signals at the HTTP edge: request ids, HTTP metrics, /metrics, /docs and CORS."""

from __future__ import annotations

import re
import time
import uuid

from flask import Blueprint, Flask, Response, g, request
from flask_swagger_ui import get_swaggerui_blueprint

from service.api.hooks import runtime
from service.logs import request_id_var
from service.metrics import FOLLOWING, HTTP_LATENCY, HTTP_REQUESTS, OPERATIONS, render
from service.services.operations_stats import following_count, operation_counts

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_HEADERS = "Authorization, Content-Type, If-Match, X-Request-ID, Prefer"
_CORS_EXPOSE = "ETag, Location, Retry-After, X-Request-ID"

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition (unauthenticated, like /healthz: keep it off public ingress)."""
    for state, count in operation_counts(runtime()).items():
        OPERATIONS.labels(state=state).set(count)
    FOLLOWING.set(following_count(runtime()))
    body, content_type = render()
    return Response(body, content_type=content_type)


def register_observability(app: Flask) -> None:
    """Install the hooks; the request-id hook runs before every other one."""

    def _start() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)
        g.started = time.perf_counter()

    app.before_request_funcs.setdefault(None, []).insert(0, _start)

    @app.after_request
    def _finish(response: Response) -> Response:
        started = g.get("started")
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        _cors(app, response)
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)

    app.register_blueprint(bp)
    app.register_blueprint(
        get_swaggerui_blueprint(
            "/docs",
            "/openapi.yaml",
            config={"app_name": "AML monitoring control plane", "persistAuthorization": True},
        )
    )


def _cors(app: Flask, response: Response) -> None:
    """CORS for browser portals: only origins on the allow-list (none by default)."""
    origin = request.headers.get("Origin")
    allowed = runtime().settings.cors_allowed_origins
    if not origin or origin not in allowed:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
    response.headers.add("Vary", "Origin")
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
