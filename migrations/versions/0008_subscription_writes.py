"""subscription writes (issue 16, P3): each write counts against its subscription's budget
until it is answered, then one second more

A write is reserved only while fewer than the budget's writes per second of its subscription
count. Slots spaced with a margin let 11 writes of a 10 a second budget arrive within one
second once a loaded process sent some late and others early; counting each write from its
start to its answer (plus a second) bounds every second's arrivals whatever the delays.

Revision ID: 0008_subscription_writes
Revises: 0007_following_operations
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_subscription_writes"
down_revision: str | None = "0007_following_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscription_writes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("counted_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_writes")),
    )
    op.create_index(
        "ix_subscription_writes_counted",
        "subscription_writes",
        ["subscription_id", "counted_until"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscription_writes_counted", table_name="subscription_writes")
    op.drop_table("subscription_writes")
