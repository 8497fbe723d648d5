"""Endpoint routes (read-only: discovery writes them)."""

from __future__ import annotations

from flask import Blueprint, Response

from service.api.hooks import runtime, valid
from service.api.responses import call_context, json_response, page_request, page_response
from service.services import endpoints

bp = Blueprint("endpoints", __name__)

ENDPOINTS = "/v1/tenants/<tenant>/workspaces/<workspace>/endpoints"


@bp.get(ENDPOINTS)
def list_endpoints(tenant: str, workspace: str) -> Response:
    include_vanished = bool(valid().query.get("include_vanished", False))
    page = endpoints.list_endpoints(
        runtime(),
        call_context(),
        tenant,
        workspace,
        page_request(),
        include_vanished=include_vanished,
    )
    return page_response(page)


@bp.get(ENDPOINTS + "/<endpoint>")
def get_endpoint(tenant: str, workspace: str, endpoint: str) -> Response:
    ep = endpoints.get_endpoint(runtime(), call_context(), tenant, workspace, endpoint)
    return json_response(ep, etag=ep.etag)
