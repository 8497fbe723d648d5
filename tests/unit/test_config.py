"""Settings come from the environment only, and every error names its variable."""

from __future__ import annotations

import dataclasses

import pytest

from service.config import (
    DEFAULT_CREDENTIAL_KEYS_FILE,
    DEFAULT_SQLITE_PATH,
    GUNICORN_WORKERS_DEFAULT,
    Settings,
    SettingsError,
)


def test_an_empty_environment_gives_the_defaults() -> None:
    s = Settings.from_env({})
    assert s.database_url == f"sqlite:///{DEFAULT_SQLITE_PATH}"
    assert (s.bind, s.log_level, s.max_body_bytes, s.page_size_max) == (
        "127.0.0.1:8080",
        "INFO",
        1024 * 1024,
        200,
    )
    assert s.api_key_pepper == b""
    assert s.is_sqlite


def test_the_environment_s_defaults_are_the_dataclass_defaults() -> None:
    """Each default is written once: an empty environment builds the same settings as code,
    but for what only the environment decides (keys are required, the embedded key file, the
    API processes counted from gunicorn's workers, Entra's instance discovery)."""
    from_env = Settings.from_env({})
    decided_by_env = dataclasses.replace(
        Settings(),
        credential_keys_required=True,
        credential_keys_file=DEFAULT_CREDENTIAL_KEYS_FILE,
        log_query=dataclasses.replace(Settings().log_query, processes=GUNICORN_WORKERS_DEFAULT),
    )
    assert from_env == decided_by_env


def test_a_plain_postgresql_url_uses_psycopg_3() -> None:
    s = Settings.from_env({"DATABASE_URL": "postgresql://u@h:5432/db"})
    assert s.database_url == "postgresql+psycopg://u@h:5432/db"
    assert Settings.from_env({"DATABASE_URL": "postgres://u@h/db"}).database_url.startswith(
        "postgresql+psycopg://"
    )


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "BIND": "0.0.0.0:9000",
            "LOG_LEVEL": "debug",
            "MAX_BODY_BYTES": "2048",
            "PAGE_SIZE_MAX": "10",
            "API_KEY_PEPPER": "p" * 16,
        }
    )
    assert (s.bind, s.log_level, s.max_body_bytes, s.page_size_max) == (
        "0.0.0.0:9000",
        "DEBUG",
        2048,
        10,
    )
    assert s.api_key_pepper == b"p" * 16


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://u@h/db"),
        ("BIND", "8080"),
        ("BIND", "example.com:80"),
        ("BIND", "127.0.0.1:99999"),
        ("LOG_LEVEL", "LOUD"),
        ("MAX_BODY_BYTES", "lots"),
        ("MAX_BODY_BYTES", "10"),
        ("PAGE_SIZE_MAX", "0"),
        ("API_KEY_PEPPER", "short"),
        ("CREDENTIAL_KEYS", "not-a-fernet-key"),
        ("AZURE_AUTHORITY_HOST", "http://login.example"),
        ("AZURE_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("AZURE_MANAGED_IDENTITY", "perhaps"),
        ("CORS_ALLOWED_ORIGINS", "portal.example"),
        ("LOG_FORMAT", "xml"),
        ("WORKER_METRICS_PORT", "70000"),
        ("RECONCILER_TENANTS", "contoso"),
        ("REDIS_URL", "http://cache:6379"),
        ("REDIS_PREFIX", "has spaces"),
        ("REDIS_TIMEOUT_S", "0"),
        ("REDIS_RETRY_S", "soon"),
        ("LOG_QUERY_SLOT_LEASE_S", "0.5"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_reconciler_settings_have_defaults_and_name_the_bad_variable() -> None:
    from service.config import ReconcilerSettings, Settings, SettingsError

    assert Settings.from_env({}).reconciler == ReconcilerSettings()
    assert Settings.from_env({}).reconciler.subscription_writes_per_s == 10.0
    parsed = Settings.from_env({"TENANT_CONCURRENCY": "3", "SUBSCRIPTION_WRITES_PER_S": "2.5"})
    assert (parsed.reconciler.tenant_concurrency, parsed.reconciler.subscription_writes_per_s) == (
        3,
        2.5,
    )
    for env, name in (
        ({"SUBSCRIPTION_WRITES_PER_S": "fast"}, "SUBSCRIPTION_WRITES_PER_S"),
        ({"TENANT_CONCURRENCY": "0"}, "TENANT_CONCURRENCY"),
        ({"AZURE_CALL_TIMEOUT_S": "50", "OPERATION_LEASE_S": "60"}, "AZURE_CALL_TIMEOUT_S"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env(env)


def test_the_polls_of_an_operation_space_out_to_a_max_never_below_the_first_interval() -> None:
    reconciler = Settings.from_env({"OPERATION_POLL_MAX_INTERVAL_S": "30"}).reconciler
    assert (reconciler.poll_interval_s, reconciler.poll_max_interval_s) == (2.0, 30.0)
    # A first interval set above the default max (before the max existed) keeps its pace.
    slow = Settings.from_env({"OPERATION_POLL_INTERVAL_S": "20"}).reconciler
    assert (slow.poll_interval_s, slow.poll_max_interval_s) == (20.0, 20.0)
    with pytest.raises(SettingsError, match="OPERATION_POLL_MAX_INTERVAL_S"):
        Settings.from_env({"OPERATION_POLL_MAX_INTERVAL_S": "soon"})


def test_the_observability_and_sharding_settings_are_parsed() -> None:
    tenant = "01a216f3-0356-7855-932e-414c40c61f6f"
    s = Settings.from_env(
        {
            "CORS_ALLOWED_ORIGINS": "https://portal.example, http://localhost:3000/",
            "LOG_FORMAT": "text",
            "WORKER_METRICS_PORT": "9100",
            "RECONCILER_TENANTS": tenant.upper(),
        }
    )
    assert s.cors_allowed_origins == {"https://portal.example", "http://localhost:3000"}
    assert s.log_json is False
    assert s.worker_metrics_port == 9100
    assert s.reconciler.only_tenants == {tenant}


def test_the_coordination_settings_are_parsed() -> None:
    default = Settings.from_env({}).coordination
    assert (default.redis_url, default.host_file, default.slot_lease_s) == (None, None, 15.0)
    c = Settings.from_env(
        {
            "REDIS_URL": "redis://cache:6379/2",
            "REDIS_PREFIX": "prod.eu",
            "REDIS_TIMEOUT_S": "0.5",
            "REDIS_RETRY_S": "3",
            "COORDINATION_FILE": "/run/amlcp/coord.db",
            "LOG_QUERY_SLOT_LEASE_S": "30",
        }
    ).coordination
    assert (c.redis_url, c.redis_prefix, c.redis_timeout_s, c.redis_retry_s) == (
        "redis://cache:6379/2",
        "prod.eu",
        0.5,
        3.0,
    )
    assert (c.host_file, c.slot_lease_s) == ("/run/amlcp/coord.db", 30.0)
