"""Wiring shared by the composition roots (API, worker, CLI): settings -> Runtime."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from service.adapters.host_coordination import HostCoordination
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
from service.ports import (
    BudgetStore,
    DataExportControl,
    IdentityProvider,
    LogQuery,
    MlControlPlane,
    RevocationFeed,
    SharedResults,
)
from service.services.api_keys import KeyCache
from service.services.log_gateway import LogGateway
from service.services.query_shaping import MemoryBudgetStore, MemoryRevocationFeed
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

# The adapters over the Azure SDKs (azure-core, azure-identity, msal, azure-monitor-query,
# requests; the ML SDKs import later still). Built on first use, not at start: importing them
# was a quarter of an API worker's start-up (bench/readiness.py), and /readyz needs none.
AZURE_ADAPTERS = (
    "service.adapters.identity",
    "service.adapters.logs",
    "service.adapters.data_export",
    "service.adapters.ml_targets",
)


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


# One build at a time across every Lazy: a build imports SDK modules, and two threads importing
# overlapping modules in different orders made CPython raise _DeadlockError in one of them (a
# reconciler worker's first attempts, each thread building a different adapter). Reentrant: a
# build may use another adapter.
_BUILDING = threading.RLock()


class Lazy(Generic[T]):
    """An adapter built on its first use (attribute access), once, whichever thread asks.

    ``close`` closes it only if it was built. Everything else is the adapter's own.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._built: T | None = None

    def target(self) -> T:
        built = self._built
        if built is None:
            with _BUILDING:
                if self._built is None:
                    self._built = self._build()
                built = self._built
        return built

    def __getattr__(self, name: str) -> Any:
        wait_for_warm_imports()
        return getattr(self.target(), name)

    def close(self) -> None:
        close = getattr(self._built, "close", None)
        if callable(close):
            close()


# How to wait for the background import started by gunicorn.conf.py (None: none is running).
_warming: Callable[[], object] | None = None


def warming(wait: Callable[[], object] | None) -> None:
    """Register (or clear) the wait for a background ``warm_imports``: until it ends, a use of
    an Azure adapter waits for it instead of importing the same modules itself. In a gevent
    worker that wait yields to the other requests; an import started meanwhile would hold the
    module locks the import thread holds, and with them the worker's hub (bench/sdk_import.py).
    """
    global _warming
    _warming = wait


def wait_for_warm_imports() -> None:
    wait = _warming
    if wait is not None:
        wait()


def _adapter(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def warm_imports(ca_bundle: str | None) -> None:
    """Import what the lazy adapters and the ML SDKs will need, and build the directory of
    ``ca_bundle`` (the runtime's ``AZURE_CA_BUNDLE``) that the SDKs will trust (gunicorn.conf.py
    runs this in a thread of its own once a worker serves, so no request pays for it)."""
    for module in AZURE_ADAPTERS:
        importlib.import_module(module)
    _adapter("service.adapters.trust", "ca_location")(ca_bundle)
    _adapter("service.adapters.ml_targets", "preload")()


def build_runtime(settings: Settings, database: Database | None = None) -> Runtime:
    store, revocations, results = build_coordination(settings.coordination)
    meter = PrometheusMeter()
    timeout_s = settings.reconciler.call_timeout_s

    def ml() -> MlControlPlane:
        ml_targets: MlControlPlane = _adapter("service.adapters.ml_targets", "MlTargets")(
            _adapter("service.adapters.azureml", "AzureMlControlPlane")(
                settings.azure, call_timeout_s=timeout_s
            ),
            _adapter("service.adapters.azure_ai_ml", "AzureOnlineDeployments")(
                settings.azure, call_timeout_s=timeout_s
            ),
        )
        return ml_targets

    def build(module: str, name: str, **kwargs: Any) -> Callable[[], Any]:
        return lambda: _adapter(module, name)(settings.azure, **kwargs)

    return Runtime(
        settings=settings,
        database=database or Database(settings.database_url),
        secret_box=FernetSecretBox(settings.credential_keys),
        identity=cast(IdentityProvider, Lazy(build("service.adapters.identity", "AzureIdentity"))),
        ml=cast(MlControlPlane, Lazy(ml)),
        logs=LogGateway(
            cast(LogQuery, Lazy(build("service.adapters.logs", "AzureLogs"))),
            settings.log_query,
            store=store,
            shared_results=results,
            lease_s=settings.coordination.slot_lease_s,
            retry_shared_s=settings.coordination.redis_retry_s,
            meter=meter,
        ),
        access_cache=KeyCache(revocations=revocations),
        exports=cast(
            DataExportControl,
            Lazy(
                build("service.adapters.data_export", "AzureDataExports", call_timeout_s=timeout_s)
            ),
        ),
        meter=meter,
    )


def refuse_secrets_without_key(runtime: Runtime) -> None:
    """Starting without a key would turn every credential use into an error: stop instead."""
    from service.services.azure_credentials import stored_secret_count

    if not runtime.secret_box.configured and stored_secret_count(runtime) > 0:
        raise SecretsKeyMissing(
            "the database holds encrypted credentials but CREDENTIAL_KEYS is not set"
        )
