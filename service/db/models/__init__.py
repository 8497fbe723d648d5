"""SQLAlchemy 2 typed models. ``alembic check`` in CI keeps the migrations in step with these.

One module per part of the product; importing this package registers every table on
``Base.metadata`` (what Alembic compares against).
"""

from __future__ import annotations

from service.db.models.access import ApiKey, AuditEvent, DeviceLogin, TenantCredential
from service.db.models.base import ID, NAMING, Base, Versioned
from service.db.models.catalog import Endpoint, Policy, Tenant, Workspace, WorkspaceSync
from service.db.models.operations import (
    Operation,
    OperationAttempt,
    SubscriptionWrite,
    WriteBudget,
)
from service.db.models.retention import RetentionObservation, RetentionPolicy

__all__ = [
    "ID",
    "NAMING",
    "ApiKey",
    "AuditEvent",
    "Base",
    "DeviceLogin",
    "Endpoint",
    "Operation",
    "OperationAttempt",
    "Policy",
    "RetentionObservation",
    "RetentionPolicy",
    "SubscriptionWrite",
    "Tenant",
    "TenantCredential",
    "Versioned",
    "Workspace",
    "WorkspaceSync",
    "WriteBudget",
]
