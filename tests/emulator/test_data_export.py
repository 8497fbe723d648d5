"""Data export rules: the real azure-mgmt-loganalytics client, the spec and Azure's rules.

Responses validate against DataExports.json (2025-07-01, the version the pinned SDK sends; copy
and provenance under tests/emulator/specs/), and the spec's example request is accepted with the
example response's shape.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from emulator import data_export, export_delivery
from emulator.testing import EmulatorHandle, Sandbox, unique_name

SPECS = Path(__file__).parent / "specs" / "operationalinsights-2025-07-01"
ARM_SCOPE = "https://management.azure.com/.default"
API = "2025-07-01"


@cache
def _spec() -> dict[str, Any]:
    return json.loads((SPECS / "DataExports.json").read_text())


def _example(name: str) -> dict[str, Any]:
    return json.loads((SPECS / "examples" / name).read_text())


def _schema(definition: str) -> dict[str, Any]:
    definitions = json.loads(json.dumps(_spec()["definitions"]))
    # The common-types ProxyResource: id, name, type (read-only strings).
    definitions["DataExport"]["allOf"] = [
        {"properties": {k: {"type": "string"} for k in ("id", "name", "type")}}
    ]
    return {"$ref": f"#/definitions/{definition}", "definitions": definitions}


def _assert_matches_spec(document: Any, definition: str) -> None:
    jsonschema.Draft4Validator(_schema(definition)).validate(document)


def _key_paths(document: Any, prefix: str = "") -> set[str]:
    if not isinstance(document, dict):
        return set()
    out = set()
    for key, value in document.items():
        out.add(prefix + key)
        out |= _key_paths(value, f"{prefix}{key}.")
    return out


def _client(box: Sandbox) -> Any:
    from azure.mgmt.loganalytics import LogAnalyticsManagementClient

    return LogAnalyticsManagementClient(
        box.credential(),
        box.subscription_id,
        base_url=box.emulator.arm_endpoint,
        credential_scopes=[ARM_SCOPE],
        connection_verify=str(box.emulator.ca_path),
        retry_total=0,
    )


def _la(box: Sandbox) -> data_export.LogAnalyticsWorkspace:
    la = data_export.la_workspace_of(box.workspace)
    assert la is not None
    return la


def _storage(box: Sandbox, location: str = "westeurope", name: str | None = None) -> str:
    resource_id = (
        f"/subscriptions/{box.subscription_id}/resourceGroups/{box.resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{name or unique_name('sa').replace('-', '')}"
    )
    data_export.add_storage_account(box.emulator.state, resource_id, location=location)
    return resource_id


def _rule_url(box: Sandbox, name: str = "") -> str:
    suffix = f"/{name}" if name else ""
    return f"{box.emulator.url}{_la(box).arm_id}/dataExports{suffix}?api-version={API}"


def _headers(box: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {box.credential().get_token(ARM_SCOPE).token}"}


def _body(destination: str, tables: list[str], **props: Any) -> dict[str, Any]:
    return {
        "properties": {"destination": {"resourceId": destination}, "tableNames": tables, **props}
    }


def test_the_sdk_creates_reads_lists_replaces_and_deletes_a_rule(sandbox: Sandbox) -> None:
    from azure.mgmt.loganalytics.models import DataExport, DataExportProperties, Destination

    client = _client(sandbox)
    la = _la(sandbox)
    storage = _storage(sandbox)
    rule = DataExport(
        properties=DataExportProperties(
            table_names=["AppRequests", "AppTraces"], destination=Destination(resource_id=storage)
        )
    )
    created = client.data_exports.create_or_update(la.resource_group, la.name, "keep-app", rule)
    assert created.properties.destination.type == "StorageAccount"
    assert created.properties.enable is True
    assert created.name == "keep-app"

    rule.properties.enable = False
    replaced = client.data_exports.create_or_update(la.resource_group, la.name, "keep-app", rule)
    assert replaced.properties.enable is False
    assert replaced.properties.data_export_id == created.properties.data_export_id

    got = client.data_exports.get(la.resource_group, la.name, "keep-app")
    assert got.properties.table_names == ["AppRequests", "AppTraces"]
    listed = list(client.data_exports.list_by_workspace(la.resource_group, la.name))
    assert [r.name for r in listed] == ["keep-app"]

    client.data_exports.delete(la.resource_group, la.name, "keep-app")
    assert list(client.data_exports.list_by_workspace(la.resource_group, la.name)) == []


def test_the_sdk_finds_the_log_analytics_workspace_by_its_customer_id(sandbox: Sandbox) -> None:
    workspaces = list(_client(sandbox).workspaces.list())
    assert [(w.customer_id, w.location) for w in workspaces] == [
        (sandbox.log_analytics_workspace_id, "westeurope")
    ]
    assert workspaces[0].id == _la(sandbox).arm_id


def test_put_answers_201_then_200_and_every_answer_matches_the_spec(sandbox: Sandbox) -> None:
    storage = _storage(sandbox)
    first = requests.put(
        _rule_url(sandbox, "spec-check"),
        json=_body(storage, ["AppRequests"]),
        headers=_headers(sandbox),
        timeout=10,
    )
    second = requests.put(
        _rule_url(sandbox, "spec-check"),
        json=_body(storage, ["AppRequests"], enable=False),
        headers=_headers(sandbox),
        timeout=10,
    )
    assert (first.status_code, second.status_code) == (201, 200)
    for response in (first, second):
        _assert_matches_spec(response.json(), "DataExport")
    listed = requests.get(_rule_url(sandbox), headers=_headers(sandbox), timeout=10)
    _assert_matches_spec(listed.json(), "DataExportListResult")
    got = requests.get(_rule_url(sandbox, "spec-check"), headers=_headers(sandbox), timeout=10)
    _assert_matches_spec(got.json(), "DataExport")
    assert got.json()["properties"]["enable"] is False


def test_the_spec_example_request_gets_the_example_response_shape(sandbox: Sandbox) -> None:
    example = _example("DataExportCreateOrUpdate.json")
    body = example["parameters"]["parameters"]
    # The example's Event Hubs namespace, registered in this workspace's subscription and region.
    namespace = (
        f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{sandbox.resource_group}"
        "/providers/Microsoft.EventHub/namespaces/test"
    )
    data_export.add_event_hub_namespace(sandbox.emulator.state, namespace, location="westeurope")
    body["properties"]["destination"]["resourceId"] = namespace
    response = requests.put(
        _rule_url(sandbox, example["parameters"]["dataExportName"]),
        json=body,
        headers=_headers(sandbox),
        timeout=10,
    )
    assert response.status_code == 201
    expected = example["responses"]["201"]["body"]
    assert _key_paths(response.json()) == _key_paths(expected)
    assert response.json()["type"] == expected["type"]
    assert response.json()["properties"]["destination"]["type"] == "EventHub"
    assert response.json()["properties"]["enable"] is True
    listed = requests.get(_rule_url(sandbox), headers=_headers(sandbox), timeout=10).json()
    example_list = _example("DataExportListByWorkspace.json")["responses"]["200"]["body"]
    assert _key_paths(listed["value"][0]) == _key_paths(example_list["value"][0])


@pytest.mark.parametrize(
    "name",
    ["abc", "1abc", "abc-", "ab_cd", "a" * 64],
    ids=["too-short", "starts-with-digit", "ends-with-hyphen", "underscore", "too-long"],
)
def test_rule_names_outside_azures_pattern_are_refused(sandbox: Sandbox, name: str) -> None:
    response = requests.put(
        _rule_url(sandbox, name),
        json=_body(_storage(sandbox), ["AppRequests"]),
        headers=_headers(sandbox),
        timeout=10,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (
        400,
        "InvalidDataExportName",
    )


def test_names_at_the_edges_of_the_pattern_are_accepted(sandbox: Sandbox) -> None:
    for name in ("abcd", "a" + "-" * 61 + "z"):
        response = requests.put(
            _rule_url(sandbox, name),
            json=_body(_storage(sandbox), ["AppRequests"]),
            headers=_headers(sandbox),
            timeout=10,
        )
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "InvalidRequestContent"),
        ({"properties": {"destination": {"resourceId": "x"}}}, "InvalidParameter"),
        ({"properties": {"tableNames": ["AppRequests"]}}, "InvalidParameter"),
        (
            {"properties": {"tableNames": [], "destination": {"resourceId": "x"}}},
            "InvalidParameter",
        ),
        (
            {"properties": {"tableNames": ["AppTraces"], "destination": {"resourceId": "/x/y"}}},
            "InvalidDestinationType",
        ),
    ],
    ids=["no-properties", "no-tables", "no-destination", "empty-tables", "not-a-destination"],
)
def test_bodies_the_spec_or_azure_refuse_are_400(
    sandbox: Sandbox, body: dict[str, Any], code: str
) -> None:
    response = requests.put(
        _rule_url(sandbox, "bad-body"), json=body, headers=_headers(sandbox), timeout=10
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert requests.get(_rule_url(sandbox), headers=_headers(sandbox), timeout=10).json() == {
        "value": []
    }


def test_a_destination_in_another_region_or_unknown_is_refused(sandbox: Sandbox) -> None:
    far = _storage(sandbox, location="eastus")
    missing = far.rsplit("/", 1)[0] + "/nosuchaccount"
    codes = []
    for destination in (far, missing):
        response = requests.put(
            _rule_url(sandbox, "far-away"),
            json=_body(destination, ["AppRequests"]),
            headers=_headers(sandbox),
            timeout=10,
        )
        codes.append((response.status_code, response.json()["error"]["code"]))
    assert codes == [(400, "InvalidDestinationRegion"), (400, "DestinationNotFound")]


def test_destination_type_is_read_only_and_derived_from_the_resource_id(sandbox: Sandbox) -> None:
    body = _body(_storage(sandbox), ["AppRequests"])
    body["properties"]["destination"]["type"] = "EventHub"
    response = requests.put(
        _rule_url(sandbox, "typed"), json=body, headers=_headers(sandbox), timeout=10
    )
    assert response.status_code == 201
    assert response.json()["properties"]["destination"]["type"] == "StorageAccount"


def test_at_most_ten_enabled_rules_but_more_disabled_ones(sandbox: Sandbox) -> None:
    headers = _headers(sandbox)
    for index in range(10):
        body = _body(_storage(sandbox), ["AppRequests"])
        response = requests.put(
            _rule_url(sandbox, f"rule-{index}"), json=body, headers=headers, timeout=10
        )
        assert response.status_code == 201
    eleventh = _body(_storage(sandbox), ["AppRequests"])
    refused = requests.put(
        _rule_url(sandbox, "rule-10"), json=eleventh, headers=headers, timeout=10
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        400,
        "DataExportRulesLimitExceeded",
    )
    eleventh["properties"]["enable"] = False
    disabled = requests.put(
        _rule_url(sandbox, "rule-10"), json=eleventh, headers=headers, timeout=10
    )
    assert disabled.status_code == 201
    # Re-putting one of the ten enabled rules is not an eleventh.
    again = requests.put(
        _rule_url(sandbox, "rule-0"),
        json=_body(_storage(sandbox), ["AppTraces"]),
        headers=headers,
        timeout=10,
    )
    assert again.status_code == 200


def test_a_storage_account_serves_one_rule_of_a_workspace(sandbox: Sandbox) -> None:
    storage = _storage(sandbox)
    headers = _headers(sandbox)
    first = requests.put(
        _rule_url(sandbox, "first"),
        json=_body(storage, ["AppRequests"]),
        headers=headers,
        timeout=10,
    )
    second = requests.put(
        _rule_url(sandbox, "second"),
        json=_body(storage, ["AppTraces"]),
        headers=headers,
        timeout=10,
    )
    assert first.status_code == 201
    assert (second.status_code, second.json()["error"]["code"]) == (400, "DestinationInUse")


def test_a_table_that_cannot_be_exported_is_accepted_and_exports_nothing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sandbox.emulator.state
    written: list[tuple[str, str]] = []
    registry = data_export.exports(state)
    # The session emulator is shared: the recording writer is undone after this test.
    monkeypatch.setattr(
        registry, "writer", lambda _conn, container, blob, _data: written.append((container, blob))
    )
    storage = (
        f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{sandbox.resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{unique_name('sa').replace('-', '')}"
    )
    data_export.add_storage_account(
        state, storage, location="westeurope", connection_string="UseDevelopmentStorage=true"
    )
    response = requests.put(
        _rule_url(sandbox, "odd-tables"),
        json=_body(storage, ["requests", "AppTraces"]),
        headers=_headers(sandbox),
        timeout=10,
    )
    assert response.status_code == 201
    assert response.json()["properties"]["tableNames"] == ["requests", "AppTraces"]
    workspace_id = sandbox.log_analytics_workspace_id
    assert workspace_id is not None
    row = {"TimeGenerated": "2026-01-02T03:07:00Z"}
    export_delivery.ingest(state, workspace_id, "requests", [row])
    export_delivery.ingest(state, workspace_id, "AppTraces", [{**row, "Message": "hello"}])
    assert [container for container, _ in written] == ["am-apptraces"]
    assert data_export.exportable("requests") is not None
    assert data_export.exportable("AppTraces") is None


def test_get_and_delete_of_a_missing_rule_are_404(sandbox: Sandbox) -> None:
    headers = _headers(sandbox)
    got = requests.get(_rule_url(sandbox, "nothing"), headers=headers, timeout=10)
    deleted = requests.delete(_rule_url(sandbox, "nothing"), headers=headers, timeout=10)
    assert (got.status_code, deleted.status_code) == (404, 404)
    missing_ws = _rule_url(sandbox).replace(_la(sandbox).name, "no-such-law")
    assert requests.get(missing_ws, headers=headers, timeout=10).status_code == 404


def test_api_version_is_required_and_checked(sandbox: Sandbox) -> None:
    headers = _headers(sandbox)
    base = _rule_url(sandbox).split("?")[0]
    missing = requests.get(base, headers=headers, timeout=10)
    unknown = requests.get(f"{base}?api-version=1999-01-01", headers=headers, timeout=10)
    assert (missing.status_code, missing.json()["error"]["code"]) == (
        400,
        "MissingApiVersionParameter",
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (
        400,
        "InvalidApiVersionParameter",
    )


def test_rules_of_another_tenant_are_out_of_reach(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    other = emulator.sandbox()
    response = requests.get(_rule_url(sandbox), headers=_headers(other), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"


def test_writes_spend_the_subscription_write_bucket_and_faults_apply(sandbox: Sandbox) -> None:
    headers = _headers(sandbox)
    body = _body(_storage(sandbox), ["AppRequests"])
    first = requests.put(_rule_url(sandbox, "budget"), json=body, headers=headers, timeout=10)
    second = requests.put(_rule_url(sandbox, "budget"), json=body, headers=headers, timeout=10)
    remaining = [
        int(r.headers["x-ms-ratelimit-remaining-subscription-writes"]) for r in (first, second)
    ]
    assert remaining[1] == remaining[0] - 1
    fault = sandbox.emulator.add_fault(
        "status", route="arm.data_export_put", status=503, subscription_id=sandbox.subscription_id
    )
    try:
        failed = requests.put(_rule_url(sandbox, "budget"), json=body, headers=headers, timeout=10)
        assert failed.status_code == 503
    finally:
        sandbox.emulator.clear_faults(fault.id)
    throttle = sandbox.emulator.add_fault(
        "throttle",
        route="arm.data_exports",
        retry_after_s=7,
        subscription_id=sandbox.subscription_id,
    )
    try:
        throttled = requests.get(_rule_url(sandbox), headers=headers, timeout=10)
        assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    finally:
        sandbox.emulator.clear_faults(throttle.id)
