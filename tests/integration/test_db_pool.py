"""The database pool (service.db.session): connections kept open, pinged only after idling,
read-only units without BEGIN/ROLLBACK."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, create_engine, delete, select, text, update
from sqlalchemy.exc import OperationalError

from service.db import session as session_module
from service.db.models import Tenant
from service.db.session import Database, ReadOnlyUnit, UnitOfWork, make_engine, ping_when_idle
from tests.support.databases import ADMIN_DSN

pytestmark = pytest.mark.postgres


def test_a_process_keeps_its_connections_instead_of_reopening_them(
    empty_database_url: str, db_backend: str
) -> None:
    """Ten units of work at once, then none: the ten connections stay open for the next ones.
    Before, the pool kept 5 and closed the other 5 on their return (pool_size 5 + max_overflow
    5): two reconciler processes of 50 threads opened 832 connections in one P3 run, each a new
    backend process for PostgreSQL to start. At most ten at once, as before."""
    if db_backend != "postgresql":
        pytest.skip("SQLite has no server connections to keep: its engine is left as it was")
    engine = make_engine(empty_database_url)
    try:
        connections = [engine.connect() for _ in range(10)]
        for connection in connections:
            connection.close()
        assert engine.pool.checkedin() == 10  # 5 before
        assert engine.pool.size() == 10
        assert engine.pool.overflow() <= 0  # nothing beyond the ten
    finally:
        engine.dispose()


# -- round trips: pings only after idling, read-only units without BEGIN/ROLLBACK (issue 16) ---
def _postgres_only(db_backend: str) -> None:
    if db_backend != "postgresql":
        pytest.skip("round trips and pooled server connections exist on PostgreSQL only")


@contextmanager
def _one_connection_pool(url: str, *, ping_if_idle_s: float) -> Iterator[Engine]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, ping_if_idle_s)
    try:
        yield engine
    finally:
        engine.dispose()


def _pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # pg_terminate_backend only signals: wait until the backend is gone.
        for _ in range(200):
            row = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row is None:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still there")


def _round_trips(db: Database, unit: Callable[[], None]) -> list[str]:
    """What the client sent, one entry per exchange (libpq's protocol trace of the one pooled
    connection; each exchange ends with the server's ReadyForQuery)."""
    raw = db.engine.raw_connection()
    pgconn = raw.driver_connection.pgconn  # type: ignore[union-attr]
    raw.close()
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            unit()
        finally:
            pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode().splitlines()
    sent, exchanges = [], []
    for line in lines:
        fields = line.split("\t")
        if fields[0] == "F" and len(fields) > 2:
            sent.append(fields[2].strip() + (fields[3][:40] if fields[2] == "Query" else ""))
        if fields[0] == "B" and len(fields) > 2 and fields[2] == "ReadyForQuery":
            exchanges.append(" ".join(s for s in sent if not s.startswith(("Bind", "Describe"))))
            sent = []
    return exchanges


def test_read_only_and_single_statement_units_cost_one_round_trip_per_statement(
    database: Database, db_backend: str
) -> None:
    """Before: a ping, BEGIN, the statement and ROLLBACK or COMMIT, four round trips for one
    statement (a reconciled target cost ~71, 13 of them pings, 12 the BEGIN/ROLLBACK of read-only
    units, ~5 the BEGIN/COMMIT of lease renewals and write slots)."""
    _postgres_only(db_backend)
    db = Database(database.url)
    try:
        with db.unit_of_work() as uow:  # the pool's one connection, opened
            uow.session.execute(text("SELECT 1"))

        def read() -> None:
            with db.unit_of_work(read_only=True) as uow:
                uow.session.scalars(select(Tenant.id).where(Tenant.slug == "nobody")).all()

        def write() -> None:
            with db.unit_of_work() as uow:
                uow.session.scalars(select(Tenant.id).where(Tenant.slug == "nobody")).all()
                uow.commit()

        def renew() -> None:  # a lease renewal, a write slot: one fenced UPDATE
            with db.single_statement() as uow:
                uow.session.connection().execute(
                    update(Tenant).where(Tenant.slug == "nobody").values(display_name="x")
                )
                uow.commit()

        read_trips = _round_trips(db, read)
        assert len(read_trips) == 1, read_trips
        statement_trips = _round_trips(db, renew)
        assert len(statement_trips) == 1, statement_trips
        write_trips = _round_trips(db, write)  # BEGIN, the SELECT, COMMIT: no ping before them
        assert len(write_trips) == 3, write_trips
        assert "BEGIN" in write_trips[0]
        assert "COMMIT" in write_trips[2]
    finally:
        db.dispose()


def test_a_connection_idle_in_the_pool_is_pinged_and_a_dead_one_replaced(
    database: Database, db_backend: str
) -> None:
    """The database restarted (or a firewall dropped the idle connection) while the pool held
    it: the next unit of work gets a new connection instead of an error."""
    _postgres_only(db_backend)
    with _one_connection_pool(database.url, ping_if_idle_s=0.2) as engine:
        first = _pid(engine)
        _terminate(first)
        time.sleep(0.3)
        assert _pid(engine) != first  # pinged, found dead, replaced: no error


def test_a_connection_back_moments_ago_is_not_pinged_and_the_pool_recovers_after_one_failure(
    database: Database, db_backend: str
) -> None:
    """The price of not pinging a busy pool: a connection that died between two units moments
    apart fails the second one's statement (503 to a caller, a retry for the reconciler); the
    pool then replaces it, and the unit after that works."""
    _postgres_only(db_backend)
    with _one_connection_pool(database.url, ping_if_idle_s=60.0) as engine:
        first = _pid(engine)
        _terminate(first)
        with pytest.raises(OperationalError):
            _pid(engine)
        assert _pid(engine) != first


def test_a_read_only_unit_refuses_to_write_and_changes_nothing(database: Database) -> None:
    slug = f"ro-{uuid.uuid4().hex[:10]}"
    with database.unit_of_work() as uow:
        uow.session.add(Tenant(slug=slug, display_name="before", entra_tenant_id=str(uuid.uuid4())))
        uow.commit()
    attempts: list[Callable[[UnitOfWork], object]] = [
        lambda uow: uow.session.execute(
            update(Tenant).where(Tenant.slug == slug).values(display_name="after")
        ),
        lambda uow: uow.session.execute(delete(Tenant).where(Tenant.slug == slug)),
        lambda uow: (
            uow.session.add(
                Tenant(slug=slug + "-2", display_name="new", entra_tenant_id=str(uuid.uuid4()))
            )
            or uow.flush()
        ),
        lambda uow: (
            setattr(
                uow.session.scalars(select(Tenant).where(Tenant.slug == slug)).one(),
                "display_name",
                "after",
            )
            or uow.commit()
        ),
        # Past the ORM's execute: a Core statement on the unit's connection, and plain SQL
        # (in autocommit on PostgreSQL either would have been committed at once).
        lambda uow: uow.session.connection().execute(
            update(Tenant).where(Tenant.slug == slug).values(display_name="after")
        ),
        lambda uow: uow.session.execute(
            text("UPDATE tenants SET display_name = 'after' WHERE slug = :slug"), {"slug": slug}
        ),
        lambda uow: uow.session.connection().exec_driver_sql(
            f"DELETE FROM tenants WHERE slug = '{slug}'"
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnlyUnit), database.unit_of_work(read_only=True) as uow:
            attempt(uow)
    with database.unit_of_work(read_only=True) as uow:
        rows = uow.session.execute(
            select(Tenant.slug, Tenant.display_name).where(Tenant.slug.startswith(slug))
        ).all()
    assert [tuple(r) for r in rows] == [(slug, "before")]


def test_a_unit_of_work_after_a_read_only_one_is_a_transaction_again(
    database: Database,
) -> None:
    """The read-only unit's autocommit ends with it: a later unit on the same connection that
    fails rolls back everything it did."""
    db = Database(database.url)  # its own pool: one connection, used by both units in turn
    slug = f"tx-{uuid.uuid4().hex[:10]}"
    try:
        with db.unit_of_work(read_only=True) as uow:
            uow.session.scalars(select(Tenant.id).where(Tenant.slug == slug)).all()

        def insert_then_fail() -> None:
            with db.unit_of_work() as uow:
                uow.session.add(
                    Tenant(slug=slug, display_name="x", entra_tenant_id=str(uuid.uuid4()))
                )
                uow.flush()
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            insert_then_fail()
        with db.unit_of_work(read_only=True) as uow:
            assert uow.session.scalars(select(Tenant.id).where(Tenant.slug == slug)).all() == []
        assert db.engine.pool.checkedin() == 1  # the same one connection throughout
    finally:
        db.dispose()


def test_a_read_only_unit_works_on_a_connection_just_pinged(
    database: Database, db_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ping must leave no transaction open: a SELECT as the ping began one, and the read-only
    unit handed that connection failed to switch it to autocommit (psycopg: "can't change
    'autocommit' now: connection in transaction status INTRANS"), a 500 on any API request
    after five idle seconds."""
    _postgres_only(db_backend)
    monkeypatch.setattr(session_module, "PING_IF_IDLE_S", 0.1)
    db = Database(database.url)
    try:
        for _ in range(2):
            with db.unit_of_work(read_only=True) as uow:
                assert uow.session.execute(text("SELECT 1")).scalar_one() == 1
            time.sleep(0.2)  # idle: the next checkout pings
        with db.unit_of_work() as uow:
            assert uow.session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()
