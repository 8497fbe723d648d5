"""SQLAlchemy 2 typed models. ``alembic check`` in CI keeps the migrations in step with these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from service.db.types import UTCDateTime, utcnow
from service.domain.ids import new_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(36)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Versioned:
    """Rows with an optimistic-concurrency version: the resource's ETag is derived from it."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        # UPDATEs carry "WHERE version = :seen" and bump it: a concurrent writer raises
        # StaleDataError instead of silently overwriting (mapped to 412 at the edge).
        return {"version_id_col": cls.version}


class Tenant(Versioned, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    entra_tenant_id: Mapped[str] = mapped_column(String(36), nullable=False)

    workspaces: Mapped[list[Workspace]] = relationship(back_populates="tenant")


class Workspace(Versioned, Base):
    __tablename__ = "workspaces"
    __table_args__ = (
        UniqueConstraint("tenant_id", "slug", name="uq_workspaces_tenant_slug"),
        UniqueConstraint(
            "tenant_id",
            "subscription_id",
            "resource_group",
            "workspace_name",
            name="uq_workspaces_tenant_aml_workspace",
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    slug: Mapped[str] = mapped_column(String(63), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(200))
    subscription_id: Mapped[str] = mapped_column(String(36), nullable=False)
    resource_group: Mapped[str] = mapped_column(String(90), nullable=False)
    workspace_name: Mapped[str] = mapped_column(String(33), nullable=False)
    app_insights_resource_id: Mapped[str | None] = mapped_column(String(400))
    log_analytics_workspace_id: Mapped[str | None] = mapped_column(String(36))

    tenant: Mapped[Tenant] = relationship(back_populates="workspaces")


class Endpoint(Versioned, Base):
    """An AML model-serving endpoint as last observed by discovery."""

    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_endpoints_workspace_name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(
        ID, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tenant_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    # The target's name: a v1 web service name, or "{online endpoint}.{deployment}" for v2.
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    # aci | aks | managed_online | kubernetes_online (service.domain.targets.TargetKind).
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    compute_type: Mapped[str] = mapped_column(String(32), nullable=False)
    online_endpoint: Mapped[str | None] = mapped_column(String(255))
    deployment: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str | None] = mapped_column(String(64))
    app_insights_enabled: Mapped[bool | None] = mapped_column(Boolean)
    data_collection_enabled: Mapped[bool | None] = mapped_column(Boolean)
    scoring_uri: Mapped[str | None] = mapped_column(String(2048))
    azure_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    vanished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Policy(Versioned, Base):
    """Desired monitoring at one scope. Endpoint-scoped policies name the endpoint, so a policy
    may exist before discovery has seen the endpoint."""

    __tablename__ = "policies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "scope_key", name="uq_policies_tenant_scope"),
        CheckConstraint("scope IN ('tenant', 'workspace', 'endpoint')", name="scope"),
        CheckConstraint("mode IS NULL OR mode IN ('enforce', 'audit')", name="mode"),
        CheckConstraint(
            "max_parallel_updates IS NULL OR max_parallel_updates >= 1",
            name="max_parallel_updates",
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    workspace_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    endpoint_name: Mapped[str | None] = mapped_column(String(255))
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    # "tenant", "workspace:<id>" or "endpoint:<workspace id>:<name>": one policy per scope.
    scope_key: Mapped[str] = mapped_column(String(400), nullable=False)
    app_insights: Mapped[bool | None] = mapped_column(Boolean)
    model_data_collection: Mapped[bool | None] = mapped_column(Boolean)
    mode: Mapped[str | None] = mapped_column(String(16))
    # How many deployments of one online endpoint may be updated at once (default 1).
    max_parallel_updates: Mapped[int | None] = mapped_column(Integer)


class Operation(Versioned, Base):
    """One change to apply to one endpoint, with its attempts and outcome."""

    __tablename__ = "operations"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
        ),
        CheckConstraint("attempts <= max_attempts", name="attempts_cap"),
        Index("ix_operations_state_not_before", "state", "not_before"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    workspace_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    endpoint_name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    desired: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    cause: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    last_error: Mapped[str | None] = mapped_column(Text)
    azure_operation_id: Mapped[str | None] = mapped_column(String(128))
    # Set while the attempt holds one of its online endpoint's parallel-update slots
    # ("{workspace id}/{online endpoint}"); a slot counts while the operation runs under a lease.
    rollout_group: Mapped[str | None] = mapped_column(String(300))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The fencing token: incremented by every claim (never reused), so each attempt has its own
    # and every state change of an attempt is written only while the token is still current.
    fence: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperationAttempt(Base):
    """One attempt of an operation: who ran it, when, how it ended, and what Azure answered.

    ``number`` is the attempt's fencing token (``operations.fence`` when it was claimed).
    ``charged`` says whether it counts against ``max_attempts``: an attempt cut short by a lost
    lease (worker crash) or a graceful stop, or one that only waited for Azure, does not.
    """

    __tablename__ = "operation_attempts"

    operation_id: Mapped[str] = mapped_column(
        ID, ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(128), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None while running; then succeeded | retry | failed | cancelled | waited | released |
    # abandoned (its lease expired: the worker crashed or stopped renewing)
    outcome: Mapped[str | None] = mapped_column(String(16))
    charged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    error: Mapped[str | None] = mapped_column(Text)
    azure_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of Azure's answer
    azure_code: Mapped[str | None] = mapped_column(String(64))
    retry_after_s: Mapped[float | None] = mapped_column(Float)  # the server's Retry-After
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # no next attempt before
    azure_operation_id: Mapped[str | None] = mapped_column(String(128))


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


class WorkspaceSync(Base):
    """When each workspace was last listed (discovery), when it is due again, and how it went.

    Claimed with an atomic conditional UPDATE of ``next_sync_at``, so several workers never
    list the same workspace at once.
    """

    __tablename__ = "workspace_syncs"

    workspace_id: Mapped[str] = mapped_column(
        ID, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    next_sync_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The error code of the last failed listing (e.g. credential_rejected), None after success.
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))


class WriteBudget(Base):
    """Per-subscription pacing of Azure writes, shared by every worker.

    ``next_write_at`` (epoch seconds) is the earliest time the next write may start. A worker
    reserves a slot with one atomic ``UPDATE ... SET next_write_at = max(next_write_at, now) +
    1/rate RETURNING``, so concurrent workers get distinct slots and the subscription never sees
    more writes per second than its budget.
    """

    __tablename__ = "write_budgets"

    subscription_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    next_write_at: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)


# At most one active (queued or running) operation per endpoint, whoever enqueues it: the
# database refuses a second one, so concurrent API calls and workers cannot double up.
_ACTIVE = Operation.state.in_(("queued", "running"))
Index(
    "uq_operations_active_endpoint",
    Operation.workspace_id,
    Operation.endpoint_name,
    unique=True,
    postgresql_where=_ACTIVE,
    sqlite_where=_ACTIVE,
)


class RetentionPolicy(Versioned, Base):
    """Desired Log Analytics data export (retention) at the tenant or workspace scope."""

    __tablename__ = "retention_policies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "scope_key", name="uq_retention_policies_tenant_scope"),
        CheckConstraint("scope IN ('tenant', 'workspace')", name="scope"),
        CheckConstraint("mode IS NULL OR mode IN ('enforce', 'audit')", name="mode"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    workspace_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    # "tenant" or "workspace:<id>": one policy per scope.
    scope_key: Mapped[str] = mapped_column(String(64), nullable=False)
    destination_resource_id: Mapped[str | None] = mapped_column(String(400))
    tables: Mapped[list[str] | None] = mapped_column(JSON)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    mode: Mapped[str | None] = mapped_column(String(16))
    remove_unmanaged: Mapped[bool | None] = mapped_column(Boolean)


class RetentionObservation(Base):
    """What discovery last saw of a workspace's Log Analytics workspace and its export rules."""

    __tablename__ = "retention_observations"

    workspace_id: Mapped[str] = mapped_column(
        ID, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    la_resource_id: Mapped[str | None] = mapped_column(String(400))
    la_location: Mapped[str | None] = mapped_column(String(64))
    # [{"name", "destination_resource_id", "destination_type", "tables", "enabled"}]
    rules: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
