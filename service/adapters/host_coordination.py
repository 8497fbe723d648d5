"""One host's coordination store: a small SQLite file shared by the gunicorn workers.

Without Redis, the workers of one gunicorn master still share one budget per identity (all 5
slots, not 5 // workers each) and one revocation counter. gunicorn's configuration points
``COORDINATION_FILE`` at a file in a fresh temporary directory, so the file lives as long as
that master. Each step is one ``BEGIN IMMEDIATE`` transaction over the identity's state (the
rules of ``service.domain.budget``), a few tens of microseconds; SQLite's file lock is what
makes it atomic across processes, and leases make a crashed worker's slots lapse.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from service.domain.budget import BudgetState, Decision, Limits

T = TypeVar("T")


class HostCoordination:
    """``BudgetStore`` and ``RevocationFeed`` in a SQLite file (one host, several processes)."""

    name = "host"
    shared = False  # a local file: never unreachable, no fallback needed

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        # Opened on first use, so a process forked from the one that built us opens its own.
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # a per-boot scratch file: no fsyncs
            conn.execute(
                "CREATE TABLE IF NOT EXISTS budget (identity TEXT PRIMARY KEY, state TEXT)"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INT)")
            self._conn = conn
        return self._conn

    def _step(self, identity: str, step: Callable[[BudgetState, float], T]) -> T:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT state FROM budget WHERE identity = ?", (identity,)
                ).fetchone()
                state = BudgetState.from_json(row[0] if row else None)
                result = step(state, self._clock())
                if state.idle:
                    conn.execute("DELETE FROM budget WHERE identity = ?", (identity,))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO budget (identity, state) VALUES (?, ?)",
                        (identity, state.to_json()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

    def acquire(self, identity: str, token: str, caller: str, limits: Limits) -> Decision:
        return self._step(identity, lambda s, now: s.acquire(token, caller, now, limits))

    def release(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._step(identity, lambda s, now: s.release(token, sends, now, limits))

    def charge(self, identity: str, token: str, sends: int, limits: Limits) -> Decision:
        return self._step(identity, lambda s, now: s.charge(token, sends, now, limits))

    def renew(self, identity: str, token: str, sends: int, limits: Limits) -> None:
        self._step(identity, lambda s, now: s.renew(token, sends, now, limits))

    def cancel(self, identity: str, token: str) -> None:
        self._step(identity, lambda s, now: s.cancel(token))

    def in_flight(self, identity: str) -> int:
        return self._step(identity, lambda s, now: len(s.slots))

    def ping(self) -> None:
        return None

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
            self._connection().execute(
                "INSERT INTO counter (name, value) VALUES ('revoked', 1) "
                "ON CONFLICT (name) DO UPDATE SET value = value + 1"
            )
