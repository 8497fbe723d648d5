"""Workspaces: the AML workspaces registered under a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select

from service.db.models import Operation, Tenant, Workspace
from service.db.session import UnitOfWork
from service.domain.access import Role
from service.domain.etags import etag_for
from service.domain.states import ACTIVE_STATES
from service.errors import Conflict, SubscriptionNotInTenant
from service.services import audit
from service.services.azure_credentials import credential_of, credential_spec
from service.services.context import CallContext
from service.services.lookup import (
    apply_changes,
    check_if_match,
    visible_tenant,
    visible_workspace,
)
from service.services.pagination import Page, PageRequest, paginate
from service.services.runtime import Runtime

MUTABLE_FIELDS = ("display_name", "app_insights_resource_id", "log_analytics_workspace_id")


@dataclass(frozen=True)
class WorkspaceView:
    id: str
    tenant: str
    slug: str
    display_name: str | None
    subscription_id: str
    resource_group: str
    workspace_name: str
    app_insights_resource_id: str | None
    log_analytics_workspace_id: str | None
    created_at: datetime
    updated_at: datetime
    etag: str


def view(ws: Workspace, tenant_slug: str) -> WorkspaceView:
    return WorkspaceView(
        id=ws.id,
        tenant=tenant_slug,
        slug=ws.slug,
        display_name=ws.display_name,
        subscription_id=ws.subscription_id,
        resource_group=ws.resource_group,
        workspace_name=ws.workspace_name,
        app_insights_resource_id=ws.app_insights_resource_id,
        log_analytics_workspace_id=ws.log_analytics_workspace_id,
        created_at=ws.created_at,
        updated_at=ws.updated_at,
        etag=etag_for(ws.version),
    )


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for guid_field in ("subscription_id", "log_analytics_workspace_id"):
        if out.get(guid_field):
            out[guid_field] = out[guid_field].lower()
    return out


def register_workspace(
    rt: Runtime, ctx: CallContext, tenant: str, data: dict[str, Any]
) -> WorkspaceView:
    """Register a workspace, once the tenant's credential proves the subscription is its own.

    The tenant's credential must reach the subscription in Resource Manager, and ARM must name
    the tenant's registered Entra tenant as the subscription's tenant: a credential that can
    reach someone else's subscription (a guest account, a shared service identity) does not
    make it this tenant's.
    """
    with rt.uow() as uow:
        t = visible_tenant(uow, ctx.principal, tenant)
        ctx.require(Role.ADMIN)
        check_subscription(rt, uow, t, _normalise(data)["subscription_id"])
        created = _record_workspace(uow, ctx, tenant, data)
    rt.access_cache.forget_all()  # log queries to its ids find it in every process at once
    return created


def check_subscription(rt: Runtime, uow: UnitOfWork, tenant: Tenant, subscription_id: str) -> None:
    """Raise unless ARM, asked with the tenant's credential, puts the subscription in the
    tenant's Entra tenant."""
    cred = credential_of(uow, tenant)
    spec = credential_spec(rt, tenant, cred)
    owner = rt.identity.subscription_tenant(spec, subscription_id)
    if owner is None:
        raise SubscriptionNotInTenant(
            f"the tenant's credential cannot reach subscription '{subscription_id}'"
        )
    if owner != tenant.entra_tenant_id.lower():
        raise SubscriptionNotInTenant(
            f"subscription '{subscription_id}' belongs to Entra tenant '{owner or 'unknown'}', "
            f"not to this tenant's '{tenant.entra_tenant_id}'"
        )


def create_workspace(
    rt: Runtime, ctx: CallContext, tenant: str, data: dict[str, Any]
) -> WorkspaceView:
    """Record a workspace (no Azure check: ``register_workspace`` is the API's use case)."""
    with rt.uow() as uow:
        created = _record_workspace(uow, ctx, tenant, data)
    rt.access_cache.forget_all()
    return created


def _record_workspace(
    uow: UnitOfWork, ctx: CallContext, tenant: str, data: dict[str, Any]
) -> WorkspaceView:
    """Insert the workspace and commit (in the caller's unit of work)."""
    t = visible_tenant(uow, ctx.principal, tenant)
    ctx.require(Role.ADMIN)
    data = _normalise(data)
    taken = uow.session.scalar(
        select(exists().where(Workspace.tenant_id == t.id, Workspace.slug == data["slug"]))
    )
    if taken:
        raise Conflict(f"workspace '{data['slug']}' already exists in tenant '{tenant}'")
    same_aml = uow.session.scalar(
        select(Workspace.slug).where(
            Workspace.tenant_id == t.id,
            Workspace.subscription_id == data["subscription_id"],
            Workspace.resource_group == data["resource_group"],
            Workspace.workspace_name == data["workspace_name"],
        )
    )
    if same_aml is not None:
        raise Conflict(f"this AML workspace is already registered as '{same_aml}'")
    ws = Workspace(tenant_id=t.id, **data)
    uow.session.add(ws)
    uow.flush()
    result = view(ws, t.slug)
    audit.record(
        uow,
        ctx,
        action="workspace.create",
        target_type="workspace",
        target_id=ws.id,
        tenant_id=t.id,
        after=result,
    )
    uow.commit()
    return result


def get_workspace(rt: Runtime, ctx: CallContext, tenant: str, slug: str) -> WorkspaceView:
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        return view(visible_workspace(uow, ctx.principal, tenant, slug), tenant)


def list_workspaces(
    rt: Runtime, ctx: CallContext, tenant: str, page: PageRequest
) -> Page[WorkspaceView]:
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        t = visible_tenant(uow, ctx.principal, tenant)
        rows, cursor = paginate(
            uow.session, select(Workspace).where(Workspace.tenant_id == t.id), Workspace.id, page
        )
        return Page([view(ws, t.slug) for ws in rows], cursor)


def update_workspace(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    slug: str,
    changes: dict[str, Any],
    if_match: str | None,
) -> WorkspaceView:
    with rt.uow() as uow:
        ws = visible_workspace(uow, ctx.principal, tenant, slug)
        ctx.require(Role.ADMIN)
        check_if_match(if_match, ws.version)
        before = view(ws, tenant)
        if not apply_changes(ws, _normalise(changes), MUTABLE_FIELDS):
            return before
        uow.flush()
        after = view(ws, tenant)
        audit.record(
            uow,
            ctx,
            action="workspace.update",
            target_type="workspace",
            target_id=ws.id,
            tenant_id=ws.tenant_id,
            before=before,
            after=after,
        )
        uow.commit()
    # Its Log Analytics and App Insights ids decide what its log queries reach: every process
    # looks them up again (the access cache).
    rt.access_cache.forget_all()
    return after


def delete_workspace(
    rt: Runtime, ctx: CallContext, tenant: str, slug: str, if_match: str | None
) -> None:
    """Delete a workspace with its discovered endpoints and its policies (not its audit trail)."""
    with rt.uow() as uow:
        ws = visible_workspace(uow, ctx.principal, tenant, slug)
        ctx.require(Role.ADMIN)
        check_if_match(if_match, ws.version)
        busy = uow.session.scalar(
            select(
                exists().where(Operation.workspace_id == ws.id, Operation.state.in_(ACTIVE_STATES))
            )
        )
        if busy:
            raise Conflict(
                f"workspace '{slug}' has operations in progress; cancel or wait for them"
            )
        before = view(ws, tenant)
        uow.session.delete(ws)
        audit.record(
            uow,
            ctx,
            action="workspace.delete",
            target_type="workspace",
            target_id=ws.id,
            tenant_id=ws.tenant_id,
            before=before,
        )
        uow.commit()
    rt.access_cache.forget_all()  # no log query reaches it any more, in any process
