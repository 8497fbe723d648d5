"""One host's coordination store: a small SQLite file shared by the gunicorn workers.

Without Redis, the workers of one gunicorn master still share one budget per identity (all 5
slots, not 5 // workers each) and one revocation counter. gunicorn's configuration points
``COORDINATION_FILE`` at a file in a fresh temporary directory, so the file lives as long as
that master. SQLite's file lock is what makes each step atomic across processes, and leases
make a crashed worker's slots lapse.

Each step is one ``BEGIN IMMEDIATE`` transaction of a few indexed statements over the
identity's rows: the rules of ``service.domain.budget``, kept in step with it like the Redis
store's Lua script (``redis_coordination``), which this mirrors table for key; the tests run
the same cases against every store. The state is rows, not one serialised document: the send
window holds every query of the last ``window_s`` (thousands when the rate limit is high), and
reading and rewriting all of it on every acquire and release cost a millisecond and more per
query (issue 16, ``bench/profile_proxy.py``). A step costs the same whatever the window holds:
its size is a counter (``sent_count``), not a count(*) of its rows.

A release tells the other processes at once (:class:`_Wakeups`: one datagram per peer over a
Unix socket in ``<file>.wake/``), so their waiters look when a slot is freed rather than on a
timer; polling alone handed slots on a few ms late and held one host's workers to about 200
queries/s together, one worker alone to 440.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from service.domain.budget import GRANTED, KEY_QUEUE, RATE, WAITING, Decision, Limits, send_ids

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a step waits for another process's transaction before it fails (as SQLite's own busy
# timeout did), and the pauses between its attempts.
BUSY_TIMEOUT_S = 10.0
BUSY_PAUSE_S = (0.0002, 0.005)  # first, longest

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS slot (identity TEXT, token TEXT, expires REAL,"
    " PRIMARY KEY (identity, token)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS slot_expiry ON slot (identity, expires)",
    "CREATE TABLE IF NOT EXISTS sent (identity TEXT, send TEXT, leaves REAL,"
    " PRIMARY KEY (identity, send)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS sent_leaves ON sent (identity, leaves)",
    # How many rows ``sent`` holds per identity, kept by every step that adds or removes one:
    # the rate check read it with count(*), every row of the window on every acquire.
    "CREATE TABLE IF NOT EXISTS sent_count (identity TEXT PRIMARY KEY, n INT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS queue (identity TEXT, token TEXT, priority INT, caller TEXT,"
    " expires REAL, PRIMARY KEY (identity, token)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS queue_order ON queue (identity, priority, token)",
    "CREATE TABLE IF NOT EXISTS last (identity TEXT, caller TEXT, priority INT,"
    " PRIMARY KEY (identity, caller)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS vclock (identity TEXT PRIMARY KEY, value INT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INT)",
)


class _Budget:
    """The budget steps of one identity inside an open transaction (``service.domain.budget``)."""

    def __init__(self, conn: sqlite3.Connection, identity: str, now: float) -> None:
        self.conn, self.identity, self.now = conn, identity, now

    def _one(self, sql: str, *args: object) -> Any:
        row = self.conn.execute(sql, (self.identity, *args)).fetchone()
        return row[0] if row else None

    def _count(self, table: str) -> int:
        return int(self._one(f"SELECT count(*) FROM {table} WHERE identity = ?") or 0)  # noqa: S608

    def vclock(self) -> int:
        return int(self._one("SELECT value FROM vclock WHERE identity = ?") or 0)

    def dequeue(self, token: str) -> None:
        caller = self._one("SELECT caller FROM queue WHERE identity = ? AND token = ?", token)
        if caller is None:
            return
        self.conn.execute(
            "DELETE FROM queue WHERE identity = ? AND token = ?", (self.identity, token)
        )
        if self._one("SELECT 1 FROM queue WHERE identity = ? AND caller = ? LIMIT 1", caller):
            return
        last = self._one("SELECT priority FROM last WHERE identity = ? AND caller = ?", caller)
        if int(last or 0) <= self.vclock():
            self.conn.execute(
                "DELETE FROM last WHERE identity = ? AND caller = ?", (self.identity, caller)
            )

    def purge(self) -> None:
        args = (self.identity, self.now)
        self.conn.execute("DELETE FROM slot WHERE identity = ? AND expires <= ?", args)
        gone = self.conn.execute("DELETE FROM sent WHERE identity = ? AND leaves <= ?", args)
        if gone.rowcount > 0:
            self._sent_added(-gone.rowcount)
        expired = self.conn.execute(
            "SELECT token FROM queue WHERE identity = ? AND expires <= ?", args
        ).fetchall()
        for (token,) in expired:
            self.dequeue(token)

    def _sent_added(self, n: int) -> None:
        self.conn.execute(
            "INSERT INTO sent_count (identity, n) VALUES (?, ?)"
            " ON CONFLICT (identity) DO UPDATE SET n = n + excluded.n",
            (self.identity, n),
        )

    def rate_full(self, lim: Limits) -> float | None:
        if int(self._one("SELECT n FROM sent_count WHERE identity = ?") or 0) < lim.rate_limit:
            return None
        first = self._one("SELECT min(leaves) FROM sent WHERE identity = ?")
        return max(0.0, float(first) - self.now)

    def ahead(self, token: str, priority: int) -> int:
        return int(
            self._one(
                "SELECT count(*) FROM queue WHERE identity = ?"
                " AND (priority < ? OR (priority = ? AND token < ?))",
                priority,
                priority,
                token,
            )
            or 0
        )

    def put_sent(self, send: str, leaves: float) -> None:
        added = self.conn.execute(
            "INSERT OR IGNORE INTO sent (identity, send, leaves) VALUES (?, ?, ?)",
            (self.identity, send, leaves),
        )
        if added.rowcount == 1:
            self._sent_added(1)
        else:  # a send already in the window (a renewed lease): it leaves later
            self.conn.execute(
                "UPDATE sent SET leaves = ? WHERE identity = ? AND send = ?",
                (leaves, self.identity, send),
            )

    def acquire(self, token: str, caller: str, lim: Limits) -> Decision:
        self.purge()
        wait = self.rate_full(lim)
        if wait is not None:
            self.dequeue(token)
            return Decision(RATE, retry_after_s=wait)
        free = lim.concurrency - self._count("slot")
        ticket = self.conn.execute(
            "SELECT priority FROM queue WHERE identity = ? AND token = ?", (self.identity, token)
        ).fetchone()
        ahead = self.ahead(token, int(ticket[0])) if ticket else self._count("queue")
        if ahead < free:
            if ticket:
                if int(ticket[0]) > self.vclock():
                    self.conn.execute(
                        "INSERT OR REPLACE INTO vclock (identity, value) VALUES (?, ?)",
                        (self.identity, int(ticket[0])),
                    )
                self.dequeue(token)
            self.conn.execute(
                "INSERT OR REPLACE INTO slot (identity, token, expires) VALUES (?, ?, ?)",
                (self.identity, token, self.now + lim.lease_s),
            )
            self.put_sent(token, self.now + lim.lease_s + lim.window_s)
            return Decision(GRANTED)
        if ticket:
            self.conn.execute(
                "UPDATE queue SET expires = ? WHERE identity = ? AND token = ?",
                (self.now + lim.ticket_ttl_s, self.identity, token),
            )
            return Decision(WAITING, ahead=ahead, free=max(0, free))
        mine = self._one("SELECT count(*) FROM queue WHERE identity = ? AND caller = ?", caller)
        if int(mine or 0) >= lim.queue_per_key:
            return Decision(KEY_QUEUE)
        last = self._one("SELECT priority FROM last WHERE identity = ? AND caller = ?", caller)
        priority = max(self.vclock(), int(last or 0)) + 1
        self.conn.execute(
            "INSERT OR REPLACE INTO last (identity, caller, priority) VALUES (?, ?, ?)",
            (self.identity, caller, priority),
        )
        self.conn.execute(
            "INSERT INTO queue (identity, token, priority, caller, expires) VALUES (?, ?, ?, ?, ?)",
            (self.identity, token, priority, caller, self.now + lim.ticket_ttl_s),
        )
        return Decision(WAITING, ahead=self.ahead(token, priority), free=max(0, free))

    def release(self, token: str, sends: int, lim: Limits) -> None:
        self.conn.execute(
            "DELETE FROM slot WHERE identity = ? AND token = ?", (self.identity, token)
        )
        self.conn.executemany(
            "UPDATE sent SET leaves = ? WHERE identity = ? AND send = ?",
            [(self.now + lim.window_s, self.identity, s) for s in send_ids(token, sends)],
        )

    def charge(self, token: str, sends: int, lim: Limits) -> Decision:
        self.purge()
        wait = self.rate_full(lim)
        if wait is not None:
            return Decision(RATE, retry_after_s=wait)
        held = self._one("SELECT expires FROM slot WHERE identity = ? AND token = ?", token)
        expiry = float(held) if held is not None else self.now + lim.lease_s
        self.put_sent(send_ids(token, sends + 1)[-1], expiry + lim.window_s)
        return Decision(GRANTED)

    def renew(self, token: str, sends: int, lim: Limits) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO slot (identity, token, expires) VALUES (?, ?, ?)",
            (self.identity, token, self.now + lim.lease_s),
        )
        for send in send_ids(token, sends):
            self.put_sent(send, self.now + lim.lease_s + lim.window_s)

    def in_flight(self) -> int:
        return self._count("slot")

    def forget_if_idle(self) -> None:
        """An identity with no slot, send or waiter starts afresh (``BudgetState.idle``)."""
        busy = self._one(
            "SELECT EXISTS (SELECT 1 FROM slot WHERE identity = ?1)"
            " OR EXISTS (SELECT 1 FROM sent WHERE identity = ?1)"
            " OR EXISTS (SELECT 1 FROM queue WHERE identity = ?1)"
        )
        if not busy:
            self.conn.execute("DELETE FROM last WHERE identity = ?", (self.identity,))
            self.conn.execute("DELETE FROM vclock WHERE identity = ?", (self.identity,))
            self.conn.execute("DELETE FROM sent_count WHERE identity = ?", (self.identity,))


_sender_lock = threading.Lock()
_sender: tuple[int, socket.socket] | None = None  # (pid, socket): one per process, kept


def _sending_socket() -> socket.socket:
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            if _sender is None:
                atexit.register(_close_sending_socket)
            _sender = (os.getpid(), sock)
        return _sender[1]


def _close_sending_socket() -> None:
    with _sender_lock:
        if _sender is not None and _sender[0] == os.getpid():
            _sender[1].close()


class _Wakeups:
    """Datagrams between one host's processes: "a slot of this identity was freed".

    Each handle binds its own socket in ``directory`` when it first watches (so after a fork)
    and sends to every other socket there (the list re-read at most every ``PEERS_TTL_S``).
    Best effort: a full or vanished peer is skipped (a dead one's socket removed) and its
    waiters poll; nothing here ever fails a query.
    """

    PEERS_TTL_S = 1.0

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._own: str | None = None
        self._pid = 0  # the process that bound ``_own`` (a forked child binds its own)
        self._listener: tuple[threading.Thread, threading.Event] | None = None
        self._peers: list[str] = []
        self._peers_read = -1e9
        self._disabled = False

    def watch(self, on_release: Callable[[str], None]) -> None:
        with self._lock:
            if (self._own is not None and self._pid == os.getpid()) or self._disabled:
                return
            receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                own = os.path.join(self.directory, f"{os.getpid()}-{secrets.token_hex(4)}.sock")
                receiver.bind(own)
            except OSError as exc:  # e.g. a path longer than a socket name may be
                receiver.close()
                log.info("release wake-ups off (%s): waiters poll", exc)
                self._disabled = True
                return
            self._own, self._pid = own, os.getpid()
            self._peers_read = -1e9
            stop = threading.Event()
            thread = threading.Thread(
                target=self._listen,
                args=(receiver, on_release, stop),
                name="slot-wakeups",
                daemon=True,
            )
            self._listener = (thread, stop)
        thread.start()

    @staticmethod
    def _listen(
        receiver: socket.socket, on_release: Callable[[str], None], stop: threading.Event
    ) -> None:
        with receiver:
            while not stop.is_set():
                try:
                    message = receiver.recv(4096)
                    if message and not stop.is_set():
                        on_release(message.decode("utf-8", "replace"))
                except Exception:  # the listener must outlive any one datagram
                    log.warning("a release wake-up could not be handled", exc_info=True)
                    time.sleep(0.1)

    def close(self) -> None:
        """Stop listening (an empty datagram to its own socket ends the wait; the listener
        closes its socket) and unbind."""
        with self._lock:
            own, listener = self._own, self._listener
            self._own, self._listener = None, None
        if own is None or listener is None:
            return
        thread, stop = listener
        stop.set()
        with contextlib.suppress(OSError):
            _sending_socket().sendto(b"", own)
        with contextlib.suppress(OSError):
            os.unlink(own)
        if thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def publish(self, identity: str) -> None:
        if self._disabled:
            return
        with self._lock:
            # The directory listed at most every PEERS_TTL_S (none yet: nobody listens).
            if time.monotonic() - self._peers_read > self.PEERS_TTL_S:
                try:
                    self._peers = [
                        os.path.join(self.directory, n)
                        for n in os.listdir(self.directory)
                        if n.endswith(".sock")
                    ]
                except OSError:
                    self._peers = []
                self._peers_read = time.monotonic()
            peers = [p for p in self._peers if p != self._own]
        if not peers:
            return
        sender = _sending_socket()
        message = identity.encode()
        for peer in peers:
            try:
                sender.sendto(message, peer)
            except (ConnectionRefusedError, FileNotFoundError):  # its process is gone
                with contextlib.suppress(OSError):
                    os.unlink(peer)
                with self._lock:
                    self._peers = [p for p in self._peers if p != peer]
            except OSError:  # its buffer is full, or anything else: it polls
                pass


class HostCoordination:
    """``BudgetStore`` and ``RevocationFeed`` in a SQLite file (one host, several processes)."""

    name = "host"
    shared = False  # a local file: never unreachable, no fallback needed

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._wakeups = _Wakeups(f"{path}.wake")

    def _connection(self) -> sqlite3.Connection:
        # Opened on first use, so a process forked from the one that built us opens its own.
        if self._conn is None:
            # timeout=0: a busy file fails at once and _busy waits in Python. SQLite's own busy
            # handler sleeps in C, which under gevent stops every request of the worker for up
            # to 100 ms at a time: with 3 workers on one file, throughput fell by 4x.
            conn = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            _busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=OFF")  # a per-boot scratch file: no fsyncs
            _busy(lambda: conn.execute("BEGIN IMMEDIATE"))
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
            self._conn = conn
        return self._conn

    def _step(self, identity: str, step: Callable[[_Budget], T]) -> T:
        with self._lock:
            conn = self._connection()
            _busy(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                budget = _Budget(conn, identity, self._clock())
                result = step(budget)
                budget.forget_if_idle()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

    def acquire(self, identity: str, token: str, caller: str, limits: Limits) -> Decision:
        return self._step(identity, lambda b: b.acquire(token, caller, limits))

    def release(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._step(identity, lambda b: b.release(token, sends, limits))
        self._wakeups.publish(identity)

    def charge(self, identity: str, token: str, sends: int, limits: Limits) -> Decision:
        return self._step(identity, lambda b: b.charge(token, sends, limits))

    def renew(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._step(identity, lambda b: b.renew(token, sends, limits))

    def cancel(self, identity: str, token: str) -> None:
        self._step(identity, lambda b: b.dequeue(token))

    def in_flight(self, identity: str) -> int:
        return self._step(identity, lambda b: b.in_flight())

    def ping(self) -> None:
        return None

    def watch_releases(self, on_release: Callable[[str], None]) -> None:
        self._wakeups.watch(on_release)

    def close(self) -> None:
        """Stop listening for other processes' releases and close the file (a process that
        ends without this leaves a socket file behind, removed by the next sender)."""
        self._wakeups.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- RevocationFeed --------------------------------------------------------------------
    def stamp(self) -> int:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT value FROM counter WHERE name = 'revoked'")
                .fetchone()
            )
        return int(row[0]) if row else 0

    def bump(self) -> None:
        with self._lock:
            conn = self._connection()
            _busy(
                lambda: conn.execute(
                    "INSERT INTO counter (name, value) VALUES ('revoked', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"
                )
            )


def _busy(statement: Callable[[], object]) -> None:
    """Run a statement that needs the file's write lock, waiting (``time.sleep``: under gevent
    the worker's other requests run meanwhile) while another process holds it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause, longest = BUSY_PAUSE_S
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "locked" not in message and "busy" not in message:
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, longest)
