"""Retention end to end: a tenant export policy, discovery of export rules, the reconciler applying
them through azure-mgmt-loganalytics against the emulator, drift repair, and the exported rows
read back from Azurite with azure-storage-blob.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from emulator import data_export, export_delivery
from emulator.azurite import Azurite
from emulator.testing import EmulatorHandle, Sandbox, unique_name
from service.config import Settings
from service.db.models import Workspace
from service.db.session import Database
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.api.helpers import Fingerprint, assert_problem
from tests.support.api import ApiClient, World
from tests.support.azurite import azurite  # noqa: F401 - the fixture
from tests.support.reconcile import Wired, fast_runtime, operations_of, run_until, settled, wire

ARM_SCOPE = "https://management.azure.com/.default"
APP_TABLES = ["AppRequests", "AppTraces", "AppDependencies", "AppExceptions"]


@pytest.fixture
def rt(settings: Settings, database: Database, emulator: EmulatorHandle) -> Runtime:
    return fast_runtime(settings, database, emulator)


@pytest.fixture
def wired(world: World, rt: Runtime, sandbox: Sandbox) -> Wired:
    w = wire(world, rt, sandbox)
    with rt.uow() as uow:
        ws = uow.session.scalars(select(Workspace).where(Workspace.id == w.workspace_id)).one()
        ws.log_analytics_workspace_id = sandbox.log_analytics_workspace_id
        uow.commit()
    return w


@pytest.fixture
def reconciler(rt: Runtime, wired: Wired) -> Iterator[Reconciler]:
    rec = Reconciler(rt, "retention-worker", only_tenants={wired.tenant_id})
    yield rec
    rec.close()


@pytest.fixture
def operator(world: World, wired: Wired) -> str:
    return world.key("operator", wired.tenant)


def _storage(
    box: Sandbox, connection_string: str | None = None, location: str = "westeurope"
) -> str:
    resource_id = (
        f"/subscriptions/{box.subscription_id}/resourceGroups/{box.resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{unique_name('sa').replace('-', '')[:24]}"
    )
    data_export.add_storage_account(
        box.emulator.state, resource_id, location=location, connection_string=connection_string
    )
    return resource_id


def _rules(box: Sandbox, ws: Any = None) -> dict[str, data_export.ExportRule]:
    la = data_export.la_workspace_of(ws or box.workspace)
    assert la is not None
    return {r.name: r for r in data_export.exports(box.emulator.state).rules_of(la)}


def _sdk(box: Sandbox) -> Any:
    from azure.mgmt.loganalytics import LogAnalyticsManagementClient

    return LogAnalyticsManagementClient(
        box.credential(),
        box.subscription_id,
        base_url=box.emulator.arm_endpoint,
        credential_scopes=[ARM_SCOPE],
        connection_verify=str(box.emulator.ca_path),
    )


def _hand_made(box: Sandbox, name: str, destination: str, *, enable: bool = True) -> None:
    """Someone's change through ARM, outside this service (portal, script)."""
    from azure.mgmt.loganalytics.models import DataExport, DataExportProperties, Destination

    la = data_export.la_workspace_of(box.workspace)
    assert la is not None
    rule = DataExport(
        properties=DataExportProperties(
            table_names=["AppTraces"] if name != "amlcp-retention" else APP_TABLES,
            destination=Destination(resource_id=destination),
            enable=enable,
        )
    )
    _sdk(box).data_exports.create_or_update(la.resource_group, la.name, name, rule)


def _retention(api: ApiClient, w: Wired, key: str) -> list[dict[str, Any]]:
    r = api.get(f"/v1/tenants/{w.tenant}/compliance", key)
    assert r.status_code == 200, r.get_data(as_text=True)
    return list(r.json["retention"])


def _sync(api: ApiClient, w: Wired, key: str, workspace: str | None = None) -> dict[str, Any]:
    r = api.post(
        f"/v1/tenants/{w.tenant}/workspaces/{workspace or w.workspace}/retention/sync", key
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    return dict(r.json)


def test_a_tenant_export_policy_is_applied_kept_and_its_rows_read_back_from_azurite(
    api: ApiClient,
    world: World,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
    azurite: Azurite,  # noqa: F811
) -> None:
    # A second workspace of the tenant, in the same subscription and region.
    state = sandbox.emulator.state
    second_aml = state.add_workspace(
        sandbox.subscription_id, sandbox.resource_group, unique_name("ws")
    )
    second = world.workspace(
        wired.tenant,
        subscription_id=sandbox.subscription_id,
        resource_group=sandbox.resource_group,
        workspace_name=second_aml.name,
        log_analytics_workspace_id=second_aml.log_analytics_workspace_id,
    )
    storage = _storage(sandbox, azurite.connection_string)
    # A rule nobody created through the service: observed, reported, never deleted.
    _hand_made(sandbox, "someone-elses", _storage(sandbox))

    r = api.put(
        f"/v1/tenants/{wired.tenant}/retention-policy",
        operator,
        json={"destination_resource_id": storage},
    )
    assert r.status_code == 202, r.get_data(as_text=True)
    assert r.json["policy"]["unsupported_tables"] == {}
    for workspace in (wired.workspace, second):
        assert _sync(api, wired, operator, workspace)["compliance"] == "pending"
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))

    for aml in (sandbox.workspace, second_aml):
        ours = _rules(sandbox, aml)["amlcp-retention"]
        assert (ours.destination_id, ours.table_names, ours.enable) == (storage, APP_TABLES, True)
    assert "someone-elses" in _rules(sandbox)
    views = {v["workspace"]: v for v in _retention(api, wired, operator)}
    assert {w: v["compliance"] for w, v in views.items()} == {
        wired.workspace: "compliant",
        second: "compliant",
    }
    assert views[wired.workspace]["unmanaged_rules"] == ["someone-elses"]
    assert views[wired.workspace]["desired"]["destination_resource_id"] == {
        "value": storage,
        "source": "tenant",
    }
    ops = operations_of(rt, wired.tenant_id)
    assert {(op.kind, op.state) for op in ops} == {("export_rule", "succeeded")}

    # Someone disables the rule by hand: discovery sees the drift and enforce mode repairs it.
    _hand_made(sandbox, "amlcp-retention", storage, enable=False)
    assert _sync(api, wired, operator)["compliance"] == "pending"
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert _rules(sandbox)["amlcp-retention"].enable is True
    assert {v["compliance"] for v in _retention(api, wired, operator)} == {"compliant"}

    # The retention the policy promises: rows ingested now are in the storage account.
    workspace_id = sandbox.log_analytics_workspace_id
    assert workspace_id is not None
    rows = [
        {"TimeGenerated": "2026-07-08T09:10:11Z", "Name": "POST /score", "ResultCode": "200"},
        {"TimeGenerated": "2026-07-08T09:12:13Z", "Name": "POST /score", "ResultCode": "500"},
    ]
    export_delivery.ingest(state, workspace_id, "AppRequests", rows)
    la = data_export.la_workspace_of(sandbox.workspace)
    assert la is not None
    blob = f"WorkspaceResourceId={la.arm_id.lower()}/y=2026/m=07/d=08/h=09/m=10/PT05M.json"
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        text = service.get_blob_client("am-apprequests", blob).download_blob().readall().decode()
    exported = [json.loads(line) for line in text.splitlines()]
    assert [(r["Name"], r["ResultCode"]) for r in exported] == [
        ("POST /score", "200"),
        ("POST /score", "500"),
    ]


def test_audit_mode_reports_drift_and_writes_nothing_until_an_operator_applies(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    storage = _storage(sandbox)
    r = api.put(
        f"/v1/tenants/{wired.tenant}/workspaces/{wired.workspace}/retention-policy",
        operator,
        json={"destination_resource_id": storage, "mode": "audit", "tables": ["AppTraces"]},
    )
    assert r.status_code == 202
    view = _sync(api, wired, operator)
    assert (view["compliance"], view["reason"]) == (
        "drifted",
        "export rule 'amlcp-retention' missing",
    )
    assert operations_of(rt, wired.tenant_id) == []
    assert _rules(sandbox) == {}

    r = api.post(f"/v1/tenants/{wired.tenant}/retention/apply", operator)
    assert r.status_code == 202
    assert [op["kind"] for op in r.json["operations"]] == ["export_rule"]
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert _rules(sandbox)["amlcp-retention"].table_names == ["AppTraces"]
    assert _retention(api, wired, operator)[0]["compliance"] == "compliant"


def test_tables_azure_does_not_export_are_flagged_unsupported(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    storage = _storage(sandbox)
    r = api.put(
        f"/v1/tenants/{wired.tenant}/retention-policy",
        operator,
        json={"destination_resource_id": storage, "tables": ["AppTraces", "requests"]},
    )
    assert r.status_code == 202
    assert list(r.json["policy"]["unsupported_tables"]) == ["requests"]
    _sync(api, wired, operator)
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    # Azure accepts the rule as asked; the report says which table exports nothing, and why.
    assert _rules(sandbox)["amlcp-retention"].table_names == ["AppTraces", "requests"]
    (view,) = _retention(api, wired, operator)
    assert view["compliance"] == "unsupported"
    assert "requests" in view["reason"]
    assert "classic" in view["unsupported_tables"]["requests"]


def test_an_eleventh_enabled_rule_fails_the_operation_without_an_arm_write(
    api: ApiClient,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    for index in range(10):
        _hand_made(sandbox, f"team-rule-{index}", _storage(sandbox))
    api.put(
        f"/v1/tenants/{wired.tenant}/retention-policy",
        operator,
        json={"destination_resource_id": _storage(sandbox)},
    )
    mark = emulator.bookmark()
    _sync(api, wired, operator)
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    (op,) = operations_of(rt, wired.tenant_id)
    assert op.state == "failed"
    assert "at most 10" in (op.last_error or "")
    writes = [r for r in emulator.requests(since=mark) if r.method in ("PUT", "DELETE")]
    assert writes == []
    assert len(_rules(sandbox)) == 10
    assert _retention(api, wired, operator)[0]["compliance"] == "failed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"destination_resource_id": "/subscriptions/x/nope"}, "body.destination_resource_id"),
        ({"tables": []}, "body.tables"),
        ({"tables": ["AppTraces", "AppTraces"]}, "body.tables"),
        ({"tables": ["App Traces"]}, "body.tables.0"),
        ({"colour": "red"}, "body.colour"),
    ],
    ids=["not-a-destination", "no-tables", "twice", "not-a-name", "unknown-field"],
)
def test_bad_retention_policies_are_refused_before_any_call_and_change_nothing(
    api: ApiClient,
    database: Database,
    wired: Wired,
    operator: str,
    body: dict[str, Any],
    field: str,
) -> None:
    before = Fingerprint.of(database)
    r = api.put(f"/v1/tenants/{wired.tenant}/retention-policy", operator, json=body)
    assert_problem(r, 400)
    assert field in [e["field"] for e in r.json["errors"]]
    assert Fingerprint.of(database) == before


def test_if_match_guards_retention_policy_changes(
    api: ApiClient, sandbox: Sandbox, wired: Wired, operator: str
) -> None:
    path = f"/v1/tenants/{wired.tenant}/retention-policy"
    created = api.put(path, operator, json={"destination_resource_id": _storage(sandbox)})
    etag = created.headers["ETag"]
    stale = api.put(path, operator, json={"mode": "audit"}, headers={"If-Match": '"999"'})
    assert_problem(stale, 412)
    ok = api.put(path, operator, json={"mode": "audit"}, headers={"If-Match": etag})
    assert ok.status_code == 202
    assert ok.json["policy"]["destination_resource_id"] is None  # a PUT replaces the scope
    gone = api.delete(path, operator, headers={"If-Match": etag})
    assert_problem(gone, 412)


def test_a_throttled_rule_write_is_retried_after_retry_after_and_then_succeeds(
    api: ApiClient,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    storage = _storage(sandbox)
    api.put(
        f"/v1/tenants/{wired.tenant}/retention-policy",
        operator,
        json={"destination_resource_id": storage},
    )
    fault = emulator.add_fault(
        "throttle",
        route="arm.data_export_put",
        count=1,
        retry_after_s=1,
        subscription_id=sandbox.subscription_id,
    )
    try:
        _sync(api, wired, operator)
        run_until(reconciler, lambda: settled(rt, wired.tenant_id), timeout_s=30)
    finally:
        emulator.clear_faults(fault.id)
    (op,) = operations_of(rt, wired.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 2)
    assert _rules(sandbox)["amlcp-retention"].enable is True
    puts = emulator.requests("arm.data_export_put")
    statuses = [r.status for r in puts if r.subscription_id == sandbox.subscription_id.lower()]
    assert statuses == [429, 201]


def test_azures_own_refusal_fails_the_operation_with_its_message_and_spends_the_write_budget(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    from service.db.models import WriteBudget

    # Only Azure knows the destination's region: the PUT is made, and refused.
    far = _storage(sandbox, location="eastus")
    api.put(
        f"/v1/tenants/{wired.tenant}/retention-policy",
        operator,
        json={"destination_resource_id": far},
    )
    _sync(api, wired, operator)
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    (op,) = operations_of(rt, wired.tenant_id)
    assert op.state == "failed"
    assert "Azure answered 400" in (op.last_error or "")
    assert "must be in the workspace's region 'westeurope'" in (op.last_error or "")
    assert _rules(sandbox) == {}
    with rt.uow() as uow:
        budget = uow.session.get(WriteBudget, sandbox.subscription_id.lower())
    assert budget is not None, "the rule write reserved a slot of the subscription's budget"
    (view,) = _retention(api, wired, operator)
    assert (view["compliance"], view["reason"]) == ("failed", "the last operation failed")
