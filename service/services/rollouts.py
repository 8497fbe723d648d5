"""Parallel-update slots: how many deployments of one online endpoint are updated at once.

A v2 deployment update replaces the deployment and rolls its instances; updating every
deployment of an endpoint at once could take the whole endpoint's capacity down. The effective
policy's ``max_parallel_updates`` (default 1) caps the deployments of one online endpoint being
written at the same time, across all workers: an attempt takes a slot (marks its operation with
the endpoint's rollout group) in one transaction that first locks the workspace row and counts
the group's other running, leased operations. A slot is released when the operation leaves
``running`` (back in the queue its rollout group is cleared: the next attempt takes a slot
again before it writes) or its lease expires (a crashed worker's slot frees itself).

Taking a slot is a state change of the attempt, so it is fenced like every other one by the
attempt's fencing token (``operations.fence``, see ``leases``); the last check before the write
itself is the reconciler's fenced lease renewal, not anything here.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import bindparam, func, select

from service.db.models import Operation
from service.db.types import utcnow
from service.domain.states import OperationState
from service.services.leases import (
    Claim,
    core,
    fenced_update,
    lock_workspace_row,
    write_transaction,
)
from service.services.runtime import Runtime


def rollout_group(workspace_id: str, online_endpoint: str) -> str:
    return f"{workspace_id}/{online_endpoint}"


Slot = Literal["taken", "busy", "lost"]


def take_slot(rt: Runtime, claim: Claim, owner: str, group: str, limit: int) -> Slot:
    """Hold one of ``group``'s ``limit`` slots for this attempt: ``busy`` when all are taken,
    ``lost`` when this attempt no longer holds its operation (its fencing token moved on)."""
    with write_transaction(rt) as uow:
        lock_workspace_row(uow.session, claim.workspace_id)
        db = core(uow.session)
        params = {"group": group, "now": utcnow(), "operation": claim.id}
        if int(db.scalar(_BUSY, params) or 0) >= max(1, limit):
            return "busy"
        # Fenced like every state change in ``leases``: a stale attempt (even of this worker,
        # after a take-over) holds an older token and matches nothing.
        taken = fenced_update(uow.session, claim, owner, rollout_group=group)
        uow.commit()
        return "taken" if getattr(taken, "rowcount", 0) == 1 else "lost"


# Built once with bound parameters (see leases._fenced_statement).
_BUSY = (
    select(func.count())
    .select_from(Operation)
    .where(
        Operation.rollout_group == bindparam("group"),
        Operation.state == OperationState.RUNNING,
        Operation.lease_expires_at >= bindparam("now"),
        Operation.id != bindparam("operation"),
    )
)
