"""Planning: the effective policy of endpoints, and the operations that correct their drift.

The policy index (the policies of one tenant, to resolve endpoints' effective policies) and the
planner that turns drift into queued operations, shared by policy changes, discovery and apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.db.models import Endpoint, Operation, Policy
from service.domain.policy import (
    EffectivePolicy,
    Observed,
    PolicySpec,
    changes_needed,
    resolve,
)
from service.domain.states import ACTIVE_STATES, OperationState
from service.domain.targets import split_target

KIND = "apply_policy"


# -- effective policy --------------------------------------------------------------------------
def spec_of(policy: Policy | None) -> PolicySpec | None:
    if policy is None:
        return None
    return PolicySpec(
        policy.app_insights, policy.model_data_collection, policy.mode, policy.max_parallel_updates
    )


# The columns of a policy row, in the order PolicyIndex.from_rows reads them.
POLICY_ROW = (
    Policy.scope,
    Policy.workspace_id,
    Policy.endpoint_name,
    Policy.app_insights,
    Policy.model_data_collection,
    Policy.mode,
    Policy.max_parallel_updates,
)

# Built once: an attempt loads its tenant's policies on every claim, and building the statement
# (and its cache key) each time cost about as much as running it.
_TENANT_POLICIES = select(*POLICY_ROW).where(Policy.tenant_id == bindparam("tenant_id"))


@dataclass(frozen=True)
class PolicyIndex:
    """Every policy of one tenant, by scope."""

    tenant: PolicySpec | None
    workspaces: dict[str, PolicySpec]
    endpoints: dict[tuple[str, str], PolicySpec]

    @classmethod
    def from_rows(cls, rows: Any) -> PolicyIndex:
        """From rows of the ``POLICY_ROW`` columns."""
        tenant: PolicySpec | None = None
        workspaces: dict[str, PolicySpec] = {}
        endpoints: dict[tuple[str, str], PolicySpec] = {}
        for scope, workspace_id, endpoint_name, app_insights, collection, mode, parallel in rows:
            spec = PolicySpec(app_insights, collection, mode, parallel)
            if scope == "tenant":
                tenant = spec
            elif scope == "workspace" and workspace_id:
                workspaces[workspace_id] = spec
            elif workspace_id and endpoint_name:
                endpoints[(workspace_id, endpoint_name)] = spec
        return cls(tenant, workspaces, endpoints)

    @classmethod
    def load(cls, session: Session, tenant_id: str) -> PolicyIndex:
        # Plain rows, not ORM objects: every attempt loads its tenant's index (before its write,
        # and again to check a result unless it still has it: ~1.6 loads per target), and
        # building and tracking Policy entities was a visible share of the reconciler's CPU.
        # Run on the session's connection, below the ORM's execution (~30% of the call's CPU;
        # issue 16), after flushing what the session holds where its autoflush would have.
        if session.autoflush:
            session.flush()
        found = session.connection().execute(_TENANT_POLICIES, {"tenant_id": tenant_id})
        return cls.from_rows(found)

    def effective(self, workspace_id: str, endpoint_name: str) -> EffectivePolicy:
        """A v2 deployment ``e.d`` takes the policy of its online endpoint ``e``, overridden
        field by field by its own."""
        online = split_target(endpoint_name)
        if online is None:
            return resolve(
                self.tenant,
                self.workspaces.get(workspace_id),
                self.endpoints.get((workspace_id, endpoint_name)),
            )
        return resolve(
            self.tenant,
            self.workspaces.get(workspace_id),
            self.endpoints.get((workspace_id, online[0])),
            self.endpoints.get((workspace_id, endpoint_name)),
        )


def observed_of(ep: Endpoint) -> Observed:
    return Observed(ep.compute_type, ep.app_insights_enabled, ep.data_collection_enabled)


# -- planning ----------------------------------------------------------------------------------
def active_endpoints(session: Session, workspace_ids: Iterable[str]) -> set[tuple[str, str]]:
    ids = list(set(workspace_ids))
    if not ids:
        return set()
    rows = session.execute(
        select(Operation.workspace_id, Operation.endpoint_name).where(
            Operation.workspace_id.in_(ids), Operation.state.in_(ACTIVE_STATES)
        )
    )
    return {(w, n) for w, n in rows}


def plan(
    session: Session,
    tenant_id: str,
    endpoints: list[Endpoint],
    *,
    cause: str,
    created_by: str,
    max_attempts: int,
    manual: bool = False,
) -> list[Operation]:
    """Queue an operation for each endpoint that drifted from its effective policy.

    Automatic causes respect ``audit`` mode; a manual apply does not (an operator asked for it).
    Endpoints that already have an active operation are skipped: it re-resolves the policy when
    it runs. Adds to the session without committing.
    """
    index = PolicyIndex.load(session, tenant_id)
    busy = active_endpoints(session, (ep.workspace_id for ep in endpoints))
    created = []
    for ep in endpoints:
        if ep.vanished_at is not None or (ep.workspace_id, ep.name) in busy:
            continue
        policy = index.effective(ep.workspace_id, ep.name)
        # Only the settings this kind of endpoint has: unsupported ones are never queued.
        changes = changes_needed(policy, observed_of(ep))
        if not changes or not (manual or policy.enforced):
            continue
        op = Operation(
            tenant_id=tenant_id,
            workspace_id=ep.workspace_id,
            endpoint_name=ep.name,
            kind=KIND,
            desired=changes,
            cause=cause,
            state=OperationState.QUEUED,
            max_attempts=max_attempts,
            created_by=created_by,
        )
        session.add(op)
        busy.add((ep.workspace_id, ep.name))
        created.append(op)
    session.flush()
    return created


def live_endpoints(
    session: Session, tenant_id: str, workspace_id: str | None = None, name: str | None = None
) -> list[Endpoint]:
    stmt = select(Endpoint).where(Endpoint.tenant_id == tenant_id, Endpoint.vanished_at.is_(None))
    if workspace_id is not None:
        stmt = stmt.where(Endpoint.workspace_id == workspace_id)
    if name is not None:
        # An online endpoint's name selects all of its deployments.
        stmt = stmt.where((Endpoint.name == name) | (Endpoint.online_endpoint == name))
    return list(session.scalars(stmt.order_by(Endpoint.workspace_id, Endpoint.name)))
