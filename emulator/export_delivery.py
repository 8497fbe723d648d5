"""Export delivery: rows ingested into a Log Analytics workspace go to its enabled export rules.

Azure's layout ("Log Analytics workspace data export", Storage account): container ``am-<Table>``
(lower case, as Blob storage container names must be), append blobs in 5-minute folders
``WorkspaceResourceId=/subscriptions/<s>/resourcegroups/<rg>/providers/
microsoft.operationalinsights/workspaces/<ws>/y=YYYY/m=MM/d=DD/h=HH/m=MM/PT05M.json`` chosen by
``TimeGenerated``, JSON lines. Only rows ingested while an enabled rule exists are exported, and
only for tables data export supports. Blobs go through azure-storage-blob to the storage
account's registered connection string (Azurite in tests and the demo).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

from werkzeug.wrappers import Response

from emulator.data_export import (
    Delivery,
    LogAnalyticsWorkspace,
    add_storage_account,
    exportable,
    exports,
    la_workspace_by_customer_id,
)
from emulator.server import RequestContext, Route, error_response, json_response
from emulator.state import EmulatorState

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


ROUTES = [
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
