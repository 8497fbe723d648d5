"""Engine, sessions and the unit of work.

Round trips to PostgreSQL are what a unit of work costs beyond its statements (issue 16): a
read unit used to be a ping, ``BEGIN``, its SELECTs and ``ROLLBACK``. Connections are pinged
only after they sat idle in the pool (``PING_IF_IDLE_S``), and read-only units
(``unit_of_work(read_only=True)``) run their SELECTs in autocommit: under READ COMMITTED each
statement sees its own snapshot inside a transaction as well, so ``BEGIN``/``ROLLBACK`` bought
nothing for them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from service.errors import Conflict, DatabaseUnavailable, PreconditionFailed


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the API's readers run beside the reconciler's writer; busy_timeout makes
            # a writer wait for the lock instead of failing at once.
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL cannot corrupt the database; it only lets a power cut lose the
            # last commits, and saves an fsync on every commit (audit rows on every query).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # Ten connections at most, kept open: with pool_size 5 + max_overflow 5 every connection
    # beyond the fifth was closed on its return and opened again moments later by the next
    # thread (a reconciler runs dozens): 832 new backends for PostgreSQL to start in one run of
    # bench.reconcile_converge.
    engine = create_engine(url, pool_size=10, max_overflow=0, **kwargs)
    ping_when_idle(engine, PING_IF_IDLE_S)
    return engine


# A pooled connection that sat unused this long is pinged before it is handed out (a restarted
# database, a failover or a firewall's idle timeout leave dead connections in the pool). One
# back within this is not: SQLAlchemy's pool_pre_ping pinged on every checkout, a round trip
# before every unit of work (13 of ~71 per reconciled target). A connection that died while in
# use fails its statement (DatabaseUnavailable, 503/retried), and SQLAlchemy then replaces every
# connection the pool held before that moment.
PING_IF_IDLE_S = 5.0


def ping_when_idle(
    engine: Engine, idle_s: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """Ping a connection on checkout when it sat in the pool at least ``idle_s``; a failed ping
    makes the pool discard it and hand out another (SQLAlchemy's pessimistic disconnect
    handling by the ``checkout`` event)."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = clock()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if not needs_ping(record.info.get("returned_at"), clock(), idle_s):
            return
        try:
            # The dialect's own ping (psycopg: ";" in autocommit): no transaction is left open
            # (a plain SELECT would begin one, and a read-only unit could not use autocommit).
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # whatever broke, this connection is dead
            raise DisconnectionError("the pooled connection is gone") from exc


def needs_ping(returned_at: float | None, now: float, idle_s: float) -> bool:
    """A connection new from the database (never returned) or back moments ago is not pinged."""
    return returned_at is not None and now - returned_at >= idle_s


class ReadOnlySession(Session):
    """The session of a read-only unit of work: it refuses to flush or to execute DML.

    On PostgreSQL its statements run in autocommit (no ``BEGIN``/``ROLLBACK``), so a write would
    be committed at once, one statement at a time; these guards make such a mistake fail loudly
    instead."""

    def commit(self) -> None:
        raise ReadOnlyUnit("a read-only unit of work cannot commit")


class ReadOnlyUnit(RuntimeError):
    """A read-only unit of work was asked to write (a programming error)."""


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    raise ReadOnlyUnit("a read-only unit of work cannot write")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if getattr(state.statement, "is_dml", False):
        raise ReadOnlyUnit("a read-only unit of work cannot write")


# The execution option that marks a read-only unit's connections, for the statements that do
# not pass through the ORM's execute (a Core statement on ``session.connection()``, ``text``).
READ_ONLY_OPTION = "amlcp_read_only_unit"
_WRITING_SQL = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|COPY|LOCK)\b",
    re.IGNORECASE,
)


def refuse_writes_in_read_units(engine: Engine) -> None:
    """Refuse, before it reaches the database, any writing statement on a connection of a
    read-only unit: on PostgreSQL that connection is in autocommit, and the write would be
    committed at once."""

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION) and _WRITING_SQL.match(statement):
            raise ReadOnlyUnit("a read-only unit of work cannot write")


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        # Same pool; on PostgreSQL the connection is in autocommit while the unit holds it
        # (SQLAlchemy resets it on return). SQLite's driver begins no transaction for SELECTs.
        autocommit = self.engine
        if self.engine.dialect.name != "sqlite":
            autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        refuse_writes_in_read_units(self.engine)
        self.read_session_factory = sessionmaker(
            autocommit.execution_options(**{READ_ONLY_OPTION: True}),
            class_=ReadOnlySession,
            expire_on_commit=False,
            autoflush=False,
        )
        self._statement_session_factory = sessionmaker(autocommit, expire_on_commit=False)

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A transaction; ``read_only``: SELECTs only, each on its own (see the module's doc)."""
        return UnitOfWork(self.read_session_factory if read_only else self.session_factory)

    def single_statement(self) -> UnitOfWork:
        """A unit of work for ONE write statement (or statements each correct on its own), which
        needs no transaction around it: on PostgreSQL it runs in autocommit, without ``BEGIN``
        and ``COMMIT`` (two of its three round trips); ``commit()`` is then a no-op. On SQLite
        it is an ordinary transaction."""
        return UnitOfWork(self._statement_session_factory)

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """A transaction boundary: rolls back unless :meth:`commit` is called; translates DB errors.

    Usage::

        with db.unit_of_work() as uow:
            uow.session.add(...)
            uow.commit()
    """

    def __init__(
        self, session_factory: sessionmaker[Session] | sessionmaker[ReadOnlySession]
    ) -> None:
        self._factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._session = self._factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            self._session.rollback()
        finally:
            self._session.close()
            self._session = None
        if isinstance(exc, DBAPIError | StaleDataError):
            raise translate_db_error(exc) from exc

    def flush(self) -> None:
        """Flush pending changes, translating constraint violations."""
        try:
            self.session.flush()
        except (DBAPIError, StaleDataError) as exc:
            raise translate_db_error(exc) from exc

    def commit(self) -> None:
        try:
            self.session.commit()
        except (DBAPIError, StaleDataError) as exc:
            raise translate_db_error(exc) from exc


def translate_db_error(exc: BaseException) -> Exception:
    """Map database failures to the service's error model; never expose SQL to callers."""
    if isinstance(exc, StaleDataError):
        return PreconditionFailed("the resource was changed concurrently; re-read and retry")
    if isinstance(exc, IntegrityError):
        return Conflict("the change conflicts with an existing resource")
    if isinstance(exc, OperationalError):
        return DatabaseUnavailable("the database is unavailable; retry later")
    return DatabaseUnavailable("database error; retry later")
