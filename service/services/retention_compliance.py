"""Retention compliance: each workspace's effective export policy against the rules observed.

The view behind ``GET /v1/tenants/{t}/retention`` and the ``retention`` section of the compliance
report, and the on-demand discovery that answers it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Operation, RetentionObservation, Workspace
from service.domain.access import Role
from service.domain.policy import Compliance
from service.domain.retention import (
    EffectiveRetention,
    ObservedRule,
    desired_rule,
    plan,
    rule_matches,
    unsupported_tables,
)
from service.domain.states import FINAL_STATES, OperationState
from service.errors import CredentialMissing, ServiceError, ServiceUnavailable
from service.services.context import CallContext
from service.services.lookup import visible_tenant, visible_workspace
from service.services.retention import (
    TARGET,
    active_operations,
    discover_exports,
    effective,
    observed_rules,
)
from service.services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkspaceRetention:
    """One workspace's retention: desired with provenance, observed rules, compliance."""

    workspace: str
    compliance: Compliance
    reason: str | None
    desired: dict[str, dict[str, Any]]
    log_analytics_workspace: str | None
    rules: list[dict[str, Any]]
    unmanaged_rules: list[str]
    unsupported_tables: dict[str, str]
    active_operation: str | None
    observed_at: datetime | None


# -- compliance ---------------------------------------------------------------------------------
def _last_failed(session: Session, workspace_ids: list[str]) -> set[str]:
    failed = set()
    latest: dict[str, tuple[datetime, str]] = {}
    for w, state, at in session.execute(
        select(Operation.workspace_id, Operation.state, Operation.created_at).where(
            Operation.workspace_id.in_(workspace_ids),
            Operation.endpoint_name == TARGET,
            Operation.state.in_(FINAL_STATES),
        )
    ):
        if w not in latest or at > latest[w][0]:
            latest[w] = (at, state)
    for w, (_, state) in latest.items():
        if state == OperationState.FAILED:
            failed.add(w)
    return failed


def workspace_retention(
    session: Session, tenant_id: str, workspace_ids: list[str] | None = None
) -> list[WorkspaceRetention]:
    """The retention view of the tenant's workspaces (those a policy manages, or observed)."""
    stmt = select(Workspace).where(Workspace.tenant_id == tenant_id)
    if workspace_ids is not None:
        stmt = stmt.where(Workspace.id.in_(workspace_ids))
    workspaces = sorted(session.scalars(stmt), key=lambda w: w.slug)
    ids = [w.id for w in workspaces]
    observations = {
        o.workspace_id: o
        for o in session.scalars(
            select(RetentionObservation).where(RetentionObservation.workspace_id.in_(ids))
        )
    }
    active = active_operations(session, ids)
    failed = _last_failed(session, ids)
    out = []
    for ws in workspaces:
        policy = effective(session, tenant_id, ws.id)
        observation = observations.get(ws.id)
        if not policy.managed and observation is None:
            continue
        observed = observed_rules(observation)
        state, reason = _compliance(policy, observation, observed, ws.id in active, ws.id in failed)
        desired = desired_rule(policy)
        out.append(
            WorkspaceRetention(
                workspace=ws.slug,
                compliance=state,
                reason=reason,
                desired=policy.as_dict(),
                log_analytics_workspace=observation.la_resource_id if observation else None,
                rules=list(observation.rules or []) if observation else [],
                unmanaged_rules=[
                    r.name
                    for r in observed or []
                    if desired is None or r.name.lower() != desired.name.lower()
                ],
                unsupported_tables=unsupported_tables(policy),
                active_operation=active.get(ws.id),
                observed_at=observation.observed_at if observation else None,
            )
        )
    return out


def _compliance(
    policy: EffectiveRetention,
    observation: RetentionObservation | None,
    observed: list[ObservedRule] | None,
    operation_active: bool,
    last_failed: bool,
) -> tuple[Compliance, str | None]:
    if observation is not None and observation.last_error is not None:
        return Compliance.UNKNOWN, f"the last discovery failed: {observation.last_error}"
    if observed is None:
        return Compliance.UNKNOWN, "the export rules have not been observed yet"
    if not policy.managed:
        return Compliance.COMPLIANT, "no retention policy applies; rules are only observed"
    if operation_active:
        return Compliance.PENDING, "an operation is applying the retention policy"
    writes = plan(policy, observed)
    desired = desired_rule(policy)
    assert desired is not None
    ours = next((r for r in observed if r.name.lower() == desired.name.lower()), None)
    if not writes.empty:
        if last_failed:
            return Compliance.FAILED, "the last operation failed"
        if writes.problem is not None:
            return Compliance.DRIFTED, writes.problem
        if not rule_matches(desired, ours):
            what = "missing" if ours is None else "differs from the policy"
            return Compliance.DRIFTED, f"export rule '{desired.name}' {what}"
        return Compliance.DRIFTED, "rules not managed by this service are to be removed"
    flagged = unsupported_tables(policy)
    if flagged:
        names = ", ".join(sorted(flagged))
        return Compliance.UNSUPPORTED, f"tables Azure accepts but does not export: {names}"
    return Compliance.COMPLIANT, None


def tenant_retention(rt: Runtime, ctx: CallContext, tenant: str) -> list[WorkspaceRetention]:
    with rt.uow(read_only=True) as uow:
        t = visible_tenant(uow, ctx.principal, tenant)
        ctx.require(Role.READER)
        return workspace_retention(uow.session, t.id)


def sync_retention(
    rt: Runtime, ctx: CallContext, tenant: str, workspace: str
) -> WorkspaceRetention:
    """Discover the workspace's export rules now; answer its retention view."""
    with rt.uow(read_only=True) as uow:
        ws = visible_workspace(uow, ctx.principal, tenant, workspace)
        ctx.require(Role.OPERATOR)
        workspace_id, tenant_id = ws.id, ws.tenant_id
    try:
        discover_exports(rt, workspace_id, created_by=ctx.principal.key_id, force=True)
    except (CredentialMissing, ServiceUnavailable):
        raise
    except ServiceError as exc:  # recorded on the observation: the view says why
        log.info("retention discovery of %s failed: %s", workspace_id, exc.code)
    with rt.uow(read_only=True) as uow:
        (view,) = workspace_retention(uow.session, tenant_id, [workspace_id])
    return view
