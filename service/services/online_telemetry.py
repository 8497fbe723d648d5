"""Which role name picks a target's records in the telemetry views: a v1 web service's own
name, or for a v2 online deployment the SERVICE_NAME it sets (``telemetry_views.online_role``),
checked against its endpoint's other deployments and the workspace's web services."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from service.db.models import Endpoint, Workspace
from service.db.session import UnitOfWork
from service.domain.telemetry_views import UnidentifiedTelemetry, online_role
from service.errors import Conflict
from service.ports import MlTarget
from service.services.azure_credentials import tenant_credential
from service.services.runtime import Runtime


def resolver(rt: Runtime, uow: UnitOfWork, ep: Endpoint, ws: Workspace) -> Callable[[], str]:
    """Reads what the decision needs from the database now (inside ``uow``); the returned
    function asks Azure, outside the transaction, and raises Conflict (409) when the records
    cannot be told apart from another target's."""
    name, online_endpoint, deployment = ep.name, ep.online_endpoint, ep.deployment
    if online_endpoint is None:
        return lambda: name
    v1_services = set(
        uow.session.scalars(
            select(Endpoint.name).where(
                Endpoint.workspace_id == ws.id, Endpoint.online_endpoint.is_(None)
            )
        )
    )
    tenant_id, where = ws.tenant_id, (ws.subscription_id, ws.resource_group, ws.workspace_name)

    def resolve() -> str:
        target = MlTarget(tenant_id, tenant_credential(rt, tenant_id), *where)
        roles = rt.ml.telemetry_roles(target, online_endpoint)
        try:
            return online_role(deployment or "", roles, v1_services)
        except UnidentifiedTelemetry as exc:
            raise Conflict(str(exc)) from None

    return resolve
