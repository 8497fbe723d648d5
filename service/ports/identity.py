"""Ports of identity: tenants' Azure credentials, sign-ins and secrets at rest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class AccessTokenLike(Protocol):
    """What a credential hands out (azure-core's ``AccessToken`` has this shape)."""

    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int: ...


class TokenCredential(Protocol):
    """azure-core's ``TokenCredential`` protocol, restated structurally so that the ports (and
    the use cases) need no import of azure: every azure-identity credential satisfies it."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


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


class TokenCacheStore(Protocol):
    """Where a delegated credential's msal token cache lives (encrypted, in the database).

    Several processes may share the cache, and Entra may rotate the refresh token on each use:
    one process at a time refreshes, holding a lease (not a row lock) while it calls Entra,
    and stores its result only if nobody stored a newer cache meanwhile (compare-and-swap on
    the version), so a rotated refresh token is never overwritten by an older copy.
    """

    def load(self) -> tuple[str | None, int]:
        """The current serialized cache and its version."""
        ...

    def claim_refresh(self, version: int, lease_s: float) -> bool:
        """Take the refresh lease if the cache is still at ``version`` and nobody holds it."""
        ...

    def store(self, version: int, serialized: str | None) -> int | None:
        """Store a refreshed cache if it is still at ``version``; release the lease.

        Returns the new version, or None when the cache moved on (nothing was written).
        """
        ...

    def release(self, version: int) -> None:
        """Give the lease back without a change (the refresh failed or changed nothing)."""
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

    def credential(self, spec: CredentialSpec) -> TokenCredential:
        """The tenant's azure-core TokenCredential, built once and reused while unchanged."""
        ...

    def forget(self, tenant_key: str) -> None:
        """Drop the cached credential of a tenant (its credential was deleted)."""
        ...

    def verify(self, spec: CredentialSpec) -> AccessTokenInfo:
        """Acquire an ARM token now. Raises CredentialError subclasses (service.errors)."""
        ...

    def subscription_tenant(self, spec: CredentialSpec, subscription_id: str) -> str | None:
        """The Entra tenant id Resource Manager gives for the subscription, among those the
        tenant's credential can list; None when the credential cannot reach it."""
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
