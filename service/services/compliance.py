"""Compliance: each endpoint's effective policy against what was observed, and per-tenant totals."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Endpoint, Policy, Workspace, WorkspaceSync
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.policy import (
    Compliance,
    ComplianceFacts,
    EffectivePolicy,
    Observed,
    compliance,
)
from service.domain.targets import SEPARATOR, split_target
from service.services.compliance_facts import Facts
from service.services.context import CallContext
from service.services.lookup import visible_tenant
from service.services.retention_compliance import WorkspaceRetention, workspace_retention
from service.services.runtime import Runtime

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
    session: Session, tenant_id: str, endpoints: Sequence[Any], *, facts: Facts | None = None
) -> dict[str, Monitoring]:
    """Monitoring views of some endpoints of one tenant, by endpoint id.

    ``endpoints``: ``Endpoint`` rows or rows of its columns (anything with the attributes).
    ``facts``: what they depend on, when the caller read it with them (``Facts.from_rows``).
    """
    if facts is None:
        ws_ids = {ep.workspace_id for ep in endpoints}
        names = {ep.name for ep in endpoints}
        facts = Facts.load(session, tenant_id, ws_ids, names)
    judge = _Judge(facts)
    out = {}
    for ep in endpoints:
        policy, desired = judge.policy(ep.workspace_id, ep.name)
        state, reason = judge.compliance(ep, policy)
        out[ep.id] = Monitoring(
            desired, state, reason, judge.facts.active.get((ep.workspace_id, ep.name))
        )
    return out


class _Judge:
    """Compliance of many endpoints against one set of facts, each distinct case decided once.

    The effective policy of an endpoint depends only on its workspace unless an endpoint policy
    names it (or its online endpoint), and the decision only on that policy, what was observed
    and three flags: a fleet of 10,000 endpoints has a handful of distinct cases. The decisions
    are the domain's (``compliance``), memoised per call: nothing outlives the request.
    """

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self._policies: dict[tuple[str, str | None, str | None], tuple[EffectivePolicy, Any]] = {}
        self._decisions: dict[tuple[Any, ...], tuple[Compliance, str | None]] = {}

    def policy(self, workspace_id: str, name: str) -> tuple[EffectivePolicy, dict[str, Any]]:
        """The effective policy and its JSON form (shared between endpoints: read-only)."""
        index = self.facts.index
        online = split_target(name)
        own = name if (workspace_id, name) in index.endpoints else None
        parent = online[0] if online and (workspace_id, online[0]) in index.endpoints else None
        key = (workspace_id, own, parent)
        found = self._policies.get(key)
        if found is None:
            policy = index.effective(workspace_id, name)
            found = self._policies[key] = (policy, policy.as_dict())
        return found

    def compliance(self, ep: Any, policy: EffectivePolicy) -> tuple[Compliance, str | None]:
        return self.decide(
            ep.workspace_id,
            ep.name,
            policy,
            ep.observed_at is not None,
            ep.compute_type,
            ep.app_insights_enabled,
            ep.data_collection_enabled,
        )

    def decide(
        self,
        ws: str,
        name: str,
        policy: EffectivePolicy,
        observed: bool,
        compute_type: str,
        app_insights: bool | None,
        data_collection: bool | None,
    ) -> tuple[Compliance, str | None]:
        facts = self.facts
        key = (
            id(policy),
            observed,
            compute_type,
            app_insights,
            data_collection,
            ws in facts.broken,
            (ws, name) in facts.active,
            facts.last_failed.get((ws, name), False),
        )
        decided = self._decisions.get(key)
        if decided is None:
            decided = self._decisions[key] = compliance(
                ComplianceFacts(
                    policy=policy,
                    observed=Observed(compute_type, app_insights, data_collection)
                    if observed
                    else None,
                    access_broken=key[5],
                    operation_active=key[6],
                    last_operation_failed=key[7],
                )
            )
        return decided


def failed_endpoints(
    session: Session, tenant_id: str, endpoints: list[Endpoint]
) -> set[tuple[str, str]]:
    """(workspace id, name) of the endpoints whose latest finished operation failed."""
    facts = Facts.load(
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
    with rt.uow(read_only=True) as uow:
        t = visible_tenant(uow, ctx.principal, tenant)
        ctx.require(Role.READER)
        session = uow.session
        workspaces = list(
            session.scalars(
                select(Workspace).where(Workspace.tenant_id == t.id).order_by(Workspace.slug)
            )
        )
        # The columns the decision reads, not ORM objects: 10,000 of them cost more to build
        # than to judge. Run below the ORM (a read-only use case: nothing to flush), whose
        # loading layer was a fifth of the summary's CPU for rows that are plain tuples.
        endpoints = (
            session.connection()
            .execute(
                select(*_JUDGED).where(Endpoint.tenant_id == t.id, Endpoint.vanished_at.is_(None))
            )
            .all()
        )
        # More than the 500 names a look-up filters by: the tenant's facts, unfiltered.
        judge = _Judge(Facts.load(session, t.id, {ws.id for ws in workspaces}, set()))
        by_workspace: defaultdict[str, list[Any]] = defaultdict(list)
        for row in endpoints:
            by_workspace[row[0]].append(row)
        seen = {(row[0], row[1]) for row in endpoints}
        # A policy on an online endpoint's own name governs its live deployments (targets.py).
        # (From the rows above: a DISTINCT query of its own cost ~8 ms of 10,000 endpoints.)
        seen.update((row[0], row[7]) for row in endpoints if row[7] is not None)
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
        policy_of, decide = judge.policy, judge.decide
        compliant = Compliance.COMPLIANT
        # Most endpoints have no policy of their own (nor their online endpoint) and no
        # operation on record: their decision depends only on their workspace's policy and
        # what was observed, decided once per distinct observation (below). The others take
        # the general path. Judging each of 10,000 endpoints case by case (its effective
        # policy, an 8-part decision key) was the summary's largest Python step; skipping it
        # for the plain ones saved 6-8% of its CPU (bench/README.md, session 21).
        facts = judge.facts
        particular = {*facts.index.endpoints, *facts.active, *facts.last_failed}
        for ws in workspaces:
            # Counted by member, named once per workspace (``.value`` is a descriptor call).
            counts: dict[Compliance, int] = dict.fromkeys(Compliance, 0)
            offenders: list[Offender] = []
            ws_id = ws.id  # (an ORM attribute: read once, not twice per endpoint)
            plain: dict[tuple[Any, ...], tuple[Compliance, str | None]] = {}
            for _, name, kind, compute_type, ai, dc, observed, _ in sorted(
                by_workspace.get(ws_id, ()), key=itemgetter(1)
            ):
                if (ws_id, name) in particular or (
                    ws_id,
                    name.partition(SEPARATOR)[0],  # its online endpoint's policy, if any
                ) in particular:
                    state, reason = decide(
                        ws_id, name, policy_of(ws_id, name)[0], observed, compute_type, ai, dc
                    )
                else:
                    seen_as = (observed, compute_type, ai, dc)
                    found = plain.get(seen_as)
                    if found is None:
                        found = plain[seen_as] = decide(
                            ws_id, name, policy_of(ws_id, name)[0], observed, compute_type, ai, dc
                        )
                    state, reason = found
                counts[state] += 1
                if state is not compliant and len(offenders) < MAX_OFFENDERS:
                    offenders.append(Offender(name, kind, state, reason))
            for _, name in sorted(k for k in pending_discovery if k[0] == ws.id):
                counts[Compliance.UNKNOWN] += 1
                reason = not_discovered_reason(vanished.get((ws.id, name)), listed_at.get(ws.id))
                offenders.append(Offender(name, None, Compliance.UNKNOWN, reason))
            named = {state.value: n for state, n in counts.items()}
            totals.update(named)
            report.append(WorkspaceCompliance(ws.slug, named, offenders[:MAX_OFFENDERS]))
        retention = workspace_retention(session, t.id)
        return ComplianceReport(t.slug, utcnow(), dict(totals), report, retention)


# What the compliance summary reads of each live endpoint.
_JUDGED = (
    Endpoint.workspace_id,
    Endpoint.name,
    Endpoint.kind,
    Endpoint.compute_type,
    Endpoint.app_insights_enabled,
    Endpoint.data_collection_enabled,
    Endpoint.observed_at.is_not(None),
    Endpoint.online_endpoint,  # a v2 deployment's online endpoint (the policies it falls under)
)


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
