"""Monitoring routes: policies at three scopes, discovery, apply, compliance, operations, logs."""

from __future__ import annotations

from flask import Blueprint, Response

from service.api.hooks import runtime, valid
from service.api.responses import (
    call_context,
    if_match,
    json_response,
    page_request,
    page_response,
)
from service.services import compliance, discovery, operations, policies

bp = Blueprint("monitoring", __name__)

TENANT = "/v1/tenants/<tenant>"
WORKSPACE = TENANT + "/workspaces/<workspace>"
ENDPOINT = WORKSPACE + "/endpoints/<endpoint>"


# -- policies (one set of handlers for the three scopes) ----------------------------------------
def _get_policy(tenant: str, workspace: str | None, endpoint: str | None) -> Response:
    view = policies.get_policy(runtime(), call_context(), tenant, workspace, endpoint)
    return json_response(view, etag=view.etag)


def _put_policy(tenant: str, workspace: str | None, endpoint: str | None) -> Response:
    change, _ = policies.put_policy(
        runtime(), call_context(), tenant, workspace, endpoint, valid().body, if_match()
    )
    assert change.policy is not None
    # 202: the policy is stored; the operations it queued run asynchronously.
    return json_response(change, 202, etag=change.policy.etag)


def _delete_policy(tenant: str, workspace: str | None, endpoint: str | None) -> Response:
    change = policies.delete_policy(
        runtime(), call_context(), tenant, workspace, endpoint, if_match()
    )
    return json_response(change, 202)


@bp.get(TENANT + "/policy")
def get_tenant_policy(tenant: str) -> Response:
    return _get_policy(tenant, None, None)


@bp.put(TENANT + "/policy")
def put_tenant_policy(tenant: str) -> Response:
    return _put_policy(tenant, None, None)


@bp.delete(TENANT + "/policy")
def delete_tenant_policy(tenant: str) -> Response:
    return _delete_policy(tenant, None, None)


@bp.get(WORKSPACE + "/policy")
def get_workspace_policy(tenant: str, workspace: str) -> Response:
    return _get_policy(tenant, workspace, None)


@bp.put(WORKSPACE + "/policy")
def put_workspace_policy(tenant: str, workspace: str) -> Response:
    return _put_policy(tenant, workspace, None)


@bp.delete(WORKSPACE + "/policy")
def delete_workspace_policy(tenant: str, workspace: str) -> Response:
    return _delete_policy(tenant, workspace, None)


@bp.get(ENDPOINT + "/policy")
def get_endpoint_policy(tenant: str, workspace: str, endpoint: str) -> Response:
    return _get_policy(tenant, workspace, endpoint)


@bp.put(ENDPOINT + "/policy")
def put_endpoint_policy(tenant: str, workspace: str, endpoint: str) -> Response:
    return _put_policy(tenant, workspace, endpoint)


@bp.delete(ENDPOINT + "/policy")
def delete_endpoint_policy(tenant: str, workspace: str, endpoint: str) -> Response:
    return _delete_policy(tenant, workspace, endpoint)


# -- discovery, apply, compliance -------------------------------------------------------------
@bp.post(WORKSPACE + "/sync")
def sync_workspace(tenant: str, workspace: str) -> Response:
    return json_response(discovery.sync_workspace(runtime(), call_context(), tenant, workspace))


def _apply(tenant: str, workspace: str | None = None, endpoint: str | None = None) -> Response:
    queued = operations.apply(
        runtime(), call_context(), tenant, workspace=workspace, endpoint=endpoint
    )
    return json_response({"operations": queued}, 202)


@bp.post(ENDPOINT + "/apply")
def apply_endpoint(tenant: str, workspace: str, endpoint: str) -> Response:
    return _apply(tenant, workspace, endpoint)


@bp.post(WORKSPACE + "/apply")
def apply_workspace(tenant: str, workspace: str) -> Response:
    return _apply(tenant, workspace)


@bp.post(TENANT + "/apply")
def apply_tenant(tenant: str) -> Response:
    return _apply(tenant)


@bp.get(TENANT + "/compliance")
def get_compliance(tenant: str) -> Response:
    return json_response(compliance.tenant_compliance(runtime(), call_context(), tenant))


@bp.get(ENDPOINT + "/container-logs")
def get_container_logs(tenant: str, workspace: str, endpoint: str) -> Response:
    tail = int(valid().query.get("tail", 100))
    logs = discovery.container_logs(runtime(), call_context(), tenant, workspace, endpoint, tail)
    return json_response(logs)


# -- operations --------------------------------------------------------------------------------
@bp.get("/v1/operations")
def list_operations() -> Response:
    q = valid().query
    page = operations.list_operations(
        runtime(), call_context(), page_request(), tenant=q.get("tenant"), state=q.get("state")
    )
    return page_response(page)


@bp.get("/v1/operations/<operation_id>")
def get_operation(operation_id: str) -> Response:
    view = operations.get_operation(runtime(), call_context(), operation_id)
    return json_response(view, etag=view.etag)


@bp.post("/v1/operations/<operation_id>/cancel")
def cancel_operation(operation_id: str) -> Response:
    view = operations.cancel_operation(runtime(), call_context(), operation_id)
    return json_response(view, etag=view.etag)
