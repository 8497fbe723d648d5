"""Operations: every change the service applies to an endpoint, from queued to a final state.

Their views and the operator's use cases (apply, list, get, cancel); the planner that queues
them is ``planning``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.models import Endpoint, Operation, OperationAttempt, Tenant, Workspace
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.etags import etag_for
from service.domain.states import ACTIVE_STATES, AttemptOutcome, OperationState
from service.domain.targets import capabilities
from service.errors import Conflict, NotFound
from service.services import audit
from service.services.context import CallContext
from service.services.lookup import visible_endpoint, visible_tenant, visible_workspace
from service.services.pagination import Page, PageRequest, paginate
from service.services.planning import live_endpoints, plan
from service.services.runtime import Runtime


@dataclass(frozen=True)
class OperationView:
    id: str
    tenant: str
    workspace: str
    endpoint: str
    kind: str
    cause: str
    state: OperationState
    desired: dict[str, Any]
    attempts: int
    max_attempts: int
    last_error: str | None
    azure_operation_id: str | None
    not_before: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    etag: str
    # The target's kind, and whether applying the change replaces its serving instances.
    target_kind: str | None = None
    rolls_instances: bool = False
    # Running, and its Azure operation is being followed (polled) since then; None otherwise.
    following_since: datetime | None = None


@dataclass(frozen=True)
class AttemptView:
    """One attempt of an operation (see ``OperationAttempt``)."""

    fencing_token: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    charged: bool
    error: str | None
    azure_status: int | None
    azure_code: str | None
    retry_after_s: float | None
    retry_at: datetime | None
    azure_operation_id: str | None


@dataclass(frozen=True)
class OperationDetailView(OperationView):
    """An operation with every attempt, oldest first."""

    # A default only because the base view's last fields have one; always given.
    history: list[AttemptView] = field(default_factory=list)


def _attempt_view(a: OperationAttempt) -> AttemptView:
    return AttemptView(
        fencing_token=a.number,
        worker=a.worker,
        started_at=a.started_at,
        finished_at=a.finished_at,
        outcome=AttemptOutcome(a.outcome) if a.outcome else None,
        charged=a.charged,
        error=a.error,
        azure_status=a.azure_status,
        azure_code=a.azure_code,
        retry_after_s=a.retry_after_s,
        retry_at=a.retry_at,
        azure_operation_id=a.azure_operation_id,
    )


def operation_views(session: Session, ops: Iterable[Operation]) -> list[OperationView]:
    """Views of several operations, with the tenant and workspace slugs looked up once."""
    ops = list(ops)
    ws_ids = {op.workspace_id for op in ops}
    slugs: dict[str, tuple[str, str]] = {}
    if ws_ids:
        rows = session.execute(
            select(Workspace.id, Tenant.slug, Workspace.slug)
            .join(Tenant, Tenant.id == Workspace.tenant_id)
            .where(Workspace.id.in_(ws_ids))
        )
        slugs = {wid: (t, w) for wid, t, w in rows}
    kinds = _kinds(session, ops)
    return [
        _view(
            op,
            *slugs.get(op.workspace_id, ("?", "?")),
            kinds.get((op.workspace_id, op.endpoint_name)),
        )
        for op in ops
    ]


def _kinds(session: Session, ops: list[Operation]) -> dict[tuple[str, str], str]:
    if not ops:
        return {}
    names = {op.endpoint_name for op in ops}
    rows = session.execute(
        select(Endpoint.workspace_id, Endpoint.name, Endpoint.kind).where(
            Endpoint.workspace_id.in_({op.workspace_id for op in ops}),
            Endpoint.name.in_(names) if len(names) <= 500 else Endpoint.name.is_not(None),
        )
    )
    return {(w, n): k for w, n, k in rows}


def _view(op: Operation, tenant: str, workspace: str, kind: str | None = None) -> OperationView:
    return OperationView(
        id=op.id,
        tenant=tenant,
        workspace=workspace,
        endpoint=op.endpoint_name,
        kind=op.kind,
        cause=op.cause,
        state=OperationState(op.state),
        desired=dict(op.desired),
        attempts=op.attempts,
        max_attempts=op.max_attempts,
        last_error=op.last_error,
        azure_operation_id=op.azure_operation_id,
        not_before=op.not_before,
        created_by=op.created_by,
        created_at=op.created_at,
        updated_at=op.updated_at,
        finished_at=op.finished_at,
        etag=etag_for(op.version),
        target_kind=kind,
        rolls_instances=capabilities(kind).rolls_instances if kind else False,
        following_since=op.following_since,
    )


# -- use cases ---------------------------------------------------------------------------------
def apply(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    *,
    workspace: str | None = None,
    endpoint: str | None = None,
    max_attempts: int | None = None,
) -> list[OperationView]:
    """Apply the effective policy now (``manual`` cause, audit mode included): to one endpoint,
    or to every drifted endpoint of a workspace or tenant. Returns the operations queued."""
    attempts = rt.settings.reconciler.max_attempts if max_attempts is None else max_attempts
    with rt.uow() as uow:
        if endpoint is not None and workspace is not None:
            ep = visible_endpoint(uow, ctx.principal, tenant, workspace, endpoint)
            if ep.vanished_at is not None:
                raise NotFound(f"endpoint '{endpoint}' not found in workspace '{workspace}'")
            tenant_id, workspace_id = ep.tenant_id, ep.workspace_id
        elif workspace is not None:
            ws = visible_workspace(uow, ctx.principal, tenant, workspace)
            tenant_id, workspace_id = ws.tenant_id, ws.id
        else:
            tenant_id, workspace_id = visible_tenant(uow, ctx.principal, tenant).id, None
        ctx.require(Role.OPERATOR)
        targets = live_endpoints(uow.session, tenant_id, workspace_id, endpoint)
        created = plan(
            uow.session,
            tenant_id,
            targets,
            cause="manual",
            created_by=ctx.principal.key_id,
            max_attempts=attempts,
            manual=True,
        )
        views = operation_views(uow.session, created)
        audit.record(
            uow,
            ctx,
            action="operation.apply",
            target_type="endpoint" if endpoint else ("workspace" if workspace else "tenant"),
            target_id=endpoint or workspace_id or tenant_id,
            tenant_id=tenant_id,
            after={"operations": [v.id for v in views]},
        )
        uow.commit()
        return views


def _visible_operation(uow: UnitOfWork, ctx: CallContext, operation_id: str) -> Operation:
    op = uow.session.get(Operation, operation_id)
    if op is None or not ctx.principal.sees_tenant(op.tenant_id):
        raise NotFound(f"operation '{operation_id}' not found")
    return op


def get_operation(rt: Runtime, ctx: CallContext, operation_id: str) -> OperationDetailView:
    """One operation with its attempts (who ran each, how it ended, what Azure answered)."""
    with rt.uow(read_only=True) as uow:
        op = _visible_operation(uow, ctx, operation_id)
        ctx.require(Role.READER)
        view = operation_views(uow.session, [op])[0]
        attempts = uow.session.scalars(
            select(OperationAttempt)
            .where(OperationAttempt.operation_id == op.id)
            .order_by(OperationAttempt.number)
        )
        history = [_attempt_view(a) for a in attempts]
        return OperationDetailView(**{**view.__dict__, "history": history})


def list_operations(
    rt: Runtime,
    ctx: CallContext,
    page: PageRequest,
    *,
    tenant: str | None = None,
    state: str | None = None,
) -> Page[OperationView]:
    """Oldest first: ids are UUIDv7 (``domain.ids.new_id``, time-ordered), so paging by id in
    ascending order is creation order (ids minted by two processes in the same millisecond may
    interleave)."""
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        stmt = select(Operation)
        if tenant is not None:
            stmt = stmt.where(Operation.tenant_id == visible_tenant(uow, ctx.principal, tenant).id)
        elif ctx.principal.tenant_id is not None:
            stmt = stmt.where(Operation.tenant_id == ctx.principal.tenant_id)
        if state is not None:
            stmt = stmt.where(Operation.state == state)
        rows, cursor = paginate(uow.session, stmt, Operation.id, page)
        return Page(operation_views(uow.session, rows), cursor)


def cancel_operation(rt: Runtime, ctx: CallContext, operation_id: str) -> OperationView:
    """Cancel a queued or running operation. An Azure update already started still completes;
    the reconciler drops this attempt's result and retries nothing."""
    with rt.uow() as uow:
        op = _visible_operation(uow, ctx, operation_id)
        ctx.require(Role.OPERATOR)
        if op.state not in ACTIVE_STATES:
            raise Conflict(f"operation '{operation_id}' is already {op.state}")
        before = op.state
        op.state = OperationState.CANCELLED
        op.finished_at = utcnow()
        op.lease_owner = None
        op.lease_expires_at = None
        op.following_since = None
        op.last_error = f"cancelled by {ctx.principal.key_id}"
        # A running attempt can no longer record anything (it is not running any more): close it.
        uow.session.execute(
            update(OperationAttempt)
            .where(OperationAttempt.operation_id == op.id, OperationAttempt.outcome.is_(None))
            .values(outcome=AttemptOutcome.CANCELLED, charged=False, finished_at=op.finished_at)
            .execution_options(synchronize_session=False)
        )
        uow.flush()
        view = operation_views(uow.session, [op])[0]
        audit.record(
            uow,
            ctx,
            action="operation.cancel",
            target_type="operation",
            target_id=op.id,
            tenant_id=op.tenant_id,
            before={"state": before},
            after={"state": op.state},
        )
        uow.commit()
        return view
