"""Log Analytics workspaces as ARM resources, their data export rules, and export delivery.

This module is the model (workspaces, storage accounts, rules, deliveries); the ARM routes are
`emulator.data_export_api` (Microsoft.OperationalInsights, synchronous as in Azure):

- ``GET /subscriptions/{s}/providers/Microsoft.OperationalInsights/workspaces`` and
  ``GET .../resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}``: the Log
  Analytics workspace linked to each AML workspace of the estate (named ``<aml name>-law``, same
  subscription, resource group and region, ``properties.customerId`` = its workspace GUID).
- ``GET .../workspaces/{ws}/dataExports`` and ``PUT/GET/DELETE .../dataExports/{name}``
  (DataExports.json, stable 2020-08-01 and 2025-07-01, the version azure-mgmt-loganalytics 14
  sends; copies under tests/emulator/specs/). PUT answers 201 when it creates, 200 when it
  replaces; DELETE answers 200, or 404 for a rule that does not exist.

Rules Azure documents ("Log Analytics workspace data export", Limitations; the PUT parameter of
the spec) and this module enforces: a name of 4-63 characters matching
``^[A-Za-z][A-Za-z0-9-]+[A-Za-z0-9]$``; ``tableNames`` required; at most 10 *enabled* rules per
workspace (more may exist disabled); the destination in the workspace's region; a storage account
used by at most one rule of the workspace; ``destination.type`` is read-only (derived from the
resource id, ignored on input). A table that cannot be exported is accepted silently and exports
nothing (see ``exportable``).

Delivery of exported rows to storage (Azurite in tests and the demo) is
``emulator.export_delivery``; storage accounts are registered here with a connection string.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.state import EmulatorState, Workspace

# "Table names can be 60 characters long when you're exporting to a storage account. They can be
# 47 characters when you're exporting to event hubs. Tables with longer names won't be exported."
MAX_TABLE_NAME = {"StorageAccount": 60, "EventHub": 47}
# A subset of the documented "Supported tables" list: the App* tables and common ones.
EXPORTABLE_TABLES = frozenset(
    {
        "AppAvailabilityResults",
        "AppBrowserTimings",
        "AppDependencies",
        "AppEvents",
        "AppExceptions",
        "AppMetrics",
        "AppPageViews",
        "AppPerformanceCounters",
        "AppRequests",
        "AppSystemEvents",
        "AppTraces",
        "AzureActivity",
        "AzureDiagnostics",
        "ContainerLog",
        "ContainerLogV2",
        "Event",
        "Heartbeat",
        "Perf",
        "SecurityEvent",
        "Syslog",
    }
)
STORAGE_ACCOUNT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/"
    r"[^/]+$",
    re.IGNORECASE,
)
EVENT_HUBS_NAMESPACE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.EventHub/namespaces/[^/]+$",
    re.IGNORECASE,
)
LA_WORKSPACES_TYPE = "Microsoft.OperationalInsights/workspaces"


def exportable(table: str, destination_type: str = "StorageAccount") -> str | None:
    """None when `table` is exported, else why it is not (accepted silently by Azure)."""
    if len(table) > MAX_TABLE_NAME.get(destination_type, 60):
        return f"table names longer than {MAX_TABLE_NAME[destination_type]} are not exported"
    if table not in EXPORTABLE_TABLES:
        return "not in the tables data export supports"
    return None


@dataclass(frozen=True)
class LogAnalyticsWorkspace:
    """The ARM view of a Log Analytics workspace the estate links to an AML workspace."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    customer_id: str

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{LA_WORKSPACES_TYPE}/{self.name}"
        )

    @property
    def key(self) -> str:
        return self.arm_id.lower()


@dataclass
class StorageAccount:
    resource_id: str
    location: str
    connection_string: str | None  # a real blob endpoint; None: accepted, nothing delivered


@dataclass
class ExportRule:
    workspace: LogAnalyticsWorkspace
    name: str
    data_export_id: str
    table_names: list[str]
    destination_id: str
    destination_type: str
    event_hub_name: str | None
    enable: bool
    created: dt.datetime
    modified: dt.datetime


@dataclass
class Delivery:
    """One append to one blob (for tests and the admin stats)."""

    rule: str
    account: str
    container: str
    blob: str
    rows: int


@dataclass
class DataExports:
    """Per-state registry: storage accounts, Event Hubs namespaces, rules, deliveries."""

    lock: threading.RLock
    storage_accounts: dict[str, StorageAccount] = field(default_factory=dict)
    event_hub_namespaces: dict[str, str] = field(default_factory=dict)  # id -> location
    rules: dict[tuple[str, str], ExportRule] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    writer: Callable[[str, str, str, bytes], None] | None = None

    def rules_of(self, workspace: LogAnalyticsWorkspace) -> list[ExportRule]:
        with self.lock:
            return [r for (key, _), r in sorted(self.rules.items()) if key == workspace.key]


def exports(state: EmulatorState) -> DataExports:
    """The state's data export registry, made on first use."""
    with state.lock:
        registry = getattr(state, "_data_exports", None)
        if registry is None:
            registry = DataExports(state.lock)
            state._data_exports = registry  # type: ignore[attr-defined]
        return registry


def add_storage_account(
    state: EmulatorState,
    resource_id: str,
    *,
    location: str,
    connection_string: str | None = None,
) -> StorageAccount:
    """Register a storage account export rules may target (`connection_string`: where blobs go)."""
    if not STORAGE_ACCOUNT_ID.match(resource_id):
        raise ValueError(f"not a storage account resource id: {resource_id}")
    account = StorageAccount(resource_id, location.lower(), connection_string)
    registry = exports(state)
    with registry.lock:
        registry.storage_accounts[resource_id.lower()] = account
    return account


def add_event_hub_namespace(state: EmulatorState, resource_id: str, *, location: str) -> None:
    """Register an Event Hubs namespace export rules may target (nothing is delivered to it)."""
    if not EVENT_HUBS_NAMESPACE_ID.match(resource_id):
        raise ValueError(f"not an Event Hubs namespace resource id: {resource_id}")
    registry = exports(state)
    with registry.lock:
        registry.event_hub_namespaces[resource_id.lower()] = location.lower()


def la_workspace_of(ws: Workspace) -> LogAnalyticsWorkspace | None:
    """The Log Analytics workspace the estate links to AML workspace `ws`, if any."""
    if not ws.log_analytics_workspace_id:
        return None
    return LogAnalyticsWorkspace(
        ws.subscription_id,
        ws.resource_group,
        f"{ws.name}-law",
        ws.location.lower(),
        ws.log_analytics_workspace_id.lower(),
    )


def la_workspaces(state: EmulatorState) -> list[LogAnalyticsWorkspace]:
    with state.lock:
        linked = [la_workspace_of(ws) for ws in state.workspaces.values()]
    unique: dict[str, LogAnalyticsWorkspace] = {}
    for la in linked:
        if la is not None:
            unique.setdefault(la.key, la)
    return list(unique.values())


def find_la_workspace(
    state: EmulatorState, sub: str, rg: str, name: str
) -> LogAnalyticsWorkspace | None:
    path = f"/subscriptions/{sub}/resourcegroups/{rg}/providers/{LA_WORKSPACES_TYPE}/{name}"
    key = path.lower()
    return next((la for la in la_workspaces(state) if la.key == key), None)


def la_workspace_by_customer_id(
    state: EmulatorState, customer_id: str
) -> LogAnalyticsWorkspace | None:
    return next((la for la in la_workspaces(state) if la.customer_id == customer_id.lower()), None)
