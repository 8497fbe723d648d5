"""Retention routes: data export policies at two scopes, discovery of export rules, apply."""

from __future__ import annotations

from flask import Blueprint, Response

from service.api.hooks import runtime, valid
from service.api.responses import call_context, if_match, json_response
from service.services import retention_compliance, retention_policies

bp = Blueprint("retention", __name__)

TENANT = "/v1/tenants/<tenant>"
WORKSPACE = TENANT + "/workspaces/<workspace>"


def _get(tenant: str, workspace: str | None) -> Response:
    view = retention_policies.get_retention_policy(runtime(), call_context(), tenant, workspace)
    return json_response(view, etag=view.etag)


def _put(tenant: str, workspace: str | None) -> Response:
    change, _ = retention_policies.put_retention_policy(
        runtime(), call_context(), tenant, workspace, valid().body, if_match()
    )
    assert change.policy is not None
    return json_response(change, 202, etag=change.policy.etag)


def _delete(tenant: str, workspace: str | None) -> Response:
    change = retention_policies.delete_retention_policy(
        runtime(), call_context(), tenant, workspace, if_match()
    )
    return json_response(change, 202)


@bp.get(TENANT + "/retention-policy")
def get_tenant_retention_policy(tenant: str) -> Response:
    return _get(tenant, None)


@bp.put(TENANT + "/retention-policy")
def put_tenant_retention_policy(tenant: str) -> Response:
    return _put(tenant, None)


@bp.delete(TENANT + "/retention-policy")
def delete_tenant_retention_policy(tenant: str) -> Response:
    return _delete(tenant, None)


@bp.get(WORKSPACE + "/retention-policy")
def get_workspace_retention_policy(tenant: str, workspace: str) -> Response:
    return _get(tenant, workspace)


@bp.put(WORKSPACE + "/retention-policy")
def put_workspace_retention_policy(tenant: str, workspace: str) -> Response:
    return _put(tenant, workspace)


@bp.delete(WORKSPACE + "/retention-policy")
def delete_workspace_retention_policy(tenant: str, workspace: str) -> Response:
    return _delete(tenant, workspace)


@bp.get(TENANT + "/retention")
def get_tenant_retention(tenant: str) -> Response:
    return json_response(
        {"workspaces": retention_compliance.tenant_retention(runtime(), call_context(), tenant)}
    )


@bp.post(WORKSPACE + "/retention/sync")
def sync_workspace_retention(tenant: str, workspace: str) -> Response:
    return json_response(
        retention_compliance.sync_retention(runtime(), call_context(), tenant, workspace)
    )


@bp.post(TENANT + "/retention/apply")
def apply_tenant_retention(tenant: str) -> Response:
    queued = retention_policies.apply_retention(runtime(), call_context(), tenant, None)
    return json_response({"operations": queued}, 202)
