"""Tenant and workspace routes: parse, call one use case, serialize."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from service.api.hooks import runtime, valid
from service.api.responses import (
    call_context,
    if_match,
    json_response,
    no_content,
    page_request,
    page_response,
)
from service.services import tenants, workspaces

bp = Blueprint("tenants", __name__)

TENANT = "/v1/tenants/<tenant>"
WORKSPACE = "/v1/tenants/<tenant>/workspaces/<workspace>"


@bp.get("/v1/tenants")
def list_tenants() -> Response:
    return page_response(tenants.list_tenants(runtime(), call_context(), page_request()))


@bp.post("/v1/tenants")
def create_tenant() -> Response:
    t = tenants.create_tenant(runtime(), call_context(), valid().body)
    return json_response(t, 201, etag=t.etag, location=url_for("tenants.get_tenant", tenant=t.slug))


@bp.get(TENANT)
def get_tenant(tenant: str) -> Response:
    t = tenants.get_tenant(runtime(), call_context(), tenant)
    return json_response(t, etag=t.etag)


@bp.patch(TENANT)
def update_tenant(tenant: str) -> Response:
    t = tenants.update_tenant(runtime(), call_context(), tenant, valid().body, if_match())
    return json_response(t, etag=t.etag)


@bp.delete(TENANT)
def delete_tenant(tenant: str) -> Response:
    tenants.delete_tenant(runtime(), call_context(), tenant, if_match())
    return no_content()


@bp.get(TENANT + "/workspaces")
def list_workspaces(tenant: str) -> Response:
    return page_response(
        workspaces.list_workspaces(runtime(), call_context(), tenant, page_request())
    )


@bp.post(TENANT + "/workspaces")
def create_workspace(tenant: str) -> Response:
    ws = workspaces.register_workspace(runtime(), call_context(), tenant, valid().body)
    location = url_for("tenants.get_workspace", tenant=tenant, workspace=ws.slug)
    return json_response(ws, 201, etag=ws.etag, location=location)


@bp.get(WORKSPACE)
def get_workspace(tenant: str, workspace: str) -> Response:
    ws = workspaces.get_workspace(runtime(), call_context(), tenant, workspace)
    return json_response(ws, etag=ws.etag)


@bp.patch(WORKSPACE)
def update_workspace(tenant: str, workspace: str) -> Response:
    ws = workspaces.update_workspace(
        runtime(), call_context(), tenant, workspace, valid().body, if_match()
    )
    return json_response(ws, etag=ws.etag)


@bp.delete(WORKSPACE)
def delete_workspace(tenant: str, workspace: str) -> Response:
    workspaces.delete_workspace(runtime(), call_context(), tenant, workspace, if_match())
    return no_content()
