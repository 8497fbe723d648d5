"""tenant credentials and device logins

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "device_logins",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("user_code", sa.String(length=32), nullable=False),
        sa.Column("verification_uri", sa.String(length=500), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flow_ciphertext", sa.Text(), nullable=True),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'expired', 'failed')",
            name=op.f("ck_device_logins_state"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_device_logins_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_logins")),
    )
    with op.batch_alter_table("device_logins", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_logins_state_next_poll_at", ["state", "next_poll_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_device_logins_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "tenant_credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("certificate_thumbprint", sa.String(length=64), nullable=True),
        sa.Column("certificate_not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_cache_ciphertext", sa.Text(), nullable=True),
        sa.Column("token_cache_version", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_detail", sa.String(length=500), nullable=True),
        sa.Column("last_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('service_principal', 'delegated', 'host_identity')",
            name=op.f("ck_tenant_credentials_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_credentials_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_credentials")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenant_credentials_tenant_id")),
    )


def downgrade() -> None:

    op.drop_table("tenant_credentials")
    with op.batch_alter_table("device_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_logins_tenant_id"))
        batch_op.drop_index("ix_device_logins_state_next_poll_at")

    op.drop_table("device_logins")
