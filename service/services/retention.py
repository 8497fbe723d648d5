"""Retention: the data export policy of Log Analytics workspaces, its discovery and compliance.

A retention policy at the tenant or workspace scope (``service.domain.retention``) becomes one
managed data export rule on the Log Analytics workspace each registered workspace links. Discovery
(``discover_exports``) finds that workspace by its customer id, lists every rule on it (including
rules nobody made through this service) and queues a repair when the managed rule drifted and the
policy enforces. Repairs are operations of kind ``export_rule`` (endpoint name ``@retention``,
so at most one is active per workspace) that the reconciler runs through
``service.services.retention_apply``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Operation, RetentionObservation, RetentionPolicy, Tenant, Workspace
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.etags import etag_for
from service.domain.retention import (
    EffectiveRetention,
    ObservedRule,
    RetentionSpec,
    plan,
    resolve,
    unsupported_tables,
    validate_spec,
)
from service.domain.states import ACTIVE_STATES, FINAL_STATES, OperationState, PolicyMode
from service.errors import (
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from service.services import audit
from service.services.context import CallContext
from service.services.credentials import tenant_credential
from service.services.lookup import check_if_match, visible_tenant, visible_workspace
from service.services.operations import OperationView, operation_views
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
KIND = "export_rule"
TARGET = "@retention"  # the operations' endpoint name: never an AML service name
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


# -- policy scopes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scope:
    tenant: Tenant
    workspace: Workspace | None

    @property
    def name(self) -> str:
        return "workspace" if self.workspace else "tenant"

    @property
    def key(self) -> str:
        return f"workspace:{self.workspace.id}" if self.workspace else "tenant"


def _scope(uow: UnitOfWork, ctx: CallContext, tenant: str, workspace: str | None) -> _Scope:
    if workspace is None:
        return _Scope(visible_tenant(uow, ctx.principal, tenant), None)
    ws = visible_workspace(uow, ctx.principal, tenant, workspace)
    return _Scope(ws.tenant, ws)


def _find(session: Session, scope: _Scope) -> RetentionPolicy | None:
    return session.scalar(
        select(RetentionPolicy).where(
            RetentionPolicy.tenant_id == scope.tenant.id, RetentionPolicy.scope_key == scope.key
        )
    )


def spec_of(p: RetentionPolicy | None) -> RetentionSpec | None:
    if p is None:
        return None
    return RetentionSpec(
        p.destination_resource_id,
        tuple(p.tables) if p.tables is not None else None,
        p.enabled,
        p.mode,
        p.remove_unmanaged,
    )


def _view(p: RetentionPolicy, scope: _Scope) -> RetentionPolicyView:
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
    with rt.uow() as uow:
        scope = _scope(uow, ctx, tenant, workspace)
        ctx.require(Role.READER)
        policy = _find(uow.session, scope)
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
        scope = _scope(uow, ctx, tenant, workspace)
        ctx.require(Role.OPERATOR)
        errors = validate_spec(data)
        if errors:
            raise ValidationFailed("the retention policy is not valid", errors)
        policy = _find(uow.session, scope)
        if policy is None and if_match is not None and if_match.strip() != "*":
            raise PreconditionFailed("If-Match names a version, but no policy is set at this scope")
        if policy is not None:
            check_if_match(if_match, policy.version)
        before = _view(policy, scope) if policy is not None else None
        created = policy is None
        if policy is None:
            policy = RetentionPolicy(
                tenant_id=scope.tenant.id,
                workspace_id=scope.workspace.id if scope.workspace else None,
                scope=scope.name,
                scope_key=scope.key,
            )
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
        scope = _scope(uow, ctx, tenant, workspace)
        ctx.require(Role.OPERATOR)
        policy = _find(uow.session, scope)
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


# -- effective policy, observation and planning ------------------------------------------------
def effective(session: Session, tenant_id: str, workspace_id: str) -> EffectiveRetention:
    tenant_policy: RetentionPolicy | None = None
    workspace_policy: RetentionPolicy | None = None
    for p in session.scalars(select(RetentionPolicy).where(RetentionPolicy.tenant_id == tenant_id)):
        if p.scope == "tenant":
            tenant_policy = p
        elif p.workspace_id == workspace_id:
            workspace_policy = p
    return resolve(spec_of(tenant_policy), spec_of(workspace_policy))


def observed_rules(observation: RetentionObservation | None) -> list[ObservedRule] | None:
    if observation is None or observation.rules is None:
        return None
    return [
        ObservedRule(
            r["name"], r["destination_resource_id"], tuple(r["tables"]), bool(r["enabled"])
        )
        for r in observation.rules
    ]


def active_operations(session: Session, workspace_ids: list[str]) -> dict[str, str]:
    if not workspace_ids:
        return {}
    rows = session.execute(
        select(Operation.workspace_id, Operation.id).where(
            Operation.workspace_id.in_(workspace_ids),
            Operation.endpoint_name == TARGET,
            Operation.state.in_(ACTIVE_STATES),
        )
    )
    return {w: i for w, i in rows}


def _last_failed_desired(session: Session, workspace_ids: list[str]) -> dict[str, Any]:
    """The desired change of each workspace's latest finished export operation, if it failed."""
    latest: dict[str, Operation] = {}
    for op in session.scalars(
        select(Operation).where(
            Operation.workspace_id.in_(workspace_ids),
            Operation.endpoint_name == TARGET,
            Operation.state.in_(FINAL_STATES),
        )
    ):
        if op.workspace_id not in latest or op.created_at > latest[op.workspace_id].created_at:
            latest[op.workspace_id] = op
    return {w: op.desired for w, op in latest.items() if op.state == OperationState.FAILED}


def queue_repairs(
    session: Session,
    tenant_id: str,
    workspace_ids: list[str] | None,
    *,
    cause: str,
    created_by: str,
    max_attempts: int,
    manual: bool = False,
) -> list[Operation]:
    """Queue an ``export_rule`` operation for each observed workspace whose rules differ.

    Audit mode only reports, unless an operator applies (``manual``). Adds without committing.
    """
    stmt = select(Workspace).where(Workspace.tenant_id == tenant_id)
    if workspace_ids is not None:
        stmt = stmt.where(Workspace.id.in_(workspace_ids))
    workspaces = list(session.scalars(stmt))
    ids = [ws.id for ws in workspaces]
    observations = {
        o.workspace_id: o
        for o in session.scalars(
            select(RetentionObservation).where(RetentionObservation.workspace_id.in_(ids))
        )
    }
    busy = active_operations(session, ids)
    failed = {} if manual else _last_failed_desired(session, ids)
    created = []
    for ws in workspaces:
        observed = observed_rules(observations.get(ws.id))
        if observed is None or ws.id in busy:
            continue
        policy = effective(session, tenant_id, ws.id)
        writes = plan(policy, observed)
        if writes.empty or not (manual or policy.enforced):
            continue
        desired = {
            "export_rule": writes.put.as_dict() if writes.put else None,
            "delete_rules": list(writes.delete),
        }
        if failed.get(ws.id) == desired:
            continue  # the same change just failed for good: an operator applies it again
        op = Operation(
            tenant_id=tenant_id,
            workspace_id=ws.id,
            endpoint_name=TARGET,
            kind=KIND,
            desired=desired,
            cause=cause,
            state=OperationState.QUEUED,
            max_attempts=max_attempts,
            created_by=created_by,
        )
        session.add(op)
        created.append(op)
    session.flush()
    return created


def record_observation(
    session: Session,
    workspace_id: str,
    *,
    la_resource_id: str | None = None,
    la_location: str | None = None,
    rules: list[dict[str, Any]] | None = None,
    error: ServiceError | None = None,
) -> None:
    """Store what discovery (or an apply) saw; an error keeps the last rules seen."""
    observation = session.get(RetentionObservation, workspace_id)
    if observation is None:
        observation = RetentionObservation(workspace_id=workspace_id)
        session.add(observation)
    if error is not None:
        observation.last_error_code = error.code
        observation.last_error = error.detail[:500]
        return
    observation.la_resource_id = la_resource_id
    observation.la_location = la_location
    observation.rules = rules
    observation.observed_at = utcnow()
    observation.last_error_code = None
    observation.last_error = None


def rule_dict(rule: Any) -> dict[str, Any]:
    """An ``ExportRuleSnapshot`` as stored in the observation."""
    return {
        "name": rule.name,
        "destination_resource_id": rule.destination_resource_id,
        "destination_type": rule.destination_type,
        "tables": list(rule.tables),
        "enabled": rule.enabled,
    }


def discover_exports(
    rt: Runtime, workspace_id: str, *, created_by: str = "reconciler", force: bool = False
) -> None:
    """Observe the export rules of a workspace's Log Analytics workspace; queue a repair if needed.

    Failures are recorded on the observation (compliance turns ``unknown``) and raised.
    """
    if rt.exports is None:
        return
    with rt.uow() as uow:
        ws = uow.session.get(Workspace, workspace_id)
        if ws is None:
            return
        uow.session.expunge(ws)
        managed = effective(uow.session, ws.tenant_id, ws.id).managed
        has_observation = uow.session.get(RetentionObservation, ws.id) is not None
    if not (managed or has_observation or force):
        return  # nobody asked for retention here: spend no ARM reads on it
    credential = tenant_credential(rt, ws.tenant_id, fresh=True)  # none: nothing to record
    try:
        if not ws.log_analytics_workspace_id:
            raise NotFound("the workspace links no Log Analytics workspace")
        la = rt.exports.find_workspace(
            credential, ws.subscription_id, ws.log_analytics_workspace_id
        )
        if la is None:
            raise NotFound(
                f"no Log Analytics workspace with id {ws.log_analytics_workspace_id} in "
                f"subscription {ws.subscription_id}"
            )
        rules = rt.exports.list_rules(credential, la.resource_id)
    except ServiceError as exc:
        with rt.uow() as uow:
            record_observation(uow.session, ws.id, error=exc)
            uow.commit()
        raise
    with rt.uow() as uow:
        record_observation(
            uow.session,
            ws.id,
            la_resource_id=la.resource_id,
            la_location=la.location,
            rules=[rule_dict(r) for r in rules],
        )
        queue_repairs(
            uow.session,
            ws.tenant_id,
            [ws.id],
            cause="drift",
            created_by=created_by,
            max_attempts=rt.settings.reconciler.max_attempts,
        )
        uow.commit()


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
