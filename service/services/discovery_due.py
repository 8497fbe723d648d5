"""Make a workspace's discovery due now, so the reconciler lists it on its next tick.

Called when a tenant's credential becomes usable (stored, verified, a delegated sign-in
succeeded) or a workspace's target changes: its endpoints then appear within one reconciler
tick, not after ``DISCOVERY_INTERVAL_S``. Only a timestamp changes, in the caller's transaction:
no Azure call in the request. (A workspace never listed has no sync row and is due already.)
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.models import Workspace, WorkspaceSync
from service.db.types import utcnow


def discover_soon(session: Session, tenant_id: str, workspace_id: str | None = None) -> None:
    """Every workspace of the tenant (or just ``workspace_id``) is due for discovery now."""
    stmt = update(WorkspaceSync).where(
        WorkspaceSync.workspace_id.in_(select(Workspace.id).where(Workspace.tenant_id == tenant_id))
    )
    if workspace_id is not None:
        stmt = stmt.where(WorkspaceSync.workspace_id == workspace_id)
    session.execute(stmt.values(next_sync_at=utcnow()).execution_options(synchronize_session=False))
