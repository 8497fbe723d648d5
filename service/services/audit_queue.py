"""Query audit events written off the request path: a bounded queue and one writer thread.

A log query changes nothing, so its audit event need not share a transaction with anything; it
is queued and a background thread writes whatever has accumulated in one transaction (batches
form by themselves under load). Guarantees:

- never dropped silently: when the queue is full (or the writer is failing) the caller writes
  synchronously, queued events first, and a failure of that write reaches the caller;
- order: events are written in the order they were queued, whoever writes them;
- flushed on shutdown (``close``: by ``Runtime.close``, and for every queue still open by the
  one ``atexit`` hook of this module) and on demand (``flush``), which ``/v1/audit-events``
  does first so that a process reads its own writes.

Each :class:`Runtime` owns its queue (``Runtime.audit_queue()``).

The writer lets a batch gather for ``LINGER_S`` after its first row: writing each event of a
sequential caller in a transaction of its own cost a tenth of a query's CPU (issue 16,
``bench/profile_proxy.py``). What a hard kill (SIGKILL, power cut) can lose: the events queued
in that process, at most ``LOG_QUERY_AUDIT_QUEUE`` of them and normally only the last
``LINGER_S`` worth.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from service.db.models import AuditEvent
from service.domain.text import document_problems
from service.errors import ValidationFailed

if TYPE_CHECKING:  # runtime -> api_keys -> audit -> here: the type only, no import cycle
    from service.services.runtime import Runtime

log = logging.getLogger(__name__)

Row = dict[str, Any]
BATCH_MAX = 500
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
LINGER_S = 0.1  # how long the writer waits for more rows after the first, before it writes


class AuditQueue:
    """Bounded FIFO of audit rows with a background writer (thread-safe).

    ``capacity`` 0 writes every row synchronously (no thread).
    """

    def __init__(self, write: Callable[[Sequence[Row]], None], capacity: int) -> None:
        self._write = write
        self.capacity = capacity
        self._items: deque[Row] = deque()
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()  # held while rows are taken off the queue and written
        self._closed = False
        self._failing = False
        self._thread: threading.Thread | None = None
        self.sync_writes = 0  # rows the callers wrote themselves (full queue, failing writer)

    def put(self, row: Row) -> None:
        """Queue one row; write synchronously (queued rows first) when the queue cannot take it.

        A row no database can store is refused here, loudly, rather than queued: queued, it
        would fail every write of the batch it is in, for ever (callers check their input
        before acting, see ``require_storable``; this is the last line).
        """
        try:
            require_storable(row, "audit")
        except ValidationFailed:
            log.error("audit event %s refused: it holds text no database can store", row["action"])
            raise
        with self._cond:
            if not self._closed and not self._failing and len(self._items) < self.capacity:
                self._items.append(row)
                self._cond.notify()
                self._start()
                return
            self.sync_writes += 1
        self.flush(also=(row,))

    def flush(self, also: Sequence[Row] = ()) -> None:
        """Write every queued row (and ``also`` after them) now, in this thread.

        On failure the queued rows go back to the front of the queue and the error propagates.
        """
        with self._write_lock:
            with self._cond:
                batch = list(self._items)
                self._items.clear()
            if not batch and not also:
                return
            try:
                for start in range(0, len(batch) + len(also), BATCH_MAX):
                    self._write([*batch, *also][start : start + BATCH_MAX])
            except BaseException:
                with self._cond:
                    self._items.extendleft(reversed(batch))
                raise
            with self._cond:
                self._failing = False

    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the writer and write what is left (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self.flush()

    def _start(self) -> None:
        # Called with self._cond held.
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()
            _open.add(self)

    def _run(self) -> None:
        backoff = RETRY_MIN_S
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                deadline = time.monotonic() + LINGER_S  # more rows join the batch meanwhile
                while len(self._items) < BATCH_MAX and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)  # close() wakes it: it writes, then stops
            try:
                self.flush()
            except Exception:  # kept and retried; callers write inline meanwhile
                log.exception("audit writer failed; %d events kept for a retry", self.pending())
                with self._cond:
                    self._failing = True
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
            else:
                backoff = RETRY_MIN_S


def require_storable(value: Any, root: str) -> None:
    """Raise ValidationFailed (400) when ``value`` holds text no database can store."""
    problems = [{"field": f, "message": m} for f, m in document_problems(value, root)]
    if problems:
        raise ValidationFailed(f"{problems[0]['field']}: {problems[0]['message']}", problems)


# The queues whose writer thread runs, so that the exit writes what they hold: weak (a runtime
# owns its queue), and one exit hook for the process however many runtimes it builds.
_open: weakref.WeakSet[AuditQueue] = weakref.WeakSet()


def queue_for(rt: Runtime) -> AuditQueue:
    """The runtime's audit queue (``Runtime.audit_queue``)."""
    return rt.audit_queue()


@atexit.register
def close_all() -> None:
    """Close every open queue of this process (write what is left): at exit, and for exits
    that skip atexit (gunicorn's ``worker_exit``)."""
    for queue in list(_open):
        try:
            queue.close()
        except Exception:  # the others must still be written; this one is logged
            log.exception("audit events could not be written at exit")


def flush_all() -> None:
    """Write what every open queue of this process holds now (a consistent read of the audit
    table across runtimes: tests that check a request changed nothing)."""
    for queue in list(_open):
        queue.flush()


def flush(rt: Runtime) -> None:
    """Write the runtime's queued audit events now (read-your-writes, tests, shutdown)."""
    rt.audit_queue().flush()


def write_rows(rt: Runtime, rows: Sequence[Row]) -> None:
    """Insert audit rows in one transaction, in order."""
    with rt.uow() as uow:
        # Core executemany without RETURNING: one statement per row, in order (ids ascend).
        uow.session.connection().execute(insert(AuditEvent), list(rows))
        uow.commit()
