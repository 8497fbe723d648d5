"""The first `make run`: the embedded default makes its own key for secrets at rest; an explicit
database without CREDENTIAL_KEYS is a configuration error at start, not a 503 later."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from service.app import create_app
from service.bootstrap import with_credential_keys
from service.config import (
    DEFAULT_CREDENTIAL_KEYS_FILE,
    DEFAULT_SQLITE_PATH,
    PROJECT_ROOT,
    Settings,
    SettingsError,
)
from service.db.session import Database
from tests.support.api import ApiClient, World, new_guid


def _embedded(tmp_path: Path) -> Settings:
    """The settings `make run` gets (empty environment), with the key file in a temp var/."""
    return Settings.from_env({}).with_overrides(
        credential_keys_file=tmp_path / "var" / "credential-keys"
    )


def test_the_embedded_default_keeps_its_key_file_under_var_beside_the_database() -> None:
    embedded = Settings.from_env({})
    assert (embedded.credential_keys, embedded.credential_keys_file) == (
        (),
        DEFAULT_CREDENTIAL_KEYS_FILE,
    )
    assert DEFAULT_CREDENTIAL_KEYS_FILE.parent == DEFAULT_SQLITE_PATH.parent
    explicit = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db"})
    assert (explicit.credential_keys_file, explicit.credential_keys_required) == (None, True)
    key = "k" * 43 + "="
    assert Settings.from_env({"CREDENTIAL_KEYS": key}).credential_keys_file is None


def test_the_key_file_is_made_once_with_mode_0600_and_announced_without_its_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _embedded(tmp_path)
    path = settings.credential_keys_file
    assert path is not None
    with caplog.at_level(logging.INFO, logger="service.bootstrap"):
        first = with_credential_keys(settings)
        again = with_credential_keys(settings)
    (key,) = first.credential_keys
    assert again.credential_keys == (key,)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    announced = [r.getMessage() for r in caplog.records if "credential-keys" in r.getMessage()]
    assert len(announced) == 1, announced
    assert key not in caplog.text
    assert [p.name for p in path.parent.iterdir()] == ["credential-keys"]  # no draft left


def test_processes_starting_together_share_one_key_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "credential-keys"
    script = (
        "import sys; from pathlib import Path;"
        "from service.adapters.secretbox import load_or_create_key_file;"
        "text, created = load_or_create_key_file(Path(sys.argv[1]));"
        "print(int(created), text.strip())"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=60)[0].split() for p in starts]
    assert sorted(created for created, _ in results) == ["0", "0", "0", "1"]
    assert len({key for _, key in results}) == 1


def test_a_service_principal_can_be_stored_on_the_embedded_default(
    tmp_path: Path, database: Database, world: World
) -> None:
    settings = _embedded(tmp_path).with_overrides(database_url=database.url)
    app: Flask = create_app(settings, database=database)
    slug = world.tenant()
    body = {"kind": "service_principal", "client_id": new_guid(), "client_secret": "s3cret-value"}
    with app.test_client() as client:
        r = ApiClient(client).put(f"/v1/tenants/{slug}/credential", world.key("admin"), json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert "s3cret-value" not in r.get_data(as_text=True)


def test_an_explicit_database_without_credential_keys_stops_the_api_at_start(
    empty_database_url: str,
) -> None:
    with pytest.raises(SettingsError, match="CREDENTIAL_KEYS"):
        create_app(Settings.from_env({"DATABASE_URL": empty_database_url}))


def test_an_explicit_database_without_credential_keys_stops_the_worker_at_start(
    empty_database_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIAL_KEYS"}
    env["DATABASE_URL"] = empty_database_url
    done = subprocess.run(
        [sys.executable, "-m", "service.worker"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "configuration error: CREDENTIAL_KEYS must be set" in done.stderr
    assert "Traceback" not in done.stderr
