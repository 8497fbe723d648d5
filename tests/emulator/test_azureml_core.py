"""azureml-core v1 web services, unmodified, against the emulator via the product's auth adapter."""

from __future__ import annotations

import time
from typing import Any

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from tests.emulator.conftest import aml_workspace


def _poll_operation(service: Any, timeout_s: float = 5.0) -> tuple[str, Any]:
    """Poll the service's last operation with the SDK's own single-poll call (no 5 s sleeps)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state, error, _ = service._get_operation_state()
        if state not in ("Running", "NotStarted") or time.monotonic() > deadline:
            return state, error
        time.sleep(0.05)


def test_workspace_loads_through_token_credential_adapter(workspace: Any, sandbox: Sandbox) -> None:
    assert workspace.name == sandbox.workspace_name
    assert workspace.location == "westeurope"
    details = workspace.get_details()
    assert details["applicationInsights"] == sandbox.app_insights_resource_id
    assert details["workspaceid"] == sandbox.workspace.workspace_id


@pytest.mark.parametrize("compute_type", ["AKS", "ACI"])
def test_webservice_is_read_as_its_compute_type(
    workspace: Any, sandbox: Sandbox, compute_type: str
) -> None:
    from azureml.core.webservice import AciWebservice, AksWebservice, Webservice

    sandbox.add_service("scorer", compute_type=compute_type, app_insights_enabled=True)
    service = Webservice(workspace, "scorer")
    assert isinstance(service, AksWebservice if compute_type == "AKS" else AciWebservice)
    assert service.enable_app_insights is True
    assert service.state == "Healthy"
    assert service.scoring_uri


def test_missing_webservice_raises_not_found(workspace: Any) -> None:
    from azureml.core.webservice import Webservice
    from azureml.exceptions import WebserviceException

    with pytest.raises(WebserviceException, match="WebserviceNotFound"):
        Webservice(workspace, "does-not-exist")


def test_webservice_list_follows_next_links(emulator: EmulatorHandle) -> None:
    from azureml.core.webservice import Webservice

    box = emulator.sandbox(page_size=2)
    for i in range(5):
        box.add_service(f"svc-{i}", compute_type="AKS" if i % 2 else "ACI")
    since = emulator.bookmark()
    services = Webservice.list(aml_workspace(emulator, box))
    assert sorted(s.name for s in services) == [f"svc-{i}" for i in range(5)]
    pages = emulator.requests("mms.services_list", since=since, subscription_id=box.subscription_id)
    assert len(pages) == 3
    assert sorted({s.compute_type for s in services}) == ["ACI", "AKS"]


@pytest.mark.parametrize("compute_type", ["AKS", "ACI"])
def test_update_toggles_app_insights(workspace: Any, sandbox: Sandbox, compute_type: str) -> None:
    from azureml.core.webservice import Webservice

    sandbox.add_service("toggle", compute_type=compute_type, app_insights_enabled=False)
    service = Webservice(workspace, "toggle")
    service.update(enable_app_insights=True)
    assert _poll_operation(service) == ("Succeeded", None)
    assert Webservice(workspace, "toggle").enable_app_insights is True
    service.update(enable_app_insights=False)
    assert _poll_operation(service) == ("Succeeded", None)
    assert Webservice(workspace, "toggle").enable_app_insights is False


def test_aks_collect_model_data_updates_data_collection(workspace: Any, sandbox: Sandbox) -> None:
    from azureml.core.webservice import Webservice

    sandbox.add_service("collector", compute_type="AKS")
    service = Webservice(workspace, "collector")
    assert service.data_collection.storage_enabled is False
    service.update(collect_model_data=True)
    assert Webservice(workspace, "collector").data_collection.storage_enabled is True
    assert sandbox.service("collector")["dataCollection"] == {
        "eventHubEnabled": False,
        "storageEnabled": True,
    }


def test_update_applies_only_when_its_operation_succeeds(fresh_emulator: EmulatorHandle) -> None:
    from azureml.core.webservice import Webservice

    fresh_emulator.set_limits(mms={"operation_duration_s": 0.3})
    box = fresh_emulator.sandbox()
    box.add_service("slow", compute_type="AKS")
    ws = aml_workspace(fresh_emulator, box)
    service = Webservice(ws, "slow")
    service.update(enable_app_insights=True)
    assert service.state == "Transitioning"
    assert service.enable_app_insights is False
    assert _poll_operation(service) == ("Succeeded", None)
    refreshed = Webservice(ws, "slow")
    assert (refreshed.state, refreshed.enable_app_insights) == ("Healthy", True)


def test_failed_operation_leaves_the_service_unchanged(fresh_emulator: EmulatorHandle) -> None:
    from azureml.core.webservice import Webservice

    box = fresh_emulator.sandbox()
    box.add_service("stubborn", compute_type="ACI")
    ws = aml_workspace(fresh_emulator, box)
    fresh_emulator.state.services.fail_next_operations(1, "Quota exceeded for App Insights")
    service = Webservice(ws, "stubborn")
    service.update(enable_app_insights=True)
    state, error = _poll_operation(service)
    assert state == "Failed"
    assert error["message"] == "Quota exceeded for App Insights"
    assert Webservice(ws, "stubborn").enable_app_insights is False


def test_out_of_band_change_is_visible_to_the_sdk(workspace: Any, sandbox: Sandbox) -> None:
    from azureml.core.webservice import Webservice

    sandbox.add_service("drifty", compute_type="AKS", app_insights_enabled=True)
    sandbox.set_service_property("drifty", "/appInsightsEnabled", False)
    assert Webservice(workspace, "drifty").enable_app_insights is False


def test_validation_error_aborts_update(fresh_emulator: EmulatorHandle) -> None:
    from azureml.core.webservice import Webservice
    from azureml.exceptions import WebserviceException

    box = fresh_emulator.sandbox()
    box.add_service("guarded", compute_type="AKS")
    service = Webservice(aml_workspace(fresh_emulator, box), "guarded")
    fresh_emulator.set_limits(mms={"validation_error": "Insufficient cluster capacity"})
    with pytest.raises(WebserviceException, match="Insufficient cluster capacity"):
        service.update(enable_app_insights=True)
    assert fresh_emulator.requests("mms.service_patch") == []


@pytest.mark.parametrize("compute_type", ["AKS", "ACI"])
def test_get_logs_returns_the_tail(workspace: Any, sandbox: Sandbox, compute_type: str) -> None:
    from azureml.core.webservice import Webservice

    sandbox.add_service("chatty", compute_type=compute_type, logs="one\ntwo\nthree\n")
    service = Webservice(workspace, "chatty")
    assert service.get_logs() == "one\ntwo\nthree\n"
    assert service.get_logs(num_lines=2) == "two\nthree\n"
