"""Retention policies at the tenant and workspace scope: the operator's use cases.

Setting or removing a policy queues repairs (``retention.queue_repairs``) for the workspaces
under it in the same transaction; ``apply_retention`` queues them on demand. Scopes, their rows
and If-Match are ``policy_scope``'s, shared with the monitoring policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.db.models import RetentionPolicy
from service.domain.access import Role
from service.domain.etags import etag_for
from service.domain.retention import resolve, unsupported_tables, validate_spec
from service.domain.states import PolicyMode
from service.errors import NotFound, ValidationFailed
from service.services import audit
from service.services.context import CallContext
from service.services.lookup import check_if_match, visible_tenant, visible_workspace
from service.services.operations import OperationView, operation_views
from service.services.policy_scope import PolicyScope, check_replace, find, scope_of
from service.services.retention import queue_repairs, spec_of
from service.services.runtime import Runtime

POLICY_FIELDS = ("destination_resource_id", "tables", "enabled", "mode", "remove_unmanaged")


@dataclass(frozen=True)
class RetentionPolicyView:
    scope: str
    tenant: str
    workspace: str | None
    destination_resource_id: str | None
    tables: list[str] | None
    enabled: bool | None
    mode: PolicyMode | None
    remove_unmanaged: bool | None
    unsupported_tables: dict[str, str]
    created_at: datetime
    updated_at: datetime
    etag: str


@dataclass(frozen=True)
class RetentionChange:
    policy: RetentionPolicyView | None
    operations: list[OperationView]


def _view(p: RetentionPolicy, scope: PolicyScope) -> RetentionPolicyView:
    spec = spec_of(p)
    assert spec is not None
    flagged = (
        unsupported_tables(resolve(spec, None)) if p.tables and p.destination_resource_id else {}
    )
    return RetentionPolicyView(
        scope=p.scope,
        tenant=scope.tenant.slug,
        workspace=scope.workspace.slug if scope.workspace else None,
        destination_resource_id=p.destination_resource_id,
        tables=list(p.tables) if p.tables is not None else None,
        enabled=p.enabled,
        mode=PolicyMode(p.mode) if p.mode else None,
        remove_unmanaged=p.remove_unmanaged,
        unsupported_tables=flagged,
        created_at=p.created_at,
        updated_at=p.updated_at,
        etag=etag_for(p.version),
    )


def get_retention_policy(
    rt: Runtime, ctx: CallContext, tenant: str, workspace: str | None = None
) -> RetentionPolicyView:
    with rt.uow(read_only=True) as uow:
        scope = scope_of(uow, ctx, tenant, workspace)
        ctx.require(Role.READER)
        policy = find(uow.session, RetentionPolicy, scope)
        if policy is None:
            raise NotFound(f"no retention policy is set at this {scope.name} scope")
        return _view(policy, scope)


def put_retention_policy(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str | None,
    data: dict[str, Any],
    if_match: str | None,
    *,
    max_attempts: int | None = None,
) -> tuple[RetentionChange, bool]:
    """Create or replace a scope's retention policy (omitted fields inherit)."""
    attempts = rt.settings.reconciler.max_attempts if max_attempts is None else max_attempts
    with rt.uow() as uow:
        scope = scope_of(uow, ctx, tenant, workspace)
        ctx.require(Role.OPERATOR)
        errors = validate_spec(data)
        if errors:
            raise ValidationFailed("the retention policy is not valid", errors)
        policy = find(uow.session, RetentionPolicy, scope)
        check_replace(policy.version if policy is not None else None, if_match)
        before = _view(policy, scope) if policy is not None else None
        created = policy is None
        if policy is None:
            policy = RetentionPolicy(**scope.provenance())
            uow.session.add(policy)
        for name in POLICY_FIELDS:
            value = data.get(name)
            if getattr(policy, name) != value:
                setattr(policy, name, list(value) if isinstance(value, list | tuple) else value)
        uow.flush()
        after = _view(policy, scope)
        queued = queue_repairs(
            uow.session,
            scope.tenant.id,
            [scope.workspace.id] if scope.workspace else None,
            cause="policy_change",
            created_by=ctx.principal.key_id,
            max_attempts=attempts,
        )
        operations = operation_views(uow.session, queued)
        audit.record(
            uow,
            ctx,
            action="retention_policy.put",
            target_type="retention_policy",
            target_id=policy.id,
            tenant_id=scope.tenant.id,
            before=before,
            after={"policy": after, "operations": [o.id for o in operations]},
        )
        uow.commit()
        return RetentionChange(after, operations), created


def delete_retention_policy(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str | None,
    if_match: str | None,
    *,
    max_attempts: int | None = None,
) -> RetentionChange:
    """Remove a scope's policy. Rules already in Azure stay: nothing is deleted implicitly."""
    attempts = rt.settings.reconciler.max_attempts if max_attempts is None else max_attempts
    with rt.uow() as uow:
        scope = scope_of(uow, ctx, tenant, workspace)
        ctx.require(Role.OPERATOR)
        policy = find(uow.session, RetentionPolicy, scope)
        if policy is None:
            raise NotFound(f"no retention policy is set at this {scope.name} scope")
        check_if_match(if_match, policy.version)
        before = _view(policy, scope)
        uow.session.delete(policy)
        uow.flush()
        queued = queue_repairs(
            uow.session,
            scope.tenant.id,
            [scope.workspace.id] if scope.workspace else None,
            cause="policy_change",
            created_by=ctx.principal.key_id,
            max_attempts=attempts,
        )
        operations = operation_views(uow.session, queued)
        audit.record(
            uow,
            ctx,
            action="retention_policy.delete",
            target_type="retention_policy",
            target_id=policy.id,
            tenant_id=scope.tenant.id,
            before=before,
            after={"operations": [o.id for o in operations]},
        )
        uow.commit()
        return RetentionChange(None, operations)


def apply_retention(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str | None,
    *,
    max_attempts: int | None = None,
) -> list[OperationView]:
    """Queue repairs now for drifted workspaces (audit mode included: an operator asked)."""
    attempts = rt.settings.reconciler.max_attempts if max_attempts is None else max_attempts
    with rt.uow() as uow:
        if workspace is not None:
            ws = visible_workspace(uow, ctx.principal, tenant, workspace)
            tenant_id, ids = ws.tenant_id, [ws.id]
        else:
            tenant_id, ids = visible_tenant(uow, ctx.principal, tenant).id, None
        ctx.require(Role.OPERATOR)
        queued = queue_repairs(
            uow.session,
            tenant_id,
            ids,
            cause="manual",
            created_by=ctx.principal.key_id,
            max_attempts=attempts,
            manual=True,
        )
        views = operation_views(uow.session, queued)
        audit.record(
            uow,
            ctx,
            action="retention.apply",
            target_type="workspace" if workspace else "tenant",
            target_id=ids[0] if ids else tenant_id,
            tenant_id=tenant_id,
            after={"operations": [v.id for v in views]},
        )
        uow.commit()
        return views
