"""operation attempts: a fencing token per attempt, each attempt's history, and the attempts cap
enforced by the database

Revision ID: 0004_trust_reconciler
Revises: 0004_trust_identity
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_trust_reconciler"
down_revision: str | None = "0004_trust_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fence", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_check_constraint("attempts_cap", "attempts <= max_attempts")
    op.create_table(
        "operation_attempts",
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("charged", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("azure_status", sa.Integer(), nullable=True),
        sa.Column("azure_code", sa.String(length=64), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("azure_operation_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_operation_attempts_operation_id_operations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("operation_id", "number", name=op.f("pk_operation_attempts")),
    )


def downgrade() -> None:
    op.drop_table("operation_attempts")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_constraint("attempts_cap", type_="check")
        batch_op.drop_column("fence")
