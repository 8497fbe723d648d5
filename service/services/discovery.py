"""Discovery: list a workspace's web services, record what exists, and queue drift corrections.

Used by ``POST .../sync`` (now) and by the reconciler's periodic sweep. Also the other read-only
Azure ML call of the API: a service's container logs.

Concurrent discoveries of one workspace (parallel syncs, a sync and the reconciler) are
idempotent: each lists Azure on its own, then records what it saw in a transaction that first
locks the workspace (``SELECT ... FOR UPDATE`` on PostgreSQL; the database write lock on SQLite),
so the second one finds the first one's endpoints, sync row and operations and updates them
instead of inserting duplicates (which answered 409 or 412).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Endpoint, Workspace, WorkspaceSync
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.retry import RetryPolicy
from service.errors import ServiceError, is_temporary, server_retry_after_s
from service.ports import CredentialSpec, MlTarget
from service.services import audit, leases
from service.services.azure_credentials import fresh_credential, tenant_credential
from service.services.compliance import failed_endpoints
from service.services.context import CallContext
from service.services.endpoints import ObservedEndpoint, record_observations
from service.services.lookup import visible_endpoint, visible_workspace
from service.services.planning import live_endpoints, plan
from service.services.runtime import Runtime


@dataclass(frozen=True)
class SyncResult:
    tenant: str
    workspace: str
    endpoints: int
    appeared: list[str]
    vanished: list[str]
    operations: list[str]
    synced_at: datetime


@dataclass(frozen=True)
class ContainerLogs:
    endpoint: str
    tail: int
    content: str


def target_of(rt: Runtime, ws: Workspace, spec: CredentialSpec | None = None) -> MlTarget:
    """How to reach a workspace in Azure (raises credential errors), with the tenant's
    credential as stored now (once per discovery, attempt or call: never a stale memo); ``spec``
    when the caller has just read it (``stored_credential_spec``)."""
    return MlTarget(
        tenant_key=ws.tenant_id,
        credential=(
            tenant_credential(rt, ws.tenant_id, fresh=True)
            if spec is None
            else fresh_credential(rt, spec)
        ),
        subscription_id=ws.subscription_id,
        resource_group=ws.resource_group,
        workspace_name=ws.workspace_name,
    )


def discover(rt: Runtime, workspace_id: str, *, created_by: str = "reconciler") -> SyncResult:
    """List the workspace in Azure, record it, and queue corrections for drifted endpoints.

    A failure is recorded on the workspace's sync state (a credential failure makes its
    endpoints' compliance ``unknown``) and raised.
    """
    started = utcnow()
    with rt.uow(read_only=True) as uow:
        ws = uow.session.get(Workspace, workspace_id)
        if ws is None:
            raise ServiceError("workspace deleted during discovery")
        tenant_slug = ws.tenant.slug
        uow.session.expunge(ws)
    try:
        services = rt.ml.list_services(target_of(rt, ws))
    except ServiceError as exc:
        _record_sync(rt, workspace_id, error=exc, started=started)
        raise
    interval = timedelta(seconds=rt.settings.reconciler.discovery_interval_s)
    with leases.write_transaction(rt) as uow:
        ws = lock_workspace(uow.session, workspace_id)
        if ws is None:
            raise ServiceError("workspace deleted during discovery")
        before = {ep.name for ep in live_endpoints(uow.session, ws.tenant_id, ws.id)}
        record_observations(
            uow,
            ws,
            [
                ObservedEndpoint(
                    name=s.name,
                    compute_type=s.compute_type,
                    state=s.state,
                    app_insights_enabled=s.app_insights_enabled,
                    data_collection_enabled=s.data_collection_enabled,
                    scoring_uri=s.scoring_uri,
                    azure_updated_at=s.updated_at,
                    kind=s.target_kind,
                    online_endpoint=s.online_endpoint,
                    deployment=s.deployment,
                )
                for s in services
            ],
            complete=True,
        )
        now = _save_sync(uow.session, workspace_id, next_at=utcnow() + interval)
        live = live_endpoints(uow.session, ws.tenant_id, ws.id)
        ops = plan(
            uow.session,
            ws.tenant_id,
            _not_failed(uow.session, live),
            cause="drift",
            created_by=created_by,
            max_attempts=rt.settings.reconciler.max_attempts,
        )
        uow.commit()
        names = {ep.name for ep in live}
        return SyncResult(
            tenant=tenant_slug,
            workspace=ws.slug,
            endpoints=len(live),
            appeared=sorted(names - before),
            vanished=sorted(before - names),
            operations=[op.id for op in ops],
            synced_at=now,
        )


def lock_workspace(session: Session, workspace_id: str) -> Workspace | None:
    """Load a workspace locked until the transaction ends: discoveries of one workspace (and
    the reconciler recording an observation of its endpoints) take turns. On SQLite the caller's
    ``leases.write_transaction`` holds the database write lock already."""
    return session.scalar(
        select(Workspace)
        .where(Workspace.id == workspace_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _not_failed(session: Session, endpoints: list[Endpoint]) -> list[Endpoint]:
    """Drift found by a sweep does not re-queue an endpoint whose last operation failed: that
    stays ``failed`` until an operator applies again or changes the policy."""
    if not endpoints:
        return endpoints
    failed = failed_endpoints(session, endpoints[0].tenant_id, endpoints)
    return [ep for ep in endpoints if (ep.workspace_id, ep.name) not in failed]


def _save_sync(
    session: Session, workspace_id: str, *, next_at: datetime, error: ServiceError | None = None
) -> datetime:
    now = utcnow()
    row = session.get(WorkspaceSync, workspace_id)
    if row is None:
        row = WorkspaceSync(workspace_id=workspace_id, next_sync_at=next_at)
        session.add(row)
    row.next_sync_at = next_at
    if error is None:
        row.last_synced_at = now
        row.last_error_code = row.last_error = None
    else:
        row.last_error_code = error.code[:64]
        row.last_error = error.detail[:500]
    return now


def _record_sync(rt: Runtime, workspace_id: str, *, error: ServiceError, started: datetime) -> None:
    cfg = rt.settings.reconciler
    # A temporary failure (throttled, 5xx, timeout) is retried soon, not a whole interval later.
    delay_s = cfg.discovery_interval_s
    if is_temporary(error):
        retry = RetryPolicy(cfg.retry_base_s, cfg.retry_max_s)
        delay_s = min(delay_s, retry.delay_s(1, server_retry_after_s(error)))
    interval = timedelta(seconds=delay_s)
    with leases.write_transaction(rt) as uow:
        if lock_workspace(uow.session, workspace_id) is None:
            return
        now = utcnow()
        row = uow.session.get(WorkspaceSync, workspace_id)
        next_at = now + interval
        if row is not None and started < row.next_sync_at <= now:
            # Made due while this listing ran (e.g. the credential became usable): the failure
            # may be the old credential's, so keep it due instead of pushing it back.
            next_at = row.next_sync_at
        _save_sync(uow.session, workspace_id, next_at=next_at, error=error)
        uow.commit()


def sync_workspace(rt: Runtime, ctx: CallContext, tenant: str, workspace: str) -> SyncResult:
    """``POST .../sync``: discover now (operator)."""
    with rt.uow(read_only=True) as uow:
        ws_id = visible_workspace(uow, ctx.principal, tenant, workspace).id
        ctx.require(Role.OPERATOR)
    result = discover(rt, ws_id, created_by=ctx.principal.key_id)
    with rt.uow() as uow:
        ws = uow.session.get(Workspace, ws_id)
        audit.record(
            uow,
            ctx,
            action="workspace.sync",
            target_type="workspace",
            target_id=ws_id,
            tenant_id=ws.tenant_id if ws else None,
            after={
                "endpoints": result.endpoints,
                "appeared": result.appeared,
                "vanished": result.vanished,
                "operations": result.operations,
            },
        )
        uow.commit()
    return result


def due_workspaces(
    rt: Runtime, limit: int, *, only_tenants: Collection[str] | None = None
) -> list[str]:
    """Workspaces whose periodic discovery is due (never listed, or listed too long ago)."""
    if only_tenants is not None and not only_tenants:
        return []
    now = utcnow()
    stmt = (
        select(Workspace.id)
        .outerjoin(WorkspaceSync, WorkspaceSync.workspace_id == Workspace.id)
        .where(WorkspaceSync.workspace_id.is_(None) | (WorkspaceSync.next_sync_at <= now))
    )
    if only_tenants is not None:
        stmt = stmt.where(Workspace.tenant_id.in_(list(only_tenants)))
    with rt.uow(read_only=True) as uow:
        rows = uow.session.scalars(
            stmt.order_by(
                WorkspaceSync.next_sync_at.is_(None).desc(), WorkspaceSync.next_sync_at
            ).limit(limit)
        )
        return list(rows)


def container_logs(
    rt: Runtime, ctx: CallContext, tenant: str, workspace: str, endpoint: str, tail: int
) -> ContainerLogs:
    """The last ``tail`` lines of an endpoint's container logs (reader)."""
    with rt.uow(read_only=True) as uow:
        ep = visible_endpoint(uow, ctx.principal, tenant, workspace, endpoint)
        ctx.require(Role.READER)
        ws = uow.session.get(Workspace, ep.workspace_id)
        assert ws is not None
        uow.session.expunge(ws)
    content = rt.ml.get_logs(target_of(rt, ws), endpoint, tail)
    return ContainerLogs(endpoint=endpoint, tail=tail, content=content)
