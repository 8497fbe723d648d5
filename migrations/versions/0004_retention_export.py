"""retention policies (Log Analytics data export as desired state) and what discovery saw of
each workspace's export rules

Revision ID: 0004_retention_export
Revises: 0004_trust_reconciler
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_retention_export"
down_revision: str | None = "0004_trust_reconciler"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_observations",
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("la_resource_id", sa.String(length=400), nullable=True),
        sa.Column("la_location", sa.String(length=64), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_retention_observations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_retention_observations")),
    )
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_key", sa.String(length=64), nullable=False),
        sa.Column("destination_resource_id", sa.String(length=400), nullable=True),
        sa.Column("tables", sa.JSON(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("remove_unmanaged", sa.Boolean(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "mode IS NULL OR mode IN ('enforce', 'audit')", name=op.f("ck_retention_policies_mode")
        ),
        sa.CheckConstraint(
            "scope IN ('tenant', 'workspace')", name=op.f("ck_retention_policies_scope")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_retention_policies_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_retention_policies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policies")),
        sa.UniqueConstraint("tenant_id", "scope_key", name="uq_retention_policies_tenant_scope"),
    )
    with op.batch_alter_table("retention_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_policies_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_retention_policies_workspace_id"), ["workspace_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("retention_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_policies_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_retention_policies_tenant_id"))

    op.drop_table("retention_policies")
    op.drop_table("retention_observations")
