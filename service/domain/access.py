"""Who is calling, and what they may do. Pure rules; the use cases enforce them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.IntEnum):
    """API key roles, ordered: each role can do everything the roles below it can."""

    READER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an API key id, its role and, for tenant-bound keys, the tenant."""

    key_id: str
    role: Role
    tenant_id: str | None = None

    @property
    def is_global(self) -> bool:
        return self.tenant_id is None

    def sees_tenant(self, tenant_id: str | None) -> bool:
        """A global key sees every tenant; a tenant-bound key only its own."""
        return self.tenant_id is None or self.tenant_id == tenant_id

    def has_role(self, role: Role) -> bool:
        return self.role >= role


CLI_PRINCIPAL = Principal(key_id="cli", role=Role.ADMIN, tenant_id=None)
"""The operator at the command line (bootstrap key creation); recorded as actor ``cli``."""
