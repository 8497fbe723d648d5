"""Retention policies and what the reconciler observed of their export rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models.base import ID, Base, Versioned
from service.db.types import UTCDateTime
from service.domain.ids import new_id


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
