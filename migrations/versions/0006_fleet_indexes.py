"""fleet indexes (issue 16, P4): a workspace's endpoints in id order (keyset pages), and each
endpoint's operations by time (its latest finished operation, for compliance)

Without them a page of a 10,000-endpoint workspace sorted every live endpoint of the workspace,
and the compliance look-up of each endpoint's latest operation re-read all of its workspace's
operations once per endpoint (a nested loop over the workspace index).

Revision ID: 0006_fleet_indexes
Revises: 0005_online_endpoints
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_fleet_indexes"
down_revision: str | None = "0005_online_endpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_endpoints_workspace_id_id", "endpoints", ["workspace_id", "id"])
    op.create_index(
        "ix_operations_workspace_endpoint_created",
        "operations",
        ["workspace_id", "endpoint_name", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_operations_workspace_endpoint_created", table_name="operations")
    op.drop_index("ix_endpoints_workspace_id_id", table_name="endpoints")
