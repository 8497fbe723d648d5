"""The audit trail: written in the same transaction as the change it records.

What a caller sees of an event depends on its role (README, "Audit visibility"): everyone who
may read the trail sees who did what to which object and when; the details (``before`` and
``after``) are shown to admins, to the key that made the event, and to operators for the
configuration they can read themselves (tenants, workspaces, endpoints, policies, operations),
never to readers or operators for API keys, credentials, device logins or others' log queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from service.db.models import AuditEvent
from service.db.session import UnitOfWork
from service.domain.access import Principal, Role
from service.domain.jsonable import jsonable
from service.services import audit_queue
from service.services.audit_queue import require_storable
from service.services.context import CallContext
from service.services.lookup import visible_tenant
from service.services.pagination import Page, PageRequest, paginate

if TYPE_CHECKING:  # runtime -> api_keys -> audit: the type only, no import cycle
    from service.services.runtime import Runtime


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
    details_hidden: bool


# Targets whose details only admins (and the acting key) may see: they hold key prefixes,
# credential identities, sign-in state. Log query events hold another caller's query text.
_ADMIN_ONLY_TARGETS = frozenset({"api_key", "credential", "device_login"})
_ADMIN_ONLY_ACTIONS = ("api_key.", "credential.", "logs.")


def details_visible(principal: Principal, actor_key_id: str, action: str, target: str) -> bool:
    """Whether ``principal`` may see an event's ``before``/``after`` (the visibility rule)."""
    if principal.has_role(Role.ADMIN) or actor_key_id == principal.key_id:
        return True
    if not principal.has_role(Role.OPERATOR):
        return False
    return target not in _ADMIN_ONLY_TARGETS and not action.startswith(_ADMIN_ONLY_ACTIONS)


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
    """Add an audit event to the current transaction. ``before``/``after`` must hold no secrets.

    An event that could not be stored (text with a lone surrogate or NUL) fails the change it
    records with a 400 before the commit; the API refuses such input at the edge already.
    """
    before = jsonable(before) if before is not None else None
    after = jsonable(after) if after is not None else None
    require_storable({"before": before, "after": after, "target_id": target_id}, "audit")
    uow.session.add(
        AuditEvent(
            actor_key_id=ctx.principal.key_id,
            action=action,
            tenant_id=tenant_id,
            target_type=target_type,
            target_id=target_id,
            request_id=ctx.request_id,
            before=before,
            after=after,
        )
    )


def list_events(
    rt: Runtime,
    ctx: CallContext,
    page: PageRequest,
    *,
    tenant: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
) -> Page[AuditEventView]:
    """Newest first. A tenant-bound key sees only its tenant's events."""
    # Query audit events are written by a background thread: this process's are written first.
    audit_queue.flush(rt)
    with rt.uow(read_only=True) as uow:
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
        rows, cursor = paginate(
            uow.session, stmt, AuditEvent.id, page, key_type=int, descending=True
        )
        return Page([_view(r, principal) for r in rows], cursor)


def _view(e: AuditEvent, principal: Principal) -> AuditEventView:
    shown = details_visible(principal, e.actor_key_id, e.action, e.target_type)
    return AuditEventView(
        id=e.id,
        occurred_at=e.occurred_at,
        actor_key_id=e.actor_key_id,
        action=e.action,
        tenant_id=e.tenant_id,
        target_type=e.target_type,
        target_id=e.target_id,
        request_id=e.request_id,
        before=e.before if shown else None,
        after=e.after if shown else None,
        details_hidden=not shown and (e.before is not None or e.after is not None),
    )
