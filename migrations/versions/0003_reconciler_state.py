"""reconciler state: workspace discovery schedule, per-subscription write budgets, and at most
one active operation per endpoint

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    op.create_table(
        "write_budgets",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("next_write_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_write_budgets")),
    )
    op.create_table(
        "workspace_syncs",
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_syncs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_workspace_syncs")),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_operations_active_endpoint",
            ["workspace_id", "endpoint_name"],
            unique=True,
            postgresql_where=_ACTIVE,
            sqlite_where=_ACTIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_operations_active_endpoint", postgresql_where=_ACTIVE, sqlite_where=_ACTIVE
        )
    op.drop_table("workspace_syncs")
    op.drop_table("write_budgets")
