"""Export delivery into a real storage emulator (Azurite), read back with azure-storage-blob.

Azure's layout ("Log Analytics workspace data export", Storage account): a container
``am-<Table>`` per table (lower case, as container names must be); blobs in 5-minute folders
``WorkspaceResourceId=/subscriptions/<s>/resourcegroups/<rg>/providers/
microsoft.operationalinsights/workspaces/<ws>/y=<yyyy>/m=<MM>/d=<dd>/h=<HH>/m=<mm>/PT05M.json``;
JSON lines. Only data ingested while an enabled rule exists is exported.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from emulator import data_export, export_delivery
from emulator.azurite import Azurite
from emulator.testing import Sandbox, unique_name
from tests.support.azurite import azurite  # noqa: F401 - the fixture

ARM_SCOPE = "https://management.azure.com/.default"


def _blobs(connection_string: str, container: str) -> dict[str, list[dict[str, Any]]]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(connection_string) as service:
        client = service.get_container_client(container)
        try:
            names = [b.name for b in client.list_blobs()]
        except ResourceNotFoundError:
            return {}
        out = {}
        for name in names:
            text = client.download_blob(name).readall().decode()
            out[name] = [json.loads(line) for line in text.splitlines()]
        return out


def _setup(sandbox: Sandbox, azurite: Azurite) -> tuple[str, Any, Any]:  # noqa: F811
    from azure.mgmt.loganalytics import LogAnalyticsManagementClient

    state = sandbox.emulator.state
    # One Azurite account serves every test: a unique container prefix is not possible (Azure
    # fixes the names), so each test owns its own Log Analytics workspace path instead.
    storage = (
        f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{sandbox.resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{unique_name('sa').replace('-', '')}"
    )
    data_export.add_storage_account(
        state, storage, location="westeurope", connection_string=azurite.connection_string
    )
    client = LogAnalyticsManagementClient(
        sandbox.credential(),
        sandbox.subscription_id,
        base_url=sandbox.emulator.arm_endpoint,
        credential_scopes=[ARM_SCOPE],
        connection_verify=str(sandbox.emulator.ca_path),
    )
    la = data_export.la_workspace_of(sandbox.workspace)
    assert la is not None
    return storage, client, la


def _mine(blobs: dict[str, Any], la: data_export.LogAnalyticsWorkspace) -> dict[str, Any]:
    prefix = f"WorkspaceResourceId={la.arm_id.lower()}/"
    return {name: rows for name, rows in blobs.items() if name.startswith(prefix)}


def test_ingested_rows_of_exported_tables_land_in_azures_blob_layout(
    sandbox: Sandbox,
    azurite: Azurite,  # noqa: F811
) -> None:
    from azure.mgmt.loganalytics.models import DataExport, DataExportProperties, Destination

    storage, client, la = _setup(sandbox, azurite)
    state = sandbox.emulator.state
    workspace_id = sandbox.log_analytics_workspace_id
    assert workspace_id is not None
    before = {"TimeGenerated": "2026-03-04T10:01:00Z", "Message": "before the rule"}
    export_delivery.ingest(state, workspace_id, "AppTraces", [before])
    rule = DataExport(
        properties=DataExportProperties(
            table_names=["AppRequests", "AppTraces", "requests"],
            destination=Destination(resource_id=storage),
        )
    )
    client.data_exports.create_or_update(la.resource_group, la.name, "keep-app", rule)

    requests_rows = [
        {"TimeGenerated": "2026-03-04T10:02:30Z", "Name": "POST /score", "Success": True},
        {"TimeGenerated": "2026-03-04T10:04:59Z", "Name": "POST /score", "Success": False},
        {"TimeGenerated": "2026-03-04T10:05:00Z", "Name": "GET /health", "Success": True},
    ]
    export_delivery.ingest(state, workspace_id, "AppRequests", requests_rows)
    traces = [{"TimeGenerated": "2026-03-04T23:59:59Z", "Message": 'input: {"x": 1}'}]
    answer = requests.post(
        f"{sandbox.emulator.url}/_admin/log-analytics/ingest",
        json={"workspace_id": workspace_id, "table": "AppTraces", "records": traces},
        timeout=10,
        verify=str(sandbox.emulator.ca_path),
    )
    assert answer.status_code == 200
    export_delivery.ingest(
        state, workspace_id, "requests", [{"TimeGenerated": "2026-03-04T10:03:00Z"}]
    )

    base = f"WorkspaceResourceId={la.arm_id.lower()}/y=2026/m=03/d=04"
    exported = _mine(_blobs(azurite.connection_string, "am-apprequests"), la)
    assert sorted(exported) == [f"{base}/h=10/m=00/PT05M.json", f"{base}/h=10/m=05/PT05M.json"]
    first = exported[f"{base}/h=10/m=00/PT05M.json"]
    assert [(r["TimeGenerated"], r["Name"], r["Success"]) for r in first] == [
        ("2026-03-04T10:02:30Z", "POST /score", True),
        ("2026-03-04T10:04:59Z", "POST /score", False),
    ]
    assert [r["Name"] for r in exported[f"{base}/h=10/m=05/PT05M.json"]] == ["GET /health"]
    traced = _mine(_blobs(azurite.connection_string, "am-apptraces"), la)
    assert {name: [r["Message"] for r in rows] for name, rows in traced.items()} == {
        f"{base}/h=23/m=55/PT05M.json": ['input: {"x": 1}']
    }
    # A table the rule names but data export does not support: accepted, nothing exported.
    assert _mine(_blobs(azurite.connection_string, "am-requests"), la) == {}


def test_a_disabled_rule_exports_nothing_and_appends_resume_when_enabled(
    sandbox: Sandbox,
    azurite: Azurite,  # noqa: F811
) -> None:
    from azure.mgmt.loganalytics.models import DataExport, DataExportProperties, Destination

    storage, client, la = _setup(sandbox, azurite)
    state = sandbox.emulator.state
    workspace_id = sandbox.log_analytics_workspace_id
    assert workspace_id is not None

    def put(enable: bool) -> None:
        rule = DataExport(
            properties=DataExportProperties(
                table_names=["AppDependencies"],
                destination=Destination(resource_id=storage),
                enable=enable,
            )
        )
        client.data_exports.create_or_update(la.resource_group, la.name, "deps", rule)

    row = {"TimeGenerated": "2026-05-06T07:08:09Z", "Target": "sql"}
    put(False)
    export_delivery.ingest(state, workspace_id, "AppDependencies", [row])
    assert _mine(_blobs(azurite.connection_string, "am-appdependencies"), la) == {}
    put(True)
    export_delivery.ingest(
        state, workspace_id, "AppDependencies", [row, {**row, "Target": "redis"}]
    )
    export_delivery.ingest(state, workspace_id, "AppDependencies", [{**row, "Target": "blob"}])
    exported = _mine(_blobs(azurite.connection_string, "am-appdependencies"), la)
    assert [[r["Target"] for r in rows] for rows in exported.values()] == [["sql", "redis", "blob"]]
