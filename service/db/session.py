"""Engine, sessions and the unit of work."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
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
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=0, **kwargs)


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """A transaction boundary: rolls back unless :meth:`commit` is called; translates DB errors.

    Usage::

        with db.unit_of_work() as uow:
            uow.session.add(...)
            uow.commit()
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
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
