"""Migrations: up to head matches the models, down to base leaves nothing, up again works."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.db import migrate
from service.db.models import Base
from service.db.session import make_engine


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _drift(url: str) -> list[object]:
    """What `alembic check` would report: differences between the models and the schema."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_go_up_down_and_up_again_and_match_the_models(empty_database_url: str) -> None:
    url = empty_database_url
    assert _tables(url) == set()

    migrate.upgrade(url)
    assert _tables(url) == set(Base.metadata.tables)
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert migrate.schema_behind(engine) is None
    finally:
        engine.dispose()
    assert _drift(url) == []

    migrate.downgrade(url, "base")
    assert _tables(url) == set()
    engine = make_engine(url)
    try:
        # What the API and the worker refuse to start on.
        assert migrate.schema_behind(engine) == (
            f"database schema is at nothing, code expects {migrate.head_revision()}"
        )
    finally:
        engine.dispose()

    migrate.upgrade(url)
    assert _tables(url) == set(Base.metadata.tables)
    assert _drift(url) == []
