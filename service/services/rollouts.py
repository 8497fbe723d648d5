"""Parallel-update slots (how many deployments of one online endpoint are updated at once) and
the last ownership check before a write.

A v2 deployment update replaces the deployment and rolls its instances; updating every
deployment of an endpoint at once could take the whole endpoint's capacity down. The effective
policy's ``max_parallel_updates`` (default 1) caps the deployments of one online endpoint being
written at the same time, across all workers: an attempt takes a slot (marks its operation with
the endpoint's rollout group) in one transaction that first locks the workspace row and counts
the group's other running, leased operations. A slot is released when the operation leaves
``running`` or its lease expires (a crashed worker's slot frees itself).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, func, select, update

from service.db.models import Operation, Workspace
from service.db.types import utcnow
from service.services.leases import Claim, write_transaction
from service.services.runtime import Runtime


def rollout_group(workspace_id: str, online_endpoint: str) -> str:
    return f"{workspace_id}/{online_endpoint}"


def take_slot(rt: Runtime, claim: Claim, owner: str, group: str, limit: int) -> bool:
    """Hold one of ``group``'s ``limit`` slots for this attempt; False when all are taken."""
    with write_transaction(rt) as uow:
        session = uow.session
        session.execute(
            select(Workspace.id).where(Workspace.id == claim.workspace_id).with_for_update()
        )
        busy = session.scalar(
            select(func.count())
            .select_from(Operation)
            .where(
                Operation.rollout_group == group,
                Operation.state == "running",
                Operation.lease_expires_at >= utcnow(),
                Operation.id != claim.id,
            )
        )
        if int(busy or 0) >= max(1, limit):
            return False
        taken = session.execute(
            update(Operation)
            .where(*_current(claim, owner))
            .values(rollout_group=group, version=Operation.version + 1)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        return bool(getattr(taken, "rowcount", 0) == 1)


def _current(claim: Claim, owner: str) -> list[ColumnElement[bool]]:
    # The attempt count fences a stale attempt of the same worker: a worker that re-claimed
    # its own operation (its lease expired during a slow first call) has moved it on.
    return [
        Operation.id == claim.id,
        Operation.state == "running",
        Operation.lease_owner == owner,
        Operation.attempts == claim.attempts,
    ]


def still_current(rt: Runtime, claim: Claim, owner: str) -> bool:
    """Extend the lease if this attempt still owns the operation; False when it lost it (to
    another worker, a newer attempt of this one, or a cancel). Checked right before a write."""
    expires = utcnow() + timedelta(seconds=rt.settings.reconciler.lease_s)
    with write_transaction(rt) as uow:
        result = uow.session.execute(
            update(Operation)
            .where(*_current(claim, owner))
            .values(lease_expires_at=expires, version=Operation.version + 1)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        return bool(getattr(result, "rowcount", 0) == 1)
