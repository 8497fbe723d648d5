"""What every use case needs to know about the call it serves."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.access import Principal, Role
from service.errors import Forbidden


@dataclass(frozen=True)
class CallContext:
    """The authenticated caller and the request id (recorded on audit events)."""

    principal: Principal
    request_id: str | None = None

    def require(self, role: Role) -> None:
        """Raise 403 unless the caller's role is at least ``role``."""
        if not self.principal.has_role(role):
            raise Forbidden(f"this action needs the {role.label} role")
