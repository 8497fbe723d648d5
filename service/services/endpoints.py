"""Endpoints: AML model-serving endpoints as discovery last observed them."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from service.db.models import Endpoint, Workspace
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.etags import etag_for
from service.domain.targets import capabilities, kind_for
from service.services.compliance import Monitoring, monitoring_of
from service.services.compliance_facts import Facts, row_facts
from service.services.context import CallContext
from service.services.lookup import visible_endpoint, visible_workspace_ref
from service.services.pagination import Page, PageRequest, cut_page, keyset, page_params
from service.services.runtime import Runtime


@dataclass(frozen=True)
class ObservedEndpoint:
    """What discovery saw of one target (a web service or an online deployment)."""

    name: str
    compute_type: str
    state: str | None
    app_insights_enabled: bool | None
    data_collection_enabled: bool | None
    scoring_uri: str | None
    azure_updated_at: datetime | None
    kind: str | None = None  # None: derived from compute_type
    online_endpoint: str | None = None
    deployment: str | None = None


@dataclass(frozen=True)
class EndpointView:
    id: str
    tenant: str
    workspace: str
    name: str
    kind: str
    online_endpoint: str | None
    deployment: str | None
    rolls_instances: bool
    compute_type: str
    state: str | None
    app_insights_enabled: bool | None
    data_collection_enabled: bool | None
    scoring_uri: str | None
    azure_updated_at: datetime | None
    observed_at: datetime | None
    vanished_at: datetime | None
    etag: str
    # Desired (effective policy, with where each field came from) against observed.
    monitoring: Monitoring | None = None


def view(
    ep: Any, tenant: str, workspace: str, monitoring: Monitoring | None = None
) -> EndpointView:
    """``ep``: an ``Endpoint`` or a row of its columns."""
    return EndpointView(
        id=ep.id,
        tenant=tenant,
        workspace=workspace,
        name=ep.name,
        kind=ep.kind,
        online_endpoint=ep.online_endpoint,
        deployment=ep.deployment,
        rolls_instances=capabilities(ep.kind).rolls_instances,
        compute_type=ep.compute_type,
        state=ep.state,
        app_insights_enabled=ep.app_insights_enabled,
        data_collection_enabled=ep.data_collection_enabled,
        scoring_uri=ep.scoring_uri,
        azure_updated_at=ep.azure_updated_at,
        observed_at=ep.observed_at,
        vanished_at=ep.vanished_at,
        etag=etag_for(ep.version),
        monitoring=monitoring,
    )


def list_endpoints(
    rt: Runtime,
    ctx: CallContext,
    tenant: str,
    workspace: str,
    page: PageRequest,
    *,
    include_vanished: bool = False,
) -> Page[EndpointView]:
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        # The workspace's id and tenant as one joined row (its ORM entity is not needed).
        ws = visible_workspace_ref(uow, ctx.principal, tenant, workspace)
        params = {"ws": ws.id, **page_params(page)}
        # Rows of the columns a view shows, not ORM objects (a page is read, never changed),
        # from a statement built once and run below the ORM's execution layer; one fetch.
        stmt = _PAGES[(include_vanished, page.cursor is not None)]
        found = uow.session.connection().execute(stmt, params).all()
        # Named tuples: their fields read like attributes at a tuple's cost (a Row's attribute
        # look-up was a tenth of the page's CPU, read ~20 times per endpoint).
        listed: list[Any] = [_Listed._make(row) for row in found]
        rows, cursor = cut_page(listed, page, "id")
        facts = Facts.from_rows(uow.session, ws.tenant_id, rows)
        monitoring = monitoring_of(uow.session, ws.tenant_id, rows, facts=facts)
        return Page([view(ep, tenant, workspace, monitoring[ep.id]) for ep in rows], cursor)


_LISTED = tuple(
    column
    for column in Endpoint.__table__.columns
    if column.key not in ("tenant_id", "created_at", "updated_at")
)
# With each row, what its compliance depends on besides the policies (its operations, its
# workspace's access): in the page's statement, not two more (compliance_facts.row_facts).
_FACTS = row_facts(bindparam("ws"))
_Listed = namedtuple(  # type: ignore[misc]
    "_Listed", [column.key for column in _LISTED] + [column.key for column in _FACTS]
)


def _listing(include_vanished: bool) -> Any:
    stmt = select(*_LISTED, *_FACTS).where(Endpoint.workspace_id == bindparam("ws"))
    return stmt if include_vanished else stmt.where(Endpoint.vanished_at.is_(None))


# Built once: building and caching-keying the 17-column statement for every page cost as much
# as reading the page from PostgreSQL (bench/fleet_queries.py). By (vanished too, after a cursor).
_PAGES = {
    (vanished, after): keyset(_listing(vanished), Endpoint.id, after=after)
    for vanished in (False, True)
    for after in (False, True)
}


def get_endpoint(
    rt: Runtime, ctx: CallContext, tenant: str, workspace: str, name: str
) -> EndpointView:
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        ep = visible_endpoint(uow, ctx.principal, tenant, workspace, name)
        return view(ep, tenant, workspace, monitoring_of(uow.session, ep.tenant_id, [ep])[ep.id])


def record_observations(
    uow: UnitOfWork, workspace: Workspace, observed: list[ObservedEndpoint], *, complete: bool
) -> None:
    """Upsert what discovery saw. With ``complete`` (a full listing), mark the rest vanished.

    Does not commit: the caller owns the transaction.
    """
    now = utcnow()
    existing = {
        ep.name: ep
        for ep in uow.session.scalars(select(Endpoint).where(Endpoint.workspace_id == workspace.id))
    }
    for seen in observed:
        ep = existing.pop(seen.name, None)
        if ep is None:
            ep = Endpoint(workspace_id=workspace.id, tenant_id=workspace.tenant_id, name=seen.name)
            uow.session.add(ep)
        ep.compute_type = seen.compute_type
        ep.kind = seen.kind or kind_for(seen.compute_type).value
        ep.online_endpoint = seen.online_endpoint
        ep.deployment = seen.deployment
        ep.state = seen.state
        ep.app_insights_enabled = seen.app_insights_enabled
        ep.data_collection_enabled = seen.data_collection_enabled
        ep.scoring_uri = seen.scoring_uri
        ep.azure_updated_at = seen.azure_updated_at
        ep.observed_at = now
        ep.vanished_at = None
    if complete:
        for ep in existing.values():
            if ep.vanished_at is None:
                ep.vanished_at = now
    uow.flush()
