"""Tenants: the customers whose Azure estate this service manages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select

from service.db.models import ApiKey, Tenant, Workspace
from service.domain.access import Role
from service.domain.etags import etag_for
from service.errors import Conflict, Forbidden
from service.services import audit
from service.services.context import CallContext
from service.services.lookup import apply_changes, check_if_match, visible_tenant
from service.services.pagination import Page, PageRequest, paginate
from service.services.runtime import Runtime


@dataclass(frozen=True)
class TenantView:
    id: str
    slug: str
    display_name: str
    entra_tenant_id: str
    created_at: datetime
    updated_at: datetime
    etag: str


def view(t: Tenant) -> TenantView:
    return TenantView(
        id=t.id,
        slug=t.slug,
        display_name=t.display_name,
        entra_tenant_id=t.entra_tenant_id,
        created_at=t.created_at,
        updated_at=t.updated_at,
        etag=etag_for(t.version),
    )


def create_tenant(rt: Runtime, ctx: CallContext, data: dict[str, Any]) -> TenantView:
    with rt.uow() as uow:
        ctx.require(Role.ADMIN)
        if not ctx.principal.is_global:
            raise Forbidden("a tenant-bound key cannot create tenants")
        if uow.session.scalar(select(exists().where(Tenant.slug == data["slug"]))):
            raise Conflict(f"tenant '{data['slug']}' already exists")
        tenant = Tenant(
            slug=data["slug"],
            display_name=data["display_name"],
            entra_tenant_id=data["entra_tenant_id"].lower(),
        )
        uow.session.add(tenant)
        uow.flush()
        result = view(tenant)
        audit.record(
            uow,
            ctx,
            action="tenant.create",
            target_type="tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            after=result,
        )
        uow.commit()
        return result


def get_tenant(rt: Runtime, ctx: CallContext, slug: str) -> TenantView:
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        return view(visible_tenant(uow, ctx.principal, slug))


def list_tenants(rt: Runtime, ctx: CallContext, page: PageRequest) -> Page[TenantView]:
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        stmt = select(Tenant)
        if ctx.principal.tenant_id is not None:
            stmt = stmt.where(Tenant.id == ctx.principal.tenant_id)
        rows, cursor = paginate(uow.session, stmt, Tenant.id, page)
        return Page([view(t) for t in rows], cursor)


def update_tenant(
    rt: Runtime, ctx: CallContext, slug: str, changes: dict[str, Any], if_match: str | None
) -> TenantView:
    with rt.uow() as uow:
        tenant = visible_tenant(uow, ctx.principal, slug)
        ctx.require(Role.ADMIN)
        check_if_match(if_match, tenant.version)
        before = view(tenant)
        if "entra_tenant_id" in changes:
            changes = {**changes, "entra_tenant_id": changes["entra_tenant_id"].lower()}
            # The Entra tenant decides whose Azure resources the tenant's tokens may reach (every
            # token's tid must match it): re-pointing it is the operator's decision, not the
            # tenant's.
            if changes["entra_tenant_id"] != tenant.entra_tenant_id and not ctx.principal.is_global:
                raise Forbidden("only a global admin may change a tenant's entra_tenant_id")
        if not apply_changes(tenant, changes, ("display_name", "entra_tenant_id")):
            return before
        uow.flush()
        after = view(tenant)
        audit.record(
            uow,
            ctx,
            action="tenant.update",
            target_type="tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            before=before,
            after=after,
        )
        uow.commit()
        return after


def delete_tenant(rt: Runtime, ctx: CallContext, slug: str, if_match: str | None) -> None:
    """Delete an empty tenant. Its workspaces must be deleted first; its API keys go with it."""
    with rt.uow() as uow:
        tenant = visible_tenant(uow, ctx.principal, slug)
        ctx.require(Role.ADMIN)
        if not ctx.principal.is_global:
            raise Forbidden("a tenant-bound key cannot delete its tenant")
        check_if_match(if_match, tenant.version)
        if uow.session.scalar(select(exists().where(Workspace.tenant_id == tenant.id))):
            raise Conflict(f"tenant '{slug}' still has workspaces; delete them first")
        before = view(tenant)
        key_ids = uow.session.scalars(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id)).all()
        for key_id in key_ids:
            audit.record(
                uow,
                ctx,
                action="api_key.delete",
                target_type="api_key",
                target_id=key_id,
                tenant_id=tenant.id,
            )
        uow.session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant.id))
        uow.session.delete(tenant)
        audit.record(
            uow,
            ctx,
            action="tenant.delete",
            target_type="tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            before=before,
        )
        uow.commit()
        rt.access_cache.forget_all()  # its keys stop working at once, in every process
