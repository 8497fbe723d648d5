"""Compliance: each endpoint's effective policy against what was observed, and per-tenant totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Endpoint, Operation, Policy, Workspace, WorkspaceSync
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.policy import Compliance, ComplianceFacts, compliance
from service.domain.states import ACTIVE_STATES, OperationState
from service.services.context import CallContext
from service.services.lookup import visible_tenant
from service.services.planning import PolicyIndex, observed_of
from service.services.retention_compliance import WorkspaceRetention, workspace_retention
from service.services.runtime import Runtime

# Discovery failures that mean "we cannot see this tenant's Azure": compliance is unknown.
ACCESS_ERRORS = frozenset(
    {"credential_missing", "login_required", "credential_rejected", "secrets_unavailable"}
)
MAX_OFFENDERS = 100


@dataclass(frozen=True)
class Monitoring:
    """Desired (effective policy with provenance) against observed, for one endpoint."""

    desired: dict[str, dict[str, Any]]
    compliance: Compliance
    reason: str | None
    active_operation: str | None


@dataclass(frozen=True)
class Offender:
    endpoint: str
    kind: str | None
    compliance: Compliance
    reason: str | None


@dataclass(frozen=True)
class WorkspaceCompliance:
    workspace: str
    counts: dict[str, int]
    offenders: list[Offender]


@dataclass(frozen=True)
class ComplianceReport:
    tenant: str
    evaluated_at: datetime
    totals: dict[str, int]
    workspaces: list[WorkspaceCompliance]
    retention: list[WorkspaceRetention]  # data export rules, by workspace (issue 13)


def monitoring_of(
    session: Session, tenant_id: str, endpoints: list[Endpoint]
) -> dict[str, Monitoring]:
    """Monitoring views of some endpoints of one tenant, by endpoint id."""
    ws_ids = {ep.workspace_id for ep in endpoints}
    names = {ep.name for ep in endpoints}
    facts = _Facts.load(session, tenant_id, ws_ids, names)
    out = {}
    for ep in endpoints:
        key = (ep.workspace_id, ep.name)
        policy = facts.index.effective(*key)
        state, reason = compliance(
            ComplianceFacts(
                policy=policy,
                observed=observed_of(ep) if ep.observed_at is not None else None,
                access_broken=ep.workspace_id in facts.broken,
                operation_active=key in facts.active,
                last_operation_failed=facts.last_failed.get(key, False),
            )
        )
        out[ep.id] = Monitoring(policy.as_dict(), state, reason, facts.active.get(key))
    return out


@dataclass(frozen=True)
class _Facts:
    index: PolicyIndex
    active: dict[tuple[str, str], str]
    last_failed: dict[tuple[str, str], bool]
    broken: set[str]

    @classmethod
    def load(cls, session: Session, tenant_id: str, ws_ids: set[str], names: set[str]) -> _Facts:
        scoped: list[Any] = [Operation.tenant_id == tenant_id, Operation.workspace_id.in_(ws_ids)]
        if names and len(names) <= 500:
            scoped.append(Operation.endpoint_name.in_(names))
        active = {
            (w, n): i
            for i, w, n in session.execute(
                select(Operation.id, Operation.workspace_id, Operation.endpoint_name).where(
                    *scoped, Operation.state.in_(ACTIVE_STATES)
                )
            )
        }
        latest = (
            select(
                Operation.workspace_id,
                Operation.endpoint_name,
                func.max(Operation.created_at).label("at"),
            )
            .where(*scoped, Operation.state.in_((OperationState.SUCCEEDED, OperationState.FAILED)))
            .group_by(Operation.workspace_id, Operation.endpoint_name)
            .subquery()
        )
        last_failed = {
            (w, n): state == OperationState.FAILED
            for w, n, state in session.execute(
                select(Operation.workspace_id, Operation.endpoint_name, Operation.state).join(
                    latest,
                    (latest.c.workspace_id == Operation.workspace_id)
                    & (latest.c.endpoint_name == Operation.endpoint_name)
                    & (latest.c.at == Operation.created_at),
                )
            )
        }
        broken = set(
            session.scalars(
                select(WorkspaceSync.workspace_id).where(
                    WorkspaceSync.workspace_id.in_(ws_ids),
                    WorkspaceSync.last_error_code.in_(ACCESS_ERRORS),
                )
            )
        )
        return cls(PolicyIndex.load(session, tenant_id), active, last_failed, broken)


def failed_endpoints(
    session: Session, tenant_id: str, endpoints: list[Endpoint]
) -> set[tuple[str, str]]:
    """(workspace id, name) of the endpoints whose latest finished operation failed."""
    facts = _Facts.load(
        session, tenant_id, {ep.workspace_id for ep in endpoints}, {ep.name for ep in endpoints}
    )
    return {key for key, failed in facts.last_failed.items() if failed}


def not_discovered_reason(vanished_at: datetime | None, last_synced_at: datetime | None) -> str:
    """Why an endpoint policy names no live endpoint: the warning and the compliance reason."""
    if vanished_at is not None:
        return (
            f"the endpoint vanished from Azure at {vanished_at.isoformat()}; "
            "the policy applies if it appears again"
        )
    if last_synced_at is None:
        return (
            "the workspace has not been discovered yet; "
            "the policy applies when discovery finds this endpoint"
        )
    return (
        f"discovery did not find this endpoint (last listed {last_synced_at.isoformat()}); "
        "the policy applies when it appears"
    )


def tenant_compliance(rt: Runtime, ctx: CallContext, tenant: str) -> ComplianceReport:
    """Counts per state for each workspace, with the endpoints that are not compliant."""
    with rt.uow() as uow:
        t = visible_tenant(uow, ctx.principal, tenant)
        ctx.require(Role.READER)
        session = uow.session
        workspaces = list(
            session.scalars(
                select(Workspace).where(Workspace.tenant_id == t.id).order_by(Workspace.slug)
            )
        )
        endpoints = list(
            session.scalars(
                select(Endpoint).where(Endpoint.tenant_id == t.id, Endpoint.vanished_at.is_(None))
            )
        )
        views = monitoring_of(session, t.id, endpoints)
        seen = {(ep.workspace_id, ep.name) for ep in endpoints}
        # Endpoint policies that name no live endpoint (not discovered yet, or vanished): unknown,
        # with the reason, until the endpoint appears.
        pending_discovery = [
            (p.workspace_id, p.endpoint_name)
            for p in session.scalars(
                select(Policy).where(Policy.tenant_id == t.id, Policy.scope == "endpoint")
            )
            if p.workspace_id and p.endpoint_name and (p.workspace_id, p.endpoint_name) not in seen
        ]
        vanished = _vanished_at(session, t.id, pending_discovery)
        listed_at = {
            workspace_id: at
            for workspace_id, at in session.execute(
                select(WorkspaceSync.workspace_id, WorkspaceSync.last_synced_at).where(
                    WorkspaceSync.workspace_id.in_([ws.id for ws in workspaces])
                )
            )
        }
        totals: Counter[str] = Counter({state.value: 0 for state in Compliance})
        report = []
        for ws in workspaces:
            counts: Counter[str] = Counter({state.value: 0 for state in Compliance})
            offenders = []
            for ep in sorted(
                (e for e in endpoints if e.workspace_id == ws.id), key=lambda e: e.name
            ):
                view = views[ep.id]
                counts[view.compliance.value] += 1
                if view.compliance is not Compliance.COMPLIANT:
                    offenders.append(Offender(ep.name, ep.kind, view.compliance, view.reason))
            for _, name in sorted(k for k in pending_discovery if k[0] == ws.id):
                counts[Compliance.UNKNOWN.value] += 1
                reason = not_discovered_reason(vanished.get((ws.id, name)), listed_at.get(ws.id))
                offenders.append(Offender(name, None, Compliance.UNKNOWN, reason))
            totals.update(counts)
            report.append(WorkspaceCompliance(ws.slug, dict(counts), offenders[:MAX_OFFENDERS]))
        retention = workspace_retention(session, t.id)
        return ComplianceReport(t.slug, utcnow(), dict(totals), report, retention)


def _vanished_at(
    session: Session, tenant_id: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    """When each of these (workspace id, name) endpoints vanished, for those that did."""
    if not keys:
        return {}
    rows = session.execute(
        select(Endpoint.workspace_id, Endpoint.name, Endpoint.vanished_at).where(
            Endpoint.tenant_id == tenant_id,
            Endpoint.vanished_at.is_not(None),
            Endpoint.name.in_({name for _, name in keys}),
        )
    )
    wanted = set(keys)
    return {(w, n): at for w, n, at in rows if (w, n) in wanted and at is not None}
