"""The audit trail: written in the same transaction as the change it records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from service.db.models import AuditEvent
from service.db.session import UnitOfWork
from service.domain.access import Role
from service.domain.jsonable import jsonable
from service.services.context import CallContext
from service.services.lookup import visible_tenant
from service.services.pagination import Page, PageRequest, paginate


@dataclass(frozen=True)
class AuditEventView:
    id: int
    occurred_at: datetime
    actor_key_id: str
    action: str
    tenant_id: str | None
    target_type: str
    target_id: str
    request_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def record(
    uow: UnitOfWork,
    ctx: CallContext,
    *,
    action: str,
    target_type: str,
    target_id: str,
    tenant_id: str | None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Add an audit event to the current transaction. ``before``/``after`` must hold no secrets."""
    uow.session.add(
        AuditEvent(
            actor_key_id=ctx.principal.key_id,
            action=action,
            tenant_id=tenant_id,
            target_type=target_type,
            target_id=target_id,
            request_id=ctx.request_id,
            before=jsonable(before) if before is not None else None,
            after=jsonable(after) if after is not None else None,
        )
    )


def list_events(
    uow: UnitOfWork,
    ctx: CallContext,
    page: PageRequest,
    *,
    tenant: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
) -> Page[AuditEventView]:
    """Newest first. A tenant-bound key sees only its tenant's events."""
    ctx.require(Role.READER)
    stmt = select(AuditEvent)
    principal = ctx.principal
    if tenant is not None:
        stmt = stmt.where(AuditEvent.tenant_id == visible_tenant(uow, principal, tenant).id)
    elif principal.tenant_id is not None:
        stmt = stmt.where(AuditEvent.tenant_id == principal.tenant_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == target_id)
    rows, cursor = paginate(uow.session, stmt, AuditEvent.id, page, key_type=int, descending=True)
    return Page([_view(r) for r in rows], cursor)


def _view(e: AuditEvent) -> AuditEventView:
    return AuditEventView(
        id=e.id,
        occurred_at=e.occurred_at,
        actor_key_id=e.actor_key_id,
        action=e.action,
        tenant_id=e.tenant_id,
        target_type=e.target_type,
        target_id=e.target_id,
        request_id=e.request_id,
        before=e.before,
        after=e.after,
    )
