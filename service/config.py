"""Settings, read from the environment once. The only module that reads ``os.environ``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from service import config_parsing as P
from service.config_parsing import SettingsError as SettingsError
from service.config_parsing import parse_credential_keys as parse_credential_keys

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "service.db"
# The embedded default's key for secrets at rest, made on first start (see README, "First run").
DEFAULT_CREDENTIAL_KEYS_FILE = PROJECT_ROOT / "var" / "credential-keys"
# gunicorn.conf.py's worker count when GUNICORN_WORKERS is unset.
GUNICORN_WORKERS_DEFAULT = 2


@dataclass(frozen=True)
class AzureSettings:
    """Where the Azure endpoints are: real Azure by default, the emulator in tests and demo."""

    authority_host: str = "https://login.microsoftonline.com"
    resource_manager: str = "https://management.azure.com"
    log_analytics_endpoint: str = "https://api.loganalytics.io/v1"
    log_analytics_audience: str = "https://api.loganalytics.io"
    ca_bundle: str | None = None
    # Public clouds need instance discovery; a private authority (the emulator) must skip it.
    instance_discovery: bool = True
    # host_identity may use the VM/pod managed identity (IMDS). Off where no IMDS exists.
    managed_identity: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AzureSettings:
        authority = P.parse_url(env, "AZURE_AUTHORITY_HOST", cls.authority_host)
        ca_bundle = (env.get("AZURE_CA_BUNDLE") or "").strip() or None
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise SettingsError(f"AZURE_CA_BUNDLE: no such file {ca_bundle!r}")
        return cls(
            authority_host=authority,
            resource_manager=P.parse_url(env, "AZURE_RESOURCE_MANAGER", cls.resource_manager),
            log_analytics_endpoint=P.parse_url(
                env, "AZURE_LOG_ANALYTICS_ENDPOINT", cls.log_analytics_endpoint
            ),
            log_analytics_audience=P.parse_url(
                env, "AZURE_LOG_ANALYTICS_AUDIENCE", cls.log_analytics_audience
            ),
            ca_bundle=ca_bundle,
            instance_discovery=authority.startswith("https://login.microsoftonline.com"),
            managed_identity=P.parse_bool(env, "AZURE_MANAGED_IDENTITY", cls.managed_identity),
        )


@dataclass(frozen=True)
class LogQuerySettings:
    """The log query proxy: Azure's per-identity budget, guardrails, coalescing and caching.

    The budget is per tenant identity for the whole deployment, shared through the coordination
    store (:class:`CoordinationSettings`); ``processes`` is the number of API processes of the
    whole deployment, and each takes ``1/processes`` of the budget only while Redis is down.
    """

    max_concurrent: int = 5  # Azure: 5 concurrent queries per identity
    rate_limit: int = 200  # Azure: 200 queries ...
    rate_window_s: float = 30.0  # ... per 30 s
    processes: int = 1  # API processes of the deployment: the fallback share while Redis is down
    queue_timeout_s: float = 10.0  # longest wait for a free slot before our 429
    queue_per_key: int = 20  # waiters one API key may have; more are refused at once (fairness)
    cache_ttl_s: float = 0.0  # identical queries answered from memory for this long; 0 = off
    coalesce: bool = True  # identical concurrent queries share one Azure call
    max_query_chars: int = 10_000
    default_server_timeout_s: int = 180
    max_server_timeout_s: int = 600
    max_rows: int = 500_000
    max_bytes: int = 64 * 1024 * 1024
    audit_query_chars: int = 2_000  # query text kept in the audit trail
    audit_queue: int = 1_000  # query audit events buffered for the background writer; 0 = inline

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogQuerySettings:
        def count(name: str, default: int, lo: int, hi: int) -> int:
            return P.parse_int(env, name, default, lo=lo, hi=hi)

        def seconds(name: str, default: float, lo: float, hi: float) -> float:
            return P.parse_float(env, name, default, lo=lo, hi=hi)

        # Unset, every gunicorn worker of the host counts as one API process.
        workers = count("GUNICORN_WORKERS", GUNICORN_WORKERS_DEFAULT, 1, 256)
        return cls(
            max_concurrent=count("LOG_QUERY_MAX_CONCURRENT", cls.max_concurrent, 1, 100),
            rate_limit=count("LOG_QUERY_RATE_LIMIT", cls.rate_limit, 1, 100_000),
            rate_window_s=seconds("LOG_QUERY_RATE_WINDOW_S", cls.rate_window_s, 1.0, 3600.0),
            processes=count("LOG_QUERY_PROCESSES", workers, 1, 256),
            queue_timeout_s=seconds("LOG_QUERY_QUEUE_TIMEOUT_S", cls.queue_timeout_s, 0.0, 170.0),
            queue_per_key=count("LOG_QUERY_QUEUE_PER_KEY", cls.queue_per_key, 0, 10_000),
            cache_ttl_s=seconds("LOG_QUERY_CACHE_TTL_S", cls.cache_ttl_s, 0.0, 3600.0),
            coalesce=P.parse_bool(env, "LOG_QUERY_COALESCE", cls.coalesce),
            max_query_chars=count("LOG_QUERY_MAX_CHARS", cls.max_query_chars, 100, 1_000_000),
            default_server_timeout_s=count(
                "LOG_QUERY_DEFAULT_TIMEOUT_S", cls.default_server_timeout_s, 1, 600
            ),
            max_server_timeout_s=count("LOG_QUERY_MAX_TIMEOUT_S", cls.max_server_timeout_s, 1, 600),
            max_rows=count("LOG_QUERY_MAX_ROWS", cls.max_rows, 1, 500_000),
            max_bytes=count("LOG_QUERY_MAX_BYTES", cls.max_bytes, 1024, 64 * 1024 * 1024),
            audit_query_chars=count("LOG_QUERY_AUDIT_CHARS", cls.audit_query_chars, 0, 100_000),
            audit_queue=count("LOG_QUERY_AUDIT_QUEUE", cls.audit_queue, 0, 100_000),
        )


@dataclass(frozen=True)
class CoordinationSettings:
    """How the processes and replicas of a deployment share budgets, caches and revocations.

    ``redis_url`` set: Redis for everything (several replicas). Unset: ``host_file`` (gunicorn
    points it at a fresh temporary file) for the workers of one host, else this process only.
    """

    redis_url: str | None = None
    redis_prefix: str = "amlcp"  # every key starts with it (several deployments, one Redis)
    redis_timeout_s: float = 0.25  # slower than this counts as down: degrade, do not wait
    redis_retry_s: float = 1.0  # after a failure, use the local share this long, then retry
    host_file: str | None = None
    slot_lease_s: float = 15.0  # a crashed process's query slots are free again after this

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CoordinationSettings:
        url = (env.get("REDIS_URL") or "").strip() or None
        if url is not None and url.split("://", 1)[0] not in ("redis", "rediss", "unix"):
            raise SettingsError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        prefix = (env.get("REDIS_PREFIX") or cls.redis_prefix).strip()
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix):
            raise SettingsError("REDIS_PREFIX must be 1-64 letters, digits or _.:-")
        return cls(
            redis_url=url,
            redis_prefix=prefix,
            redis_timeout_s=P.parse_float(
                env, "REDIS_TIMEOUT_S", cls.redis_timeout_s, lo=0.01, hi=10
            ),
            redis_retry_s=P.parse_float(env, "REDIS_RETRY_S", cls.redis_retry_s, lo=0.1, hi=300),
            host_file=(env.get("COORDINATION_FILE") or "").strip() or None,
            slot_lease_s=P.parse_float(
                env, "LOG_QUERY_SLOT_LEASE_S", cls.slot_lease_s, lo=1, hi=600
            ),
        )


@dataclass(frozen=True)
class ReconcilerSettings:
    """The reconciler (``python -m service.worker``): pacing, budgets, retries, timeouts."""

    interval_s: float = 2.0  # pause between ticks when there is nothing to do
    discovery_interval_s: float = 300.0  # how often each workspace is listed again
    lease_s: float = 60.0  # a claimed operation is another worker's after this without renewal
    subscription_writes_per_s: float = 10.0  # ARM's write budget per subscription
    tenant_concurrency: int = 10  # operations running at once per tenant, all workers together
    worker_threads: int = 64  # attempts and follow steps one worker process runs at once
    max_attempts: int = 5
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    call_timeout_s: float = 30.0  # one Azure ML call
    operation_timeout_s: float = 900.0  # one Azure operation, from PATCH to a final state
    poll_interval_s: float = 2.0  # between the first looks at a target mid-operation
    # ... then every quarter of the time it has run, to at most this: Azure's take minutes,
    # and a poll is a call (and its CPU) that nearly always answers "running".
    poll_max_interval_s: float = 15.0
    # Our tenant ids this worker serves (sharding); empty = every tenant.
    only_tenants: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcilerSettings:
        day = 86400.0
        built = cls(
            only_tenants=P.parse_tenant_ids(env, "RECONCILER_TENANTS"),
            interval_s=P.parse_float(
                env, "RECONCILER_INTERVAL_S", cls.interval_s, lo=0.01, hi=3600
            ),
            discovery_interval_s=P.parse_float(
                env, "DISCOVERY_INTERVAL_S", cls.discovery_interval_s, lo=1, hi=day
            ),
            lease_s=P.parse_float(env, "OPERATION_LEASE_S", cls.lease_s, lo=1, hi=3600),
            subscription_writes_per_s=P.parse_float(
                env, "SUBSCRIPTION_WRITES_PER_S", cls.subscription_writes_per_s, lo=0.01, hi=1000
            ),
            tenant_concurrency=P.parse_int(
                env, "TENANT_CONCURRENCY", cls.tenant_concurrency, lo=1, hi=1000
            ),
            worker_threads=P.parse_int(
                env, "RECONCILER_THREADS", cls.worker_threads, lo=1, hi=1000
            ),
            max_attempts=P.parse_int(env, "OPERATION_MAX_ATTEMPTS", cls.max_attempts, lo=1, hi=100),
            retry_base_s=P.parse_float(env, "RETRY_BASE_S", cls.retry_base_s, lo=0.001, hi=3600),
            retry_max_s=P.parse_float(env, "RETRY_MAX_S", cls.retry_max_s, lo=0.001, hi=day),
            call_timeout_s=P.parse_float(
                env, "AZURE_CALL_TIMEOUT_S", cls.call_timeout_s, lo=0.1, hi=3600
            ),
            operation_timeout_s=P.parse_float(
                env, "AZURE_OPERATION_TIMEOUT_S", cls.operation_timeout_s, lo=1, hi=day
            ),
            poll_interval_s=P.parse_float(
                env, "OPERATION_POLL_INTERVAL_S", cls.poll_interval_s, lo=0.01, hi=600
            ),
            poll_max_interval_s=P.parse_float(
                env, "OPERATION_POLL_MAX_INTERVAL_S", cls.poll_max_interval_s, lo=0.01, hi=3600
            ),
        )
        if built.poll_max_interval_s < built.poll_interval_s:
            # A longer first interval (set before this setting existed) polls at that pace.
            built = replace(built, poll_max_interval_s=built.poll_interval_s)
        # A call that outlives the lease could overlap the next owner's attempt.
        if built.call_timeout_s * 2 > built.lease_s:
            raise SettingsError(
                "AZURE_CALL_TIMEOUT_S must be at most half of OPERATION_LEASE_S "
                f"({built.call_timeout_s:g} > {built.lease_s:g} / 2)"
            )
        return built


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with. Build it with :meth:`from_env`."""

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    bind: str = "127.0.0.1:8080"
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    # Slow clients (gunicorn worker, service/serving.py): the request line and headers, then the
    # whole body, must arrive within these; the connection is closed / answered 408 otherwise.
    header_timeout_s: float = 5.0
    body_timeout_s: float = 15.0
    page_size_default: int = 50
    page_size_max: int = 200
    api_key_pepper: bytes = b""
    # How long a process may reuse an API key lookup; a revocation announced through the
    # deployment's revocation counter (Redis, the host file) ends it at once. 0 = no reuse.
    api_key_cache_ttl_s: float = 2.0
    # How long a process may reuse the look-up of the registered workspace behind a log query
    # (typed or compat); registering, changing or deleting a workspace ends it at once through
    # the same counter. 0 = no reuse.
    log_target_cache_ttl_s: float = 2.0
    require_schema_at_head: bool = True
    openapi_path: Path = field(default=PROJECT_ROOT / "openapi.yaml")
    # Fernet keys for secrets at rest; the first encrypts, any decrypts (rotation).
    credential_keys: tuple[str, ...] = ()
    # The embedded default (neither DATABASE_URL nor CREDENTIAL_KEYS set): the file under var/
    # that holds a key made on first start. None: keys come from CREDENTIAL_KEYS only.
    credential_keys_file: Path | None = None
    # The API and the worker refuse to start without a key (``bootstrap.with_credential_keys``).
    # Settings read from the environment require one; settings built in code (tests) may not.
    credential_keys_required: bool = False
    azure: AzureSettings = field(default_factory=AzureSettings)
    # Browser origins allowed to call the API (CORS); none by default.
    cors_allowed_origins: frozenset[str] = frozenset()
    # The worker's own /metrics listener (0 = none; under gunicorn it shares the API's).
    worker_metrics_port: int = 0
    log_json: bool = True
    reconciler: ReconcilerSettings = field(default_factory=ReconcilerSettings)
    log_query: LogQuerySettings = field(default_factory=LogQuerySettings)
    # Tenant slugs whose credential may be `host_identity` (the service's own Azure identity);
    # only a global admin may choose it, and none by default.
    host_identity_tenants: frozenset[str] = frozenset()
    coordination: CoordinationSettings = field(default_factory=CoordinationSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse the environment once; every error names the offending variable."""
        env = os.environ if env is None else env
        pepper = env.get("API_KEY_PEPPER", "")
        if pepper and len(pepper) < 16:
            raise SettingsError("API_KEY_PEPPER must be at least 16 characters when set")
        keys = P.parse_credential_keys_env(env, "CREDENTIAL_KEYS")
        embedded = not (env.get("DATABASE_URL") or "").strip()
        return cls(
            database_url=P.parse_database_url(env, "DATABASE_URL", cls.database_url),
            bind=P.parse_bind(env, "BIND", cls.bind),
            log_level=P.parse_log_level(env, "LOG_LEVEL", cls.log_level),
            max_body_bytes=P.parse_int(
                env, "MAX_BODY_BYTES", cls.max_body_bytes, lo=1024, hi=64 * 2**20
            ),
            header_timeout_s=P.parse_float(
                env, "HEADER_TIMEOUT_S", cls.header_timeout_s, lo=0.5, hi=300.0
            ),
            body_timeout_s=P.parse_float(
                env, "BODY_TIMEOUT_S", cls.body_timeout_s, lo=0.5, hi=3600.0
            ),
            page_size_max=P.parse_int(env, "PAGE_SIZE_MAX", cls.page_size_max, lo=1, hi=1000),
            api_key_pepper=pepper.encode(),
            api_key_cache_ttl_s=P.parse_float(
                env, "API_KEY_CACHE_TTL_S", cls.api_key_cache_ttl_s, lo=0.0, hi=2.0
            ),
            log_target_cache_ttl_s=P.parse_float(
                env, "LOG_TARGET_CACHE_TTL_S", cls.log_target_cache_ttl_s, lo=0.0, hi=2.0
            ),
            credential_keys=keys,
            credential_keys_file=DEFAULT_CREDENTIAL_KEYS_FILE if embedded and not keys else None,
            credential_keys_required=True,
            azure=AzureSettings.from_env(env),
            cors_allowed_origins=P.parse_origins(env, "CORS_ALLOWED_ORIGINS"),
            worker_metrics_port=P.parse_int(
                env, "WORKER_METRICS_PORT", cls.worker_metrics_port, lo=0, hi=65535
            ),
            log_json=P.parse_log_format(env, "LOG_FORMAT", cls.log_json),
            reconciler=ReconcilerSettings.from_env(env),
            log_query=LogQuerySettings.from_env(env),
            host_identity_tenants=P.parse_slugs(env, "HOST_IDENTITY_TENANTS"),
            coordination=CoordinationSettings.from_env(env),
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (tests and composition roots)."""
        return replace(self, **changes)

    @property
    def log_level_number(self) -> int:
        return int(logging.getLevelName(self.log_level))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
