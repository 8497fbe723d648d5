"""A process keeps the PostgreSQL connections it opened (service.db.session.make_engine)."""

from __future__ import annotations

import pytest

from service.db.session import make_engine

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
