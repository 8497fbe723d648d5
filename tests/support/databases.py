"""Database back-ends for tests: SQLite always, PostgreSQL when reachable (required on CI).

Each test session gets its own freshly created PostgreSQL database, migrated to head, and
dropped at the end; tests own their rows (unique slugs), so nothing needs cleaning between them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from service.db import migrate
from service.db.session import Database

ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_REQUIRED = os.environ.get("REQUIRE_POSTGRES") == "1"
_status: dict[str, str] = {}


def postgres_status() -> str | None:
    return _status.get("postgres")


def _postgres_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def _sqlalchemy_url(dsn: str) -> str:
    return "postgresql+psycopg" + dsn[len("postgresql") :]


class PostgresDatabases:
    """Creates throwaway databases on the test server and drops them at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> str:
        name = f"amlcp_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base, _, _ = ADMIN_DSN.rpartition("/")
        return _sqlalchemy_url(f"{base}/{name}")

    def drop_all(self) -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    reason = _postgres_reachable()
    if reason is not None:
        _status["postgres"] = f"not reachable at {ADMIN_DSN} ({reason})"
        if POSTGRES_REQUIRED:
            pytest.fail(f"REQUIRE_POSTGRES=1 but PostgreSQL is {_status['postgres']}")
        pytest.skip(f"PostgreSQL {_status['postgres']}: DB tests ran on SQLite only")
    _status["postgres"] = f"reachable at {ADMIN_DSN}"
    dbs = PostgresDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite")


def new_database_url(request: pytest.FixtureRequest, backend: str) -> str:
    """An empty database on ``backend`` (not migrated)."""
    if backend == "sqlite":
        directory: Path = request.getfixturevalue("sqlite_dir")
        return f"sqlite:///{directory / (uuid.uuid4().hex + '.db')}"
    pg: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return pg.create()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    """Parametrises every DB-touching test over both back-ends."""
    return str(request.param)


@pytest.fixture(scope="session")
def database(request: pytest.FixtureRequest, db_backend: str) -> Iterator[Database]:
    """A migrated database shared by the session, per back-end."""
    url = new_database_url(request, db_backend)
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, db_backend: str) -> str:
    """A fresh, unmigrated database (migration tests)."""
    return new_database_url(request, db_backend)
