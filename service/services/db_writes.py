"""The reconciler's database writes that every part of it shares: the writer transaction (SQLite
takes its write lock first), Core execution of the hot fenced UPDATEs, and the subscriptions'
write budget (``leases`` re-exports all three; see its docstring for how workers agree).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.models import SubscriptionWrite, WriteBudget
from service.db.session import UnitOfWork
from service.domain.ids import new_id
from service.errors import AzureCallFailed, ServiceError
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
_SQLITE_WRITERS = threading.Lock()
SLOT_MARGIN = 1.5  # write slots are this many times 1 / rate apart (see _reserve)


@contextmanager
def write_transaction(rt: Runtime, *, single_statement: bool = False) -> Iterator[UnitOfWork]:
    """A unit of work that is a writer from its first statement.

    On SQLite a transaction that reads first and writes later fails at once ("database is
    locked") if another connection committed in between; taking the write lock first makes it
    wait (busy_timeout) instead. This process's threads also queue on a lock, not on SQLite.
    ``single_statement``: the unit is one fenced UPDATE (a lease renewal, a write slot): on
    PostgreSQL it runs without BEGIN/COMMIT (``Database.single_statement``).
    """
    if not rt.settings.is_sqlite:
        unit = rt.database.single_statement() if single_statement else rt.uow()
        with unit as uow:
            yield uow
        return
    with _SQLITE_WRITERS, rt.uow() as uow:
        uow.session.execute(
            text("UPDATE write_budgets SET next_write_at = next_write_at WHERE 0 = 1")
        )
        yield uow


def core(session: Session) -> Connection:
    """The session's connection, for the hot, fenced UPDATEs of the reconciler: executed as Core
    statements they skip the ORM's bulk-update layer (a large share of every attempt's CPU).
    Nothing they touch is loaded in the session (``synchronize_session=False`` everywhere)."""
    return session.connection()


def _reserve(
    rt: Runtime, subscription_id: str, clock: Callable[[], float]
) -> tuple[float, str] | float:
    """Reserve the subscription's next write slot: when it starts (epoch seconds) and the
    write's row in ``subscription_writes``; or, when the budget's writes per second of the
    subscription still count at that start, how long to wait before asking again (nothing is
    reserved then).

    Slots are ``SLOT_MARGIN / rate`` apart, for all workers together: the atomic UPDATE hands
    each caller a distinct slot. Azure counts a write when it *arrives*, and between the slot and
    the arrival lie a lease renewal and the SDK's own call before its write (azureml-core's
    validate POST, azure-ai-ml's guard GET), whose time varies with the load: slots exactly
    ``1 / rate`` apart let ``rate + 1`` writes arrive within one second as soon as an early one
    is delayed more than a later one. The margin absorbs a difference of up to
    ``(SLOT_MARGIN - 1)`` seconds. On a loaded 2-core machine with the reconciler writing at full
    budget (bench.reconcile_converge, 2 workers), margins of 1.1 and 1.3 both let 11 writes/s
    arrive at the emulator; 1.5 kept them at 9. A margin only makes it likely: in a slower
    phase of the same machine 11 arrived again. What makes it certain is the count (see
    ``SubscriptionWrite``): the slot is handed out only if fewer than ``rate`` writes of the
    subscription count at its start, in the transaction that holds the subscription's row, so
    reservations of all workers see each other's writes in order.
    """
    cfg = rt.settings.reconciler
    interval = SLOT_MARGIN / cfg.subscription_writes_per_s
    budget = max(1, int(cfg.subscription_writes_per_s))  # writes that may count at once
    key = subscription_id.lower()
    with write_transaction(rt) as uow:
        conn = core(uow.session)
        stmts = _reservation_statements(conn.dialect.name)
        now = clock()
        taking = {"sub": key, "now": now, "interval": interval}
        slot_end: float | None = conn.execute(stmts.take, taking).scalar_one_or_none()
        if slot_end is None:  # the subscription's first write: its row, then the same UPDATE
            conn.execute(stmts.first, {"sub": key})
            slot_end = conn.execute(stmts.take, taking).scalar_one()
        # The UPDATE holds the subscription's row until the commit: the count sees every
        # write reserved before this one.
        start = float(slot_end) - interval
        counted: list[float] = list(
            conn.execute(stmts.counted, {"sub": key, "start": start}).scalars()
        )
        if len(counted) >= budget:  # nothing reserved (rolled back): ask again once one ends
            free_at = float(counted[len(counted) - budget])
            return min(max(free_at - now, BUDGET_RECHECK_MIN_S), BUDGET_RECHECK_MAX_S)
        write_id = new_id()
        conn.execute(stmts.forget, {"sub": key, "before": now - FORGET_AFTER_S})
        horizon = start + SEND_WITHIN_S + cfg.call_timeout_s + HORIZON_MARGIN_S
        conn.execute(stmts.count, {"write": write_id, "sub": key, "until": horizon})
        uow.commit()
    return start, write_id


@dataclass(frozen=True)
class _Reservation:
    """A reservation's statements for one dialect, built once with bound parameters: a write
    ran five, and building them again (SQLAlchemy's constructs and their cache keys) was about
    half of a reservation's CPU (bench/reconcile_converge.py profiled with yappi, issue 16)."""

    take: Any
    first: Any
    counted: Any
    forget: Any
    count: Any


@functools.cache
def _reservation_statements(dialect_name: str) -> _Reservation:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    latest = func.greatest if dialect is postgresql else func.max
    key: Any = bindparam("sub")
    now = bindparam("now", type_=Float)
    return _Reservation(
        take=update(WriteBudget)
        .where(WriteBudget.subscription_id == key)
        .values(next_write_at=latest(WriteBudget.next_write_at, now) + bindparam("interval"))
        .returning(WriteBudget.next_write_at)
        .execution_options(synchronize_session=False),
        first=dialect.insert(WriteBudget)
        .values(subscription_id=key, next_write_at=0.0)
        .on_conflict_do_nothing(),
        counted=select(SubscriptionWrite.counted_until)
        .where(
            SubscriptionWrite.subscription_id == key,
            SubscriptionWrite.counted_until >= bindparam("start"),
        )
        .order_by(SubscriptionWrite.counted_until),
        forget=delete(SubscriptionWrite)
        .where(
            SubscriptionWrite.subscription_id == key,
            SubscriptionWrite.counted_until < bindparam("before"),
        )
        .execution_options(synchronize_session=False),
        count=dialect.insert(SubscriptionWrite).values(
            id=bindparam("write"), subscription_id=key, counted_until=bindparam("until")
        ),
    )


# A write is sent at most this long after its slot starts, or it takes a new slot: the rest of
# SLOT_MARGIN's half second of slack is left to the SDK's own call before its write.
LATE_S = 0.25
# ... and the read the adapter makes before the write ends within this of the slot's start, or
# the write is not sent (the port's ``send_by``, ``WriteNotSent``; a read that failed is never
# retried inside the write). A second: a read slowed by a loaded process (0.1-0.6 s here at
# twice the default concurrency) is not refused, one that hung is. At SLOT_MARGIN - 1 (0.5 s)
# that load made 768 of ~1,100 writes give up slots and converge in 144 s instead of ~45.
SEND_WITHIN_S = 1.0
SLOT_TRIES = 10
# A write counts from its reservation until its call's deadline has passed (the read before it
# ends by SEND_WITHIN_S, the write's own call by AZURE_CALL_TIMEOUT_S after that) with this
# margin, unless its end is recorded sooner (``write_ended``); a write left unanswered at its
# deadline is counted on while it is waited for (``write_pending``). So a crashed worker's
# writes stop counting by themselves, and only after they can no longer arrive.
HORIZON_MARGIN_S = 5.0
COUNTED_AFTER_ANSWER_S = 1.0  # an answered write arrived before its answer: counted 1 s more
BUDGET_RECHECK_MIN_S = 0.02  # a reservation that found the budget counted asks again after
BUDGET_RECHECK_MAX_S = 1.0  # ... at least this, at most this (an answer frees one sooner)
FORGET_AFTER_S = 60.0  # rows counted until longer ago than this are deleted by reservations


@dataclass(frozen=True)
class WriteSlot:
    """A reserved write: send it now and not after ``send_by`` (epoch seconds); record its end
    with ``write_ended`` (``write_id``: its row in ``subscription_writes``)."""

    send_by: float
    write_id: str


# write_ended's statements, built once (see _Reservation).
_ANSWERED = (
    update(SubscriptionWrite)
    .where(SubscriptionWrite.id == bindparam("write"))
    .values(counted_until=bindparam("until"))
    .execution_options(synchronize_session=False)
)
_NOT_SENT = (
    delete(SubscriptionWrite)
    .where(SubscriptionWrite.id == bindparam("write"))
    .execution_options(synchronize_session=False)
)


def write_ended(rt: Runtime, slot: WriteSlot, *, sent: bool = True) -> None:
    """The write's call ended: sent (answered, or failed after it may have been sent), it counts
    one second more (it arrived before its answer); not sent, it stops counting. Never raises:
    should the database fail now, the row counts until its horizon instead (fewer writes, never
    more)."""
    try:
        with write_transaction(rt, single_statement=True) as uow:
            if sent:
                params = {"write": slot.write_id, "until": time.time() + COUNTED_AFTER_ANSWER_S}
                core(uow.session).execute(_ANSWERED, params)
            else:
                core(uow.session).execute(_NOT_SENT, {"write": slot.write_id})
            uow.commit()
    except ServiceError as exc:  # the database, briefly: the horizon bounds it
        log.warning("could not record the end of write %s (%s)", slot.write_id, type(exc).__name__)


def write_pending(rt: Runtime, slot: WriteSlot, for_s: float) -> None:
    """A write left unanswered at its deadline may still arrive: it counts ``for_s`` more (and
    one second), renewed while it is waited for. Raises the database's error (the caller keeps
    waiting and tries again, as it does with its lease)."""
    until = time.time() + for_s + COUNTED_AFTER_ANSWER_S
    with write_transaction(rt, single_statement=True) as uow:
        core(uow.session).execute(
            update(SubscriptionWrite)
            .where(SubscriptionWrite.id == slot.write_id, SubscriptionWrite.counted_until < until)
            .values(counted_until=until)
            .execution_options(synchronize_session=False)
        )
        uow.commit()


class WriteSlotMissed(AzureCallFailed):
    """Every slot reserved for a write was missed: the process is too loaded to keep the
    subscription's write budget now (a temporary error: the attempt is retried later)."""


class SlotTries:
    """The slots one write may still reserve, SLOT_TRIES in all: those given up as late here
    and those whose write was not sent (the caller's read before it failed or was slow) count
    alike, so a write never spends more of its subscription's budget than that."""

    def __init__(self, tries: int = SLOT_TRIES) -> None:
        self.tries = tries
        self.left = tries

    def spend(self) -> None:
        if self.left <= 0:
            raise WriteSlotMissed(
                f"the write was not sent within its slot in {self.tries} tries (slots missed "
                "by an overloaded worker, or reads before the write that failed or were slow)",
                retry_after_s=1,
            )
        self.left -= 1


def take_write_slot(
    rt: Runtime,
    subscription_id: str,
    pause: Callable[[float], None],
    fence: Callable[[], None],
    clock: Callable[[], float] = time.time,
    tries: SlotTries | None = None,
) -> WriteSlot:
    """Wait for the subscription's next write slot, then ``fence`` the write (renew the lease
    that guards it); returns when the write may be sent at once, with the time (epoch seconds)
    after which it must not be sent any more (``send_by``: the slot's start + SEND_WITHIN_S).
    The caller records the write's end (``write_ended``); until then it counts against the
    subscription's budget (see ``SubscriptionWrite``).

    When the reservation, the wait or the fence ended more than ``LATE_S`` after the slot began
    (a row lock held by another reservation, a slow lease renewal, a loaded process), the slot
    is given up and a new one reserved: a write sent late would arrive among the writes of the
    slots after its own. A slot given up is never reused, which only lowers the rate.
    ``WriteSlotMissed`` once ``tries`` (the write's, shared by every call for it; else
    SLOT_TRIES for this call) has no slot left.
    """
    tries = tries or SlotTries()
    while True:
        tries.spend()
        while True:  # the subscription's budget counts as many writes as it allows: wait
            reserved = _reserve(rt, subscription_id, clock)
            if isinstance(reserved, tuple):
                break
            rt.meter.throttle_wait("subscription_writes")
            pause(reserved)
        start, write_id = reserved
        slot = WriteSlot(start + SEND_WITHIN_S, write_id)
        try:
            # From the clock *after* the commit: the reservation itself (a row lock other
            # workers hold, a loaded process) took time, and a wait counted from before it sent
            # the write that much after its slot, next to the following slots' writes
            # (bench.reconcile_converge with 200 threads: writes reserved 0.15 s apart were sent
            # within 20 ms of each other).
            wait_s = start - clock()
            if wait_s > 0:
                rt.meter.throttle_wait("subscription_writes")
                pause(wait_s)
            fence()
        except BaseException:
            write_ended(rt, slot, sent=False)
            raise
        late = clock() - start
        if late <= LATE_S:
            return slot
        write_ended(rt, slot, sent=False)
        rt.meter.write_slot_missed("late")
        log.debug(
            "write slot of subscription %s missed by %.2f s: taking another", subscription_id, late
        )
