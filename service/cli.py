"""Operator commands: ``python -m service.cli --help``.

- ``db-upgrade`` / ``db-downgrade REV``: run migrations on DATABASE_URL.
- ``keys create --role admin --name bootstrap [--tenant SLUG]``: mint an API key and print its
  secret once (the way to get the first admin key).
- ``credentials new-key`` / ``credentials rotate-keys``: keys for secrets at rest, and rotation.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from service.adapters.secretbox import FernetSecretBox
from service.bootstrap import build_runtime, with_credential_keys
from service.config import Settings, SettingsError
from service.db import migrate
from service.db.types import utcnow
from service.domain.access import CLI_PRINCIPAL
from service.errors import ServiceError
from service.services import api_keys
from service.services.azure_credentials import reencrypt_all
from service.services.context import CallContext


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """AML monitoring control plane: operator commands."""


@main.command("db-upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    settings = _settings()
    if settings.is_sqlite:
        from service.config import DEFAULT_SQLITE_PATH

        if str(DEFAULT_SQLITE_PATH) in settings.database_url:
            DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}", err=True)


@main.command("db-downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. base)."""
    migrate.downgrade(_settings().database_url, revision)


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--name", required=True, help="A label for the key.")
@click.option(
    "--role", type=click.Choice(["reader", "operator", "admin"]), default="admin", show_default=True
)
@click.option("--tenant", default=None, help="Bind the key to this tenant slug.")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None)
def keys_create(name: str, role: str, tenant: str | None, expires_in_days: int | None) -> None:
    """Create an API key and print its secret (shown once; only a hash is stored)."""
    runtime = build_runtime(_settings())
    data = {
        "name": name,
        "role": role,
        "tenant": tenant,
        "expires_at": utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    }
    try:
        created = api_keys.create_api_key(runtime, CallContext(CLI_PRINCIPAL), data)
    except ServiceError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        runtime.close()
        runtime.database.dispose()
    click.echo(f"created key {created.api_key.id} ({role}); the secret is shown once:", err=True)
    click.echo(created.secret)


@main.group()
def credentials() -> None:
    """Tenant credentials: encryption keys for secrets at rest."""


@credentials.command("new-key")
def credentials_new_key() -> None:
    """Print a new key for CREDENTIAL_KEYS (put it first to encrypt with it)."""
    click.echo(FernetSecretBox.new_key())


@credentials.command("rotate-keys")
def credentials_rotate_keys() -> None:
    """Re-encrypt every stored secret with the first key of CREDENTIAL_KEYS.

    Rotation: put the new key first in CREDENTIAL_KEYS (keep the old ones after it), run this,
    then remove the old keys.
    """
    try:
        settings = with_credential_keys(_settings())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if not settings.credential_keys:
        raise click.ClickException("CREDENTIAL_KEYS is not set")
    runtime = build_runtime(settings)
    try:
        count = reencrypt_all(runtime)
    except ServiceError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        runtime.database.dispose()
    click.echo(f"re-encrypted {count} secrets with the newest key", err=True)


if __name__ == "__main__":
    sys.exit(main())
