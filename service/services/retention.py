"""Retention: the data export policy of Log Analytics workspaces, its discovery and compliance.

A retention policy at the tenant or workspace scope (``service.domain.retention``) becomes one
managed data export rule on the Log Analytics workspace each registered workspace links. Discovery
(``discover_exports``) finds that workspace by its customer id, lists every rule on it (including
rules nobody made through this service) and queues a repair when the managed rule drifted and the
policy enforces. Repairs are operations of kind ``export_rule`` (endpoint name ``@retention``,
so at most one is active per workspace) that the reconciler runs through
``service.services.retention_apply``. Setting the policies is ``retention_policies``.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Operation, RetentionObservation, RetentionPolicy, Workspace
from service.db.types import utcnow
from service.domain.retention import (
    EffectiveRetention,
    ObservedRule,
    RetentionSpec,
    plan,
    resolve,
)
from service.domain.states import ACTIVE_STATES, FINAL_STATES, OperationState
from service.errors import (
    NotFound,
    ServiceError,
)
from service.services.azure_credentials import tenant_credential
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
KIND = "export_rule"
TARGET = "@retention"  # the operations' endpoint name: never an AML service name


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
    with rt.uow(read_only=True) as uow:
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
