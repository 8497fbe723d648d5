"""How an attempt of an operation ended, and recording it (fenced by the attempt's lease)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from service.db.models import Endpoint, OperationAttempt
from service.db.types import utcnow
from service.domain.states import AttemptEnd, AttemptOutcome, OperationState, Recorded
from service.errors import ServiceError
from service.ports import ServiceSnapshot
from service.services import leases
from service.services.leases import AttemptRecord, Claim
from service.services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How an attempt ended (see :class:`AttemptEnd`: ``released`` when stopping hands the
    lease back to another worker, ``lost`` when taken over or cancelled, ``abandoned`` when
    stopping while a write may still be sent), and what to record."""

    state: AttemptEnd
    error: str | None = None
    delay_s: float = 0.0
    refund: bool = False  # a wait, not a failure: the attempt does not count
    keep_azure_operation: bool = False
    snapshot: ServiceSnapshot | None = None
    azure_status: int | None = None
    azure_code: str | None = None
    retry_after_s: float | None = None
    # Azure answered 429: it asked us to wait, the change did not fail. Not charged for the first
    # THROTTLED_WAITS of an operation (see record_outcome).
    throttled: bool = False


# Free waits for Azure's throttling per operation, before a 429 counts as a failed attempt: with
# 10% of calls throttled or failing, five charged attempts failed ~1 operation in 500 (bench
# reconcile_converge) though nothing was wrong with it; persistent throttling still ends failed.
THROTTLED_WAITS = 20


def record_outcome(
    rt: Runtime, claim: Claim, worker_id: str, outcome: Outcome, azure_operation_id: str | None
) -> Recorded:
    """Record the outcome (while the attempt's fencing token is current); returns the state
    written, ``lost`` when the token was no longer current, ``unrecorded`` when the database
    could not be written (see :class:`Recorded`)."""
    if outcome.state in (AttemptEnd.LOST, AttemptEnd.ABANDONED):
        return Recorded(outcome.state)  # the new owner (or the one after this process) decides
    refund = outcome.refund or (
        outcome.state == AttemptEnd.RETRY
        and outcome.throttled
        and _throttled_waits(rt, claim) < THROTTLED_WAITS
    )
    now = utcnow()
    values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
    charged = True
    if outcome.state == AttemptEnd.RELEASED:
        # Handed back: the next claim takes it over at once and this attempt is refunded.
        values.update(lease_owner=worker_id, lease_expires_at=now - timedelta(seconds=1))
        values.update(state=OperationState.RUNNING)
        attempt_outcome, charged = AttemptOutcome.RELEASED, False
    elif outcome.state == AttemptEnd.RETRY and (refund or claim.attempts < claim.max_attempts):
        # Back in the queue it holds no rollout slot (a slot counts only while running): the
        # next attempt takes one again before it writes. Kept, it counted as the slot of that
        # next attempt from its claim on, and two deployments of one endpoint claimed together
        # each waited for the other's old slot, in step, for minutes.
        values.update(
            state=OperationState.QUEUED,
            not_before=now + timedelta(seconds=outcome.delay_s),
            last_error=outcome.error,
            rollout_group=None,
        )
        attempt_outcome = AttemptOutcome.RETRY
        if refund:
            values["attempts"] = claim.attempts - 1
            attempt_outcome, charged = AttemptOutcome.WAITED, False
        if not outcome.keep_azure_operation:
            values["azure_operation_id"] = None
    else:
        # succeeded, failed or cancelled (a retry past the last attempt fails)
        final = OperationState(
            OperationState.FAILED if outcome.state == AttemptEnd.RETRY else outcome.state
        )
        values.update(state=final, finished_at=now, last_error=outcome.error)
        values["rollout_group"] = None
        attempt_outcome = AttemptOutcome(final)
    record = AttemptRecord(
        outcome=attempt_outcome,
        charged=charged,
        error=outcome.error,
        azure_status=outcome.azure_status,
        azure_code=outcome.azure_code,
        retry_after_s=outcome.retry_after_s,
        retry_at=values.get("not_before"),
        azure_operation_id=azure_operation_id,
    )
    try:
        with leases.write_transaction(rt) as uow:
            if outcome.snapshot is not None:
                # Discovery may be recording this workspace: take turns (same lock order).
                leases.lock_workspace_row(uow.session, claim.workspace_id)
            finished = leases.finish(rt, claim, worker_id, uow, record, **values)
            if finished and outcome.snapshot is not None:
                _observe(uow.session, claim, outcome.snapshot)
            uow.commit()
    except ServiceError as exc:
        # The lease will expire and another attempt re-reads Azure: nothing is lost.
        log.warning("could not record the outcome of operation %s: %s", claim.id, exc.detail)
        return Recorded.UNRECORDED
    return Recorded(values.get("state", OperationState.RUNNING)) if finished else Recorded.LOST


def _throttled_waits(rt: Runtime, claim: Claim) -> int:
    """How many of the operation's attempts were 429s left uncharged (read on a 429 only)."""
    try:
        with rt.uow(read_only=True) as uow:
            return int(
                uow.session.scalar(
                    select(func.count())
                    .select_from(OperationAttempt)
                    .where(
                        OperationAttempt.operation_id == claim.id,
                        OperationAttempt.azure_status == 429,
                        OperationAttempt.charged.is_(False),
                    )
                )
                or 0
            )
    except ServiceError:
        return THROTTLED_WAITS  # unknown: charge it, as before (recording may fail anyway)


def _observe(session: Session, claim: Claim, snapshot: ServiceSnapshot) -> None:
    """Record what the attempt saw last: one UPDATE, no ORM load (every attempt ends here)."""
    params: dict[str, Any] = {
        "at_workspace": claim.workspace_id,
        "at_name": claim.endpoint_name,
        "set_state": snapshot.state,
        "set_app_insights": snapshot.app_insights_enabled,
        "set_collection": snapshot.data_collection_enabled,
        "set_observed_at": utcnow(),
    }
    if snapshot.updated_at is not None:
        params["set_azure_updated_at"] = snapshot.updated_at
    stmt = _OBSERVED_WITH_AZURE_TIME if snapshot.updated_at is not None else _OBSERVED
    leases.core(session).execute(stmt, params)


def _observed(*, azure_time: bool) -> Any:
    values: dict[str, Any] = {
        "state": bindparam("set_state"),
        "app_insights_enabled": bindparam("set_app_insights"),
        "data_collection_enabled": bindparam("set_collection"),
        "observed_at": bindparam("set_observed_at"),
        "vanished_at": None,
        "version": Endpoint.version + 1,  # its ETag changes, as an ORM update would change it
    }
    if azure_time:
        values["azure_updated_at"] = bindparam("set_azure_updated_at")
    return (
        update(Endpoint)
        .where(
            Endpoint.workspace_id == bindparam("at_workspace"),
            Endpoint.name == bindparam("at_name"),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


# Built once (see leases._fenced_statement): every attempt ends with one of them.
_OBSERVED = _observed(azure_time=False)
_OBSERVED_WITH_AZURE_TIME = _observed(azure_time=True)
