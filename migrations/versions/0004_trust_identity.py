"""delegated token refresh lease; scrub device-login user codes from the audit trail

A delegated refresh no longer holds the credential's row lock while it calls Entra: it takes a
lease (token_refresh_lease_until) and stores its result with a compare-and-swap on the version.

Earlier versions recorded the user code of a started device-code sign-in in its audit event; a
user code that is still pending lets anyone who reads it complete someone else's sign-in. The
audit trail keeps no user or device code from now on; this removes the ones already stored.

Revision ID: 0004_trust_identity
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_trust_identity"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SECRET_KEYS = ("user_code", "device_code")


def upgrade() -> None:
    with op.batch_alter_table("tenant_credentials") as batch:
        batch.add_column(sa.Column("token_refresh_lease_until", sa.Float(), nullable=True))
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer),
        sa.column("action", sa.String),
        sa.column("after", sa.JSON),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(events.c.id, events.c.after).where(
            events.c.action.like("credential.device_login.%")
        )
    ).all()
    for row_id, after in rows:
        if isinstance(after, dict) and any(k in after for k in _SECRET_KEYS):
            cleaned = {k: v for k, v in after.items() if k not in _SECRET_KEYS}
            bind.execute(sa.update(events).where(events.c.id == row_id).values(after=cleaned))


def downgrade() -> None:
    # The scrubbed codes are gone for good; only the lease column goes back.
    with op.batch_alter_table("tenant_credentials") as batch:
        batch.drop_column("token_refresh_lease_until")
