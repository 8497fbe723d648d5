"""What the compliance of some endpoints depends on, read in a few queries: their policies,
their active and latest finished operations, and whether their workspace's credential failed.

Shared by the endpoint views and the tenant summary (all of them); a page of endpoints reads
the operations and the access with its rows instead (``row_facts``, ``Facts.from_rows``). The
statements are built once with bound parameters (service/services/compliance.py judges).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, exists, func, select
from sqlalchemy.orm import Session, aliased

from service.db.models import Endpoint, Operation, Policy, WorkspaceSync
from service.domain.states import ACTIVE_STATES, OperationState
from service.domain.targets import split_target
from service.services.planning import POLICY_ROW, PolicyIndex

# Discovery failures that mean "we cannot see this tenant's Azure": compliance is unknown.
ACCESS_ERRORS = frozenset(
    {"credential_missing", "login_required", "credential_rejected", "secrets_unavailable"}
)


@dataclass(frozen=True)
class Facts:
    index: PolicyIndex
    active: dict[tuple[str, str], str]
    last_failed: dict[tuple[str, str], bool]
    broken: set[str]

    @classmethod
    def load(cls, session: Session, tenant_id: str, ws_ids: set[str], names: set[str]) -> Facts:
        by_name = bool(names) and len(names) <= 500
        dialect = session.get_bind().dialect.name
        params: dict[str, Any] = {"tenant_id": tenant_id, "ws_ids": sorted(ws_ids)}
        if by_name:
            params["names"] = sorted(names)
        active: dict[tuple[str, str], str] = {}
        last_failed: dict[tuple[str, str], bool] = {}
        # Plain Core statements of columns: run on the connection, below the ORM's execution
        # layer (which only added its per-call overhead to them).
        connection = session.connection()
        rows: Any = connection.execute(_statement("ops", dialect, by_name), params).all()
        for i, w, n, state in rows:
            if state in ACTIVE_STATES:
                active[(w, n)] = i
            else:
                last_failed[(w, n)] = state == OperationState.FAILED
        broken = set(
            connection.scalars(_statement("broken", dialect, False), {"ws_ids": params["ws_ids"]})
        )
        return cls(_policy_index(session, tenant_id, names), active, last_failed, broken)

    @classmethod
    def from_rows(cls, session: Session, tenant_id: str, rows: Sequence[Any]) -> Facts:
        """The facts of a page of endpoints of one workspace whose statement selected the
        ``row_facts`` columns (their operations and their workspace's access): only the
        policies take a statement of their own."""
        active: dict[tuple[str, str], str] = {}
        last_failed: dict[tuple[str, str], bool] = {}
        broken: set[str] = set()
        failed = OperationState.FAILED
        for row in rows:
            key = (row.workspace_id, row.name)
            if row.active_operation is not None:
                active[key] = row.active_operation
            if row.last_finished_state is not None:
                last_failed[key] = row.last_finished_state == failed
            if row.access_broken:
                broken.add(row.workspace_id)
        names = {row.name for row in rows}
        return cls(_policy_index(session, tenant_id, names), active, last_failed, broken)


def row_facts(workspace_id: Any) -> tuple[Any, ...]:
    """Three columns for a statement that selects ``Endpoint`` rows of the workspace
    ``workspace_id`` (a bound parameter): what ``Facts.load`` reads in two more statements,
    read with the page instead (``Facts.from_rows``). A page of 200 spent a round trip and a
    200-name array on each (bench/fleet_queries.py); here they are two index probes per row
    (``uq_operations_active_endpoint``, ``ix_operations_workspace_endpoint_created``) and one
    look-up per statement (the workspace's access does not depend on the row).

    - ``active_operation``: the id of the endpoint's queued or running operation (one at most);
    - ``last_finished_state``: the state of its latest finished operation;
    - ``access_broken``: whether discovery last failed to see the workspace's Azure at all.
    """
    finished = (OperationState.SUCCEEDED, OperationState.FAILED)
    same_endpoint = (
        Operation.tenant_id == Endpoint.tenant_id,
        Operation.workspace_id == Endpoint.workspace_id,
        Operation.endpoint_name == Endpoint.name,
    )
    active = (
        select(Operation.id)
        .where(*same_endpoint, Operation.state.in_(ACTIVE_STATES))
        .limit(1)
        .correlate(Endpoint)
        .scalar_subquery()
    )
    latest = (
        select(Operation.state)
        .where(*same_endpoint, Operation.state.in_(finished))
        .order_by(Operation.created_at.desc())
        .limit(1)
        .correlate(Endpoint)
        .scalar_subquery()
    )
    broken = exists().where(
        WorkspaceSync.workspace_id == workspace_id,
        WorkspaceSync.last_error_code.in_(ACCESS_ERRORS),
    )
    return (
        active.label("active_operation"),
        latest.label("last_finished_state"),
        broken.label("access_broken"),
    )


def _policy_index(session: Session, tenant_id: str, names: set[str]) -> PolicyIndex:
    """``PolicyIndex.load`` for these endpoints: rows of columns, not ORM objects (a page read
    them all for every request), and only the endpoint policies that can apply to ``names``
    (their own, or their online endpoint's)."""
    by_name = bool(names) and len(names) <= 500
    params: dict[str, Any] = {"tenant_id": tenant_id}
    if by_name:
        parents = {online[0] for online in map(split_target, names) if online is not None}
        params["names"] = sorted(names | parents)
    stmt = _statement("policies", session.get_bind().dialect.name, by_name)
    return PolicyIndex.from_rows(session.connection().execute(stmt, params).all())


# The facts' statements, built once per (kind, dialect, filtered by name) with bound
# parameters: building them for each request was a third of a page's fact-finding CPU.
@functools.cache
def _statement(kind: str, dialect: str, by_name: bool) -> Any:
    ws_ids: Any = bindparam("ws_ids", expanding=True)
    if kind == "broken":
        return select(WorkspaceSync.workspace_id).where(
            WorkspaceSync.workspace_id.in_(ws_ids),
            WorkspaceSync.last_error_code.in_(ACCESS_ERRORS),
        )
    if kind == "policies":
        stmt = select(*POLICY_ROW).where(Policy.tenant_id == bindparam("tenant_id"))
        if by_name:
            stmt = stmt.where((Policy.scope != "endpoint") | _one_of(dialect, Policy.endpoint_name))
        return stmt
    # One query for both: the active operation of each endpoint, and the state of its latest
    # finished one (an index probe per endpoint: ix_operations_workspace_endpoint_created).
    finished = (OperationState.SUCCEEDED, OperationState.FAILED)
    newest = aliased(Operation)
    latest_at = (
        select(func.max(newest.created_at))
        .where(
            newest.workspace_id == Operation.workspace_id,
            newest.endpoint_name == Operation.endpoint_name,
            newest.state.in_(finished),
        )
        .scalar_subquery()
    )
    scoped: list[Any] = [
        Operation.tenant_id == bindparam("tenant_id"),
        Operation.workspace_id.in_(ws_ids),
    ]
    if by_name:
        scoped.append(_one_of(dialect, Operation.endpoint_name))
    return select(
        Operation.id, Operation.workspace_id, Operation.endpoint_name, Operation.state
    ).where(
        *scoped,
        Operation.state.in_(ACTIVE_STATES)
        | (Operation.state.in_(finished) & (Operation.created_at == latest_at)),
    )


def _one_of(dialect: str, column: Any) -> Any:
    """``column IN :names``; on PostgreSQL ``= ANY(:names)``: one array parameter instead of one
    per value (200 on a page), which SQLAlchemy rendered and psycopg parsed on every call."""
    if dialect == "postgresql":
        return column == any_(bindparam("names", type_=ARRAY(String)))
    return column.in_(bindparam("names", expanding=True))
