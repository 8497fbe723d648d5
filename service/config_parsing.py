"""Parsers of environment variables for ``service.config``: each reads one variable from the
mapping it is given (never ``os.environ`` itself) and names it in every error."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping


class SettingsError(ValueError):
    """A setting is missing or malformed. The message names the environment variable."""


def parse_int(env: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
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


def parse_bind(env: Mapping[str, str], name: str, default: str) -> str:
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


def parse_log_level(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().upper()
    if raw not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(
            f"{name} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got {raw!r}"
        )
    return raw


def parse_database_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    scheme = raw.split(":", 1)[0]
    if scheme in {"postgresql", "postgres"}:
        # psycopg 3 is the only PostgreSQL driver installed; make the plain scheme use it.
        return "postgresql+psycopg" + raw[len(scheme) :]
    if scheme not in {"sqlite", "postgresql+psycopg"}:
        raise SettingsError(f"{name} must be a sqlite:/// or postgresql+psycopg:// URL")
    return raw


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def parse_tenant_ids(env: Mapping[str, str], name: str) -> frozenset[str]:
    ids = frozenset(t.strip().lower() for t in env.get(name, "").split(",") if t.strip())
    for tenant_id in ids:
        if not re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", tenant_id
        ):
            raise SettingsError(f"{name}: {tenant_id!r} is not a tenant id (a UUID)")
    return ids


def parse_slugs(env: Mapping[str, str], name: str) -> frozenset[str]:
    slugs = frozenset(t.strip() for t in env.get(name, "").split(",") if t.strip())
    for slug in slugs:
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", slug):
            raise SettingsError(f"{name}: {slug!r} is not a tenant slug")
    return slugs


def parse_origins(env: Mapping[str, str], name: str) -> frozenset[str]:
    origins = [o.strip().rstrip("/") for o in env.get(name, "").split(",") if o.strip()]
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
            raise SettingsError(f"{name}: {origin!r} is not an origin like https://portal.example")
    return frozenset(origins)


def parse_log_format(env: Mapping[str, str], name: str, default_json: bool) -> bool:
    """``json`` or ``text``: whether the logs are JSON lines."""
    raw = (env.get(name) or ("json" if default_json else "text")).strip().lower()
    if raw not in ("json", "text"):
        raise SettingsError(f"{name} must be json or text, got {raw!r}")
    return raw == "json"


def parse_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().rstrip("/")
    if not raw.startswith("https://"):
        raise SettingsError(f"{name} must be an https:// URL, got {raw!r}")
    return raw


def parse_credential_keys_env(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return parse_credential_keys(env.get(name, ""), name)


def parse_credential_keys(raw: str, source: str) -> tuple[str, ...]:
    """Fernet keys separated by commas or newlines (``CREDENTIAL_KEYS`` or the key file)."""
    keys = tuple(k.strip() for k in re.split(r"[,\n]", raw) if k.strip())
    for index, key in enumerate(keys):
        padded = key + "=" * (-len(key) % 4)
        try:
            decoded = base64.urlsafe_b64decode(padded.encode())
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise SettingsError(
                f"{source}: key #{index + 1} is not a url-safe base64 32-byte key "
                "(make one with: python -m service.cli credentials new-key)"
            )
    return keys


def parse_float(
    env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float
) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo:g} and {hi:g}, got {value:g}")
    return value
