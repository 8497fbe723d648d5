"""Model management responses validate against the official 2019-09-30 modelManagement.json.

The swagger allows undeclared keys; we additionally require every key we send to be declared,
except the few azureml-core reads that the swagger never documented (listed below with reasons).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import pytest
import requests

from emulator.testing import EmulatorHandle, Sandbox
from tests.support.reference import reference, require

SPEC = reference(
    "azure-rest-api-specs/specification/machinelearningservices/data-plane/"
    "Microsoft.MachineLearningServices/preview/2019-09-30/modelManagement.json"
)
# azureml-core's ContainerResourceRequirements.deserialize needs these two; the swagger omits them.
UNDECLARED_BUT_REQUIRED_BY_SDK = {"containerResourceRequirements": {"cpuLimit", "memoryInGBLimit"}}


@cache
def _definitions() -> dict[str, Any]:
    return json.loads(require(SPEC).read_text())["definitions"]


def _validate(document: Any, definition: str) -> None:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": _definitions()}
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


def _concrete(compute_type: str) -> str:
    """The subtype the ServiceResponseBase discriminator selects."""
    for name, definition in _definitions().items():
        if definition.get("x-ms-discriminator-value") == compute_type:
            return name
    raise LookupError(compute_type)


def _declared(definition: str) -> dict[str, Any]:
    """Every property a definition declares, following allOf."""
    node = _definitions()[definition]
    props = dict(node.get("properties", {}))
    for part in node.get("allOf", []):
        if "$ref" in part:
            props.update(_declared(part["$ref"].rsplit("/", 1)[1]))
        props.update(part.get("properties", {}))
    return props


def _assert_service_matches_spec(service: dict[str, Any]) -> None:
    definition = _concrete(service["computeType"])
    _validate(service, definition)
    declared = _declared(definition)
    assert set(service) - set(declared) == set(), f"undeclared keys in {definition}"
    for key, value in service.items():
        ref = declared[key].get("$ref")
        if isinstance(value, dict) and ref:
            nested = set(_declared(ref.rsplit("/", 1)[1]))
            assert set(value) - nested <= UNDECLARED_BUT_REQUIRED_BY_SDK.get(key, set()), key


@pytest.fixture
def mms(emulator: EmulatorHandle, sandbox: Sandbox) -> tuple[str, dict[str, str]]:
    ws = sandbox.workspace
    base = (
        f"{emulator.url}/modelmanagement/v1.0/subscriptions/{ws.subscription_id}/resourceGroups/"
        f"{ws.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/{ws.name}"
    )
    token = sandbox.credential().get_token("https://management.azure.com/.default").token
    return base, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "options",
    [
        {"compute_type": "AKS"},
        {
            "compute_type": "AKS",
            "app_insights_enabled": True,
            "collect_model_data": True,
            "state": "Unhealthy",
        },
        {"compute_type": "ACI"},
        {
            "compute_type": "ACI",
            "app_insights_enabled": True,
            "state": "Failed",
            "tags": {"team": "risk"},
        },
    ],
)
def test_service_get_matches_the_swagger(
    mms: tuple[str, dict[str, str]], sandbox: Sandbox, options: dict[str, Any]
) -> None:
    base, headers = mms
    sandbox.add_service("spec-svc", **options)
    response = requests.get(f"{base}/services/spec-svc?expand=true", headers=headers, timeout=5)
    assert response.status_code == 200
    _assert_service_matches_spec(response.json())


def test_paged_list_matches_the_swagger(mms: tuple[str, dict[str, str]], sandbox: Sandbox) -> None:
    base, headers = mms
    for i in range(3):
        sandbox.add_service(f"page-{i}", compute_type="ACI" if i % 2 else "AKS")
    page = requests.get(f"{base}/services?expand=true&count=2", headers=headers, timeout=5).json()
    _validate(page, "PaginatedServiceList")
    assert len(page["value"]) == 2
    assert page["nextLink"].startswith("https://")
    last = requests.get(page["nextLink"], headers=headers, timeout=5).json()
    _validate(last, "PaginatedServiceList")
    assert "nextLink" not in last
    for service in page["value"] + last["value"]:
        _assert_service_matches_spec(service)


@pytest.mark.parametrize("fail", [False, True])
def test_operation_matches_the_swagger(
    mms: tuple[str, dict[str, str]], sandbox: Sandbox, emulator: EmulatorHandle, fail: bool
) -> None:
    base, headers = mms
    sandbox.add_service("op-svc", compute_type="AKS")
    if fail:
        # The failure budget is global; the PATCH below spends it at once (tests run serially).
        emulator.state.services.fail_next_operations(1)
    patch = requests.patch(
        f"{base}/services/op-svc",
        json=[{"op": "replace", "path": "/appInsightsEnabled", "value": True}],
        headers=headers | {"Content-Type": "application/json-patch+json"},
        timeout=5,
    )
    assert patch.status_code == 202
    operation = requests.get(patch.headers["Operation-Location"], headers=headers, timeout=5).json()
    _validate(operation, "AsyncOperationStatus")
    assert set(operation) <= set(_declared("AsyncOperationStatus"))
    assert operation["state"] == ("Failed" if fail else "Succeeded")


def test_errors_match_the_swagger(mms: tuple[str, dict[str, str]]) -> None:
    base, headers = mms
    missing = requests.get(f"{base}/services/nope", headers=headers, timeout=5)
    assert missing.status_code == 404
    _validate(missing.json(), "ModelErrorResponse")
    bad_patch = requests.patch(
        f"{base}/services/nope",
        json=[{"op": "replace", "path": "/appInsightsEnabled", "value": 1}],
        headers=headers,
        timeout=5,
    )
    _validate(bad_patch.json(), "ModelErrorResponse")
