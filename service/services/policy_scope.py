"""Where a policy is set (tenant, workspace or endpoint scope): one mechanism for the
monitoring policies (``policies``) and the retention policies (``retention_policies``).

A scope is found from the caller's slugs (404 for what the caller cannot see), names its row by
``(tenant_id, scope_key)``, and creates that row with its provenance (tenant, workspace,
endpoint, scope name and key). Replacing a policy follows If-Match like every write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Tenant, Workspace
from service.db.session import UnitOfWork
from service.errors import PreconditionFailed
from service.services.context import CallContext
from service.services.lookup import check_if_match, visible_tenant, visible_workspace

R = TypeVar("R")


@dataclass(frozen=True)
class PolicyScope:
    tenant: Tenant
    workspace: Workspace | None
    endpoint: str | None = None

    @property
    def name(self) -> str:
        return "endpoint" if self.endpoint else ("workspace" if self.workspace else "tenant")

    @property
    def key(self) -> str:
        if self.workspace is None:
            return "tenant"
        if self.endpoint is None:
            return f"workspace:{self.workspace.id}"
        return f"endpoint:{self.workspace.id}:{self.endpoint}"

    def provenance(self) -> dict[str, Any]:
        """The columns that place a new policy row at this scope."""
        values: dict[str, Any] = {
            "tenant_id": self.tenant.id,
            "workspace_id": self.workspace.id if self.workspace else None,
            "scope": self.name,
            "scope_key": self.key,
        }
        if self.endpoint is not None:
            values["endpoint_name"] = self.endpoint
        return values


def scope_of(
    uow: UnitOfWork,
    ctx: CallContext,
    tenant: str,
    workspace: str | None,
    endpoint: str | None = None,
) -> PolicyScope:
    """The scope the caller names (404 unless the caller sees it)."""
    if workspace is None:
        return PolicyScope(visible_tenant(uow, ctx.principal, tenant), None)
    ws = visible_workspace(uow, ctx.principal, tenant, workspace)
    return PolicyScope(ws.tenant, ws, endpoint)


def find(session: Session, model: type[R], scope: PolicyScope) -> R | None:
    """The ``model`` policy set at ``scope``, if any."""
    row: Any = model
    return session.scalar(
        select(model).where(row.tenant_id == scope.tenant.id, row.scope_key == scope.key)
    )


def check_replace(version: int | None, if_match: str | None) -> None:
    """If-Match for a create-or-replace of the policy at ``version`` (None: none is set): a
    version must match the stored policy; naming one where none is set is 412 (``*`` or no
    If-Match creates)."""
    if version is None:
        if if_match is not None and if_match.strip() != "*":
            raise PreconditionFailed("If-Match names a version, but no policy is set at this scope")
        return
    check_if_match(if_match, version)
