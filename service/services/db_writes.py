"""The reconciler's database writes that every part of it shares: the writer transaction (SQLite
takes its write lock first), Core execution of the hot fenced UPDATEs, and the subscriptions'
write budget (``leases`` re-exports all three; see its docstring for how workers agree).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, func, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.models import WriteBudget
from service.db.session import UnitOfWork
from service.errors import AzureCallFailed
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


def _reserve(rt: Runtime, subscription_id: str, clock: Callable[[], float]) -> float:
    """Reserve the subscription's next write slot; returns when it starts (epoch seconds).

    Slots are ``SLOT_MARGIN / rate`` apart, for all workers together: the atomic UPDATE hands
    each caller a distinct slot. Azure counts a write when it *arrives*, and between the slot and
    the arrival lie a lease renewal and the SDK's own call before its write (azureml-core's
    validate POST, azure-ai-ml's guard GET), whose time varies with the load: slots exactly
    ``1 / rate`` apart let ``rate + 1`` writes arrive within one second as soon as an early one
    is delayed more than a later one. The margin absorbs a difference of up to
    ``(SLOT_MARGIN - 1)`` seconds. On a loaded 2-core machine with the reconciler writing at full
    budget (bench.reconcile_converge, 2 workers), margins of 1.1 and 1.3 both let 11 writes/s
    arrive at the emulator; 1.5 kept them at 9.
    """
    interval = SLOT_MARGIN / rt.settings.reconciler.subscription_writes_per_s
    key = subscription_id.lower()
    # Each statement is right on its own (the INSERT only makes sure the row exists).
    with write_transaction(rt, single_statement=True) as uow:
        session = uow.session
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        now = clock()
        latest = func.greatest if dialect is postgresql else func.max
        take = (
            update(WriteBudget)
            .where(WriteBudget.subscription_id == key)
            .values(next_write_at=latest(WriteBudget.next_write_at, now) + interval)
            .returning(WriteBudget.next_write_at)
            .execution_options(synchronize_session=False)
        )
        slot_end = core(session).execute(take).scalar_one_or_none()
        if slot_end is None:  # the subscription's first write: its row, then the same UPDATE
            core(session).execute(
                dialect.insert(WriteBudget)
                .values(subscription_id=key, next_write_at=0.0)
                .on_conflict_do_nothing()
            )
            slot_end = core(session).execute(take).scalar_one()
        uow.commit()
    return float(slot_end) - interval


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
) -> float:
    """Wait for the subscription's next write slot, then ``fence`` the write (renew the lease
    that guards it); returns when the write may be sent at once, with the time (epoch seconds)
    after which it must not be sent any more (``send_by``: the slot's start + SEND_WITHIN_S).

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
        start = _reserve(rt, subscription_id, clock)
        # From the clock *after* the commit: the reservation itself (a row lock other workers
        # hold, a loaded process) took time, and a wait counted from before it sent the write
        # that much after its slot, next to the following slots' writes (bench.reconcile_converge
        # with 200 threads: writes reserved 0.15 s apart were sent within 20 ms of each other).
        wait_s = start - clock()
        if wait_s > 0:
            rt.meter.throttle_wait("subscription_writes")
            pause(wait_s)
        fence()
        late = clock() - start
        if late <= LATE_S:
            return start + SEND_WITHIN_S
        rt.meter.write_slot_missed("late")
        log.debug(
            "write slot of subscription %s missed by %.2f s: taking another", subscription_id, late
        )
