"""Database rows that tests add directly, with the values most tests do not care about."""

from __future__ import annotations

from typing import Any

from service.db.models import Operation, Workspace


def operation_row(workspace: Workspace, endpoint: str, **values: Any) -> Operation:
    """An ``Operation`` of ``endpoint`` in ``workspace``: queued, applying the policy (App
    Insights on), made by the CLI, unless ``values`` say otherwise."""
    fields: dict[str, Any] = {
        "kind": "apply_policy",
        "desired": {"app_insights": True},
        "cause": "manual",
        "state": "queued",
        "created_by": "cli",
    }
    fields.update(values)
    return Operation(
        tenant_id=workspace.tenant_id,
        workspace_id=workspace.id,
        endpoint_name=endpoint,
        **fields,
    )
