"""Injected faults, each observed by the real SDKs the way an Azure failure would be."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError

from emulator.testing import EmulatorHandle, Sandbox
from tests.emulator.conftest import aml_workspace


@pytest.fixture
def box(fresh_emulator: EmulatorHandle) -> Sandbox:
    sandbox = fresh_emulator.sandbox()
    sandbox.add_service("target", compute_type="AKS")
    return sandbox


@pytest.fixture
def ws(fresh_emulator: EmulatorHandle, box: Sandbox) -> Any:
    return aml_workspace(fresh_emulator, box)


def _get(ws: Any) -> Any:
    from azureml.core.webservice import Webservice

    return Webservice(ws, "target")


def test_status_500_is_a_webservice_exception(fresh_emulator: EmulatorHandle, ws: Any) -> None:
    from azureml.exceptions import WebserviceException

    fresh_emulator.add_fault("status", "mms.service_get", status=500, count=1)
    with pytest.raises(WebserviceException, match="Response Code: 500"):
        _get(ws)
    assert _get(ws).name == "target", "count=1 fails only the next call"
    faulted = [e for e in fresh_emulator.requests("mms.service_get") if e.fault]
    assert [(e.status, e.fault) for e in faulted] == [(500, "status")]


def test_throttle_fault_carries_retry_after(fresh_emulator: EmulatorHandle, ws: Any) -> None:
    from azureml.exceptions import WebserviceException

    fresh_emulator.add_fault("throttle", "mms.", retry_after_s=7, count=1)
    with pytest.raises(WebserviceException, match="Response Code: 429") as raised:
        _get(ws)
    assert "'Retry-After': '7'" in str(raised.value)


def test_dropped_connection_is_a_requests_connection_error(
    fresh_emulator: EmulatorHandle, ws: Any
) -> None:
    fresh_emulator.add_fault("drop", "mms.service_get", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(ws)
    assert fresh_emulator.requests("mms.service_get")[-1].status == 0


def test_hang_needs_the_callers_own_timeout(fresh_emulator: EmulatorHandle, ws: Any) -> None:
    fault = fresh_emulator.add_fault("hang", "mms.service_get", count=1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        call = pool.submit(_get, ws)
        with pytest.raises(FutureTimeout):
            call.result(timeout=0.3)
        fresh_emulator.clear_faults(fault.id)  # releases the held request (count=1 already spent)
        assert call.result(timeout=5).name == "target"


def test_hang_with_a_duration_ends_by_itself(fresh_emulator: EmulatorHandle, box: Sandbox) -> None:
    fresh_emulator.add_fault("hang", "arm.discovery", hang_s=0.2)
    started = time.perf_counter()
    assert requests.get(f"{fresh_emulator.url}/discovery", timeout=5).status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_latency_delays_without_failing(fresh_emulator: EmulatorHandle, ws: Any) -> None:
    fresh_emulator.add_fault("latency", "mms.service_get", latency_s=0.2)
    started = time.perf_counter()
    _get(ws)
    assert time.perf_counter() - started >= 0.2


def test_fraction_of_calls_fails_reproducibly(fresh_emulator: EmulatorHandle) -> None:
    def run() -> list[int]:
        fresh_emulator.clear_faults()
        fresh_emulator.state.faults.reseed(42)
        fresh_emulator.add_fault("status", "arm.discovery", status=503, probability=0.5)
        return [
            requests.get(f"{fresh_emulator.url}/discovery", timeout=5).status_code
            for _ in range(20)
        ]

    first = run()
    assert 0 < first.count(503) < 20
    assert run() == first


def test_token_endpoint_outage_is_a_client_authentication_error(
    fresh_emulator: EmulatorHandle, box: Sandbox
) -> None:
    fresh_emulator.add_fault("status", "entra.token", status=503)
    with pytest.raises(ClientAuthenticationError):
        box.credential(retry_total=0).get_token("https://management.azure.com/.default")


def test_faults_scoped_to_a_subscription_spare_other_tests(emulator: EmulatorHandle) -> None:
    from azureml.core.webservice import Webservice
    from azureml.exceptions import WebserviceException

    mine, theirs = emulator.sandbox(), emulator.sandbox()
    for sandbox in (mine, theirs):
        sandbox.add_service("shared-name", compute_type="ACI")
    fault = emulator.add_fault(
        "status", "mms.service_get", status=500, subscription_id=mine.subscription_id
    )
    try:
        with pytest.raises(WebserviceException):
            Webservice(aml_workspace(emulator, mine), "shared-name")
        assert Webservice(aml_workspace(emulator, theirs), "shared-name").name == "shared-name"
    finally:
        emulator.clear_faults(fault.id)
