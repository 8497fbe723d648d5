"""Access: API keys, the audit trail, tenants' Azure credentials and device sign-ins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models.base import ID, Base, Versioned
from service.db.types import UTCDateTime, utcnow
from service.domain.ids import new_id


class ApiKey(Base):
    """An API key: only a hash of the secret is stored; the secret is shown once at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('reader', 'operator', 'admin')", name="role"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Append-only record of every mutation (and, later, every proxied query).

    No foreign keys: the trail must outlive the objects it describes.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    actor_key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    tenant_id: Mapped[str | None] = mapped_column(String(36), index=True)
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str] = mapped_column(String(64), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TenantCredential(Versioned, Base):
    """How a tenant reaches Azure. One per tenant. Secrets are stored encrypted (Fernet tokens)."""

    __tablename__ = "tenant_credentials"
    __table_args__ = (
        CheckConstraint("kind IN ('service_principal', 'delegated', 'host_identity')", name="kind"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    client_id: Mapped[str | None] = mapped_column(String(36))
    # service_principal: "secret" or "certificate"; delegated: "device_code"; host: "ambient".
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    certificate_thumbprint: Mapped[str | None] = mapped_column(String(64))
    certificate_not_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # delegated: the msal token cache (refresh token inside), versioned for cross-process refresh.
    token_cache_ciphertext: Mapped[str | None] = mapped_column(Text)
    token_cache_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # One replica refreshes at a time: it holds this lease (epoch seconds) while it calls Entra,
    # with no database lock held; the others wait for the version to move on.
    token_refresh_lease_until: Mapped[float | None] = mapped_column(Float)
    # Display only, never a secret: signed-in user name, or the app / object id of a principal.
    identity: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    status_detail: Mapped[str | None] = mapped_column(String(500))
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeviceLogin(Base):
    """A device-code sign-in for a delegated credential; polled until it ends."""

    __tablename__ = "device_logins"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'succeeded', 'expired', 'failed')", name="state"),
        Index("ix_device_logins_state_next_poll_at", "state", "next_poll_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    client_id: Mapped[str] = mapped_column(String(36), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    user_code: Mapped[str] = mapped_column(String(32), nullable=False)
    verification_uri: Mapped[str] = mapped_column(String(500), nullable=False)
    message: Mapped[str] = mapped_column(String(1000), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    interval_s: Mapped[int] = mapped_column(Integer, nullable=False)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # The msal flow (it holds the device code): encrypted like every other secret.
    flow_ciphertext: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
