"""Counts for operator dashboards."""

from __future__ import annotations

from sqlalchemy import func, select

from service.db.models import Operation
from service.services.runtime import Runtime

STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def operation_counts(rt: Runtime) -> dict[str, int]:
    """Operations per state (every state present, zero when none)."""
    with rt.uow() as uow:
        rows = uow.session.execute(
            select(Operation.state, func.count()).group_by(Operation.state)
        ).all()
    counts = dict.fromkeys(STATES, 0)
    counts.update({str(state): int(n) for state, n in rows})
    return counts
