"""Counts for operator dashboards."""

from __future__ import annotations

from sqlalchemy import func, select

from service.db.models import Operation
from service.db.types import utcnow
from service.domain.states import OperationState
from service.services.runtime import Runtime

STATES = tuple(state.value for state in OperationState)


def operation_counts(rt: Runtime) -> dict[str, int]:
    """Operations per state (every state present, zero when none)."""
    with rt.uow(read_only=True) as uow:
        rows = uow.session.execute(
            select(Operation.state, func.count()).group_by(Operation.state)
        ).all()
    counts = dict.fromkeys(STATES, 0)
    counts.update({str(state): int(n) for state, n in rows})
    return counts


def following_count(rt: Runtime) -> int:
    """Running operations whose Azure operation is followed without a thread."""
    with rt.uow(read_only=True) as uow:
        return int(
            uow.session.scalar(
                select(func.count())
                .select_from(Operation)
                .where(
                    Operation.state == OperationState.RUNNING,
                    Operation.following_since.is_not(None),
                )
            )
            or 0
        )


def oldest_due_age_s(rt: Runtime) -> float:
    """How long the oldest queued, due operation has been waiting (0 when none): the lag."""
    now = utcnow()
    with rt.uow(read_only=True) as uow:
        oldest = uow.session.scalar(
            select(func.min(Operation.created_at)).where(
                Operation.state == OperationState.QUEUED,
                (Operation.not_before.is_(None)) | (Operation.not_before <= now),
            )
        )
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
