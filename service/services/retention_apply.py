"""One attempt of an ``export_rule`` operation (run by the reconciler, under its lease).

Level-triggered like every operation: the rules are listed again, the plan is recomputed from the
effective policy *now*, Azure's limits are checked before any write, each write waits for a slot
of the subscription's ARM write budget and is fenced (the lease is renewed with the attempt's
fencing token first), and the result is confirmed by listing again. Rules the service did not
create are deleted only when the policy says ``remove_unmanaged``.
"""

from __future__ import annotations

from collections.abc import Callable

from service.db.models import RetentionObservation, Workspace
from service.domain.retention import ObservedRule, plan
from service.domain.states import AttemptEnd
from service.errors import AzureRejected, NotFound
from service.services import leases
from service.services.azure_credentials import tenant_credential
from service.services.leases import Claim
from service.services.retention import TARGET, effective, record_observation, rule_dict
from service.services.runtime import Runtime


def is_export_operation(claim: Claim) -> bool:
    return claim.endpoint_name == TARGET


def attempt(
    rt: Runtime,
    claim: Claim,
    *,
    pause: Callable[[float], None],
    fence: Callable[[], None],
) -> tuple[AttemptEnd, str | None]:
    """Run one attempt; returns (state, error) with state succeeded, retry or failed.

    ``pause(seconds)`` waits keeping the lease (and raises when the worker stops); ``fence()``
    renews the lease with the attempt's fencing token right before a write (and raises when the
    lease was lost, so a stale attempt never writes). Azure errors propagate as the service's
    error model: the reconciler retries temporary ones.
    """
    if rt.exports is None:
        return AttemptEnd.FAILED, "data export is not configured in this deployment"
    with rt.uow(read_only=True) as uow:
        ws = uow.session.get(Workspace, claim.workspace_id)
        if ws is None:
            raise AzureRejected("the workspace was deleted")
        uow.session.expunge(ws)
        policy = effective(uow.session, claim.tenant_id, ws.id)
        observation = uow.session.get(RetentionObservation, ws.id)
        la_resource_id = observation.la_resource_id if observation else None
        la_location = observation.la_location if observation else None
    credential = tenant_credential(rt, ws.tenant_id, fresh=True)
    if la_resource_id is None:
        if not ws.log_analytics_workspace_id:
            return AttemptEnd.FAILED, "the workspace links no Log Analytics workspace"
        la = rt.exports.find_workspace(
            credential, ws.subscription_id, ws.log_analytics_workspace_id
        )
        if la is None:
            raise NotFound("the Log Analytics workspace was not found")
        la_resource_id, la_location = la.resource_id, la.location
    rules = rt.exports.list_rules(credential, la_resource_id)
    observed = [ObservedRule(r.name, r.destination_resource_id, r.tables, r.enabled) for r in rules]
    writes = plan(policy, observed)
    if writes.problem is not None:
        return AttemptEnd.FAILED, writes.problem  # Azure would refuse it: no call is made
    for name in writes.delete:
        slot = leases.take_write_slot(rt, ws.subscription_id, pause, fence)
        try:
            rt.exports.delete_rule(credential, la_resource_id, name)
        finally:  # answered, or failed once it may have been sent: counted a second more
            leases.write_ended(rt, slot)
    if writes.put is not None:
        slot = leases.take_write_slot(rt, ws.subscription_id, pause, fence)
        try:
            rt.exports.put_rule(
                credential,
                la_resource_id,
                writes.put.name,
                destination_resource_id=writes.put.destination_resource_id,
                tables=writes.put.tables,
                enabled=writes.put.enabled,
            )
        finally:
            leases.write_ended(rt, slot)
    after = rt.exports.list_rules(credential, la_resource_id)
    with rt.uow() as uow:
        record_observation(
            uow.session,
            ws.id,
            la_resource_id=la_resource_id,
            la_location=la_location,
            rules=[rule_dict(r) for r in after],
        )
        uow.commit()
    remaining = plan(
        policy,
        [ObservedRule(r.name, r.destination_resource_id, r.tables, r.enabled) for r in after],
    )
    if not remaining.empty:
        return AttemptEnd.RETRY, "the export rules still differ after the update"
    return AttemptEnd.SUCCEEDED, None
