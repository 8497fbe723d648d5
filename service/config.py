"""Settings, read from the environment once. The only module that reads ``os.environ``."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "service.db"


class SettingsError(ValueError):
    """A setting is missing or malformed. The message names the environment variable."""


def _parse_int(env: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _parse_bind(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip()
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be HOST:PORT, got {raw!r}")
    host = host.strip("[]")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise SettingsError(
                f"{name} host must be an IP address or localhost, got {host!r}"
            ) from None
    return raw


def _parse_log_level(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "INFO").strip().upper()
    if raw not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(
            f"{name} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got {raw!r}"
        )
    return raw


def _parse_database_url(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"
    scheme = raw.split(":", 1)[0]
    if scheme in {"postgresql", "postgres"}:
        # psycopg 3 is the only PostgreSQL driver installed; make the plain scheme use it.
        return "postgresql+psycopg" + raw[len(scheme) :]
    if scheme not in {"sqlite", "postgresql+psycopg"}:
        raise SettingsError(f"{name} must be a sqlite:/// or postgresql+psycopg:// URL")
    return raw


def _parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _parse_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().rstrip("/")
    if not raw.startswith("https://"):
        raise SettingsError(f"{name} must be an https:// URL, got {raw!r}")
    return raw


def _parse_credential_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for index, key in enumerate(keys):
        padded = key + "=" * (-len(key) % 4)
        try:
            decoded = base64.urlsafe_b64decode(padded.encode())
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise SettingsError(
                f"{name}: key #{index + 1} is not a url-safe base64 32-byte key "
                "(make one with: python -m service.cli credentials new-key)"
            )
    return keys


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
        authority = _parse_url(env, "AZURE_AUTHORITY_HOST", cls.authority_host)
        ca_bundle = (env.get("AZURE_CA_BUNDLE") or "").strip() or None
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise SettingsError(f"AZURE_CA_BUNDLE: no such file {ca_bundle!r}")
        return cls(
            authority_host=authority,
            resource_manager=_parse_url(env, "AZURE_RESOURCE_MANAGER", cls.resource_manager),
            log_analytics_endpoint=_parse_url(
                env, "AZURE_LOG_ANALYTICS_ENDPOINT", cls.log_analytics_endpoint
            ),
            log_analytics_audience=_parse_url(
                env, "AZURE_LOG_ANALYTICS_AUDIENCE", cls.log_analytics_audience
            ),
            ca_bundle=ca_bundle,
            instance_discovery=authority.startswith("https://login.microsoftonline.com"),
            managed_identity=_parse_bool(env, "AZURE_MANAGED_IDENTITY", True),
        )


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with. Build it with :meth:`from_env`."""

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    bind: str = "127.0.0.1:8080"
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    page_size_default: int = 50
    page_size_max: int = 200
    api_key_pepper: bytes = b""
    require_schema_at_head: bool = True
    openapi_path: Path = field(default=PROJECT_ROOT / "openapi.yaml")
    # Fernet keys for secrets at rest; the first encrypts, any decrypts (rotation).
    credential_keys: tuple[str, ...] = ()
    azure: AzureSettings = field(default_factory=AzureSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse the environment once; every error names the offending variable."""
        env = os.environ if env is None else env
        pepper = env.get("API_KEY_PEPPER", "")
        if pepper and len(pepper) < 16:
            raise SettingsError("API_KEY_PEPPER must be at least 16 characters when set")
        return cls(
            database_url=_parse_database_url(env, "DATABASE_URL"),
            bind=_parse_bind(env, "BIND", "127.0.0.1:8080"),
            log_level=_parse_log_level(env, "LOG_LEVEL"),
            max_body_bytes=_parse_int(env, "MAX_BODY_BYTES", 1024 * 1024, lo=1024, hi=64 * 2**20),
            page_size_max=_parse_int(env, "PAGE_SIZE_MAX", 200, lo=1, hi=1000),
            api_key_pepper=pepper.encode(),
            credential_keys=_parse_credential_keys(env, "CREDENTIAL_KEYS"),
            azure=AzureSettings.from_env(env),
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
