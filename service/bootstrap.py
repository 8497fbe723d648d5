"""Wiring shared by the composition roots (API, worker, CLI): settings -> Runtime."""

from __future__ import annotations

from service.adapters.azureml import AzureMlControlPlane
from service.adapters.identity import AzureIdentity
from service.adapters.logs import AzureLogs
from service.adapters.secretbox import FernetSecretBox
from service.config import Settings
from service.db.session import Database
from service.services.log_gateway import LogGateway
from service.services.runtime import Runtime


class SecretsKeyMissing(RuntimeError):
    """Encrypted secrets are stored but CREDENTIAL_KEYS is empty: refuse to start."""


def build_runtime(settings: Settings, database: Database | None = None) -> Runtime:
    return Runtime(
        settings=settings,
        database=database or Database(settings.database_url),
        secret_box=FernetSecretBox(settings.credential_keys),
        identity=AzureIdentity(settings.azure),
        ml=AzureMlControlPlane(settings.azure, call_timeout_s=settings.reconciler.call_timeout_s),
        logs=LogGateway(AzureLogs(settings.azure), settings.log_query),
    )


def refuse_secrets_without_key(runtime: Runtime) -> None:
    """Starting without a key would turn every credential use into an error: stop instead."""
    from service.services.credentials import stored_secret_count

    if not runtime.secret_box.configured and stored_secret_count(runtime) > 0:
        raise SecretsKeyMissing(
            "the database holds encrypted credentials but CREDENTIAL_KEYS is not set"
        )
