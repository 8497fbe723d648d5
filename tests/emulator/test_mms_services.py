"""AML model management v1 beyond reads and updates, through unmodified azureml-core: delete,
keys, key regeneration and tokens (modelManagement.json 2019-09-30), and the patch rules."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from emulator.testing import EmulatorHandle, Sandbox


def _mms_url(emulator: EmulatorHandle, box: Sandbox, name: str) -> str:
    return (
        f"{emulator.arm_endpoint.rstrip('/')}/modelmanagement/v1.0/subscriptions/"
        f"{box.subscription_id}/resourceGroups/{box.resource_group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{box.workspace_name}/services/{name}"
    )


def _patch(emulator: EmulatorHandle, box: Sandbox, name: str, ops: Any) -> requests.Response:
    token = box.credential().get_token("https://management.azure.com/.default").token
    return requests.patch(
        _mms_url(emulator, box, name),
        json=ops,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_webservice_delete_removes_the_service(workspace: Any, sandbox: Sandbox) -> None:
    from azureml.core.webservice import Webservice
    from azureml.exceptions import WebserviceException

    sandbox.add_service("doomed", compute_type="AKS")
    Webservice(workspace, "doomed").delete()
    assert sandbox.service("doomed") is None
    with pytest.raises(WebserviceException, match="WebserviceNotFound"):
        Webservice(workspace, "doomed")


@pytest.mark.parametrize("compute_type", ["AKS", "ACI"])
def test_get_keys_and_regen_key_work_through_azureml_core(
    workspace: Any, sandbox: Sandbox, compute_type: str
) -> None:
    from azureml.core.webservice import Webservice

    sandbox.add_service("keyed", compute_type=compute_type)
    service = Webservice(workspace, "keyed")
    primary, secondary = service.get_keys()
    assert primary
    assert secondary
    assert primary != secondary
    service.regen_key("Secondary", set_key="chosen-by-caller")  # polls the operation (5 s)
    assert service.get_keys() == (primary, "chosen-by-caller")


def test_an_aks_token_comes_from_the_token_operation(workspace: Any, sandbox: Sandbox) -> None:
    from azureml.core.webservice import Webservice

    sandbox.add_service("tokened", compute_type="AKS")
    token = Webservice(workspace, "tokened").get_access_token()
    assert token.access_token
    assert token.token_type == "Bearer"
    assert token.refresh_after < token.expiry_on


def test_an_empty_patch_is_refused_and_starts_no_operation(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    sandbox.add_service("steady", compute_type="AKS")
    r = _patch(emulator, sandbox, "steady", [])
    assert r.status_code == 400, r.text
    assert sandbox.service("steady")["state"] == "Healthy"


def test_added_properties_are_kept_and_others_cannot_be_replaced_or_removed(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    sandbox.add_service("props", compute_type="AKS")
    add = [{"op": "add", "path": "/properties/azureml.git.commit", "value": "abc123"}]
    r = _patch(emulator, sandbox, "props", add)
    assert r.status_code == 202, r.text
    assert sandbox.service("props")["properties"]["azureml.git.commit"] == "abc123"
    # A later release of the caller sends its new commit: RFC 6902 add sets the member.
    again = [{"op": "add", "path": "/properties/azureml.git.commit", "value": "def456"}]
    assert _patch(emulator, sandbox, "props", again).status_code == 202
    assert sandbox.service("props")["properties"]["azureml.git.commit"] == "def456"
    for ops in (
        [{"op": "replace", "path": "/properties/hasHttps", "value": "True"}],
        [{"op": "remove", "path": "/properties/hasHttps"}],
        [{"op": "add", "path": "/properties/n", "value": 5}],
    ):
        r = _patch(emulator, sandbox, "props", ops)
        assert r.status_code == 400, (ops, r.text)
    assert sandbox.service("props")["properties"]["hasHttps"] == "False"
