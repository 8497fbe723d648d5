"""online endpoints (SDK v2): every target has a kind; v2 deployments name their online endpoint;
policies limit parallel updates per online endpoint (operations hold rollout slots)

Existing rows are v1 web services: their kind is derived from their compute type (AKS -> aks,
anything else -> aci, as model data collection was AKS-only before kinds existed).

Revision ID: 0005_online_endpoints
Revises: 0004_retention_export
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_online_endpoints"
down_revision: str | None = "0004_retention_export"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("online_endpoint", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("deployment", sa.String(length=255), nullable=True))
    op.execute(
        "UPDATE endpoints SET kind = CASE WHEN UPPER(compute_type) = 'AKS' THEN 'aks' "
        "ELSE 'aci' END"
    )
    with op.batch_alter_table("endpoints") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=32), nullable=False)
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("rollout_group", sa.String(length=300), nullable=True))
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("max_parallel_updates", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            "max_parallel_updates", "max_parallel_updates IS NULL OR max_parallel_updates >= 1"
        )


def downgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.drop_constraint("max_parallel_updates", type_="check")
        batch.drop_column("max_parallel_updates")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("rollout_group")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("deployment")
        batch.drop_column("online_endpoint")
        batch.drop_column("kind")
