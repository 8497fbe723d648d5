"""Per-request plumbing: authentication and contract validation (request ids: observability)."""

from __future__ import annotations

import io
import re
from functools import partial

from flask import Flask, Response, current_app, g, request

from service.api import bodies
from service.api.openapi import OpenApiContract, ValidatedRequest
from service.domain.azure_errors import is_loganalytics_path
from service.errors import PayloadTooLarge, Unauthorized
from service.services.runtime import Runtime

_RULE_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["amlcp.runtime"]
    return rt


def contract() -> OpenApiContract:
    c: OpenApiContract = current_app.extensions["amlcp.contract"]
    return c


def openapi_template(rule: str) -> str:
    """``/v1/tenants/<tenant>`` -> ``/v1/tenants/{tenant}``."""
    return _RULE_PARAM.sub(r"{\1}", rule)


def register_hooks(app: Flask) -> None:
    @app.before_request
    def _bound_unsized_body() -> None:
        # A body without Content-Length (chunked): werkzeug would stop reading at the limit
        # and hand the view the first MAX_BODY_BYTES as if that were all. Count it here: 413.
        environ = request.environ
        if request.content_length is not None or not environ.get("wsgi.input_terminated"):
            return
        limit = runtime().settings.max_body_bytes
        raw = environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))

    @app.before_request
    def _authenticate() -> None:
        # /loganalytics/ is the Azure-compatible endpoint: the bearer token is the API key too.
        if not request.path.startswith(("/v1/", "/loganalytics/")) or request.method == "OPTIONS":
            return
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("send 'Authorization: Bearer <api key>'")
        rt = runtime()
        settings = rt.settings
        g.principal = rt.access_cache.authenticate(
            partial(rt.uow, read_only=True),
            secret.strip(),
            settings.api_key_pepper,
            settings.api_key_cache_ttl_s,
            scope=rt.database.url,
        )

    @app.before_request
    def _validate() -> None:
        rule = request.url_rule
        if rule is None or request.method == "OPTIONS":
            return
        method = "get" if request.method == "HEAD" else request.method.lower()
        query = request.args.to_dict(flat=False)
        # Every route, the same rule: text no database can store is refused before anything runs
        # (a log query would otherwise run and its audit record fail to be written).
        bodies.check_text(bodies.request_text(request.view_args or {}, query))
        if is_loganalytics_path(request.path) and method in ("post", "put", "patch"):
            raw = request.get_data(cache=True)
            # Azure's contract, not ours: only the body's JSON-ness and its text are checked here.
            g.json_body = bodies.parse_json(raw) if raw else None
        g.valid = contract().validate(
            openapi_template(rule.rule),
            method,
            path_args={k: str(v) for k, v in (request.view_args or {}).items()},
            query=query,
            headers=request.headers,  # type: ignore[arg-type]
            content_type=request.content_type,
            body=request.get_data(cache=True) if method in ("post", "put", "patch") else b"",
        )

    @app.after_request
    def _stamp(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def valid() -> ValidatedRequest:
    v: ValidatedRequest = g.valid
    return v
