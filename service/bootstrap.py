"""Wiring shared by the composition roots (API, worker, CLI): settings -> Runtime."""

from __future__ import annotations

import logging

from service.adapters.azure_ai_ml import AzureOnlineDeployments
from service.adapters.azureml import AzureMlControlPlane
from service.adapters.data_export import AzureDataExports
from service.adapters.host_coordination import HostCoordination
from service.adapters.identity import AzureIdentity
from service.adapters.logs import AzureLogs
from service.adapters.ml_targets import MlTargets
from service.adapters.secretbox import FernetSecretBox, load_or_create_key_file
from service.config import (
    PROJECT_ROOT,
    CoordinationSettings,
    Settings,
    SettingsError,
    parse_credential_keys,
)
from service.db.session import Database
from service.metrics import PrometheusMeter
from service.ports import BudgetStore, RevocationFeed, SharedResults
from service.services.api_keys import KeyCache
from service.services.log_gateway import LogGateway
from service.services.query_shaping import MemoryBudgetStore, MemoryRevocationFeed
from service.services.runtime import Runtime

log = logging.getLogger(__name__)


class SecretsKeyMissing(RuntimeError):
    """Encrypted secrets are stored but CREDENTIAL_KEYS is empty: refuse to start."""


def with_credential_keys(settings: Settings) -> Settings:
    """The settings with the keys for secrets at rest in place, or a configuration error.

    ``CREDENTIAL_KEYS`` wins. On the embedded default (no ``DATABASE_URL``) without it, the key
    file under ``var/`` is used, made on the first start and announced once (its path, never its
    content). With an explicit ``DATABASE_URL`` a missing ``CREDENTIAL_KEYS`` stops the process
    at start (SettingsError), instead of failing the first request that stores a secret.
    """
    if settings.credential_keys:
        return settings
    path = settings.credential_keys_file
    if path is not None:
        try:
            text, created = load_or_create_key_file(path)
        except OSError as exc:
            raise SettingsError(
                f"CREDENTIAL_KEYS is not set and {path} cannot be used: {exc}"
            ) from None
        keys = parse_credential_keys(text, str(path))
        if not keys:
            raise SettingsError(f"{path} holds no key: delete it or set CREDENTIAL_KEYS")
        if created:
            shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
            log.info(
                "created %s (mode 0600): the key that encrypts stored credentials; "
                "keep it with the database, or set CREDENTIAL_KEYS to use your own",
                shown,
            )
        return settings.with_overrides(credential_keys=keys)
    if settings.credential_keys_required:
        raise SettingsError(
            "CREDENTIAL_KEYS must be set when DATABASE_URL is set: it encrypts stored "
            "credentials (make one with: python -m service.cli credentials new-key)"
        )
    return settings


def build_coordination(
    settings: CoordinationSettings,
) -> tuple[BudgetStore, RevocationFeed, SharedResults | None]:
    """Redis for several replicas; else a file for one host's workers; else this process."""
    if settings.redis_url:
        from service.adapters.redis_coordination import RedisCoordination

        shared = RedisCoordination(
            settings.redis_url, prefix=settings.redis_prefix, timeout_s=settings.redis_timeout_s
        )
        return shared, shared, shared
    if settings.host_file:
        host = HostCoordination(settings.host_file)
        return host, host, None
    return MemoryBudgetStore(), MemoryRevocationFeed(), None


def build_runtime(settings: Settings, database: Database | None = None) -> Runtime:
    store, revocations, results = build_coordination(settings.coordination)
    meter = PrometheusMeter()
    return Runtime(
        settings=settings,
        database=database or Database(settings.database_url),
        secret_box=FernetSecretBox(settings.credential_keys),
        identity=AzureIdentity(settings.azure),
        ml=MlTargets(
            AzureMlControlPlane(settings.azure, call_timeout_s=settings.reconciler.call_timeout_s),
            AzureOnlineDeployments(
                settings.azure, call_timeout_s=settings.reconciler.call_timeout_s
            ),
        ),
        logs=LogGateway(
            AzureLogs(settings.azure),
            settings.log_query,
            store=store,
            shared_results=results,
            lease_s=settings.coordination.slot_lease_s,
            retry_shared_s=settings.coordination.redis_retry_s,
            meter=meter,
        ),
        key_cache=KeyCache(revocations=revocations),
        exports=AzureDataExports(settings.azure, call_timeout_s=settings.reconciler.call_timeout_s),
        meter=meter,
    )


def refuse_secrets_without_key(runtime: Runtime) -> None:
    """Starting without a key would turn every credential use into an error: stop instead."""
    from service.services.azure_credentials import stored_secret_count

    if not runtime.secret_box.configured and stored_secret_count(runtime) > 0:
        raise SecretsKeyMissing(
            "the database holds encrypted credentials but CREDENTIAL_KEYS is not set"
        )
