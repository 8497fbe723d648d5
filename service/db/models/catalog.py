"""The governed estate: tenants, their workspaces, endpoints, policies and discovery state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.models.base import ID, Base, Versioned
from service.db.types import UTCDateTime
from service.domain.ids import new_id


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
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", name="uq_endpoints_workspace_name"),
        # A workspace's endpoints in id order: keyset pages read an index range, never sort.
        Index("ix_endpoints_workspace_id_id", "workspace_id", "id"),
    )

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
