"""The ARM routes of Log Analytics workspaces and their data export rules (DataExports.json).

The rules they enforce are described in `emulator.data_export`, which holds the model.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from email.utils import format_datetime
from typing import Any

from werkzeug.wrappers import Response

from emulator.data_export import (
    EVENT_HUBS_NAMESPACE_ID,
    LA_WORKSPACES_TYPE,
    STORAGE_ACCOUNT_ID,
    DataExports,
    ExportRule,
    LogAnalyticsWorkspace,
    exports,
    find_la_workspace,
    la_workspaces,
)
from emulator.server import RequestContext, Route, error_response, json_response

SUPPORTED_API_VERSIONS = frozenset(
    {"2020-08-01", "2022-10-01", "2023-09-01", "2025-02-01", "2025-07-01"}
)
RULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]+[A-Za-z0-9]$")
MAX_ENABLED_RULES = 10
_RULE_TYPE = "Microsoft.OperationalInsights/workspaces/export"  # as the spec examples answer


# --- JSON shapes -------------------------------------------------------------------------------


def _http_date(when: dt.datetime) -> str:
    return format_datetime(when, usegmt=True)


def workspace_json(la: LogAnalyticsWorkspace) -> dict[str, Any]:
    """ARM's Microsoft.OperationalInsights/workspaces resource (the fields clients read)."""
    return {
        "id": la.arm_id,
        "name": la.name,
        "type": LA_WORKSPACES_TYPE,
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
    la = find_la_workspace(ctx.state, p["subscription_id"], p["resource_group"], p["workspace"])
    if la is None:
        message = (
            f"The Resource '{LA_WORKSPACES_TYPE}/{p['workspace']}' under resource group "
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
        for la in sorted(la_workspaces(ctx.state), key=lambda la: la.key)
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
    if STORAGE_ACCOUNT_ID.match(resource_id):
        kind = "StorageAccount"
        account = registry.storage_accounts.get(resource_id.lower())
        location = account.location if account else None
        if hub:
            raise _Invalid(
                "InvalidParameter",
                "'metaData.eventHubName' is not applicable when the destination is a storage "
                "account.",
            )
    elif EVENT_HUBS_NAMESPACE_ID.match(resource_id):
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
]
