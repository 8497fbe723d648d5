"""following operations (issue 16, P3): an operation whose Azure operation runs is followed
without a worker thread, and no longer counts against its tenant's concurrency cap meanwhile

``operations.following_since`` is set (under the attempt's lease) when the attempt has started
or found a running Azure operation and leaves it to its worker's follower, which polls it
between other work; any other state change of the operation clears it.

Revision ID: 0007_following_operations
Revises: 0006_fleet_indexes
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_following_operations"
down_revision: str | None = "0006_fleet_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("following_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("following_since")
