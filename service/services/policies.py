"""Monitoring policies at tenant, workspace and endpoint scope.

Changing a policy re-plans the endpoints under it: drifted ones in ``enforce`` mode get an
operation in the same transaction, and the change answers with them. An endpoint policy may
name an endpoint discovery has not seen yet; it applies when the endpoint appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from service.db.models import Endpoint, Policy, WorkspaceSync
from service.db.session import UnitOfWork
from service.domain.access import Role
from service.domain.capabilities import unsupported_reason
from service.domain.etags import etag_for
from service.domain.states import PolicyMode
from service.errors import NotFound, ValidationFailed
from service.services import audit
from service.services.compliance import not_discovered_reason
from service.services.context import CallContext
from service.services.lookup import check_if_match
from service.services.operations import OperationView, operation_views
from service.services.planning import live_endpoints, plan
from service.services.policy_scope import PolicyScope, check_replace, find, scope_of
from service.services.runtime import Runtime

POLICY_FIELDS = ("app_insights", "model_data_collection", "mode", "max_parallel_updates")


@dataclass(frozen=True)
class PolicyView:
    scope: str
    tenant: str
    workspace: str | None
    endpoint: str | None
    app_insights: bool | None
    model_data_collection: bool | None
    mode: PolicyMode | None
    max_parallel_updates: int | None
    created_at: datetime
    updated_at: datetime
    etag: str


@dataclass(frozen=True)
class PolicyWarning:
    """Something the caller should know about a change that was nevertheless made."""

    code: str
    message: str


@dataclass(frozen=True)
class PolicyChange:
    """What a PUT or DELETE did: the policy now (None once deleted), the operations queued and
    warnings (an endpoint policy naming an endpoint discovery has not found)."""

    policy: PolicyView | None
    operations: list[OperationView]
    warnings: list[PolicyWarning] = field(default_factory=list)


def _view(p: Policy, scope: PolicyScope) -> PolicyView:
    return PolicyView(
        scope=p.scope,
        tenant=scope.tenant.slug,
        workspace=scope.workspace.slug if scope.workspace else None,
        endpoint=p.endpoint_name,
        app_insights=p.app_insights,
        model_data_collection=p.model_data_collection,
        mode=PolicyMode(p.mode) if p.mode else None,
        max_parallel_updates=p.max_parallel_updates,
        created_at=p.created_at,
        updated_at=p.updated_at,
        etag=etag_for(p.version),
    )


def get_policy(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str | None = None,
    endpoint: str | None = None,
) -> PolicyView:
    with rt.uow(read_only=True) as uow:
        scope = scope_of(uow, ctx, tenant, workspace, endpoint)
        ctx.require(Role.READER)
        policy = find(uow.session, Policy, scope)
        if policy is None:
            raise NotFound(f"no policy is set at this {scope.name} scope")
        return _view(policy, scope)


def put_policy(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str | None,
    endpoint: str | None,
    data: dict[str, Any],
    if_match: str | None,
    *,
    max_attempts: int | None = None,
) -> tuple[PolicyChange, bool]:
    """Create or replace a scope's policy (omitted fields inherit); returns (change, created)."""
    attempts = rt.settings.reconciler.max_attempts if max_attempts is None else max_attempts
    with rt.uow() as uow:
        scope = scope_of(uow, ctx, tenant, workspace, endpoint)
        ctx.require(Role.OPERATOR)
        policy = find(uow.session, Policy, scope)
        check_replace(policy.version if policy is not None else None, if_match)
        _refuse_unsupported(uow, scope, data)
        before = _view(policy, scope) if policy is not None else None
        created = policy is None
        if policy is None:
            policy = Policy(**scope.provenance())
            uow.session.add(policy)
        for name in POLICY_FIELDS:
            if getattr(policy, name) != data.get(name):
                setattr(policy, name, data.get(name))
        uow.flush()
        after = _view(policy, scope)
        operations = _replan(uow, ctx, scope, attempts)
        warnings = _undiscovered(uow, scope)
        audit.record(
            uow,
            ctx,
            action="policy.put",
            target_type="policy",
            target_id=policy.id,
            tenant_id=scope.tenant.id,
            before=before,
            after={"policy": after, "operations": [o.id for o in operations]},
        )
        uow.commit()
        return PolicyChange(after, operations, warnings), created


def delete_policy(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str | None,
    endpoint: str | None,
    if_match: str | None,
    *,
    max_attempts: int | None = None,
) -> PolicyChange:
    """Remove a scope's policy: its endpoints fall back to the wider scopes."""
    attempts = rt.settings.reconciler.max_attempts if max_attempts is None else max_attempts
    with rt.uow() as uow:
        scope = scope_of(uow, ctx, tenant, workspace, endpoint)
        ctx.require(Role.OPERATOR)
        policy = find(uow.session, Policy, scope)
        if policy is None:
            raise NotFound(f"no policy is set at this {scope.name} scope")
        check_if_match(if_match, policy.version)
        before = _view(policy, scope)
        uow.session.delete(policy)
        uow.flush()
        operations = _replan(uow, ctx, scope, attempts)
        audit.record(
            uow,
            ctx,
            action="policy.delete",
            target_type="policy",
            target_id=policy.id,
            tenant_id=scope.tenant.id,
            before=before,
            after={"operations": [o.id for o in operations]},
        )
        uow.commit()
        return PolicyChange(None, operations)


def _refuse_unsupported(uow: UnitOfWork, scope: PolicyScope, data: dict[str, Any]) -> None:
    """Data collection demanded of a known endpoint that cannot have it is a bad request."""
    if (
        scope.endpoint is None
        or scope.workspace is None
        or data.get("model_data_collection") is not True
    ):
        return
    compute = uow.session.scalar(
        select(Endpoint.compute_type).where(
            Endpoint.workspace_id == scope.workspace.id, Endpoint.name == scope.endpoint
        )
    )
    reason = unsupported_reason(compute, "model_data_collection", True) if compute else None
    if reason is not None:
        raise ValidationFailed(
            reason,
            [{"field": "body.model_data_collection", "message": f"not supported on {compute}"}],
        )


def _undiscovered(uow: UnitOfWork, scope: PolicyScope) -> list[PolicyWarning]:
    """An endpoint policy naming no live endpoint is stored (it applies when the endpoint
    appears) but the caller is told: a typo would otherwise pass silently."""
    if scope.endpoint is None or scope.workspace is None:
        return []
    endpoint = uow.session.scalar(
        select(Endpoint).where(
            Endpoint.workspace_id == scope.workspace.id, Endpoint.name == scope.endpoint
        )
    )
    if endpoint is not None and endpoint.vanished_at is None:
        return []
    listed_at = uow.session.scalar(
        select(WorkspaceSync.last_synced_at).where(WorkspaceSync.workspace_id == scope.workspace.id)
    )
    vanished_at = endpoint.vanished_at if endpoint is not None else None
    return [
        PolicyWarning(
            "endpoint_not_discovered",
            f"no endpoint '{scope.endpoint}' in workspace '{scope.workspace.slug}': "
            + not_discovered_reason(vanished_at, listed_at),
        )
    ]


def _replan(
    uow: UnitOfWork, ctx: CallContext, scope: PolicyScope, max_attempts: int
) -> list[OperationView]:
    targets = live_endpoints(
        uow.session,
        scope.tenant.id,
        scope.workspace.id if scope.workspace else None,
        scope.endpoint,
    )
    created = plan(
        uow.session,
        scope.tenant.id,
        targets,
        cause="policy_change",
        created_by=ctx.principal.key_id,
        max_attempts=max_attempts,
    )
    return operation_views(uow.session, created)
