"""Log Analytics workspaces as ARM resources, their data export rules, and export delivery.

ARM routes (Microsoft.OperationalInsights, synchronous as in Azure):

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

Delivery: rows ingested through ``ingest`` (or ``POST /_admin/log-analytics/ingest``) after a rule
exists are appended to the rule's storage account in Azure's layout: container ``am-<Table>``
(the docs spell it with the table's case; container names are lower case, so ``am-apptraces``),
append blob ``WorkspaceResourceId=/subscriptions/<s>/resourcegroups/<rg>/providers/
microsoft.operationalinsights/workspaces/<ws>/y=YYYY/m=MM/d=DD/h=HH/m=MM/PT05M.json`` (5-minute
folders by TimeGenerated, JSON lines, lower-cased workspace id). Storage accounts are registered
with a connection string to a real blob endpoint (Azurite in tests and the demo).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any

from werkzeug.wrappers import Response

from emulator.server import RequestContext, Route, error_response, json_response
from emulator.state import EmulatorState, Workspace

SUPPORTED_API_VERSIONS = frozenset(
    {"2020-08-01", "2022-10-01", "2023-09-01", "2025-02-01", "2025-07-01"}
)
RULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]+[A-Za-z0-9]$")
MAX_ENABLED_RULES = 10
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
_STORAGE = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/"
    r"[^/]+$",
    re.IGNORECASE,
)
_EVENT_HUBS = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.EventHub/namespaces/[^/]+$",
    re.IGNORECASE,
)
_LA_WORKSPACES = "Microsoft.OperationalInsights/workspaces"
_RULE_TYPE = "Microsoft.OperationalInsights/workspaces/export"  # as the spec examples answer


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
            f"/providers/{_LA_WORKSPACES}/{self.name}"
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
    if not _STORAGE.match(resource_id):
        raise ValueError(f"not a storage account resource id: {resource_id}")
    account = StorageAccount(resource_id, location.lower(), connection_string)
    registry = exports(state)
    with registry.lock:
        registry.storage_accounts[resource_id.lower()] = account
    return account


def add_event_hub_namespace(state: EmulatorState, resource_id: str, *, location: str) -> None:
    """Register an Event Hubs namespace export rules may target (nothing is delivered to it)."""
    if not _EVENT_HUBS.match(resource_id):
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


def _la_workspaces(state: EmulatorState) -> list[LogAnalyticsWorkspace]:
    with state.lock:
        linked = [la_workspace_of(ws) for ws in state.workspaces.values()]
    unique: dict[str, LogAnalyticsWorkspace] = {}
    for la in linked:
        if la is not None:
            unique.setdefault(la.key, la)
    return list(unique.values())


def _find_la(state: EmulatorState, sub: str, rg: str, name: str) -> LogAnalyticsWorkspace | None:
    key = f"/subscriptions/{sub}/resourcegroups/{rg}/providers/{_LA_WORKSPACES}/{name}".lower()
    return next((la for la in _la_workspaces(state) if la.key == key), None)


def la_workspace_by_customer_id(
    state: EmulatorState, customer_id: str
) -> LogAnalyticsWorkspace | None:
    return next((la for la in _la_workspaces(state) if la.customer_id == customer_id.lower()), None)


# --- JSON shapes -------------------------------------------------------------------------------


def _http_date(when: dt.datetime) -> str:
    return format_datetime(when, usegmt=True)


def workspace_json(la: LogAnalyticsWorkspace) -> dict[str, Any]:
    """ARM's Microsoft.OperationalInsights/workspaces resource (the fields clients read)."""
    return {
        "id": la.arm_id,
        "name": la.name,
        "type": _LA_WORKSPACES,
        "location": la.location,
        "tags": {},
        "properties": {
            "customerId": la.customer_id,
            "provisioningState": "Succeeded",
            "sku": {"name": "PerGB2018"},
            "retentionInDays": 30,
            "publicNetworkAccessForIngestion": "Enabled",
            "publicNetworkAccessForQuery": "Enabled",
        },
    }


def rule_json(rule: ExportRule) -> dict[str, Any]:
    """A DataExport resource as DataExports.json declares it."""
    destination: dict[str, Any] = {
        "resourceId": rule.destination_id,
        "type": rule.destination_type,
    }
    if rule.event_hub_name:
        destination["metaData"] = {"eventHubName": rule.event_hub_name}
    return {
        "id": f"{rule.workspace.arm_id}/dataExports/{rule.name}",
        "name": rule.name,
        "type": _RULE_TYPE,
        "properties": {
            "dataExportId": rule.data_export_id,
            "destination": destination,
            "tableNames": list(rule.table_names),
            "enable": rule.enable,
            "createdDate": _http_date(rule.created),
            "lastModifiedDate": _http_date(rule.modified),
        },
    }


# --- handlers ----------------------------------------------------------------------------------


def _bad(code: str, message: str, status: int = 400) -> Response:
    return error_response("arm", status, code, message)


def _api_version_error(ctx: RequestContext) -> Response | None:
    version = ctx.request.args.get("api-version")
    if not version:
        return _bad(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(sorted(SUPPORTED_API_VERSIONS))
        return _bad(
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{supported}'.",
        )
    return None


def _workspace_or_404(ctx: RequestContext) -> LogAnalyticsWorkspace | Response:
    p = ctx.params
    la = _find_la(ctx.state, p["subscription_id"], p["resource_group"], p["workspace"])
    if la is None:
        message = (
            f"The Resource '{_LA_WORKSPACES}/{p['workspace']}' under resource group "
            f"'{p['resource_group']}' was not found."
        )
        return _bad("ResourceNotFound", message, 404)
    return la


def _list_workspaces(ctx: RequestContext) -> Response:
    refused = _api_version_error(ctx)
    if refused is not None:
        return refused
    sub = ctx.params["subscription_id"].lower()
    value = [
        workspace_json(la)
        for la in sorted(_la_workspaces(ctx.state), key=lambda la: la.key)
        if la.subscription_id.lower() == sub
    ]
    return json_response({"value": value})


def _get_workspace(ctx: RequestContext) -> Response:
    refused = _api_version_error(ctx)
    if refused is not None:
        return refused
    la = _workspace_or_404(ctx)
    return la if isinstance(la, Response) else json_response(workspace_json(la))


def _list_rules(ctx: RequestContext) -> Response:
    refused = _api_version_error(ctx)
    if refused is not None:
        return refused
    la = _workspace_or_404(ctx)
    if isinstance(la, Response):
        return la
    return json_response({"value": [rule_json(r) for r in exports(ctx.state).rules_of(la)]})


def _rule_not_found(name: str) -> Response:
    return _bad("ResourceNotFound", f"Data export '{name}' was not found.", 404)


def _get_rule(ctx: RequestContext) -> Response:
    refused = _api_version_error(ctx)
    if refused is not None:
        return refused
    la = _workspace_or_404(ctx)
    if isinstance(la, Response):
        return la
    registry = exports(ctx.state)
    name = ctx.params["name"]
    with registry.lock:
        rule = registry.rules.get((la.key, name.lower()))
    return _rule_not_found(name) if rule is None else json_response(rule_json(rule))


def _delete_rule(ctx: RequestContext) -> Response:
    refused = _api_version_error(ctx)
    if refused is not None:
        return refused
    la = _workspace_or_404(ctx)
    if isinstance(la, Response):
        return la
    registry = exports(ctx.state)
    name = ctx.params["name"]
    with registry.lock:
        rule = registry.rules.pop((la.key, name.lower()), None)
    return _rule_not_found(name) if rule is None else Response(status=200)


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_rule_body(body: Any) -> tuple[list[str], str, str | None, bool]:
    """(tableNames, destination id, event hub name, enable) of a PUT body, or _Invalid."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise _Invalid("InvalidRequestContent", "The request content must have 'properties'.")
    props = body["properties"]
    tables = props.get("tableNames")
    if not isinstance(tables, list) or not tables:
        raise _Invalid("InvalidParameter", "'properties.tableNames' is required.")
    if not all(isinstance(t, str) and t.strip() for t in tables):
        raise _Invalid("InvalidParameter", "'properties.tableNames' must hold table names.")
    if len({t.lower() for t in tables}) != len(tables):
        raise _Invalid("InvalidParameter", "'properties.tableNames' lists a table twice.")
    destination = props.get("destination")
    if not isinstance(destination, dict) or not isinstance(destination.get("resourceId"), str):
        raise _Invalid("InvalidParameter", "'properties.destination.resourceId' is required.")
    meta = destination.get("metaData")
    if meta is not None and not isinstance(meta, dict):
        raise _Invalid("InvalidParameter", "'properties.destination.metaData' must be an object.")
    hub = (meta or {}).get("eventHubName")
    if hub is not None and not isinstance(hub, str):
        raise _Invalid("InvalidParameter", "'metaData.eventHubName' must be a string.")
    enable = props.get("enable", True)
    if not isinstance(enable, bool):
        raise _Invalid("InvalidParameter", "'properties.enable' must be a boolean.")
    return list(tables), destination["resourceId"], hub or None, enable


def _destination(
    registry: DataExports, resource_id: str, hub: str | None, la: LogAnalyticsWorkspace
) -> str:
    """The destination type, after checking it exists and is in the workspace's region."""
    if _STORAGE.match(resource_id):
        kind = "StorageAccount"
        account = registry.storage_accounts.get(resource_id.lower())
        location = account.location if account else None
        if hub:
            raise _Invalid(
                "InvalidParameter",
                "'metaData.eventHubName' is not applicable when the destination is a storage "
                "account.",
            )
    elif _EVENT_HUBS.match(resource_id):
        kind = "EventHub"
        location = registry.event_hub_namespaces.get(resource_id.lower())
    else:
        raise _Invalid(
            "InvalidDestinationType",
            "The destination must be a storage account or an Event Hubs namespace resource id.",
        )
    if location is None:
        raise _Invalid("DestinationNotFound", f"The destination '{resource_id}' was not found.")
    if location != la.location:
        raise _Invalid(
            "InvalidDestinationRegion",
            f"The destination is in '{location}'; it must be in the workspace's region "
            f"'{la.location}'.",
        )
    return kind


def _put_rule(ctx: RequestContext) -> Response:
    refused = _api_version_error(ctx)
    if refused is not None:
        return refused
    la = _workspace_or_404(ctx)
    if isinstance(la, Response):
        return la
    name = ctx.params["name"]
    if not (4 <= len(name) <= 63 and RULE_NAME.match(name)):
        return _bad(
            "InvalidDataExportName",
            "The data export rule name must be 4-63 characters: a letter, then letters, digits "
            "or hyphens, ending with a letter or digit.",
        )
    registry = exports(ctx.state)
    try:
        tables, destination_id, hub, enable = _parse_rule_body(
            ctx.request.get_json(force=True, silent=True)
        )
        with registry.lock:
            kind = _destination(registry, destination_id, hub, la)
            others = [r for r in registry.rules_of(la) if r.name.lower() != name.lower()]
            if enable and sum(r.enable for r in others) >= MAX_ENABLED_RULES:
                raise _Invalid(
                    "DataExportRulesLimitExceeded",
                    f"A workspace can have at most {MAX_ENABLED_RULES} enabled data export "
                    "rules; create this one disabled or disable another.",
                )
            if kind == "StorageAccount" and any(
                r.destination_id.lower() == destination_id.lower() for r in others
            ):
                raise _Invalid(
                    "DestinationInUse",
                    "The storage account is already the destination of another rule of this "
                    "workspace.",
                )
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            existing = registry.rules.get((la.key, name.lower()))
            rule = ExportRule(
                la,
                existing.name if existing else name,
                existing.data_export_id if existing else str(uuid.uuid4()),
                tables,
                destination_id,
                kind,
                hub,
                enable,
                existing.created if existing else now,
                now,
            )
            registry.rules[(la.key, name.lower())] = rule
    except _Invalid as exc:
        return _bad(exc.code, exc.message)
    return json_response(rule_json(rule), 200 if existing else 201)


# --- ingestion and delivery --------------------------------------------------------------------


def container_name(table: str) -> str:
    """``am-`` and the table name; lower case, as Blob storage container names must be."""
    return f"am-{table.lower()}"


def blob_path(la: LogAnalyticsWorkspace, when: dt.datetime) -> str:
    """Azure's 5-minute folder for a record generated at `when` (see the module docstring)."""
    when = when.astimezone(dt.UTC)
    minute = when.minute - when.minute % 5
    return (
        f"WorkspaceResourceId={la.arm_id.lower()}/y={when.year:04d}/m={when.month:02d}/"
        f"d={when.day:02d}/h={when.hour:02d}/m={minute:02d}/PT05M.json"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.timedelta):
        return str(value)
    return value


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def ingest(
    state: EmulatorState, customer_id: str, table: str, records: list[dict[str, Any]]
) -> list[Delivery]:
    """Append `records` to a workspace table (queryable at once) and export them.

    Each record needs ``TimeGenerated``; unknown columns are refused. Returns the deliveries.
    """
    from emulator.kql import Table
    from emulator.kql.model import DATETIME, Column
    from emulator.kql.schemas import WORKSPACE_COLUMNS

    store = state.telemetry
    scope = store.workspace(customer_id) if store is not None else None
    if scope is None:
        raise KeyError(f"unknown Log Analytics workspace {customer_id}")
    current = scope.tables.get(table)
    columns: list[Column] = (
        list(current.columns) if current is not None else list(WORKSPACE_COLUMNS.get(table, ()))
    )
    if not columns:
        names = sorted({k for r in records for k in r} | {"TimeGenerated"})
        columns = [Column(n, DATETIME if n == "TimeGenerated" else "string") for n in names]
    known = {c.name for c in columns}
    rows: list[list[Any]] = []
    for record in records:
        unknown = set(record) - known
        if unknown:
            raise ValueError(f"unknown columns for {table}: {sorted(unknown)}")
        if "TimeGenerated" not in record:
            raise ValueError("every record needs TimeGenerated")
        rows.append(
            [
                _parse_time(record[c.name])
                if c.type == DATETIME and record.get(c.name) is not None
                else record.get(c.name)
                for c in columns
            ]
        )
    merged = Table(table, columns, [*(current.rows if current else []), *rows])
    tables = {**scope.tables, table: merged}
    store.add_workspace(scope.id, tables, readers=scope.readers)
    la = la_workspace_by_customer_id(state, customer_id)
    if la is None:
        return []
    dicts = [{c.name: _jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return _deliver(state, la, table, dicts)


def _deliver(
    state: EmulatorState, la: LogAnalyticsWorkspace, table: str, records: list[dict[str, Any]]
) -> list[Delivery]:
    registry = exports(state)
    out: list[Delivery] = []
    for rule in registry.rules_of(la):
        if not rule.enable or rule.destination_type != "StorageAccount":
            continue
        if table.lower() not in {t.lower() for t in rule.table_names}:
            continue
        if exportable(table, rule.destination_type) is not None:
            continue
        account = registry.storage_accounts.get(rule.destination_id.lower())
        if account is None or account.connection_string is None:
            continue
        by_blob: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_blob.setdefault(blob_path(la, _parse_time(record["TimeGenerated"])), []).append(
                record
            )
        for blob, batch in sorted(by_blob.items()):
            data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in batch).encode()
            writer = registry.writer or _append_blob
            container = container_name(table)
            writer(account.connection_string, container, blob, data)
            delivery = Delivery(rule.name, account.resource_id, container, blob, len(batch))
            with registry.lock:
                registry.deliveries.append(delivery)
            out.append(delivery)
    return out


def _append_blob(connection_string: str, container: str, blob: str, data: bytes) -> None:
    """Append JSON lines to an append blob, creating the container and blob when missing."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
    with service:
        with contextlib.suppress(ResourceExistsError):
            service.create_container(container)
        client = service.get_blob_client(container, blob)
        if not client.exists():
            with contextlib.suppress(ResourceExistsError):
                client.create_append_blob()
        client.append_block(data)


# --- admin -------------------------------------------------------------------------------------


def _admin_body(ctx: RequestContext) -> dict[str, Any] | None:
    body = ctx.request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


def _admin_storage_account(ctx: RequestContext) -> Response:
    body = _admin_body(ctx)
    try:
        if body is None or not isinstance(body.get("resource_id"), str):
            raise ValueError("resource_id is required")
        account = add_storage_account(
            ctx.state,
            body["resource_id"],
            location=str(body.get("location") or "westeurope"),
            connection_string=body.get("connection_string"),
        )
    except ValueError as exc:
        return error_response("admin", 400, "BadRequest", str(exc))
    return json_response({"resource_id": account.resource_id, "location": account.location}, 201)


def _admin_ingest(ctx: RequestContext) -> Response:
    body = _admin_body(ctx)
    try:
        if body is None:
            raise ValueError("the request body must be a JSON object")
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("records must be a list of objects")
        deliveries = ingest(
            ctx.state, str(body.get("workspace_id")), str(body.get("table")), records
        )
    except KeyError as exc:
        return error_response("admin", 404, "NotFound", str(exc.args[0]))
    except ValueError as exc:
        return error_response("admin", 400, "BadRequest", str(exc))
    return json_response({"ingested": len(records), "exported": [vars(d) for d in deliveries]}, 200)


def _admin_deliveries(ctx: RequestContext) -> Response:
    registry = exports(ctx.state)
    with registry.lock:
        value = [vars(d) for d in registry.deliveries]
    return json_response({"value": value})


_WS = (
    "/subscriptions/<subscription_id>/resourceGroups/<resource_group>"
    "/providers/Microsoft.OperationalInsights/workspaces/<workspace>"
)

ROUTES = [
    Route(
        "arm.la_workspaces",
        "/subscriptions/<subscription_id>/providers/Microsoft.OperationalInsights/workspaces",
        ("GET",),
        _list_workspaces,
        "arm",
        "reads",
    ),
    Route("arm.la_workspace", _WS, ("GET",), _get_workspace, "arm", "reads"),
    Route("arm.data_exports", f"{_WS}/dataExports", ("GET",), _list_rules, "arm", "reads"),
    Route("arm.data_export", f"{_WS}/dataExports/<name>", ("GET",), _get_rule, "arm", "reads"),
    Route("arm.data_export_put", f"{_WS}/dataExports/<name>", ("PUT",), _put_rule, "arm", "writes"),
    Route(
        "arm.data_export_delete",
        f"{_WS}/dataExports/<name>",
        ("DELETE",),
        _delete_rule,
        "arm",
        "writes",
    ),
    Route(
        "admin.storage_accounts",
        "/_admin/data-exports/storage-accounts",
        ("POST",),
        _admin_storage_account,
    ),
    Route(
        "admin.data_export_deliveries",
        "/_admin/data-exports/deliveries",
        ("GET",),
        _admin_deliveries,
    ),
    Route("admin.la_ingest", "/_admin/log-analytics/ingest", ("POST",), _admin_ingest),
]
