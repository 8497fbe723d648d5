"""Online endpoint and deployment routes against the official 2023-04-01-preview mfe.json (the
definitions copied to tests/fixtures/azure/, with their source commit) and Azure's recording of
azure-ai-ml creating an online deployment (Azure/azure-sdk-for-python, sdk/ml/azure-ai-ml/tests/
recordings/online_services/e2etests/test_online_deployment.pyTestOnlineDeploymenttest_online_
deployment.json at 0edb01d76d2de07fd21e10b8b39e87d017228931): the operation URL's shape
(`.../locations/{region}/mfeOperationsStatus/od:{workspace id}:{guid}`), its status document
(`id, name, startTime, percentComplete, status`, `Updating` while it runs) and headers.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from emulator.testing import EmulatorHandle, Sandbox

SPEC = Path(__file__).parent.parent / "fixtures" / "azure" / "mfe-2023-04-01-preview-online.json"
VERSION = "2023-04-01-preview"
# Declared by definitions not copied (EndpointDeploymentPropertiesBase; KubernetesOnlineDeployment
# adds containerResourceRequirements), as azure-ai-ml's generated models for this version list.
BASE_DEPLOYMENT_PROPERTIES = {
    "codeConfiguration",
    "description",
    "environmentId",
    "environmentVariables",
    "properties",
}
KUBERNETES_PROPERTIES = {"containerResourceRequirements"}
TRACKED_RESOURCE = {"id", "name", "type", "location", "tags", "systemData"}
# The recording's operation URL, with its ids as patterns.
OPERATION_URL = re.compile(
    r"/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[a-z0-9]+"
    r"/mfeOperationsStatus/od:[0-9a-f-]{36}:[0-9a-f-]{36}\?api-version=" + VERSION + "$"
)


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC.read_text())
    definitions = spec["definitions"]
    for ref in spec["not_copied"]:
        definitions[ref.rsplit("/", 1)[1]] = {}
    return spec


def _validate(document: Any, definition: str) -> None:
    """Types, required keys and enums; additionalProperties is checked by _declared (allOf)."""
    text = json.dumps(_spec()["definitions"])
    text = re.sub(r'"\$ref": "[^"#]*#/definitions/', '"$ref": "#/definitions/', text)
    definitions = _nullable(
        json.loads(text.replace('"additionalProperties": false', '"x-closed": true'))
    )
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    jsonschema.Draft4Validator(schema).validate(document)


def _nullable(node: Any) -> Any:
    """Swagger's ``x-nullable: true`` as JSON Schema: the value may also be null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("x-nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _declared(definition: str) -> set[str]:
    return set(_spec()["definitions"][definition]["properties"])


def _assert_deployment_matches_spec(doc: dict[str, Any]) -> None:
    _validate(doc, "OnlineDeploymentTrackedResource")
    assert set(doc) <= _declared("OnlineDeploymentTrackedResource") | TRACKED_RESOURCE
    allowed = _declared("OnlineDeployment") | BASE_DEPLOYMENT_PROPERTIES
    if doc["properties"]["endpointComputeType"] == "Kubernetes":
        allowed |= KUBERNETES_PROPERTIES
    assert set(doc["properties"]) <= allowed, set(doc["properties"]) - allowed
    collector = doc["properties"].get("dataCollector")
    if collector is not None:
        _validate(collector, "DataCollector")
        for collection in collector["collections"].values():
            assert set(collection) <= _declared("Collection")


@pytest.fixture
def arm(emulator: EmulatorHandle, sandbox: Sandbox) -> tuple[str, dict[str, str]]:
    ws = sandbox.workspace
    token = sandbox.credential().get_token("https://management.azure.com/.default").token
    return f"{emulator.url}{ws.arm_id}", {"Authorization": f"Bearer {token}"}


def _get(url: str, headers: dict[str, str], version: str = VERSION) -> requests.Response:
    return requests.get(url, params={"api-version": version}, headers=headers, timeout=5)


@pytest.mark.parametrize("compute", ["Managed", "Kubernetes"])
def test_deployments_and_their_pages_match_the_spec(
    arm: tuple[str, dict[str, str]], sandbox: Sandbox, emulator: EmulatorHandle, compute: str
) -> None:
    base, headers = arm
    sandbox.add_online_endpoint("spec-ep", compute_type=compute)
    sandbox.add_online_deployment("spec-ep", "blue", app_insights_enabled=True)
    sandbox.add_online_deployment(
        "spec-ep",
        "green",
        data_collector={"collections": {"request": {"dataCollectionMode": "Enabled"}}},
    )
    emulator.state.online.page_size = 1
    try:
        first = _get(f"{base}/onlineEndpoints/spec-ep/deployments", headers).json()
        second = requests.get(first["nextLink"], headers=headers, timeout=5).json()
        endpoints = _get(f"{base}/onlineEndpoints", headers, "2022-02-01-preview").json()
    finally:
        emulator.state.online.page_size = 100
    _validate(first, "OnlineDeploymentTrackedResourceArmPaginatedResult")
    assert "nextLink" not in second
    for doc in first["value"] + second["value"]:
        _assert_deployment_matches_spec(doc)
    _validate(endpoints, "OnlineEndpointTrackedResourceArmPaginatedResult")
    for endpoint in endpoints["value"]:
        assert set(endpoint["properties"]) <= _declared("OnlineEndpoint") | {
            "authMode",
            "description",
            "properties",
            "scoringUri",
            "swaggerUri",
        }


def test_a_put_starts_an_operation_shaped_like_azures(
    arm: tuple[str, dict[str, str]], sandbox: Sandbox, emulator: EmulatorHandle
) -> None:
    base, headers = arm
    emulator.state.online.operation_duration_s = 3
    sandbox.add_online_endpoint("op-ep")
    sandbox.add_online_deployment("op-ep", "blue")
    url = f"{base}/onlineEndpoints/op-ep/deployments/blue"
    try:
        body = _get(url, headers).json()
        body["properties"]["appInsightsEnabled"] = True
        put = requests.put(url, params={"api-version": VERSION}, json=body, headers=headers)
        assert put.status_code == 200
        _assert_deployment_matches_spec(put.json())
        assert put.json()["properties"]["provisioningState"] == "Updating"
        assert put.headers["x-ms-async-operation-timeout"].startswith("PT")
        operation = put.headers["Azure-AsyncOperation"]
        assert OPERATION_URL.search(operation), operation
        assert sandbox.workspace.workspace_id in operation
        status = requests.get(operation, headers=headers, timeout=5).json()
        assert set(status) == {"id", "name", "startTime", "percentComplete", "status"}
        assert status["status"] == "Updating"
        assert status["id"].endswith(status["name"])
        # While the operation runs, the deployment shows it and keeps its old properties.
        now = _get(url, headers).json()["properties"]
        assert (now["provisioningState"], now["appInsightsEnabled"]) == ("Updating", False)
        # A second PUT meanwhile is refused.
        again = requests.put(url, params={"api-version": VERSION}, json=body, headers=headers)
        assert again.status_code == 409
    finally:
        emulator.state.online.operation_duration_s = 0
    deadline = time.monotonic() + 20
    done = requests.get(operation, headers=headers, timeout=5).json()
    while done["status"] == "Updating" and time.monotonic() < deadline:
        time.sleep(0.1)
        done = requests.get(operation, headers=headers, timeout=5).json()
    assert (done["status"], done["percentComplete"]) == ("Succeeded", 100.0)
    assert "endTime" in done
    assert _get(url, headers).json()["properties"]["appInsightsEnabled"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"properties": {"unknownSetting": 1}}, "Unknown deployment properties"),
        ({"properties": {"appInsightsEnabled": "yes"}}, "appInsightsEnabled"),
        (
            {"properties": {"dataCollector": {"collections": {"x": {"dataCollectionMode": "On"}}}}},
            "dataCollectionMode",
        ),
        ({"properties": {"dataCollector": {"rollingRate": "Hour"}}}, "collections is required"),
        ({"properties": {"endpointComputeType": "Kubernetes"}}, "cannot be changed"),
        ({"location": None}, "location is required"),
    ],
)
def test_a_put_that_breaks_the_spec_is_refused_and_changes_nothing(
    arm: tuple[str, dict[str, str]], sandbox: Sandbox, change: dict[str, Any], message: str
) -> None:
    base, headers = arm
    sandbox.add_online_endpoint("bad-ep")
    sandbox.add_online_deployment("bad-ep", "blue")
    url = f"{base}/onlineEndpoints/bad-ep/deployments/blue"
    before = _get(url, headers).json()
    body = json.loads(json.dumps(before))
    for key, value in change.items():
        if isinstance(value, dict):
            body[key].update(value)
        else:
            body[key] = value
    put = requests.put(url, params={"api-version": VERSION}, json=body, headers=headers)
    assert put.status_code == 400
    assert message in put.json()["error"]["message"]
    assert _get(url, headers).json() == before


def test_only_the_api_versions_the_sdk_sends_are_served(
    arm: tuple[str, dict[str, str]], sandbox: Sandbox
) -> None:
    from service.adapters.azure_ai_ml import deployment_api_version

    assert deployment_api_version() == VERSION  # what the pinned azure-ai-ml sends
    base, headers = arm
    sandbox.add_online_endpoint("ver-ep")
    assert _get(f"{base}/onlineEndpoints", headers, "2021-01-01").status_code == 400
    assert _get(f"{base}/onlineEndpoints/ver-ep/deployments", headers).status_code == 200


def test_logs_per_container_type_and_delete(
    arm: tuple[str, dict[str, str]], sandbox: Sandbox
) -> None:
    base, headers = arm
    sandbox.add_online_endpoint("log-ep")
    sandbox.add_online_deployment("log-ep", "blue", logs="one\ntwo\nthree\n")
    url = f"{base}/onlineEndpoints/log-ep/deployments/blue"
    params = {"api-version": VERSION}
    for container in _spec()["definitions"]["ContainerType"]["enum"]:
        logs = requests.post(
            f"{url}/getLogs",
            params=params,
            json={"containerType": container, "tail": 2},
            headers=headers,
        )
        assert logs.status_code == 200
        assert set(logs.json()) == {"content"}
    tail = requests.post(f"{url}/getLogs", params=params, json={"tail": 2}, headers=headers)
    assert tail.json()["content"] == "two\nthree\n"
    bad = requests.post(
        f"{url}/getLogs", params=params, json={"containerType": "Sidecar"}, headers=headers
    )
    assert bad.status_code == 400
    deleted = requests.delete(url, params=params, headers=headers)
    assert deleted.status_code == 202
    assert OPERATION_URL.search(deleted.headers["Azure-AsyncOperation"])
    assert _get(url, headers).status_code == 404
    assert requests.delete(url, params=params, headers=headers).status_code == 204


def test_deployment_puts_spend_the_subscription_write_budget_shared_with_mms(
    fresh_emulator: EmulatorHandle,
) -> None:
    box = fresh_emulator.sandbox()
    box.add_service("svc", compute_type="AKS")
    box.add_online_endpoint("budget-ep")
    box.add_online_deployment("budget-ep", "blue")
    fresh_emulator.set_limits(arm_throttle={"enabled": True, "write_burst": 1, "write_rate": 0.5})
    token = box.credential().get_token("https://management.azure.com/.default").token
    headers = {"Authorization": f"Bearer {token}"}
    ws = box.workspace
    mms = f"{fresh_emulator.url}/modelmanagement/v1.0{ws.arm_id}/services/svc"
    patch = requests.patch(
        mms,
        json=[{"op": "replace", "path": "/appInsightsEnabled", "value": True}],
        headers=headers | {"Content-Type": "application/json-patch+json"},
        timeout=5,
    )
    assert patch.status_code == 202
    url = f"{fresh_emulator.url}{ws.arm_id}/onlineEndpoints/budget-ep/deployments/blue"
    body = _get(url, headers).json()
    put = requests.put(url, params={"api-version": VERSION}, json=body, headers=headers)
    assert put.status_code == 429
    assert int(put.headers["Retry-After"]) >= 1
    assert put.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
    assert put.json()["error"]["code"] == "TooManyRequests"
    assert uuid.UUID(box.subscription_id)
