"""The operator CLI in a real process: migrate, then mint the first admin key."""

from __future__ import annotations

import os
import subprocess
import sys

from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.db.session import Database
from tests.support.api import ApiClient


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_then_keys_create_prints_a_working_secret_once(
    empty_database_url: str,
) -> None:
    upgraded = _cli("db-upgrade", database_url=empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == ""

    created = _cli(
        "keys", "create", "--name", "bootstrap", "--role", "admin", database_url=empty_database_url
    )
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1
    secret = lines[0]
    assert secret.startswith("amlcp_")
    assert secret not in created.stderr
    assert "shown once" in created.stderr

    db = Database(empty_database_url)
    try:
        app = create_app(Settings(database_url=empty_database_url), database=db)
        with app.test_client() as client:
            api = ApiClient(client)
            keys = api.get("/v1/api-keys", secret)
            assert keys.status_code == 200
            (key,) = keys.get_json()["items"]
            assert (key["name"], key["role"], key["created_by"]) == ("bootstrap", "admin", "cli")
            assert secret not in keys.get_data(as_text=True)
            events = api.get("/v1/audit-events", secret).get_json()["items"]
            assert [(e["action"], e["actor_key_id"]) for e in events] == [("api_key.create", "cli")]
    finally:
        db.dispose()

    # A failure is one clean line on stderr, nothing on stdout.
    failed = _cli(
        "keys", "create", "--name", "x", "--tenant", "nope", database_url=empty_database_url
    )
    assert failed.returncode != 0
    assert failed.stdout == ""
    assert "not found" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_bad_setting_is_reported_by_name() -> None:
    failed = _cli("db-upgrade", database_url="mysql://nope")
    assert failed.returncode != 0
    assert "DATABASE_URL" in failed.stderr
    assert "Traceback" not in failed.stderr
