"""The interfaces the use cases need from the outside world (implemented in ``adapters``).

Use cases depend on these Protocols only; the composition roots (``app.py``, the worker, the CLI)
choose the implementations, and unit tests may pass fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class SecretBox(Protocol):
    """Authenticated encryption for secrets at rest, with key rotation."""

    @property
    def configured(self) -> bool:
        """False when no key is set: nothing can be encrypted or decrypted."""
        ...

    def encrypt(self, plaintext: bytes) -> str: ...

    def decrypt(self, token: str) -> bytes: ...

    def rotate(self, token: str) -> str:
        """Re-encrypt with the newest key (decrypting with whichever key works)."""
        ...


@dataclass(frozen=True)
class CertificateInfo:
    thumbprint_sha1: str
    subject: str
    not_after: datetime


CacheUpdate = Callable[[str | None, int], tuple[str | None, int]]
"""Given (serialized cache, version) read under a lock, return what to store (same = no write)."""


class TokenCacheStore(Protocol):
    """Where a delegated credential's msal token cache lives (encrypted, in the database)."""

    def load(self) -> tuple[str | None, int]:
        """The current serialized cache and its version."""
        ...

    def update_locked(
        self, update: Callable[[str | None, int], str | None]
    ) -> tuple[str | None, int]:
        """Run ``update(cache, version)`` while holding the row lock; store a changed result.

        Several processes may share the cache: the lock serialises refreshes so that a refresh
        token rotated by one process is seen by the next, never overwritten by an older copy.
        Returns the stored cache and version afterwards.
        """
        ...


@dataclass(frozen=True)
class CredentialSpec:
    """Everything needed to build a tenant's TokenCredential (secrets already decrypted)."""

    tenant_key: str  # our tenant id: the registry's cache key
    fingerprint: str  # changes whenever the stored credential changes
    entra_tenant_id: str
    kind: str  # service_principal | delegated | host_identity
    client_id: str | None
    client_secret: str | None = None
    certificate_pem: bytes | None = None
    cache_store: TokenCacheStore | None = None


@dataclass(frozen=True)
class AccessTokenInfo:
    """What verification reports: who the token says we are, and until when."""

    expires_on: datetime
    identity: dict[str, str]


@dataclass(frozen=True)
class DeviceFlow:
    """A started device-code sign-in. ``state`` is opaque and secret (holds the device code)."""

    user_code: str
    verification_uri: str
    message: str
    expires_at: datetime
    interval_s: int
    state: dict[str, Any]


@dataclass(frozen=True)
class DevicePoll:
    """One poll's outcome: ``pending``, ``succeeded`` (with cache + username), ``expired``,
    or ``failed`` (with error)."""

    status: str
    cache: str | None = None
    username: str | None = None
    error: str | None = None


class IdentityProvider(Protocol):
    """Azure identity: one credential per tenant, device-code sign-ins, verification."""

    def credential(self, spec: CredentialSpec) -> Any:
        """The tenant's azure-core TokenCredential, built once and reused while unchanged."""
        ...

    def forget(self, tenant_key: str) -> None:
        """Drop the cached credential of a tenant (its credential was deleted)."""
        ...

    def verify(self, spec: CredentialSpec) -> AccessTokenInfo:
        """Acquire an ARM token now. Raises CredentialError subclasses (service.errors)."""
        ...

    def start_device_flow(self, entra_tenant_id: str, client_id: str) -> DeviceFlow: ...

    def poll_device_flow(
        self, entra_tenant_id: str, client_id: str, state: dict[str, Any]
    ) -> DevicePoll:
        """Poll once, without blocking for the whole flow."""
        ...

    def inspect_certificate(self, pem: bytes) -> CertificateInfo:
        """Parse a PEM holding a certificate and its private key; raise ValueError if unusable."""
        ...
