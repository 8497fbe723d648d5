"""The reconciler's shared state in the database: operation leases, tenant caps, write budgets.

Everything several workers must agree on lives here, so that any number of worker processes
(PostgreSQL) never double-claim an operation, never run more than the tenant's cap at once, and
never exceed a subscription's write budget:
- claims lock the tenant row (``SELECT ... FOR UPDATE``) while counting its running operations,
  and take operations with ``FOR UPDATE SKIP LOCKED``;
- a write slot is reserved by one atomic ``UPDATE ... RETURNING`` per subscription, in the
  transaction that counts the subscription's writes not yet answered (or answered less than a
  second ago) and records this one (``subscription_writes``): none is reserved while they are
  as many as the budget's writes per second;
- every claim takes a new fencing token (``operations.fence``, incremented, never reused), and
  every later state change of that attempt (renewal, outcome) is a conditional UPDATE on the
  operation id, ``running``, the worker id *and* the token: an attempt whose lease expired and
  was taken over (even by the same worker) can never write again;
- each attempt has a row in ``operation_attempts`` (its number is its token).

How attempts are charged against ``max_attempts``: claiming a queued operation starts a charged
attempt (``attempts + 1``, never past ``max_attempts``: the database refuses it too). Taking over
a running operation whose lease expired (its worker crashed, was partitioned away, or stopped
gracefully and released it) closes the lost attempt as ``abandoned`` (or ``released``), refunds
it, and starts a new one in its place: a crash does not eat the retry budget. So that a
poison operation that kills every worker cannot loop for ever, an operation whose attempts were
abandoned ``max_attempts`` times fails.
SQLite has no row locks: there, one worker process runs (its threads serialise through
``write_transaction``, which takes the database write lock first).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    all_,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from service.db.models import Operation, OperationAttempt, Tenant, Workspace
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.states import AttemptOutcome, OperationState
from service.services.db_writes import WriteSlot as WriteSlot
from service.services.db_writes import core as core
from service.services.db_writes import take_write_slot as take_write_slot
from service.services.db_writes import write_ended as write_ended
from service.services.db_writes import write_pending as write_pending
from service.services.db_writes import write_transaction as write_transaction
from service.services.runtime import Runtime


@dataclass(frozen=True)
class Claim:
    """An operation this worker holds the lease of."""

    id: str
    tenant_id: str
    workspace_id: str
    endpoint_name: str
    attempts: int
    max_attempts: int
    azure_operation_id: str | None
    desired: dict[str, Any]
    cause: str
    fence: int = 0  # this attempt's fencing token
    leased_at: float = 0.0  # time.monotonic() when the lease's expiry was set


# The claim's statements are built once with bound parameters (see _fenced_statement): the
# reconciler claims several times a second, one transaction per tenant with work. ``now`` is
# bound at execution, so the same statement serves every tick.
_NOW: Any = bindparam("now")
_TENANT: Any = bindparam("tenant")


def _claimable() -> Any:
    queued = (Operation.state == OperationState.QUEUED) & (
        Operation.not_before.is_(None) | (Operation.not_before <= _NOW)
    )
    # A running operation whose lease expired lost its worker (crash, kill, partition).
    orphaned = (Operation.state == OperationState.RUNNING) & (Operation.lease_expires_at < _NOW)
    return or_(queued, orphaned)


def _holding_a_place() -> Any:
    """An operation that counts against its tenant's cap: an attempt of it runs in a worker's
    thread (its lease is live). One whose Azure operation is only being followed does not: it
    holds no thread, and Azure's operations take minutes (``following_since``)."""
    return (
        (Operation.state == OperationState.RUNNING)
        & (Operation.lease_expires_at >= _NOW)
        & Operation.following_since.is_(None)
    )


def _among(dialect_name: str, name: str, *, negate: bool = False) -> Any:
    """``operations.id`` (not) among the ids bound as ``name``. On PostgreSQL one array
    parameter (``= ANY`` / ``<> ALL``), not one parameter each: the statement text then stays
    the same whatever the list, so psycopg converts it once, not on every tick (a 100-id list
    made that a large share of claiming)."""
    if dialect_name == "postgresql":
        ids = bindparam(name, type_=postgresql.ARRAY(String()))
        return Operation.id != all_(ids) if negate else Operation.id == any_(ids)
    ids = bindparam(name, expanding=True)
    return Operation.id.not_in(ids) if negate else Operation.id.in_(ids)


@functools.cache
def _due_tenants(sharded: bool) -> Any:
    due = select(Operation.tenant_id).where(_claimable())
    if sharded:
        due = due.where(Operation.tenant_id.in_(bindparam("only", expanding=True)))
    return due.distinct().limit(200)


_BUSY_TENANTS = (
    select(Operation.tenant_id, func.count())
    .where(_holding_a_place())
    .group_by(Operation.tenant_id)
)
# Serialises the count-then-claim of a tenant with other workers' claims for it.
_LOCK_TENANT = select(Tenant.id).where(Tenant.id == _TENANT).with_for_update()
_TENANT_RUNNING = (
    select(func.count())
    .select_from(Operation)
    .where(Operation.tenant_id == _TENANT, _holding_a_place())
)
_CLAIMED_FIELDS = (
    Operation.id,
    Operation.workspace_id,
    Operation.endpoint_name,
    Operation.attempts,
    Operation.max_attempts,
    Operation.azure_operation_id,
    Operation.desired,
    Operation.cause,
    Operation.fence,
)
_ATTEMPT_STARTED = insert(OperationAttempt)


@functools.cache
def _due_of_tenant(dialect_name: str, excluding: bool) -> Any:
    cols = (Operation.id, Operation.state, Operation.attempts, Operation.max_attempts)
    due = select(*cols).where(Operation.tenant_id == _TENANT, _claimable())
    if excluding:
        due = due.where(_among(dialect_name, "excluded", negate=True))
    limit = bindparam("free", type_=Integer)
    return due.order_by(Operation.created_at).limit(limit).with_for_update(skip_locked=True)


@functools.cache
def _take_queued(dialect_name: str) -> Any:
    """Lease queued operations with attempts left (the common case), in one statement that
    returns what their claims need."""
    return (
        update(Operation)
        .where(_among(dialect_name, "plain"))
        .values(
            state=OperationState.RUNNING,
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("expires"),
            attempts=Operation.attempts + 1,
            fence=Operation.fence + 1,
            version=Operation.version + 1,
        )
        .returning(*_CLAIMED_FIELDS)
        .execution_options(synchronize_session=False)
    )


@functools.cache
def _claimed_rows(dialect_name: str) -> Any:
    return select(*_CLAIMED_FIELDS).where(_among(dialect_name, "taken"))


def claim(
    rt: Runtime,
    owner: str,
    capacity: int,
    *,
    only_tenants: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> list[Claim]:
    """Lease up to ``capacity`` due operations, within every tenant's concurrency cap.

    ``only_tenants`` restricts the worker to some tenants (sharding, or tests sharing a database).
    ``exclude``: operations the caller still runs an attempt of (whatever their lease says): it
    must never start a second one beside it.
    """
    cfg = rt.settings.reconciler
    if capacity <= 0 or (only_tenants is not None and not only_tenants):
        return []
    with rt.uow(read_only=True) as uow:
        params: dict[str, Any] = {"now": utcnow()}
        if only_tenants is not None:
            params["only"] = list(only_tenants)
        tenants: list[str] = list(
            core(uow.session).execute(_due_tenants(only_tenants is not None), params).scalars()
        )
        # A cheap first look (re-checked under the lock): skip tenants already at their cap
        # without opening a write transaction for each of them.
        busy: dict[str, int] = dict(core(uow.session).execute(_BUSY_TENANTS, params).all())
    tenants = [t for t in tenants if busy.get(t, 0) < cfg.tenant_concurrency]
    claims: list[Claim] = []
    # Oldest work first across tenants would starve small tenants behind a big one: rotate.
    offset = int(time.monotonic() * 10) % max(1, len(tenants))
    for tenant_id in tenants[offset:] + tenants[:offset]:
        if len(claims) >= capacity:
            break
        claims += _claim_for_tenant(
            rt, owner, tenant_id, capacity - len(claims), cfg.lease_s, exclude
        )
    return claims


def _claim_for_tenant(
    rt: Runtime,
    owner: str,
    tenant_id: str,
    capacity: int,
    lease_s: float,
    exclude: Collection[str] = (),
) -> list[Claim]:
    with write_transaction(rt) as uow:
        session = uow.session
        conn = core(session)
        dialect = conn.dialect.name
        # The lease runs from ``now`` (its expiry is ``now + lease_s``), so the worker counts its
        # renewals from the same moment, not from after the tenant's row lock was waited for.
        now, leased_at = utcnow(), time.monotonic()
        params: dict[str, Any] = {"tenant": tenant_id, "now": now}
        conn.execute(_LOCK_TENANT, params)
        running = conn.execute(_TENANT_RUNNING, params).scalar()
        free = min(capacity, rt.settings.reconciler.tenant_concurrency - int(running or 0))
        if free <= 0:
            return []
        params["free"] = free
        if exclude:
            params["excluded"] = list(exclude)
        rows: list[Any] = list(conn.execute(_due_of_tenant(dialect, bool(exclude)), params))
        expires = now + timedelta(seconds=lease_s)
        taken: list[Operation] = []
        plain: list[str] = []  # queued with attempts left: the common case, in one statement
        order = {row[0]: i for i, row in enumerate(rows)}  # oldest first, as selected
        for op_id, state, attempts, max_attempts in rows:
            if state == OperationState.QUEUED and attempts < max_attempts:
                plain.append(op_id)
                continue
            # Rare: a take-over, or (defensively) no attempts left: the entity, row by row.
            op = session.get(Operation, op_id, populate_existing=True)
            assert op is not None  # locked by this transaction
            if op.state == OperationState.RUNNING and not _take_over(session, op, now):
                continue  # failed: abandoned too often
            elif op.state == OperationState.QUEUED:
                _fail(op, now, "no attempts left")  # defensive: never past the cap
                continue
            op.state, op.lease_owner, op.lease_expires_at = OperationState.RUNNING, owner, expires
            op.following_since = None  # the new attempt follows in its own thread first
            op.fence += 1
            taken.append(op)
        session.flush()
        claimed: list[Any] = []
        if plain:
            claimed += conn.execute(
                _take_queued(dialect), {"plain": plain, "owner": owner, "expires": expires}
            ).all()
        if taken:
            claimed += conn.execute(
                _claimed_rows(dialect), {"taken": [op.id for op in taken]}
            ).all()
        claimed.sort(key=lambda r: order[r.id])
        if claimed:
            conn.execute(
                _ATTEMPT_STARTED,
                [{"operation_id": r.id, "number": r.fence, "worker": owner} for r in claimed],
            )
        claims = [
            Claim(
                r.id,
                tenant_id,
                r.workspace_id,
                r.endpoint_name,
                r.attempts,
                r.max_attempts,
                r.azure_operation_id,
                dict(r.desired),
                r.cause,
                r.fence,
                leased_at,
            )
            for r in claimed
        ]
        uow.commit()
        return claims


def _take_over(session: Any, op: Operation, now: datetime) -> bool:
    """Close the attempt whose lease expired (it is refunded); False when the operation failed
    instead because its attempts were abandoned ``max_attempts`` times."""
    session.execute(
        update(OperationAttempt)
        .where(
            OperationAttempt.operation_id == op.id,
            OperationAttempt.number == op.fence,
            OperationAttempt.outcome.is_(None),
        )
        .values(
            outcome=AttemptOutcome.ABANDONED,
            charged=False,
            finished_at=now,
            error=f"lease expired: worker {op.lease_owner} stopped renewing it",
        )
        .execution_options(synchronize_session=False)
    )
    abandoned = session.scalar(
        select(func.count())
        .select_from(OperationAttempt)
        .where(
            OperationAttempt.operation_id == op.id,
            OperationAttempt.outcome == AttemptOutcome.ABANDONED,
        )
    )
    if int(abandoned or 0) >= op.max_attempts:
        _fail(op, now, f"{abandoned} attempts were abandoned by workers that stopped (crashed?)")
        return False
    return True


def _fail(op: Operation, now: datetime, error: str) -> None:
    op.state = OperationState.FAILED
    op.finished_at = now
    op.last_error = error
    op.lease_owner = None
    op.lease_expires_at = None


def renew(rt: Runtime, claim: Claim, owner: str, **changes: Any) -> bool:
    """Extend the lease (and set ``changes``); False when the lease was lost or cancelled."""
    expires = utcnow() + timedelta(seconds=rt.settings.reconciler.lease_s)
    with write_transaction(rt, single_statement=True) as uow:
        result = fenced_update(uow.session, claim, owner, lease_expires_at=expires, **changes)
        uow.commit()
        return bool(getattr(result, "rowcount", 0) == 1)


def fenced_update(session: Session, claim: Claim, owner: str, **values: Any) -> Any:
    """UPDATE the operation (``values``, and its version) only while this attempt holds it:
    running, leased by this worker, and still at this attempt's fencing token. ``values`` are
    plain values (no SQL expressions). Returns the result."""
    params = _set_params(values)
    params.update(fenced_id=claim.id, fenced_owner=owner, fenced_fence=claim.fence)
    return core(session).execute(_fenced_statement(tuple(sorted(values))), params)


def _set_params(values: dict[str, Any]) -> dict[str, Any]:
    """The bound parameters of the new ``values`` of a statement built with ``set_<column>``."""
    return {f"set_{name}": value for name, value in values.items()}


# The fenced UPDATEs, one per set of columns, built once with bound parameters: an attempt
# runs several (renewals, its outcome), and building each again (SQLAlchemy's constructs and
# their cache key) was a tenth of the reconciler's CPU with the SQL of its hot paths
# (bench/reconcile_converge.py profiled with yappi, issue 16).
@functools.cache
def _fenced_statement(names: tuple[str, ...]) -> Any:
    return (
        update(Operation)
        .where(
            Operation.id == bindparam("fenced_id"),
            Operation.state == OperationState.RUNNING,
            Operation.lease_owner == bindparam("fenced_owner"),
            Operation.fence == bindparam("fenced_fence"),
        )
        .values(
            version=Operation.version + 1,
            **{name: bindparam(f"set_{name}") for name in names},
        )
        .execution_options(synchronize_session=False)
    )


# Built once (see _fenced_statement): an attempt that records an observation, or takes a
# rollout slot, first locks its workspace's row, as discovery does, so that they take turns.
_LOCK_WORKSPACE = (
    select(Workspace.id).where(Workspace.id == bindparam("lock_workspace")).with_for_update()
)


def lock_workspace_row(session: Session, workspace_id: str) -> None:
    """Lock the workspace's row until the transaction ends (the same lock order as discovery's
    ``lock_workspace``)."""
    core(session).execute(_LOCK_WORKSPACE, {"lock_workspace": workspace_id})


@dataclass(frozen=True)
class AttemptRecord:
    """How an attempt ended, for its ``operation_attempts`` row."""

    outcome: AttemptOutcome
    charged: bool = True
    error: str | None = None
    azure_status: int | None = None
    azure_code: str | None = None
    retry_after_s: float | None = None
    retry_at: datetime | None = None
    azure_operation_id: str | None = None


# The attempt's row, written as it ends (built once: see _fenced_statement).
_ATTEMPT_ENDED = (
    update(OperationAttempt)
    .where(
        OperationAttempt.operation_id == bindparam("attempt_of"),
        OperationAttempt.number == bindparam("attempt_number"),
    )
    .values(
        {
            name: bindparam(f"set_{name}")
            for name in ("finished_at", *AttemptRecord.__dataclass_fields__)
        }
    )
    .execution_options(synchronize_session=False)
)


def finish(
    rt: Runtime,
    claim: Claim,
    owner: str,
    uow: UnitOfWork,
    record: AttemptRecord | None = None,
    **values: Any,
) -> bool:
    """Write the attempt's outcome if the lease is still ours (in the caller's transaction).
    The operation is no longer followed (``following_since``) unless ``values`` say so."""
    values.setdefault("following_since", None)
    result = fenced_update(uow.session, claim, owner, **values)
    finished = bool(getattr(result, "rowcount", 0) == 1)
    if finished and record is not None:
        params = _set_params(record.__dict__)
        params.update(attempt_of=claim.id, attempt_number=claim.fence, set_finished_at=utcnow())
        core(uow.session).execute(_ATTEMPT_ENDED, params)
    return finished
