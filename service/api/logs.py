"""Log query routes: KQL against a workspace's telemetry, and the telemetry views of an endpoint."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response

from service.api.hooks import runtime, valid
from service.api.responses import call_context
from service.domain.jsonable import jsonable
from service.services import log_queries

bp = Blueprint("logs", __name__)

WORKSPACE = "/v1/tenants/<tenant>/workspaces/<workspace>"
ENDPOINT = WORKSPACE + "/endpoints/<endpoint>"


def json_response(body: dict[str, Any]) -> Response:
    """Like ``responses.json_response``, but walks only what json cannot encode itself.

    Query results are mostly plain lists of plain values: converting them element by element
    (``jsonable``) cost more than encoding them.
    """
    return Response(json.dumps(body, default=jsonable), mimetype="application/json")


@bp.post(WORKSPACE + "/logs/query")
def query_logs(tenant: str, workspace: str) -> Response:
    result = log_queries.run_query(runtime(), call_context(), tenant, workspace, valid().body)
    return json_response(result)


def _view(tenant: str, workspace: str, endpoint: str, view: str) -> Response:
    result = log_queries.telemetry_view(
        runtime(), call_context(), tenant, workspace, endpoint, view, dict(valid().query)
    )
    return json_response(result)


@bp.get(ENDPOINT + "/telemetry/requests")
def request_telemetry(tenant: str, workspace: str, endpoint: str) -> Response:
    return _view(tenant, workspace, endpoint, "requests")


@bp.get(ENDPOINT + "/telemetry/dependencies")
def dependency_telemetry(tenant: str, workspace: str, endpoint: str) -> Response:
    return _view(tenant, workspace, endpoint, "dependencies")


@bp.get(ENDPOINT + "/telemetry/exceptions")
def exception_telemetry(tenant: str, workspace: str, endpoint: str) -> Response:
    return _view(tenant, workspace, endpoint, "exceptions")


@bp.get(ENDPOINT + "/telemetry/traces")
def trace_telemetry(tenant: str, workspace: str, endpoint: str) -> Response:
    return _view(tenant, workspace, endpoint, "traces")
