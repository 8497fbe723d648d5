"""Ports of retention: Log Analytics workspaces and their data export rules (ARM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from service.ports.identity import TokenCredential


@dataclass(frozen=True)
class LaWorkspaceRef:
    """A Log Analytics workspace as ARM knows it."""

    resource_id: str
    location: str
    customer_id: str


@dataclass(frozen=True)
class ExportRuleSnapshot:
    """A data export rule as Azure returned it."""

    name: str
    destination_resource_id: str
    destination_type: str | None
    tables: tuple[str, ...]
    enabled: bool


class DataExportControl(Protocol):
    """Log Analytics workspaces and their data export rules through ARM.

    Failures raise the service's error model: AzureCallFailed (temporary), AzureRejected (Azure
    refused), NotFound, or a credential error.
    """

    def find_workspace(
        self, credential: TokenCredential, subscription_id: str, customer_id: str
    ) -> LaWorkspaceRef | None:
        """The Log Analytics workspace of the subscription whose customer id (GUID) matches."""
        ...

    def list_rules(
        self, credential: TokenCredential, workspace_resource_id: str
    ) -> list[ExportRuleSnapshot]: ...

    def put_rule(
        self,
        credential: TokenCredential,
        workspace_resource_id: str,
        name: str,
        *,
        destination_resource_id: str,
        tables: tuple[str, ...],
        enabled: bool,
    ) -> ExportRuleSnapshot: ...

    def delete_rule(
        self, credential: TokenCredential, workspace_resource_id: str, name: str
    ) -> None: ...
