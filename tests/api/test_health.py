"""Health, readiness, the served contract, and what a real server error looks like."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from flask import Flask

from service.app import SchemaNotAtHead, create_app
from service.config import PROJECT_ROOT, Settings
from service.db import migrate
from service.db.session import Database
from tests.api.helpers import assert_problem
from tests.support.api import ApiClient
from tests.support.python_child import run_python


def test_healthz_says_the_process_is_up(api: ApiClient) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_readyz_is_200_on_a_migrated_database(api: ApiClient) -> None:
    body = api.get("/readyz").get_json()
    assert body == {
        "ready": True,
        "database": "ok",
        "schema": "at_head",
        "schema_revision": migrate.head_revision(),
        "expected_revision": migrate.head_revision(),
        "coordination": "memory",
    }


def test_the_served_contract_is_openapi_yaml(api: ApiClient) -> None:
    response = api.get("/openapi.yaml")
    assert response.mimetype == "application/yaml"
    assert yaml.safe_load(response.get_data(as_text=True)) == yaml.safe_load(
        (PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8")
    )


@pytest.fixture
def unmigrated(empty_database_url: str) -> Iterator[Database]:
    db = Database(empty_database_url)
    yield db
    db.dispose()


def test_the_app_refuses_to_start_on_a_schema_that_is_not_at_head(unmigrated: Database) -> None:
    with pytest.raises(SchemaNotAtHead, match="db-upgrade"):
        create_app(Settings(database_url=unmigrated.url), database=unmigrated)


def test_readyz_is_503_while_the_schema_is_behind(unmigrated: Database) -> None:
    settings = Settings(database_url=unmigrated.url, require_schema_at_head=False)
    with create_app(settings, database=unmigrated).test_client() as client:
        api = ApiClient(client)
        response = api.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert (body["ready"], body["database"], body["schema"]) == (False, "ok", "behind")
    assert body["schema_revision"] is None


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    db = Database(url)
    try:
        app = create_app(Settings(database_url=url), database=db)
        with app.test_client() as client:
            response = ApiClient(client).get("/readyz")
    finally:
        db.dispose()
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


@pytest.fixture
def broken_app(settings: Settings, database: Database) -> Flask:
    """The real app plus one route that fails the way a bug would."""
    app = create_app(settings, database=database)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError(
            "SELECT secret_column FROM api_keys -- Traceback (most recent call last)"
        )

    return app


def test_an_unexpected_error_is_a_500_problem_without_internals(
    broken_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), broken_app.test_client() as client:
        response = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    problem = assert_problem(response, 500, "internal_error")
    assert problem["request_id"] == "boom-1"
    assert "secret_column" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    # The traceback goes to the log instead.
    assert any(r.exc_info and "secret_column" in str(r.exc_info[1]) for r in caplog.records)


def test_a_database_failure_mid_request_is_a_problem_without_sql(unmigrated: Database) -> None:
    # The app runs (schema check off) over a database whose tables do not exist.
    settings = Settings(database_url=unmigrated.url, require_schema_at_head=False)
    with create_app(settings, database=unmigrated).test_client() as client:
        response = client.get(
            "/v1/tenants",
            headers={"Authorization": "Bearer amlcp_" + "a" * 43, "X-Request-ID": "db-down"},
        )
    problem = assert_problem(response, 503, "service_unavailable")
    assert problem["request_id"] == "db-down"
    text_ = response.get_data(as_text=True).lower()
    for internal in ("api_keys", "no such table", "does not exist", "relation", "key_hash"):
        assert internal not in text_


def test_the_readiness_check_reads_the_schema_revision_as_alembic_does(
    unmigrated: Database, tmp_path: Path
) -> None:
    """health reads the head from the scripts and the database's revision with one query,
    without importing alembic (issue 16: a worker's start-up); both must agree with alembic."""
    from service.services import health

    assert health.head_revision() == migrate.head_revision()
    assert health.current_revision(unmigrated.engine) is None
    migrate.upgrade(unmigrated.url)
    assert health.current_revision(unmigrated.engine) == migrate.current_revision(unmigrated.engine)
    assert health.schema_behind(unmigrated.engine) is None
    # A script whose revision is not a literal: the reader leaves the answer to alembic.
    assert health._assignments("revision = make()\ndown_revision = None\n") is None
    assert health._assignments('revision: str = "b"\ndown_revision = ("a", "c")\n') == (
        "b",
        ("a", "c"),
    )


def test_the_api_starts_without_importing_alembic_or_the_azure_sdks(tmp_path: Path) -> None:
    """What /readyz waits for: an API worker's start imports neither alembic nor an Azure SDK
    (they come with their first use, or the worker's background import: gunicorn.conf.py)."""
    import base64
    import os

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
        "CREDENTIAL_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "LOG_LEVEL": "WARNING",
    }
    migrate.upgrade(env["DATABASE_URL"])
    code = (
        "import sys\n"
        "import wsgi\n"
        "assert wsgi.app.test_client().get('/readyz').status_code == 200\n"
        "heavy = ('alembic', 'mako', 'azure.identity', 'azure.monitor.query', 'msal',\n"
        "         'azure.ai.ml', 'azureml.core')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = run_python(code, env=env)
    assert done.stdout.strip().splitlines()[-1] == "[]"
